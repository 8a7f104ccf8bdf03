#!/usr/bin/env python3
"""Check the Grafana dashboards in dashboards/*.json against the metric catalogue and, in live
mode, against a running Prometheus. Standard library only.

Static checks (always):
  * the catalogue: every `pub const X: MetricDef` in src/metrics.rs is listed in `ALL`, names
    are unique;
  * every metric name used in any panel query is defined in src/metrics.rs, and every defined
    metric appears on some panel (histograms through their _bucket/_sum/_count series);
  * labels used in `by (...)`, matchers and legends exist on the metrics of that query;
  * counters and histogram series are read through a range selector (rate/increase) except
    in stat panels, and range selectors use $__rate_interval;
  * dashboard lints: stable uid (1-40 of [A-Za-z0-9_-], unique), a `datasource` template
    variable used by every panel, target and query variable, unique panel ids and refIds,
    a title, description and unit on every panel, gridPos inside 24 columns without overlaps;
  * with --promtool: every query (variables substituted) parses, via `promtool check rules`;
  * with --schema FILE: every dashboard validates against the JSON Schema generated from
    @grafana/schema (tools/validate_dashboards.mjs, needs node and tools/node_modules).

Live checks (--prometheus URL): every panel query, run as an instant and a range query, succeeds
and returns at least one finite sample; every query variable has values.

Prints one line per check and ends with `N passed, N failed`; exits 1 on any failure.
"""
import argparse
import glob
import json
import math
import pathlib
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
UID_RE = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
HIST_SUFFIXES = ("_bucket", "_sum", "_count")
LABEL_KEYS = {"Task": "task", "Role": "role", "Actor": "actor", "Status": "status",
              "Benchmark": "benchmark", "Layer": "layer", "Queue": "queue", "Phase": "phase",
              "Outcome": "outcome", "Work": "work", "Node": "node",
              "Source": "source"}
TARGET_LABELS = {"job", "instance"}  # added by Prometheus to every scraped series
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}


# ----- the catalogue ---------------------------------------------------------------------------

def parse_catalogue(path):
    """Return {name: {"const", "kind", "labels"}} and the list of const names in ALL."""
    src = pathlib.Path(path).read_text()
    label_consts = {}
    for cname, body in re.findall(r"const (\w+): &\[LabelKey\] = &\[(.*?)\];", src, re.S):
        label_consts[cname] = [LABEL_KEYS[k] for k in re.findall(r"LabelKey::(\w+)", body)]
    defs = {}
    for cname, body in re.findall(r"pub const (\w+): MetricDef = MetricDef \{(.*?)\n\};", src, re.S):
        name = re.search(r'name:\s*"([^"]+)"', body).group(1)
        kind = re.search(r"kind:\s*MetricKind::(\w+)", body).group(1).lower()
        lab = re.search(r"labels:\s*(&\[[^\]]*\]|\w+)", body).group(1)
        labels = ([LABEL_KEYS[k] for k in re.findall(r"LabelKey::(\w+)", lab)]
                  if lab.startswith("&") else label_consts[lab])
        if name in defs:
            raise SystemExit(f"{path}: metric {name} defined twice")
        defs[name] = {"const": cname, "kind": kind, "labels": set(labels)}
    all_block = re.search(r"pub const ALL: &\[&MetricDef\] = &\[(.*?)\];", src, re.S)
    in_all = re.findall(r"&(\w+)", all_block.group(1)) if all_block else []
    return defs, in_all


# ----- dashboards ------------------------------------------------------------------------------

def panels(dash):
    for p in dash.get("panels", []):
        yield p
        for c in p.get("panels", []) or []:  # collapsed rows keep their children here
            yield c


def var_values(dash):
    vals = {}
    for v in dash.get("templating", {}).get("list", []):
        name, typ = v.get("name"), v.get("type")
        if typ == "datasource":
            continue
        if v.get("includeAll") or v.get("multi"):
            vals[name] = v.get("allValue") or ".+"
        elif typ in ("custom", "constant", "textbox"):
            q = str(v.get("query", ""))
            vals[name] = q.split(",")[0].strip() if q else ".*"
        elif typ == "interval":
            vals[name] = "1m"
        else:
            vals[name] = ".+"
    return vals


