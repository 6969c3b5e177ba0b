#!/usr/bin/env bash
# The same binary on a GPU: installs PyPI torch==2.11.0 WITH its NVIDIA dependencies into
# .venv (the +cu130 build; scripts/setup installs it without them, for CPU), then runs the
# demo's whole pipeline on the GPU. The libtorch path and the rpath do not change, so a
# binary built for CPU runs here as it is; `--device cuda:N` loads the CUDA backend at start.
#
#   DEVICE=cuda:0 configs/recipes/cuda.sh
#
# Any other command takes the same flag: rollout, eval, rft, train, serve, model score.
set -euo pipefail
cd "$(dirname "$0")/../.."

: "${DEVICE:=cuda:0}"
: "${OUT:=runs/demo-cuda}"
: "${PRESET:=}"                 # --quick for the small preset

scripts/setup
# Idempotent: pip only fetches the dependencies that are missing.
echo "cuda: torch==2.11.0 with its CUDA dependencies in .venv"
.venv/bin/python -m pip install -q "torch==2.11.0"
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked -p swerl-cli
target/release/swerl demo --device "$DEVICE" --out "$OUT" $PRESET
