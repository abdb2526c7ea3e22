"""Host memory: glibc ``malloc`` backed by transparent huge pages for the command-line entry points.

XLA on the CPU allocates every large temporary afresh at each step. With glibc's default
``malloc`` these allocations are ``mmap``-ed and returned at every call, so each step pays a page
fault per 4 KiB page: on a 2-core machine the multilingual-e5-small train step (batch 32 x 256)
took 10.7 s, of which about 40 % was page faults, and a plain ``8192 x 384 @ 384 x 1536``
matmul ran at half the machine's matmul rate (``benchmarks/RESULTS.md``, "Host memory").
``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` (glibc >= 2.35) makes ``malloc`` ask for transparent
huge pages (``madvise``), 512 times fewer faults: the same step takes 6.4 s. Tunables are read
when the process starts, so the entry points re-execute themselves once with it set.

Nothing happens when it is already set, off Linux, when the kernel's transparent huge pages are
``never``, or with ``XMRC_MALLOC=0``. Older glibc ignores the unknown tunable.
"""

from __future__ import annotations

import os
import sys

TUNABLE = "glibc.malloc.hugetlb=1"
THP = "/sys/kernel/mm/transparent_hugepage/enabled"


def _thp_available(path: str = THP) -> bool:
    try:
        with open(path) as f:
            return "[never]" not in f.read()
    except OSError:
        return False


def tuned_environment(environ=None, platform: str = sys.platform, thp_path: str = THP):
    """The environment to re-execute with, or ``None`` when nothing is to change."""
    env = dict(os.environ if environ is None else environ)
    current = env.get("GLIBC_TUNABLES", "")
    if (not platform.startswith("linux") or env.get("XMRC_MALLOC", "1") == "0"
            or "glibc.malloc.hugetlb" in current or not _thp_available(thp_path)):
        return None
    env["GLIBC_TUNABLES"] = f"{current}:{TUNABLE}" if current else TUNABLE
    return env


def reexec_with_huge_pages():
    """Re-executes this command (``sys.orig_argv``) with the tunable set, if it changes anything.
    Only for ``__main__`` entry points: it replaces the running process."""
    env = tuned_environment()
    if env is None or not getattr(sys, "orig_argv", None):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable] + list(sys.orig_argv[1:]), env)
