"""HF transformers side of `greater bench peers` (written to the report folder and run there).

Measures what `greater bench models` measures, on CPU in float32, KV cache on:
- prefill: one forward of a PREFILL-token prompt at batch 1;
- decode at each batch size: greedy generation of NEW tokens after a PROMPT-token prompt with
  stop tokens off. The prompt's own forward is timed apart and taken off, and the first new
  token (which that forward yields) is not counted, as in `greater bench models`:
  tokens/s = batch * (NEW - 1) / (generate seconds - prompt forward seconds).
Token ids are seeded and random in [1000, 5000): the ids do not change the cost.
Prints one JSON object on the last line of stdout.
"""

import argparse
import json
import os
import sys
import time


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def timed(runs, f):
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        f()
        out.append(time.perf_counter() - t)
    return median(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--prefill-tokens", type=int, default=512)
    ap.add_argument("--prompt-tokens", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--batches", default="1,8")
    a = ap.parse_args()

    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(a.threads)
    gen = torch.Generator().manual_seed(0)
    path = os.path.abspath(a.gguf)
    t = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(
        os.path.dirname(path), gguf_file=os.path.basename(path), torch_dtype=torch.float32
    ).eval()
    report = {
        "load_s": time.perf_counter() - t,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "threads": torch.get_num_threads(),
        "decode": {},
    }
    with torch.inference_mode():
        ids = torch.randint(1000, 5000, (1, a.prefill_tokens), generator=gen)
        model(ids[:, :8])
        report["prefill_tok_s"] = a.prefill_tokens / timed(a.runs, lambda: model(ids))
        for b in [int(x) for x in a.batches.split(",")]:
            prompt = torch.randint(1000, 5000, (b, a.prompt_tokens), generator=gen)
            kw = dict(do_sample=False, use_cache=True, pad_token_id=0)
            model.generate(prompt, max_new_tokens=2, min_new_tokens=2, **kw)
            prompt_s = timed(a.runs, lambda: model(prompt, use_cache=True))
            n = a.new_tokens
            total_s = timed(a.runs, lambda: model.generate(prompt, max_new_tokens=n, min_new_tokens=n, **kw))
            report["decode"][str(b)] = b * (n - 1) / max(total_s - prompt_s, 1e-9)
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    sys.exit(main())
