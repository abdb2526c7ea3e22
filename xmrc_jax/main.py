"""Entry point: ``python -m xmrc_jax.main --config=configs/demo.py --workdir=DIR``.

Parses the config (``--config.key=value`` overrides; an unknown key is an error naming it),
sets up logging and, in multi-process runs, ``jax.distributed``; then runs ``config.stages``
in order. Each stage is resumable and skipped when its output already exists in the workdir.
"""

import logging
import os
import re
import sys

import jax
from absl import app, flags
from ml_collections import config_flags


def config_root_on_path(config_path: str):
    """Config files import their helpers as the package ``configs`` of the repository they sit
    in (``from configs.common import ...``); put that repository first on ``sys.path`` so that
    ``--config=/path/to/repo/configs/demo.py`` works from any folder."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(config_path.split(":", 1)[0])))
    if root not in sys.path:
        sys.path.insert(0, root)


def load_config_file(spec: str):
    """``configs/x.py[:arg]`` -> its ``get_config(arg)`` (the config's repository on the path)."""
    import importlib.util
    path, _, arg = spec.partition(":")
    path = os.path.abspath(path)
    config_root_on_path(path)
    module_spec = importlib.util.spec_from_file_location("_xmrc_config", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.get_config(arg or None)


def _config_root_from_argv(argv):
    for i, arg in enumerate(argv):
        path = arg.split("=", 1)[1] if arg.startswith("--config=") else (
            argv[i + 1] if arg == "--config" and i + 1 < len(argv) else None)
        if path:
            config_root_on_path(path)


FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Path to a config file (configs/*.py[:arg]).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, caches, predictions and reports.")
flags.DEFINE_bool("verbose", False, "Show the traceback of user errors too (or set XMRC_VERBOSE=1).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from xmrc_jax import distributed
    distributed.maybe_initialize()
    from xmrc_jax.console import configure_logging
    configure_logging()
    from xmrc_jax.data import DataError
    from xmrc_jax.stages import run_stages
    if FLAGS.config.model.kernels != "cpu" and jax.default_backend() != "cpu":
        # the hardware PRNG for dropout masks on GPU / TPU (t5x, MaxText do the same)
        jax.config.update("jax_default_prng_impl", "unsafe_rbg")
    verbose = FLAGS.verbose or os.environ.get("XMRC_VERBOSE") == "1"
    try:
        try:
            os.makedirs(FLAGS.workdir, exist_ok=True)
        except OSError as e:
            raise PermissionError(f"--workdir {FLAGS.workdir}: cannot be created ({e.strerror})") from e
        if not os.access(FLAGS.workdir, os.W_OK):
            raise PermissionError(f"--workdir {FLAGS.workdir}: not writable")
        handler, path = _log_to_workdir(FLAGS.workdir)
        if not verbose:
            from xmrc_jax import console
            console.keep_library_errors_in(handler, path)
        run_stages(FLAGS.config, FLAGS.workdir)
    except (FileNotFoundError, DataError, ValueError, FloatingPointError, PermissionError) as e:
        # User errors (missing weights or data, a bad data file or setting, a NaN stop, an
        # unwritable workdir): one line that says what to do; the traceback on request.
        if verbose:
            raise
        raise SystemExit(f"xmrc_jax: {e}  (--verbose shows the traceback)") from None


def _log_to_workdir(workdir: str):
    """Every log line of the run also goes to ``WORKDIR/log.txt`` (appended; other processes of
    a multi-process run write ``log-<process>.txt``); returns ``(handler, path)``."""
    i = jax.process_index()
    path = os.path.join(workdir, "log.txt" if i == 0 else f"log-{i}.txt")
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.getLogger().addHandler(handler)
    return handler, path


def _unknown_key_message(argv, missing: str) -> str:
    """One line for a ``--config.a.b=v`` override whose key does not exist, with the keys the
    parent section has (close matches first)."""
    import difflib
    for arg in argv:
        name = arg.split("=", 1)[0]
        parts = name[len("--config."):].split(".") if name.startswith("--config.") else []
        if missing not in parts:
            continue
        parent = parts[:parts.index(missing)]
        try:
            node = load_config_file(next(a.split("=", 1)[1] for a in argv
                                         if a.startswith("--config=")))
            for p in parent:
                node = node[p]
            keys = sorted(node.keys())
        except Exception:           # the config itself did not load: name the key only
            keys = []
        where = f"config.{'.'.join(parent)}" if parent else "the config"
        close = difflib.get_close_matches(missing, keys, n=3)
        hint = (f"; did you mean {', '.join(close)}?" if close else "") + (
            f" ({where} has: {', '.join(keys)})" if keys else "")
        return f"xmrc_jax: {name}: {where} has no key {missing!r}{hint}"
    return f"xmrc_jax: unknown config key {missing!r}"


def _parse_flags(argv):
    """absl's flag parsing, with an unknown ``--config.*`` key as one line (not ~50 lines of
    chained tracebacks from ml_collections); ``--verbose`` / ``XMRC_VERBOSE=1`` keeps them."""
    try:
        return app.parse_flags_with_usage(argv)
    except (AttributeError, KeyError) as e:
        if "--verbose" in argv or os.environ.get("XMRC_VERBOSE") == "1":
            raise
        # ml_collections' message is the key, quoted (and nested in quotes), maybe a hint
        found = re.search(r"\w+", str(e).split("Did you mean")[0])
        sys.exit(_unknown_key_message(argv, found.group(0) if found else str(e)))


def run():
    _config_root_from_argv(sys.argv)
    app.run(main, flags_parser=_parse_flags)


def cli():
    """The console entry point: ``run()`` in a process whose malloc uses huge pages."""
    from xmrc_jax.hostmem import reexec_with_huge_pages
    reexec_with_huge_pages()
    run()


if __name__ == "__main__":
    cli()
