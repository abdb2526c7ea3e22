"""Test setup: 8 fake CPU devices for the mesh tests, tests/ on sys.path for references, and one
compilation cache shared by the run.

Most of the suite's time on a 2-core machine is XLA compiling the same tiny programs again: the
resume tests train one configuration in several subprocesses, parametrised tests build the same
step, the table commands run one model through many stages. JAX's persistent compilation cache
lets every compile after the first load the executable instead. The cache lives in a fresh
temporary folder made by the pytest process that starts the run (with pytest-xdist its workers and
every subprocess a test starts inherit the variable) and removed when that process ends, so no run
ever reads a program compiled by another run. Set JAX_COMPILATION_CACHE_DIR yourself to keep one.
"""

import os
import shutil
import sys
import tempfile

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

_OWN_CACHE = None
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _OWN_CACHE = tempfile.mkdtemp(prefix="xmrc-jax-test-compile-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _OWN_CACHE
# Cache programs that take 0.5 s or more to compile (the tiny models' train and eval steps), not
# the thousands of one-op programs eager code compiles in milliseconds: with a size limit set,
# every write scans the whole folder, and caching those too made the loss tests and the remat test
# take 163 s instead of 93 s. The size limit turns on JAX's file lock, so that two xdist workers
# never read an entry the other is still writing.
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(8 << 30))


def pytest_unconfigure(config):
    """The process that made the cache folder removes it (xdist workers leave it to that one)."""
    if _OWN_CACHE is not None:
        shutil.rmtree(_OWN_CACHE, ignore_errors=True)
