#!/usr/bin/env bash
# The paper's whole pipeline on real SWE-rebench / SWE-bench tasks in their own container
# images: validate -> RFT collection -> RFT -> DAPO stage 1 -> DAPO stage 2 -> evaluation.
#
#   TASKS=swe-rebench.parquet MODEL=/models/Qwen2.5-72B-Instruct OUT=runs/rebench \
#     configs/recipes/swe-rebench.sh
#
# Needs a Docker Engine API (dockerd, or podman's service) that has or can pull every task's
# image: SWE-rebench rows name theirs (`docker_image`); SWE-bench rows name none, so set
# IMAGE_TEMPLATE='swebench/sweb.eval.x86_64.{swebench_id}:latest' (SWE-bench's published
# images). Each repository comes from its image at /testbed, its git history replaced by one
# commit. Everything below is a variable with a default; the paper's numbers are the defaults.
set -euo pipefail
cd "$(dirname "$0")/../.."

: "${TASKS:?set TASKS to a SWE-rebench / SWE-bench task file (.parquet, .jsonl or .json)}"
: "${MODEL:?set MODEL to a Hugging Face model directory (e.g. a local Qwen2.5-Instruct)}"
: "${OUT:=runs/rebench}"
: "${SWERL:=target/release/swerl}"
: "${DEVICE:=cuda:0}"                      # cpu, cuda or cuda:N
: "${SOCKET:=unix:///var/run/docker.sock}" # podman: unix:///run/swerl-podman.sock
: "${IMAGE_TEMPLATE:=}"                    # for rows without their own image
: "${PULL:=--pull}"                        # empty: every image must be present already
: "${JOBS:=8}"                             # tasks graded at once
: "${CONCURRENCY:=64}"                     # episodes in flight at once
: "${RFT_SAMPLES:=10}"                     # docs/method.md 5: 10 runs of the base model per task
: "${RFT_POLICY:=embedded:$MODEL}"         # or http:URL,... with --model-name, --tokenizer
: "${TRAIN_FLAGS:=}"                       # e.g. --policy http:URL,... --model-name policy
                                           # (http-servers.sh) for a model one GPU cannot hold
: "${STAGE1:=configs/stage1.json}"
: "${STAGE2:=configs/stage2.json}"
: "${POOL_FROM=$OUT/stage1/episodes}"      # empty: stage 2 on the whole pool
: "${EVAL_TASKS:=$TASKS}"                  # e.g. SWE-bench Verified
: "${EVAL_RUNS:=10}"                       # Pass@1 +- SEM over 10 runs, Pass@10
: "${EVAL_TEMPLATE:=$IMAGE_TEMPLATE}"
: "${EVAL_MAX_TURNS:=80}"                  # stage 2's limits, as the paper evaluates
: "${EVAL_MAX_CONTEXT:=131072}"
: "${MAX_NEW_TOKENS:=4096}"
: "${TURN_THRESHOLD:=10}"                  # L_thr of the turn penalty
: "${PREFIX_CACHE_MIB:=16384}"             # the embedded engine's keys and values across turns

backend=(--backend container --socket "$SOCKET" $PULL --env-root "$OUT/envs")
[ -n "$IMAGE_TEMPLATE" ] && backend+=(--image-template "$IMAGE_TEMPLATE")
eval_backend=(--backend container --socket "$SOCKET" $PULL --env-root "$OUT/envs")
[ -n "$EVAL_TEMPLATE" ] && eval_backend+=(--image-template "$EVAL_TEMPLATE")
mkdir -p "$OUT"

# A DAPO stage resumes from its newest checkpoint when it has one.
resume() { ls -d "$1"/checkpoints/iter-* >/dev/null 2>&1 && echo --resume || true; }
newest() { echo "$(ls -d "$1"/checkpoints/iter-* | sort | tail -n1)/model"; }

# 1. Keep the tasks whose gold patch resolves and whose empty patch does not.
"$SWERL" validate --tasks "$TASKS" "${backend[@]}" -j "$JOBS" --json "$OUT/validate.json" \
  --write-valid "$OUT/tasks.jsonl"

# 2. RFT: sample the base model RFT_SAMPLES times per task, keep the resolved trajectories.
"$SWERL" rollout --tasks "$OUT/tasks.jsonl" "${backend[@]}" --policy "$RFT_POLICY" \
  --samples "$RFT_SAMPLES" --concurrency "$CONCURRENCY" --max-turns 40 --turn-threshold "$TURN_THRESHOLD" \
  --max-context 65536 --max-new-tokens "$MAX_NEW_TOKENS" --device "$DEVICE" \
  --prefix-cache-mib "$PREFIX_CACHE_MIB" --out "$OUT/rft-samples"
"$SWERL" rft --trajectories "$OUT/rft-samples" --model "$MODEL" --out "$OUT/rft" \
  --epochs 1 --lr 5e-6 --warmup 10 --batch 64 --max-context 65536 --checkpointing --device "$DEVICE"

# 3. DAPO stage 1, then stage 2 on the pool stage 1 left (drop tasks solved in >= 2/3 of
#    attempts and tasks never solved). Stage 2's 131k context needs YaRN (factor 4 over
#    32,768) in the model's config.json, as the paper's Qwen2.5 setup has.
# shellcheck disable=SC2086 # TRAIN_FLAGS is a list of flags
"$SWERL" train --config "$STAGE1" --model "$OUT/rft" --out "$OUT/stage1" \
  --tasks "$OUT/tasks.jsonl" "${backend[@]}" --concurrency "$CONCURRENCY" \
  --max-new-tokens "$MAX_NEW_TOKENS" --device "$DEVICE" --prefix-cache-mib "$PREFIX_CACHE_MIB" \
  $TRAIN_FLAGS $(resume "$OUT/stage1")
"$SWERL" train --config "$STAGE2" --model "$(newest "$OUT/stage1")" --out "$OUT/stage2" \
  --tasks "$OUT/tasks.jsonl" "${backend[@]}" ${POOL_FROM:+--pool-from "$POOL_FROM"} \
  --concurrency "$CONCURRENCY" --max-new-tokens "$MAX_NEW_TOKENS" --device "$DEVICE" \
  --prefix-cache-mib "$PREFIX_CACHE_MIB" $TRAIN_FLAGS $(resume "$OUT/stage2")

# 4. Evaluation: Pass@1 +- SEM over EVAL_RUNS runs, Pass@k, submit share, mean turns.
"$SWERL" eval --tasks "$EVAL_TASKS" "${eval_backend[@]}" --policy "embedded:$(newest "$OUT/stage2")" \
  --runs "$EVAL_RUNS" --concurrency "$CONCURRENCY" --max-turns "$EVAL_MAX_TURNS" --turn-threshold "$TURN_THRESHOLD" \
  --max-context "$EVAL_MAX_CONTEXT" \
  --max-new-tokens "$MAX_NEW_TOKENS" --device "$DEVICE" --prefix-cache-mib "$PREFIX_CACHE_MIB" \
  --out "$OUT/eval"
