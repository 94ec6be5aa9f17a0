#!/usr/bin/env python3
"""Compare greater with transformers on the same random model and the same device.

Usage: peer_check.py MODEL_DIR OUT_JSON [--greater-logits FILE.json] [--step-examples N --step-tokens T]

MODEL_DIR is a folder written by `greater export-random NAME DIR`.

Parity (when MODEL_DIR has model.safetensors): the script loads it in float32 and, from the file
`greater bench parity --model MODEL_DIR` wrote (--greater-logits: its ids, GReaTer layout, tau
and w), recomputes the logits, the GReaTer loss (answer CE at tau + w * the prompt's mean NLL),
its gradient with respect to a one-hot over the whole vocabulary at the prompt position, and
greedy decoding. It reports max |logit diff|, gradient relative L2, top-3 agreement, the loss
difference and whether the greedy tokens match. Without that file it reports its own side only.

Step (--step-examples): times the step workload in transformers (batched greedy generation of T
tokens for N prompts of 64 ids, then one forward+backward over the sequences) for the speed
ratio. A folder written with `--config-only` has no weights: the model is built from its
config.json with transformers' own random weights, directly on the device.

Everything goes to OUT_JSON.
"""
import json
import os
import sys
import time

import torch
from transformers import AutoConfig, AutoModelForCausalLM

DEFAULT_LAYOUT = {"ids": [2, 17, 300, 5, 9, 61, 7, 33], "control": [1, 3], "answer": [7, 8], "position": 0,
                  "answer_temperature": 0.2, "control_weight": 0.2, "generated": []}


def load(model_dir, dev):
    if os.path.exists(os.path.join(model_dir, "model.safetensors")):
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to(dev)
        return model.eval(), True
    config = AutoConfig.from_pretrained(model_dir)
    with torch.device(dev):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    return model.eval(), False


def parity(model, theirs, dev):
    """transformers' side of `greater bench parity`, and the differences when `theirs` has numbers."""
    ids = theirs["ids"]
    x = torch.tensor([ids], device=dev)
    with torch.no_grad():
        logits = model(x).logits[0].float()
    table = model.get_input_embeddings()
    emb = table.weight
    # Gemma's embedding module scales its rows by sqrt(hidden): the one-hot row must be scaled too.
    scale = getattr(table, "embed_scale", 1.0)
    at = theirs["control"][0] + theirs["position"]
    onehot = torch.nn.functional.one_hot(x[0, at], emb.shape[0]).float().requires_grad_(True)
    embeds = table(x)[0].detach().clone()
    embeds = torch.cat([embeds[:at], (onehot @ emb * scale).unsqueeze(0), embeds[at + 1:]]).unsqueeze(0)
    out = model(inputs_embeds=embeds).logits[0].float()
    (c0, c1), (a0, a1) = theirs["control"], theirs["answer"]
    ce = torch.nn.functional.cross_entropy
    loss_control = ce(out[c0 - 1:c1 - 1], x[0, c0:c1])
    loss_answer = ce(out[a0 - 1:a1 - 1] / theirs["answer_temperature"], x[0, a0:a1])
    loss = loss_answer + theirs["control_weight"] * loss_control
    loss.backward()
    grad = onehot.grad
    n_new = len(theirs["generated"]) or 16
    with torch.no_grad():
        gen = model.generate(x, max_new_tokens=n_new, min_new_tokens=n_new, do_sample=False,
                             attention_mask=torch.ones_like(x))[0, len(ids):].tolist()
    report = {"ids": ids, "loss": loss.item(), "generated": gen}
    if "logits" in theirs:
        ours = torch.tensor(theirs["logits"], device=dev).reshape(logits.shape)
        g = torch.tensor(theirs["grad"], device=dev)
        top = lambda t: t.topk(3, dim=-1).indices
        report.update({
            "greater_backend": theirs.get("backend"),
            "max_abs_logit_diff": (ours - logits).abs().max().item(),
            "grad_rel_l2": ((g - grad).norm() / grad.norm()).item(),
            "top3_agreement": (top(ours) == top(logits)).all(dim=-1).float().mean().item(),
            "loss_diff": abs(theirs["loss"] - loss.item()),
            "same_generation": gen == theirs["generated"],
        })
    return report


def step(model, n, t, dev):
    """The step workload: greedy generation of t tokens for n prompts, then one forward+backward."""
    prompt = torch.randint(8, 200, (n, 64), device=dev)
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    if dev == "cuda":
        torch.cuda.reset_peak_memory_stats()
    sync()
    t0 = time.time()
    with torch.no_grad():
        seqs = model.generate(prompt, max_new_tokens=t, min_new_tokens=t, do_sample=False,
                              attention_mask=torch.ones_like(prompt))
    sync()
    gen_s = time.time() - t0
    t0 = time.time()
    e = model.get_input_embeddings()(seqs).detach().requires_grad_(True)
    model(inputs_embeds=e).logits[:, -1].logsumexp(-1).sum().backward()
    sync()
    return {"examples": n, "tokens": t, "generate_s": gen_s, "grad_s": time.time() - t0,
            "tokens_per_s": n * t / gen_s,
            "peak_mem_bytes": torch.cuda.max_memory_allocated() if dev == "cuda" else None}


def main():
    args = sys.argv[1:]
    if len(args) < 2:
        sys.exit(__doc__)
    model_dir, out_path = args[0], args[1]
    opts = dict(zip(args[2::2], args[3::2]))
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    model, has_weights = load(model_dir, dev)
    report = {"device": dev, "torch": torch.__version__, "model": model_dir, "weights": has_weights}
    if has_weights:
        theirs = DEFAULT_LAYOUT
        if "--greater-logits" in opts:
            with open(opts["--greater-logits"]) as f:
                theirs = json.load(f)
        report["parity"] = parity(model, theirs, dev)
    if "--step-examples" in opts:
        n, t = int(opts["--step-examples"]), int(opts.get("--step-tokens", "256"))
        report["step"] = step(model, n, t, dev)
    with open(out_path, "w") as f:
        json.dump(report, f, indent=1)
    brief = dict(report)
    if "parity" in brief:
        brief["parity"] = {k: v for k, v in brief["parity"].items() if k not in ("ids", "generated")}
    print(json.dumps(brief))


if __name__ == "__main__":
    main()
