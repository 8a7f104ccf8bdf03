// Validate Grafana dashboard JSON files against the JSON Schema generated from @grafana/schema
// (`npm run schema` writes dashboard.schema.json). Usage:
//   node validate_dashboards.mjs dashboard.schema.json ../dashboards/*.json
// Prints one line per file ("ok FILE" or "FAIL FILE: errors"); exits 1 if any file fails.
import { readFileSync } from "node:fs";
import Ajv from "ajv";

const [schemaPath, ...files] = process.argv.slice(2);
if (!schemaPath || files.length === 0) {
  console.error("usage: node validate_dashboards.mjs SCHEMA.json DASHBOARD.json...");
  process.exit(2);
}
const ajv = new Ajv({ allErrors: true, strict: false });
const validate = ajv.compile(JSON.parse(readFileSync(schemaPath, "utf8")));
let failed = 0;
for (const file of files) {
  const ok = validate(JSON.parse(readFileSync(file, "utf8")));
  if (ok) {
    console.log(`ok   schema ${file}`);
  } else {
    failed += 1;
    const errs = validate.errors.map((e) => `${e.instancePath || "/"} ${e.message}`).join("; ");
    console.log(`FAIL schema ${file}: ${errs}`);
  }
}
process.exit(failed ? 1 : 0);
