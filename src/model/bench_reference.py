"""PyTorch eager reference for `azr bench model --reference-python PATH` (embedded in the binary
by src/model/bench.rs and run as `python -c`).

Run by the Rust benchmark with one JSON argument (threads, model shapes, batch shapes, dtype,
seed); prints one JSON object per model on stdout. Exits with status 3 and a JSON
`{"error": ...}` line when torch or transformers cannot be imported.

Training: transformers' Qwen2ForCausalLM (eager attention), cross-entropy on the batch,
backward, torch.optim.AdamW; the median of the timed steps after one warm-up step. On a CUDA
device (`"device": "cuda:N"`) every timer reads after `torch.cuda.synchronize()`.
Sampling: `generate` with the KV cache, do_sample, exactly `new_tokens` new tokens, after a
short warm-up call.
"""
import json
import sys
import time


def main():
    spec = json.loads(sys.argv[1])
    try:
        import torch
        from transformers import Qwen2Config, Qwen2ForCausalLM
    except Exception as e:  # noqa: BLE001 - report any import failure
        print(json.dumps({"error": f"cannot import torch/transformers: {e!r}"}), flush=True)
        sys.exit(3)
    torch.manual_seed(spec["seed"])
    torch.set_num_threads(spec["threads"])
    dev = torch.device(spec.get("device", "cpu"))

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    dtype = torch.bfloat16 if spec["dtype"] == "bf16" else torch.float32
    b, t = spec["train_batch"], spec["train_seq"]
    for shape in spec["models"]:
        cfg = Qwen2Config(
            vocab_size=shape["vocab"],
            hidden_size=shape["hidden"],
            intermediate_size=shape["ffn"],
            num_hidden_layers=shape["layers"],
            num_attention_heads=shape["heads"],
            num_key_value_heads=shape.get("kv_heads") or shape["heads"],
            max_position_embeddings=1024,
            rope_theta=10000.0,
            rms_norm_eps=1e-6,
            tie_word_embeddings=bool(shape.get("tie_embeddings", False)),
            attn_implementation="eager",
        )
        m = Qwen2ForCausalLM(cfg).to(dtype).to(dev)
        if not shape.get("attention_bias", False):
            # Qwen2 always has q/k/v biases; zero and freeze them for the bias-free shapes.
            for layer in m.model.layers:
                for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                    if proj.bias is not None:
                        proj.bias.data.zero_()
                        proj.bias.requires_grad_(False)
        n_params = sum(p.numel() for p in m.parameters() if p.requires_grad)
        opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
        x = torch.randint(0, shape["vocab"], (b, t), device=dev)
        times, cpus = [], []
        for step in range(spec["train_steps"] + 1):
            sync()
            t0, c0 = time.perf_counter(), time.process_time()
            out = m(input_ids=x, labels=x)
            out.loss.backward()
            opt.step()
            opt.zero_grad()
            sync()
            if step > 0:
                times.append(time.perf_counter() - t0)
                cpus.append(time.process_time() - c0)
        times.sort()
        cpus.sort()
        step_s = times[len(times) // 2]
        m.eval()
        sampling = []
        with torch.no_grad():
            for bs in spec["sample_batches"]:
                p = torch.randint(0, shape["vocab"], (bs, spec["prompt_len"]), device=dev)
                n_new = spec["new_tokens"]
                kw = dict(do_sample=True, pad_token_id=0, use_cache=True)
                m.generate(p, max_new_tokens=4, min_new_tokens=4, **kw)
                sync()
                t0, c0 = time.perf_counter(), time.process_time()
                m.generate(p, max_new_tokens=n_new, min_new_tokens=n_new, **kw)
                sync()
                dt, cpu = time.perf_counter() - t0, time.process_time() - c0
                sampling.append({"batch": bs, "seconds": dt, "cpu_s": cpu, "tokens_per_s": bs * n_new / dt})
        print(json.dumps({
            "name": shape["name"],
            "params": n_params,
            "train_step_s": step_s,
            "train_tokens_per_s": b * t / step_s,
            "train_step_cpu_s": cpus[len(cpus) // 2],
            "sampling": sampling,
            "torch": torch.__version__,
        }), flush=True)


if __name__ == "__main__":
    main()
