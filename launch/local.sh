#!/usr/bin/env bash
# Runs xmrc_jax on this machine with one process (default) or N processes joined through
# jax.distributed on loopback (N > 1: each process sees its share of the local devices).
#
#   launch/local.sh [-n N] [-p PORT] -- --config=configs/mlqa.py --workdir=DIR [--config.x=y ...]
#
# With N > 1 on a CPU-only machine each process gets XLA_FLAGS device count from
# XMRC_DEVICES_PER_PROCESS (default 1); on GPUs, CUDA_VISIBLE_DEVICES is split between them.
# Logs of processes 1..N-1 go to DIR/launch-<i>.log; process 0 prints to the terminal.
set -euo pipefail
n=1
port=${XMRC_PORT:-12355}
while [[ $# -gt 0 ]]; do
  case "$1" in
    -n) n=$2; shift 2 ;;
    -p) port=$2; shift 2 ;;
    --) shift; break ;;
    *) break ;;
  esac
done
cd "$(dirname "$0")/.."
if [[ "$n" -le 1 ]]; then
  exec python -m xmrc_jax.main "$@"
fi
workdir=$(printf '%s\n' "$@" | sed -n 's/^--workdir=//p' | tail -1)
mkdir -p "${workdir:-.}"
gpus=()
if command -v nvidia-smi >/dev/null 2>&1; then
  mapfile -t gpus < <(nvidia-smi --query-gpu=index --format=csv,noheader)
fi
pids=()
trap 'kill -TERM "${pids[@]}" 2>/dev/null || true; wait' INT TERM
for ((i = n - 1; i >= 0; i--)); do
  env_vars=(XMRC_COORDINATOR="127.0.0.1:${port}" XMRC_NUM_PROCESSES="$n" XMRC_PROCESS_ID="$i")
  if [[ ${#gpus[@]} -ge $n ]]; then
    per=$(( ${#gpus[@]} / n ))
    env_vars+=(CUDA_VISIBLE_DEVICES="$(IFS=,; echo "${gpus[*]:$((i * per)):$per}")")
  else
    env_vars+=(JAX_PLATFORMS=cpu
               XLA_FLAGS="--xla_force_host_platform_device_count=${XMRC_DEVICES_PER_PROCESS:-1}")
  fi
  if [[ $i -eq 0 ]]; then
    env "${env_vars[@]}" python -m xmrc_jax.main "$@" &
  else
    env "${env_vars[@]}" python -m xmrc_jax.main "$@" > "${workdir:-.}/launch-$i.log" 2>&1 &
  fi
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
exit $status
