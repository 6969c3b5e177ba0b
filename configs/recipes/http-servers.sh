#!/usr/bin/env bash
# DAPO with rollouts from OpenAI-compatible inference servers (vLLM, SGLang, or `swerl serve`)
# and the trainer here: after each iteration the checkpoint is written and every server is
# asked to load it (HTTP weight sync).
#
#   URLS=http://gpu1:8000,http://gpu2:8000 MODEL=/models/Qwen2.5-7B-Instruct \
#     RELOAD='POST /update_weights_from_disk {"model_path": "{path}"}' \
#     configs/recipes/http-servers.sh
#
# Start the servers first, on the same initial weights as MODEL, each seeing OUT at the same
# path (the reload call names the checkpoint directory):
#   vLLM:    vllm serve "$MODEL" --served-model-name policy --generation-config vllm --port 8000
#            (--generation-config vllm: never let the model's generation_config.json turn on
#            top_k / top_p / min_p; swerl also sends every sampling parameter explicitly).
#            vLLM has no standard load-from-disk route: give RELOAD your deployment's.
#   SGLang:  python -m sglang.launch_server --model-path "$MODEL" --served-model-name policy \
#            --port 8000   (RELOAD's default is SGLang's /update_weights_from_disk)
#   swerl:   swerl serve --model "$MODEL" --served-model-name policy --port 8000
#            (answers SGLang's reload call; this is what the tests run against)
set -euo pipefail
cd "$(dirname "$0")/../.."

: "${URLS:?set URLS to the servers, comma-separated (http://host:port,...)}"
: "${MODEL:?set MODEL to the Hugging Face model directory the servers started from}"
: "${OUT:=runs/http-dapo}"
: "${SWERL:=target/release/swerl}"
: "${MODEL_NAME:=policy}"
: "${RELOAD:=}"               # empty: SGLang's POST /update_weights_from_disk (swerl's default)
: "${CONFIG:=configs/stage1.json}"
: "${TASKS:=tasks/bundled/tasks.jsonl}"
: "${SPLIT:=train}"
: "${DEVICE:=cuda:0}"          # the trainer's device
: "${CONCURRENCY:=64}"
: "${MAX_NEW_TOKENS:=4096}"
: "${TASK_FLAGS:=}"            # e.g. --backend container --image-template ... (swe-rebench.sh)

resume=""
ls -d "$OUT"/checkpoints/iter-* >/dev/null 2>&1 && resume=--resume
# Checkpoints must be where the servers can read them, under the same absolute path.
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# shellcheck disable=SC2086 # TASK_FLAGS is a list of flags
"$SWERL" train --config "$CONFIG" --model "$MODEL" --out "$OUT" --tasks "$TASKS" \
  --split "$SPLIT" --policy "http:$URLS" --model-name "$MODEL_NAME" ${RELOAD:+--reload "$RELOAD"} \
  --concurrency "$CONCURRENCY" --max-new-tokens "$MAX_NEW_TOKENS" --device "$DEVICE" \
  $TASK_FLAGS $resume
