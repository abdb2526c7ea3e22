"""What a command-line run prints: its own lines, and the libraries' errors in the log file only.

A condition the code handles (a corrupt checkpoint moved aside, a resume, a skip) is said in one
line. Some libraries still report errors that they then ignore, as tracebacks on the console:

- an aborted Orbax restore leaves tensorstore reads in flight; each one that finishes after its
  event loop was closed goes to ``sys.unraisablehook`` ("RuntimeError: Event loop is closed",
  one traceback each, from background threads);
- the asyncio tasks of that restore are logged when they are garbage collected ("Task exception
  was never retrieved", a traceback and the whole TensorStore spec each).

``keep_library_errors_in(handler, path)`` (the run's ``WORKDIR/log.txt`` handler) sends both to
that file only, with their tracebacks. The first one that no code announced prints one line
naming the file; code that knows such errors follow (``expect_library_errors``, called when a
restore fails) keeps even that line away. ``--verbose`` / ``XMRC_VERBOSE=1`` keeps Python's
defaults (everything on the console).
"""

from __future__ import annotations

import logging
import sys

log = logging.getLogger("xmrc_jax")
library_log = logging.getLogger("xmrc_jax.library")   # file only, once routed

FORMAT = "%(asctime)s %(levelname)s %(message)s"
_state = {"path": None, "expected": False, "noted": False, "count": 0}


def configure_logging():
    """The project's INFO lines on the console; the libraries' (jax's backend probe "Unable to
    initialize backend 'tpu' ...", absl's, Orbax's) only from WARNING up. Every entry point."""
    logging.basicConfig(level=logging.INFO, format=FORMAT)
    for name in ("absl", "jax"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _note():
    _state["count"] += 1
    if not (_state["expected"] or _state["noted"]):
        _state["noted"] = True
        log.warning("a library reported an error it then ignored; its traceback is in %s",
                    _state["path"])


class _Noting(logging.Handler):
    def emit(self, record):
        _note()


def _unraisable(u):
    where = f" in {u.object!r}" if u.object is not None else ""
    try:
        library_log.warning("%s%s", u.err_msg or "Exception ignored", where,
                            exc_info=(u.exc_type, u.exc_value, u.exc_traceback))
    finally:
        _note()


def keep_library_errors_in(handler: logging.Handler, path: str):
    """Routes ignored library errors (``sys.unraisablehook``, the ``asyncio`` logger) to
    ``handler`` alone; ``path`` is what the one-line notice names."""
    _state["path"] = path
    for name in (library_log.name, "asyncio"):
        logger = logging.getLogger(name)
        logger.propagate = False
        if handler not in logger.handlers:
            logger.addHandler(handler)
    aio = logging.getLogger("asyncio")
    if not any(isinstance(h, _Noting) for h in aio.handlers):
        aio.addHandler(_Noting())
    sys.unraisablehook = _unraisable


def expect_library_errors():
    """The caller aborted a library's work (a restore that failed) and has said so in its own
    line; what that library reports about it later needs no notice on the console."""
    _state["expected"] = True


def ignored_count() -> int:
    """How many ignored library errors went to the log file in this process."""
    return _state["count"]
