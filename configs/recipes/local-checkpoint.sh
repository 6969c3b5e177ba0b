#!/usr/bin/env bash
# The paper's table for a pretrained checkpoint in a local directory (e.g. Qwen2.5-7B-Instruct
# as downloaded from Hugging Face: config.json, model-*.safetensors with their index,
# tokenizer.json, tokenizer_config.json with the chat template, generation_config.json), on the
# in-process engine: base evaluation -> RFT collection -> RFT -> DAPO stage 1 -> evaluation.
#
#   MODEL=/models/Qwen2.5-7B-Instruct DEVICE=cuda:0 configs/recipes/local-checkpoint.sh
#
# The checkpoint's dtype is kept: bf16 weights train in mixed precision (bf16 compute, f32 master
# weights, gradients and AdamW moments; checkpoints stay bf16 with the masters beside them); its
# generation_config.json is ignored by rollouts, which always sample at temperature 1 with
# top_k / top_p / min_p off (docs/method.md section 6). A vocabulary padded beyond the tokenizer
# (Qwen2.5: 151,936 rows, 151,665 tokens) is never sampled past the tokenizer.
set -euo pipefail
cd "$(dirname "$0")/../.."

: "${MODEL:?set MODEL to a Hugging Face model directory (Qwen2 / Qwen2.5 architecture)}"
: "${OUT:=runs/local-checkpoint}"
: "${SWERL:=target/release/swerl}"
: "${DEVICE:=cuda:0}"
: "${TASKS:=tasks/bundled/tasks.jsonl}"
: "${TASK_FLAGS:=}"            # e.g. --instance ID ..., or the container flags of swe-rebench.sh
: "${SPLIT:=train}"
: "${EVAL_SPLIT:=heldout}"
: "${RFT_POLICY:=embedded:$MODEL}"
: "${SAMPLES:=10}"
: "${RUNS:=10}"
: "${CONFIG:=configs/stage1.json}"
: "${CONCURRENCY:=32}"
: "${MAX_TURNS:=40}"
: "${MAX_CONTEXT:=65536}"
: "${MAX_NEW_TOKENS:=4096}"
: "${TURN_THRESHOLD:=10}"                  # L_thr of the turn penalty
: "${RFT_EPOCHS:=1}"
: "${RFT_LR:=5e-6}"
: "${RFT_BATCH:=64}"
: "${PREFIX_CACHE_MIB:=16384}" # keys and values kept across turns (Qwen2.5-7B, bf16: ~57 kB a token)

# shellcheck disable=SC2206 # TASK_FLAGS is a list of flags
tasks=(--tasks "$TASKS" --env-root "$OUT/envs" $TASK_FLAGS)
limits=(--max-turns "$MAX_TURNS" --turn-threshold "$TURN_THRESHOLD" --max-context "$MAX_CONTEXT"
  --max-new-tokens "$MAX_NEW_TOKENS")
run=(--concurrency "$CONCURRENCY" --device "$DEVICE" --prefix-cache-mib "$PREFIX_CACHE_MIB")
mkdir -p "$OUT"

"$SWERL" eval "${tasks[@]}" --split "$EVAL_SPLIT" --policy "embedded:$MODEL" --runs "$RUNS" \
  "${limits[@]}" "${run[@]}" --out "$OUT/eval-base"
"$SWERL" rollout "${tasks[@]}" --split "$SPLIT" --policy "$RFT_POLICY" --samples "$SAMPLES" \
  "${limits[@]}" "${run[@]}" --out "$OUT/rft-samples"
"$SWERL" rft --trajectories "$OUT/rft-samples" --model "$MODEL" --out "$OUT/rft" \
  --epochs "$RFT_EPOCHS" --lr "$RFT_LR" --warmup 10 --batch "$RFT_BATCH" \
  --max-context "$MAX_CONTEXT" --checkpointing --device "$DEVICE"
resume=""
ls -d "$OUT"/stage1/checkpoints/iter-* >/dev/null 2>&1 && resume=--resume
"$SWERL" train --config "$CONFIG" --model "$OUT/rft" --out "$OUT/stage1" "${tasks[@]}" \
  --split "$SPLIT" --max-new-tokens "$MAX_NEW_TOKENS" "${run[@]}" $resume
last="$(ls -d "$OUT"/stage1/checkpoints/iter-* | sort | tail -n1)/model"
"$SWERL" eval "${tasks[@]}" --split "$EVAL_SPLIT" --policy "embedded:$last" --runs "$RUNS" \
  "${limits[@]}" "${run[@]}" --out "$OUT/eval"
