"""Loads a LoRA adapter that swerl saved (e.g. `swerl rft --lora`, or a `swerl train --lora`
checkpoint's adapter/) with Hugging Face PEFT and compares its log-probs with swerl's.

Usage (repository root, reference venv from scripts/setup-reference):
  swerl model score --model BASE --adapter ADAPTER --tokens IDS.json > SCORES.json
  .venv-ref/bin/python crates/model/reference/check_saved_adapter.py BASE ADAPTER SCORES.json
IDS.json holds a list of token-id lists. Prints the largest |log-prob difference| over every
scored token and exits 1 when it exceeds 1e-5 (float32 on CPU on both sides), or when PEFT's
model without the adapter scores the same (an adapter that loaded as a no-op).
"""

import json
import pathlib
import sys

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

base, adapter, scores_path = (pathlib.Path(a) for a in sys.argv[1:4])
scores = json.loads(scores_path.read_text())
if isinstance(scores, dict):
    scores = [scores]
torch.set_num_threads(1)
model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32).eval()
model = PeftModel.from_pretrained(model, adapter).eval()


def logprobs(ids):
    with torch.no_grad():
        logits = model(ids).logits.float()
    return torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None])[0, :, 0]


worst, moved = 0.0, 0.0
for item in scores:
    ids = torch.tensor([item["tokens"]])
    peft_lp = logprobs(ids)
    swerl_lp = torch.tensor(item["logprobs"][1:], dtype=torch.float32)
    worst = max(worst, (peft_lp - swerl_lp).abs().max().item())
    with model.disable_adapter():
        moved = max(moved, (logprobs(ids) - peft_lp).abs().max().item())
print(f"{adapter}: loaded by PEFT on {base}; {len(scores)} sequences, max |log-prob difference| "
      f"PEFT vs swerl {worst:.2e} (the adapter moves PEFT's log-probs by up to {moved:.3f})")
sys.exit(0 if worst <= 1e-5 and moved > 1e-3 else 1)
