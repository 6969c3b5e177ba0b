"""PyTorch eager side of `swerl bench train`: one DAPO policy step written the plain PyTorch
way (transformers Qwen2ForCausalLM with sdpa attention, full logits, log_softmax + gather,
the clip-higher token-mean loss with the same metrics, backward, clip_grad_norm_,
torch.optim.AdamW) on the batch of crates/train/src/bench.rs::synthetic_batch, built from
the same formulas. Prints one JSON line. Run from the repository root with the reference venv:
  .venv-ref/bin/python crates/model/reference/bench_train_torch.py THREADS ITERS [--checkpointing] LEN [LEN...]
With --checkpointing, every decoder layer is recomputed in the backward pass (transformers'
gradient checkpointing, non-reentrant), as swerl's `pass.checkpointing` does.
"""

import json
import math
import sys
import time

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from bench_torch import CONFIG

PROMPT_TOKENS, TURN_TOKENS, ACTION_TOKENS = 64, 80, 48
LR, BETAS, EPS, WEIGHT_DECAY = 1e-6, (0.9, 0.999), 1e-8, 0.1
EPS_LOW, EPS_HIGH, MAX_GRAD_NORM = 0.2, 0.3, 1.0


def synthetic_batch(vocab, lens):
    """Right-padded [B, T] ids, mask, advantages and old log-probs, as synthetic_batch."""
    base = -math.log(vocab)
    width = max(lens)
    ids = torch.zeros(len(lens), width, dtype=torch.long)
    mask = torch.zeros(len(lens), width)
    old = torch.zeros(len(lens), width)
    adv = torch.zeros(len(lens), width)
    for i, n in enumerate(lens):
        for t in range(n):
            ids[i, t] = 3 + ((i * 100003 + t) * 7919 + 13) % (vocab - 3)
            trained = t >= PROMPT_TOKENS and (t - PROMPT_TOKENS) % TURN_TOKENS < ACTION_TOKENS
            mask[i, t] = 1.0 if trained else 0.0
            old[i, t] = base + 0.05 * (((i * 13 + t * 7) % 11) - 5.0)
        adv[i, :] = 1.0 if i % 2 == 0 else -1.0
    return ids, mask, old, adv


def main():
    threads, iters = int(sys.argv[1]), int(sys.argv[2])
    rest = sys.argv[3:]
    checkpointing = "--checkpointing" in rest
    lens = [int(x) for x in rest if x != "--checkpointing"]
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(**CONFIG, attn_implementation="sdpa", use_cache=False))
    if checkpointing:
        model.activation_checkpointing_enable({"use_reentrant": False})
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=LR, betas=BETAS, eps=EPS,
                            weight_decay=WEIGHT_DECAY)
    ids, mask, old, adv = synthetic_batch(CONFIG["vocab_size"], lens)
    inputs, targets = ids[:, :-1], ids[:, 1:]
    mask, old, adv = mask[:, 1:], old[:, 1:], adv[:, 1:]
    tokens = mask.sum()
    keep = mask.bool()

    def step():
        opt.zero_grad()
        logits = model(inputs).logits.float()
        logp = torch.log_softmax(logits, -1)
        lp = logp.gather(-1, targets[..., None]).squeeze(-1)
        with torch.no_grad():
            entropy = -(logp.exp() * logp).sum(-1)
        ratio = torch.exp((lp - old) * mask)
        obj = torch.minimum(ratio * adv, torch.clamp(ratio, 1 - EPS_LOW, 1 + EPS_HIGH) * adv)
        loss = -(obj * mask).sum() / tokens
        loss.backward()
        with torch.no_grad():
            gap = (old - old) * mask  # sampler == old here, as in ours
            metrics = [
                ((adv < 0) & (ratio < 1 - EPS_LOW) & keep).sum().item() / tokens.item(),
                ((adv > 0) & (ratio > 1 + EPS_HIGH) & keep).sum().item() / tokens.item(),
                (ratio * mask).sum().item() / tokens.item(),
                ratio[keep].min().item(),
                ratio[keep].max().item(),
                (entropy * mask).sum().item() / tokens.item(),
                ((gap.exp() - gap - 1) * mask).sum().item() / tokens.item(),
            ]
        torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
        opt.step()
        return loss.item(), metrics

    step()
    start = time.perf_counter()
    for _ in range(iters):
        step()
    seconds = (time.perf_counter() - start) / iters
    print(json.dumps({
        "impl": "torch", "threads": threads, "torch": torch.__version__,
        "checkpointing": checkpointing,
        "action_tokens": int(tokens.item()), "seconds_per_step": seconds,
        "action_tokens_per_s": tokens.item() / seconds,
    }))


if __name__ == "__main__":
    main()
