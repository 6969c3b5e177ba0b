"""Writes the Hugging Face PEFT parity fixtures for swerl-model's LoRA tests.

For each variant it takes a base fixture written by make_fixtures.py, wraps it in a PEFT LoRA
with given (random, visibly large) adapter weights and saves, under
crates/model/tests/fixtures/<name>/:
  adapter_config.json, adapter_model.safetensors   the adapter, as PEFT's `save_pretrained` writes it
  expected.safetensors   under the adapted model: logits [1, T, V] and next-token log-probs [1, T-1]
                         of the base fixture's `input_ids`; `merged_logprobs`: the same log-probs
                         after PEFT's `merge_and_unload`
  reference.json         base fixture, input ids, scale, library versions

Run from the repository root with the reference venv (scripts/setup-reference):
  .venv-ref/bin/python crates/model/reference/make_lora_fixtures.py
"""

import json
import pathlib

import peft
import torch
import transformers
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures"

ALL = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

VARIANTS = {
    # Every projection (the default), rank 4, alpha 8 (scale 2), on the untied base.
    "tiny-qwen2-lora": dict(base="tiny-qwen2", r=4, lora_alpha=8, lora_dropout=0.05, target_modules=ALL),
    # Two attention projections, rank 2, alpha 3 (scale 1.5), on the tied YaRN base.
    "tiny-qwen2-yarn-lora": dict(base="tiny-qwen2-yarn", r=2, lora_alpha=3, lora_dropout=0.0,
                                 target_modules=["q_proj", "v_proj"]),
}


def logprobs_of(model, input_ids):
    with torch.no_grad():
        logits = model(input_ids).logits.float()
    logprobs = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, input_ids[:, 1:, None])[..., 0]
    return logits, logprobs


def load_base(name):
    return AutoModelForCausalLM.from_pretrained(FIXTURES / name, dtype=torch.float32).eval()


def make(name, spec, seed):
    base_name = spec.pop("base")
    base_ref = json.loads((FIXTURES / base_name / "reference.json").read_text())
    input_ids = torch.tensor(base_ref["input_ids"])
    config = LoraConfig(task_type="CAUSAL_LM", **spec)
    model = get_peft_model(load_base(base_name), config).eval()
    # PEFT starts B at zero (the adapted model equals the base); give both factors values
    # large enough that every projection's update moves the logits.
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if "lora_" in pname:
                p.copy_(0.2 * torch.randn(p.shape, generator=gen))
    out_dir = FIXTURES / name
    model.save_pretrained(out_dir)
    (out_dir / "README.md").unlink(missing_ok=True)
    # Name the base by its fixture, not by this machine's absolute path.
    config_path = out_dir / "adapter_config.json"
    saved = json.loads(config_path.read_text())
    saved["base_model_name_or_path"] = base_name
    config_path.write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n")
    logits, logprobs = logprobs_of(model, input_ids)

    # What swerl's loader must read: reload the saved adapter onto a fresh base.
    reloaded = PeftModel.from_pretrained(load_base(base_name), out_dir).eval()
    _, reloaded_logprobs = logprobs_of(reloaded, input_ids)
    assert torch.allclose(reloaded_logprobs, logprobs, atol=1e-6), "PEFT reload changed the log-probs"
    merged = reloaded.merge_and_unload().eval()
    _, merged_logprobs = logprobs_of(merged, input_ids)
    _, base_logprobs = logprobs_of(load_base(base_name), input_ids)
    save_file(
        {
            "logits": logits.contiguous(),
            "logprobs": logprobs.contiguous(),
            "merged_logprobs": merged_logprobs.contiguous(),
        },
        str(out_dir / "expected.safetensors"),
    )
    reference = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "base": base_name,
        "input_ids": input_ids.tolist(),
        "scale": spec["lora_alpha"] / spec["r"],
        "max_logprob_change_from_base": (logprobs - base_logprobs).abs().max().item(),
    }
    (out_dir / "reference.json").write_text(json.dumps(reference) + "\n")
    print(f"{name}: wrote {out_dir} (adapter moves log-probs by up to "
          f"{reference['max_logprob_change_from_base']:.3f}; merged vs adapter "
          f"{(merged_logprobs - logprobs).abs().max().item():.2e})")


if __name__ == "__main__":
    torch.set_num_threads(1)
    for i, (name, spec) in enumerate(VARIANTS.items()):
        make(name, dict(spec), seed=4321 + 10 * i)
