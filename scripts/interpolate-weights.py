#!/usr/bin/env python3
"""Weight-space interpolation between the base model and a trained checkpoint (WiSE-FT style):
theta = base + alpha * (trained - base), written as a checkpoint `azr eval --checkpoint` reads.

    python scripts/interpolate-weights.py BASE_MODEL_DIR CHECKPOINT ALPHA OUT_CHECKPOINT

BASE_MODEL_DIR: an HF model directory (e.g. assets/tiny-base). CHECKPOINT: a checkpoint directory
(step_XXXXXX, holding state.json and model/) or a run directory (its latest checkpoint). alpha = 1
is the checkpoint, 0 the base, 0 < alpha < 1 interpolates, alpha > 1 extrapolates. OUT_CHECKPOINT
gets model/{model.safetensors,config.json,tokenizer.json} and the checkpoint's state.json.
Needs numpy and safetensors (pip install numpy safetensors).
"""
import os
import shutil
import sys

import numpy as np
from safetensors.numpy import load_file, save_file


def resolve(ck):
    if os.path.exists(os.path.join(ck, "state.json")):
        return ck
    d = os.path.join(ck, "checkpoints")
    with open(os.path.join(d, "latest")) as f:
        return os.path.join(d, f.read().strip())


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    base, ck, alpha, out = sys.argv[1], resolve(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    b = load_file(os.path.join(base, "model.safetensors"))
    c = load_file(os.path.join(ck, "model", "model.safetensors"))
    if b.keys() != c.keys() or any(b[k].shape != c[k].shape for k in b):
        sys.exit(f"{base} and {ck} hold different tensors: not the same architecture")
    merged = {
        k: (b[k].astype(np.float64) + alpha * (c[k].astype(np.float64) - b[k])).astype(c[k].dtype)
        for k in c
    }
    os.makedirs(os.path.join(out, "model"), exist_ok=True)
    save_file(merged, os.path.join(out, "model", "model.safetensors"), metadata={"format": "pt"})
    for f in ("config.json", "tokenizer.json"):
        shutil.copy(os.path.join(ck, "model", f), os.path.join(out, "model", f))
    shutil.copy(os.path.join(ck, "state.json"), out)


if __name__ == "__main__":
    main()
