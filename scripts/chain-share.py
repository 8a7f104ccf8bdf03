#!/usr/bin/env python3
"""How much of a run's proposing is chains, and how novel its chains are, from its rollout dumps.

On the compositional base (assets/chain-base) almost every novel proposal is a chain of typed
operations (a program that binds `y = ...`, src/pretrain/chains.rs). So a proposer can raise its
novel share in two ways: write chains more often, or write chains of unseen shapes more often.
This prints, per window of WINDOW steps, over the valid deduction and abduction proposals of each
run (induction proposals reuse a buffered program, so they are never novel): how many there were,
the share that are chains, the novel share among the chains and among the rest, and the novel
share overall. Runs given together are also pooled per window ("pooled" lines).

Usage: chain-share.py WINDOW RUN_DIR [RUN_DIR...]
"""
import sys

from rollouts import valid_proposals

if len(sys.argv) < 3:
    sys.exit(__doc__)
window = int(sys.argv[1])
runs = sys.argv[2:]


def is_chain(program):
    """A chain binds its first intermediate result to `y` (the only generator that does)."""
    return any(line.strip().startswith("y = ") for line in program.splitlines())


def count(run_dir):
    """{window start: [valid, chains, novel chains, novel others]} of one run."""
    out = {}
    for step, r in valid_proposals(run_dir):
        if r["task"] not in ("deduction", "abduction"):
            continue
        acc = out.setdefault(step - step % window, [0, 0, 0, 0])
        program = r["response"].split("<in>", 1)[0]
        chain, novel = is_chain(program), bool(r.get("novel"))
        acc[0] += 1
        acc[1] += chain
        acc[2] += chain and novel
        acc[3] += (not chain) and novel
    return out


def pct(n, d):
    return f"{100 * n / d:5.1f} %" if d else "    - "


def show(label, w, acc):
    v, c, nc, no = acc
    print(f"{label:<40} {w:>4}-{w + window - 1:<4} valid {v:4d}  chains {pct(c, v)}  "
          f"novel|chain {pct(nc, c)}  novel|other {pct(no, v - c)}  novel {pct(nc + no, v)}")


pooled = {}
for run in runs:
    for w, acc in sorted(count(run).items()):
        show(run, w, acc)
        p = pooled.setdefault(w, [0, 0, 0, 0])
        for i, x in enumerate(acc):
            p[i] += x
if len(runs) > 1:
    for w, acc in sorted(pooled.items()):
        show("pooled", w, acc)
