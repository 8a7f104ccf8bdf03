#!/usr/bin/env python3
"""Where greedy accuracy moves: per-item results of the tiny model's validation or held-out sets,
grouped by the item's family and split side, with a paired comparison against a reference model.

    ITEMS=DIR bash scripts/score-kinds.sh SPLIT LABEL WEIGHTS   # once per model; writes DIR/LABEL-KIND.jsonl
    python3 scripts/score-families.py SET.jsonl DIR REF LABEL...

SET.jsonl is the set the items came from (assets/tiny-base/validation.jsonl, heldout.jsonl or
chains.jsonl): its rows give each item's family and whether its template (for chains: its shape) is
unseen in pretraining. REF is the label
the others are compared with (usually `base`).

Groups: `seen` (templates of the pretraining corpus, held-out inputs), `unseen` (templates never
in pretraining), `compose` (the compositional family, never in pretraining). For each label and
group: accuracy, and against REF on the same items the items gained (REF wrong, label right) and
lost, with the paired difference and its standard error,
SE = sqrt(g + l - (g - l)^2 / n) / n (the McNemar form: only items that changed carry noise).
"""
import collections
import json
import math
import os
import sys

KINDS = ("deduction", "abduction", "induction")


def groups_of(set_path):
    """(kind, index within kind) -> (group, family), in the order `azr eval` numbers items."""
    seen_per_kind = collections.Counter()
    out = {}
    with open(set_path) as f:
        for line in f:
            row = json.loads(line)
            kind = row["kind"]
            i = seen_per_kind[kind]
            seen_per_kind[kind] += 1
            family = row["family"]
            if family == "compose":
                group = "compose"
            elif row.get("unseen_template"):
                group = "unseen"
            else:
                group = "seen"
            out[(kind, i)] = (group, family)
    return out


def load(items_dir, label, kind):
    """index -> correct (greedy: 0 or 1) of one label and kind."""
    path = os.path.join(items_dir, f"{label}-{kind}.jsonl")
    with open(path) as f:
        return {r["index"]: r["correct"] > 0 for r in map(json.loads, f)}


def paired(ref, got, keys):
    gained = sum(1 for k in keys if got[k] and not ref[k])
    lost = sum(1 for k in keys if ref[k] and not got[k])
    n = len(keys)
    diff = (gained - lost) / n
    se = math.sqrt(max(gained + lost - (gained - lost) ** 2 / n, 0.0)) / n
    return gained, lost, 100 * diff, 100 * se


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    set_path, items_dir, ref_label, labels = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    groups = groups_of(set_path)
    results = {lab: {} for lab in [ref_label] + labels}
    for lab in results:
        for kind in KINDS:
            for i, c in load(items_dir, lab, kind).items():
                results[lab][(kind, i)] = c
    keys = sorted(results[ref_label])
    missing = [k for k in keys if k not in groups]
    if missing:
        sys.exit(f"{len(missing)} items are not in {set_path}: is it the set that was scored?")

    def select(kind=None, group=None, family=None):
        return [
            k
            for k in keys
            if (kind is None or k[0] == kind)
            and (group is None or groups[k][0] == group)
            and (family is None or groups[k][1] == family)
        ]

    def acc(lab, ks):
        return 100 * sum(results[lab][k] for k in ks) / len(ks)

    by_kind = {kind: select(kind) for kind in KINDS}
    print(f"# {set_path}; reference `{ref_label}`; accuracy %, then vs reference: "
          "+gained -lost, paired difference ± SE (points)")
    header = f"{'label':<14} {'slice':<22} {'items':>5} {'acc':>6}   {'+g':>3} {'-l':>3} {'diff':>6} {'SE':>5}"
    rows = []
    for kind in KINDS + (None,):
        for group in (None, "seen", "unseen", "compose"):
            rows.append((f"{kind or 'all'}/{group or 'all'}", select(kind, group)))
    families = sorted({g[1] for g in groups.values()} - {"compose"})
    for fam in families:
        rows.append((f"all/{fam}", select(family=fam)))
    for lab in labels:
        print(header)
        for name, ks in rows:
            if not ks:
                continue
            g, l, d, se = paired(results[ref_label], results[lab], ks)
            print(f"{lab:<14} {name:<22} {len(ks):>5} {acc(lab, ks):>6.2f}   {g:>3} {l:>3} {d:>+6.2f} {se:>5.2f}")
        # The README's summary figure: the mean of the three kinds' accuracies.
        per_kind = [paired(results[ref_label], results[lab], by_kind[kind]) for kind in KINDS]
        acc3 = sum(acc(lab, by_kind[kind]) for kind in KINDS) / 3
        d3 = sum(p[2] for p in per_kind) / 3
        se3 = math.sqrt(sum(p[3] ** 2 for p in per_kind)) / 3
        print(f"{lab:<14} {'mean of 3 kinds':<22} {'':>5} {acc3:>6.2f}   {'':>3} {'':>3} {d3:>+6.2f} {se3:>5.2f}")
        print()
    ref_rows = [(name, ks) for name, ks in rows if ks]
    print(f"{'reference':<14} {'slice':<22} {'items':>5} {'acc':>6}")
    for name, ks in ref_rows:
        print(f"{ref_label:<14} {name:<22} {len(ks):>5} {acc(ref_label, ks):>6.2f}")


if __name__ == "__main__":
    main()
