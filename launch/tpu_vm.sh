#!/usr/bin/env bash
# Starts the same xmrc_jax command on every worker of a Cloud TPU VM slice. Each worker runs one
# process; jax.distributed finds its peers from the TPU metadata (TPU_WORKER_HOSTNAMES), so no
# coordinator address is needed. The workdir must be storage every worker sees (a gs:// bucket
# through gcsfuse, or NFS); only process 0 writes exports, tables and metric files.
#
#   launch/tpu_vm.sh TPU_NAME ZONE [PROJECT] -- --config=configs/mlqa.py --workdir=/mnt/shared/run
#
# The repository is expected at the same path on every worker (REPO, default ~/xmrc_jax); set
# XMRC_SETUP=1 to clone-or-pull it and pip install requirements first.
set -euo pipefail
if [[ $# -lt 3 ]]; then
  echo "usage: $0 TPU_NAME ZONE [PROJECT] -- ARGS..." >&2
  exit 2
fi
tpu=$1; zone=$2; shift 2
project_flag=()
if [[ "$1" != "--" ]]; then project_flag=(--project "$1"); shift; fi
[[ "$1" == "--" ]] && shift
repo=${REPO:-'~/xmrc_jax'}
args=$(printf ' %q' "$@")
setup=""
if [[ "${XMRC_SETUP:-0}" == "1" ]]; then
  setup="(test -d $repo || git clone ${XMRC_GIT:-https://github.com/xmrc-jax/xmrc_jax} $repo) && \
cd $repo && git pull --ff-only && pip install -q -r requirements.txt 'jax[tpu]' && "
fi
exec gcloud compute tpus tpu-vm ssh "$tpu" --zone "$zone" "${project_flag[@]}" --worker=all \
  --command "${setup}cd $repo && python -m xmrc_jax.main${args}"
