#!/usr/bin/env bash
# benchmarks/device.py on a lent accelerator, in one call of the device tool.
#
#   here, once:  bash benchmarks/device.sh --fetch-wheels
#                (ml_collections and tensorboardX, which the machine's image lacks, as
#                Python 3.12 wheels into .whl/, which git ignores)
#   there:       run(command="bash benchmarks/device.sh", carry=[".whl"], timeout_s=540)
#
# Writes $OUT/device.json (benchmarks/results/device.json without $OUT); copy it to
# benchmarks/results/ and summarise it in benchmarks/RESULTS.md.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--fetch-wheels" ]; then
  exec python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
    -d .whl "ml_collections>=1.0,<2" "tensorboardX>=2.6"
fi
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
timeout 500 python3 benchmarks/device.py --out "${OUT:-benchmarks/results}" --budget 450 "$@"
