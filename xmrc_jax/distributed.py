"""Multi-process setup: ``jax.distributed.initialize()`` only when the run has several processes.

Detected from the launchers in ``launch/``: SLURM (``SLURM_NTASKS`` > 1), a TPU VM slice
(``TPU_WORKER_HOSTNAMES`` with several hosts), or an explicit local group
(``XMRC_COORDINATOR``, ``XMRC_NUM_PROCESSES``, ``XMRC_PROCESS_ID``).
"""

import logging
import os

import jax

log = logging.getLogger("xmrc_jax")


def _explicit():
    n = int(os.environ.get("XMRC_NUM_PROCESSES", "1"))
    if n <= 1:
        return None
    addr = os.environ.get("XMRC_COORDINATOR")
    pid = os.environ.get("XMRC_PROCESS_ID")
    if not addr or pid is None:
        raise ValueError("XMRC_NUM_PROCESSES > 1 needs XMRC_COORDINATOR (host:port) and "
                         "XMRC_PROCESS_ID")
    return dict(coordinator_address=addr, num_processes=n, process_id=int(pid))


def is_multi_process_env() -> bool:
    if _explicit():
        return True
    if int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        return True
    return len([h for h in os.environ.get("TPU_WORKER_HOSTNAMES", "").split(",") if h]) > 1


def maybe_initialize() -> bool:
    """Initialises ``jax.distributed`` in multi-process runs; returns whether it did."""
    if not is_multi_process_env():
        return False
    kwargs = _explicit() or {}
    jax.distributed.initialize(**kwargs)
    log.info("jax.distributed: process %d of %d, %d local / %d global devices",
             jax.process_index(), jax.process_count(), jax.local_device_count(), jax.device_count())
    return True


def is_main_process() -> bool:
    return jax.process_index() == 0


def sync(what: str):
    """A barrier across processes (no-op with one process), so files process 0 writes are
    there before the others read them."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        multihost_utils.sync_global_devices(what)
