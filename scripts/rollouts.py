"""Reading a run's rollout dumps (RUN_DIR/rollouts/step_*.jsonl, written with
`run.dump_rollouts = true`); shared by novelty-summary.py and chain-share.py."""
import glob
import json
import os
import sys


def valid_proposals(run_dir):
    """Yield (step, record) for every valid proposal of the run, in step order: the proposer's
    records whose task the executor validated (they carry a `solve_rate`). Exits with a message
    when the run has no dumps."""
    files = sorted(glob.glob(os.path.join(run_dir, "rollouts", "step_*.jsonl")))
    if not files:
        sys.exit(f"no rollout dumps under {run_dir}/rollouts")
    for f in files:
        step = int(os.path.basename(f)[len("step_"):-len(".jsonl")])
        with open(f) as fh:
            for line in fh:
                r = json.loads(line)
                if r.get("role") == "propose" and r.get("solve_rate") is not None:
                    yield step, r