def parse_dur(s):
    mt = re.fullmatch(r"(\d+)(ms|s|m|h|d)", s)
    if not mt:
        raise SystemExit(f"bad duration {s!r}")
    return int(mt.group(1)) * {"ms": .001, "s": 1, "m": 60, "h": 3600, "d": 86400}[mt.group(2)]


def substitute(expr, vals, rate_interval, interval, rng):
    builtins = {"__rate_interval": rate_interval, "__interval": interval, "__range": rng,
                "__range_s": str(int(parse_dur(rng))),
                "__interval_ms": str(int(parse_dur(interval) * 1000))}
    allv = {**vals, **builtins}

    def rep(mt):
        name = mt.group(1) or mt.group(2) or mt.group(3)
        return allv.get(name, mt.group(0))
    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)", rep, expr)


def strip_strings(expr):
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)


def metric_refs(expr):
    """Metric names (azr_*) referenced in a query, with string literals ignored."""
    return re.findall(r"\b(azr_[a-z0-9_]+)\b", strip_strings(expr))


def base_metric(name, defs):
    if name in defs:
        return name
    for suf in HIST_SUFFIXES:
        if name.endswith(suf) and defs.get(name[: -len(suf)], {}).get("kind") == "histogram":
            return name[: -len(suf)]
    return None


def used_labels(expr):
    """Label names used in by/without/on/ignoring clauses and in matchers."""
    e = strip_strings(expr)
    labels = set()
    for grp in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", e):
        labels |= {x.strip() for x in grp.split(",") if x.strip()}
    for sel in re.findall(r"\{([^}]*)\}", e):
        labels |= set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", sel))
    return labels


# ----- Prometheus ------------------------------------------------------------------------------

def prom(base, path, **params):
    url = base.rstrip("/") + path + "?" + urllib.parse.urlencode(params, doseq=True)
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:  # 400/422 carry a JSON error body
        try:
            return json.load(e)
        except ValueError:
            return {"status": "error", "errorType": f"HTTP {e.code}", "error": str(e)}
    except (urllib.error.URLError, OSError) as e:
        return {"status": "error", "errorType": "connection", "error": str(e)}


def finite(result, rtype):
    for s in result:
        pts = s.get("values", []) if rtype == "matrix" else [s.get("value")]
        if any(p and math.isfinite(float(p[1])) for p in pts):
            return True
    return False


# ----- main ------------------------------------------------------------------------------------

class Report:
    def __init__(self, quiet):
        self.passed = self.failed = 0
        self.quiet = quiet

    def check(self, cond, msg):
        if cond:
            self.passed += 1
            if not self.quiet:
                print("ok   " + msg)
        else:
            self.failed += 1
            print("FAIL " + msg)
        return cond


