#!/usr/bin/env python3
"""Compare greater with transformers on the same random model and the same GPU.

Usage: peer_check.py MODEL_DIR OUT_JSON [--greater-logits FILE.json] [--step-examples N --step-tokens T]

MODEL_DIR is a folder written by `greater export-random NAME DIR`. The script loads it with
transformers in float32, computes the logits of a fixed id sequence and the gradient of the
last-position loss with respect to a one-hot input at position 1 (the token gradient GReaTer
uses), and, when greater's figures are given (a JSON with `ids`, `logits` [seq*vocab] and
`grad` [vocab]; NOTE: no greater command writes that file yet), reports max |logit diff|,
gradient relative L2 and top-3 agreement.
With --step-examples it also times the step workload in transformers (batched greedy
generation of T tokens for N prompts, then one forward+backward) for the speed ratio.
Everything goes to OUT_JSON.
"""
import json
import sys
import time

import torch
from transformers import AutoModelForCausalLM


def main():
    args = sys.argv[1:]
    if len(args) < 2:
        sys.exit(__doc__)
    model_dir, out_path = args[0], args[1]
    opts = dict(zip(args[2::2], args[3::2]))
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).to(dev).eval()
    ids = [2, 17, 300, 5, 9, 61, 0, 33]
    if "--greater-logits" in opts:
        with open(opts["--greater-logits"]) as f:
            theirs = json.load(f)
        ids = theirs["ids"]
    x = torch.tensor([ids], device=dev)
    with torch.no_grad():
        logits = model(x).logits[0].float()
    emb = model.get_input_embeddings().weight
    onehot = torch.nn.functional.one_hot(x[0], emb.shape[0]).float().requires_grad_(True)
    out = model(inputs_embeds=(onehot @ emb).unsqueeze(0)).logits[0]
    loss = torch.nn.functional.cross_entropy(out[-2:-1], x[0, -1:])
    loss.backward()
    grad = onehot.grad[1]
    report = {"device": dev, "torch": torch.__version__, "ids": ids, "loss": loss.item()}
    if "--greater-logits" in opts:
        ours = torch.tensor(theirs["logits"], device=dev).reshape(logits.shape)
        g = torch.tensor(theirs["grad"], device=dev)
        report["max_abs_logit_diff"] = (ours - logits).abs().max().item()
        report["grad_rel_l2"] = ((g - grad).norm() / grad.norm()).item()
        top = lambda t: t.topk(3, dim=-1).indices
        report["top3_agreement"] = (top(ours) == top(logits)).all(dim=-1).float().mean().item()
    if "--step-examples" in opts:
        n, t = int(opts["--step-examples"]), int(opts.get("--step-tokens", "256"))
        prompt = torch.randint(8, 200, (n, 64), device=dev)
        sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
        sync()
        t0 = time.time()
        with torch.no_grad():
            seqs = model.generate(prompt, max_new_tokens=t, min_new_tokens=t, do_sample=False)
        sync()
        gen_s = time.time() - t0
        t0 = time.time()
        e = model.get_input_embeddings()(seqs).detach().requires_grad_(True)
        model(inputs_embeds=e).logits[:, -1].logsumexp(-1).sum().backward()
        sync()
        report["step"] = {"examples": n, "tokens": t, "generate_s": gen_s, "grad_s": time.time() - t0,
                          "tokens_per_s": n * t / gen_s,
                          "peak_mem_bytes": torch.cuda.max_memory_allocated() if dev == "cuda" else None}
    with open(out_path, "w") as f:
        json.dump(report, f, indent=1)
    print(json.dumps({k: v for k, v in report.items() if k != "ids"}))


if __name__ == "__main__":
    main()
