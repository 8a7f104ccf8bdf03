#!/usr/bin/env python3
"""Tests of tools/check_dashboards.py (static mode) and tools/gen_dashboards.py: the shipped
dashboards pass, and each kind of breakage is caught. Run: python3 -m unittest tools/test_check_dashboards.py
"""
import copy
import json
import pathlib
import subprocess
import sys
import tempfile
import unittest

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHECKER = ROOT / "tools" / "check_dashboards.py"
DASHBOARDS = sorted((ROOT / "dashboards").glob("*.json"))


def run_checker(files, *extra):
    r = subprocess.run([sys.executable, str(CHECKER), "--quiet", *extra, *map(str, files)],
                       capture_output=True, text=True, cwd=ROOT)
    fails = [line for line in r.stdout.splitlines() if line.startswith("FAIL")]
    return r.returncode, fails, r.stdout


class CheckDashboards(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = pathlib.Path(self.tmp.name)
        self.boards = {p.name: json.loads(p.read_text()) for p in DASHBOARDS}

    def tearDown(self):
        self.tmp.cleanup()

    def write(self, boards):
        paths = []
        for name, d in boards.items():
            p = self.dir / name
            p.write_text(json.dumps(d))
            paths.append(p)
        return paths

    def broken(self, name, mutate):
        """Copy of all dashboards with `mutate` applied to dashboard `name`; returns FAIL lines."""
        boards = copy.deepcopy(self.boards)
        mutate(boards[name])
        code, fails, out = run_checker(self.write(boards))
        self.assertEqual(code, 1, out)
        self.assertRegex(out.splitlines()[-1], rf"^\d+ passed, {len(fails)} failed$")
        return fails

    def panel(self, d, title):
        return next(p for p in d["panels"] if p.get("title") == title)

    def test_shipped_dashboards_pass(self):
        code, fails, out = run_checker(DASHBOARDS)
        self.assertEqual((code, fails), (0, []), out)
        self.assertRegex(out.splitlines()[-1], r"^\d+ passed, 0 failed$")

    def test_generated_files_are_up_to_date(self):
        r = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_dashboards.py"), "--check"],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_undefined_metric(self):
        def mutate(d):
            self.panel(d, "Policy-gradient loss")["targets"][0]["expr"] = "max(azr_pg_los)"
        fails = self.broken("overview.json", mutate)
        self.assertTrue(any("metric azr_pg_los is defined" in f for f in fails), fails)

    def test_metric_on_no_panel(self):
        def mutate(d):
            d["panels"] = [p for p in d["panels"] if p.get("title") != "KL"]
        fails = self.broken("learner.json", mutate)
        self.assertEqual([f for f in fails if "appears on some panel" in f],
                         ["FAIL metric azr_kl appears on some panel",
                          "FAIL metric azr_kl_reference appears on some panel"])

    def test_hard_coded_datasource(self):
        def mutate(d):
            self.panel(d, "KL")["datasource"] = {"type": "prometheus", "uid": "P1809F7CD0C75ACF3"}
        fails = self.broken("learner.json", mutate)
        self.assertTrue(any("'KL': panel datasource" in f for f in fails), fails)

    def test_counter_without_rate(self):
        def mutate(d):
            self.panel(d, "Proposals / s")["targets"][0]["expr"] = \
                'sum by (task) (azr_proposals_total{job=~"$job"})'
        fails = self.broken("self-play.json", mutate)
        self.assertTrue(any("counter azr_proposals_total read through a range selector" in f
                            for f in fails), fails)

    def test_label_the_metric_does_not_have(self):
        def mutate(d):
            self.panel(d, "Proposals / s")["targets"][0]["expr"] = \
                'sum by (role) (rate(azr_proposals_total{job=~"$job"}[$__rate_interval]))'
        fails = self.broken("self-play.json", mutate)
        self.assertTrue(any("labels ['role'] exist" in f for f in fails), fails)

    def test_fixed_range_and_overlap(self):
        def mutate(d):
            p = self.panel(d, "Steps / min")
            p["targets"][0]["expr"] = p["targets"][0]["expr"].replace("$__rate_interval", "5m")
            p["gridPos"] = dict(self.panel(d, "Steps")["gridPos"])
        fails = self.broken("overview.json", mutate)
        self.assertTrue(any("range selector [5m]" in f for f in fails), fails)
        self.assertTrue(any("overlaps no other panel" in f for f in fails), fails)

    def test_const_missing_from_all(self):
        src = (ROOT / "src" / "metrics.rs").read_text().replace("    &KL,\n", "", 1)
        cat = self.dir / "metrics.rs"
        cat.write_text(src)
        code, fails, out = run_checker(DASHBOARDS, "--catalogue", str(cat))
        self.assertEqual(code, 1)
        self.assertIn("FAIL catalogue: KL (azr_kl) is listed in ALL", fails)


if __name__ == "__main__":
    unittest.main()