def overlaps(a, b):
    return (a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"]
            and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"])


def main():
    ap = argparse.ArgumentParser(description="Check azr's Grafana dashboards.")
    ap.add_argument("files", nargs="*")
    ap.add_argument("--catalogue", default=str(ROOT / "src" / "metrics.rs"))
    ap.add_argument("--prometheus", help="base URL of a live Prometheus: run every query")
    ap.add_argument("--promtool", action="store_true", help="parse every query with promtool")
    ap.add_argument("--schema", help="JSON Schema of a dashboard (from @grafana/schema)")
    ap.add_argument("--rate-interval", default="30s")
    ap.add_argument("--interval", default="5s")
    ap.add_argument("--range", default="5m")
    ap.add_argument("--quiet", action="store_true", help="print failures only")
    a = ap.parse_args()
    files = a.files or sorted(glob.glob(str(ROOT / "dashboards" / "*.json")))
    rep = Report(a.quiet)
    check = rep.check

    defs, in_all = parse_catalogue(a.catalogue)
    check(len(defs) > 0, f"{a.catalogue}: {len(defs)} metrics defined")
    for name, d in sorted(defs.items()):
        check(d["const"] in in_all, f"catalogue: {d['const']} ({name}) is listed in ALL")

    used = {}  # metric -> first place it is used
    uids = {}
    all_queries = []  # (where, substituted expr)
    now = time.time()
    for f in files:
        rel = pathlib.Path(f).resolve()
        rel = rel.relative_to(ROOT) if rel.is_relative_to(ROOT) else rel
        try:
            d = json.loads(pathlib.Path(f).read_text())
        except ValueError as e:
            check(False, f"{rel}: valid JSON ({e})")
            continue
        uid = d.get("uid")
        check(bool(uid and UID_RE.match(uid)), f"{rel}: uid {uid!r} is 1-40 chars of [A-Za-z0-9_-]")
        check(uid not in uids, f"{rel}: uid {uid!r} unique (also in {uids.get(uid)})")
        uids[uid] = rel
        check(d.get("id") is None, f"{rel}: no instance-specific dashboard id")
        check(bool(d.get("title")), f"{rel}: has a title")
        variables = d.get("templating", {}).get("list", [])
        ds_vars = [v["name"] for v in variables if v.get("type") == "datasource"]
        check(ds_vars == ["datasource"], f"{rel}: one `datasource` template variable")
        ds_ok = ({"type": "prometheus", "uid": "${datasource}"},)
        vals = var_values(d)
        for v in variables:
            if v.get("type") == "query":
                check(v.get("datasource") in ds_ok, f"{rel}: variable {v['name']} uses ${{datasource}}")
        ids = [p.get("id") for p in panels(d)]
        check(None not in ids and len(ids) == len(set(ids)), f"{rel}: panel ids unique and set")
        boxes = []
        for p in panels(d):
            title = f"{rel} panel {p.get('id')} {p.get('title')!r}"
            gp = p.get("gridPos") or {}
            in_grid = all(isinstance(gp.get(k), int) for k in "xywh") and gp.get("x", 0) >= 0 \
                and gp.get("x", 0) + gp.get("w", 0) <= 24
            check(in_grid, f"{title}: gridPos inside 24 columns")
            if in_grid:
                clash = [q for q, b in boxes if overlaps(gp, b)]
                check(not clash, f"{title}: overlaps no other panel {clash}")
                boxes.append((p.get("id"), gp))
            if p.get("type") == "row":
                continue
            check(bool(p.get("title")) and bool(p.get("description")),
                  f"{title}: has a title and a description")
            check(bool(p.get("fieldConfig", {}).get("defaults", {}).get("unit")),
                  f"{title}: has a unit")
            check(p.get("datasource") in ds_ok, f"{title}: panel datasource is ${{datasource}}")
            targets = [t for t in p.get("targets", []) if not t.get("hide")]
            refids = [t.get("refId") for t in p.get("targets", [])]
            check(bool(targets) and all(t.get("expr") for t in targets),
                  f"{title}: has PromQL targets")
            check(len(refids) == len(set(refids)) and all(refids), f"{title}: refIds unique")
            for t in targets:
                expr = t.get("expr", "")
                what = f"{title} [{t.get('refId')}]"
                check(t.get("datasource", ds_ok[0]) in ds_ok, f"{what}: target datasource")
                refs = metric_refs(expr)
                labels_avail = set(TARGET_LABELS) | {"le"}
                for r in refs:
                    base = base_metric(r, defs)
                    check(base is not None, f"{what}: metric {r} is defined in src/metrics.rs")
                    if base is None:
                        continue
                    used.setdefault(base, what)
                    labels_avail |= defs[base]["labels"]
                    kind = defs[base]["kind"]
                    if kind in ("counter", "histogram") and p.get("type") != "stat":
                        ok = re.search(rf"\b{r}\b(\{{[^}}]*\}})?\[", strip_strings(expr))
                        check(bool(ok), f"{what}: {kind} {r} read through a range selector")
                # `le` exists only on _bucket series.
                extra = used_labels(expr) - labels_avail
                check(not extra, f"{what}: labels {sorted(extra)} exist on its metrics")
                legend_labels = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", t.get("legendFormat", "")))
                missing = legend_labels - labels_avail
                check(not missing, f"{what}: legend labels {sorted(missing)} exist")
                for rng_sel in re.findall(r"\[([^\]]+)\]", strip_strings(expr)):
                    check(rng_sel == "$__rate_interval",
                          f"{what}: range selector [{rng_sel}] is $__rate_interval")
                q = substitute(expr, vals, a.rate_interval, a.interval, a.range)
                all_queries.append((what, q))

    for name in sorted(defs):
        check(name in used, f"metric {name} appears on some panel"
              + (f" ({used[name]})" if name in used else ""))

    if a.promtool:
        with tempfile.TemporaryDirectory() as tmp:
            rules = {"groups": [{"name": "panels", "rules": [
                {"record": f"panel_check:{i}", "expr": q} for i, (_, q) in enumerate(all_queries)]}]}
            path = pathlib.Path(tmp) / "rules.yml"
            path.write_text(json.dumps(rules))  # JSON is YAML
            r = subprocess.run(["promtool", "check", "rules", str(path)],
                               capture_output=True, text=True)
            check(r.returncode == 0, f"promtool parses all {len(all_queries)} queries"
                  + ("" if r.returncode == 0 else f": {r.stdout}{r.stderr}"))

    if a.schema:
        r = subprocess.run(["node", str(ROOT / "tools" / "validate_dashboards.mjs"), a.schema, *files],
                           capture_output=True, text=True)
        for line in r.stdout.splitlines():
            check(line.startswith("ok"), line[5:] if line.startswith(("ok", "FAIL")) else line)
        check(r.returncode == 0, "Grafana schema validation" + ("" if r.returncode == 0
                                                                 else f": {r.stderr.strip()}"))

    if a.prometheus:
        info = prom(a.prometheus, "/api/v1/status/buildinfo")
        check(info.get("status") == "success",
              f"Prometheus at {a.prometheus} answers (version {info.get('data', {}).get('version')})")
        for f in files:
            d = json.loads(pathlib.Path(f).read_text())
            for v in d.get("templating", {}).get("list", []):
                if v.get("type") != "query":
                    continue
                q = v.get("definition") or v.get("query", {}).get("query", "")
                mt = re.fullmatch(r"label_values\((?:(.+),\s*)?(\w+)\)", q.strip())
                if not check(bool(mt), f"{f}: variable {v['name']} query {q!r} is label_values()"):
                    continue
                match = substitute(mt.group(1), var_values(d), a.rate_interval, a.interval, a.range) \
                    if mt.group(1) else None
                params = {"match[]": match} if match else {}
                r = prom(a.prometheus, f"/api/v1/label/{mt.group(2)}/values", **params)
                check(r.get("status") == "success" and bool(r.get("data")),
                      f"{f}: variable {v['name']} has values {r.get('data')}")
        for what, q in all_queries:
            r = prom(a.prometheus, "/api/v1/query", query=q, time=f"{now:.3f}")
            if not check(r.get("status") == "success",
                         f"{what} {q}: {r.get('errorType')}: {r.get('error')}"):
                continue
            rr = prom(a.prometheus, "/api/v1/query_range", query=q,
                      start=f"{now - parse_dur(a.range):.3f}", end=f"{now:.3f}", step=a.interval)
            res, rres = r["data"]["result"], rr.get("data", {}).get("result", [])
            if not res and not rres:
                check(False, f"{what} {q}: no data (instant and range both empty)")
            else:
                check(finite(res, r["data"]["resultType"]) or finite(rres, "matrix"),
                      f"{what} {q}: finite data ({len(res)} series now, {len(rres)} over {a.range})")

    print(f"{rep.passed} passed, {rep.failed} failed")
    sys.exit(1 if rep.failed else 0)


if __name__ == "__main__":
    main()
