"""Entry point: ``python -m xmrc_jax.main --config=configs/demo.py --workdir=DIR``.

Parses the config (``--config.key=value`` overrides; an unknown key is an error naming it),
sets up logging and, in multi-process runs, ``jax.distributed``; then runs ``config.stages``
in order. Each stage is resumable and skipped when its output already exists in the workdir.
"""

import logging
import os

import jax
from absl import app, flags
from ml_collections import config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Path to a config file (configs/*.py[:arg]).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, caches, predictions and reports.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from xmrc_jax import distributed
    distributed.maybe_initialize()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("absl").setLevel(logging.WARNING)
    from xmrc_jax.data import DataError
    from xmrc_jax.stages import run_stages
    if FLAGS.config.model.kernels != "cpu" and jax.default_backend() != "cpu":
        # the hardware PRNG for dropout masks on GPU / TPU (t5x, MaxText do the same)
        jax.config.update("jax_default_prng_impl", "unsafe_rbg")
    os.makedirs(FLAGS.workdir, exist_ok=True)
    try:
        run_stages(FLAGS.config, FLAGS.workdir)
    except (FileNotFoundError, DataError) as e:
        # Missing weights or data, a bad data file: the message says what to do; the traceback
        # only goes to the debug log.
        logging.debug("traceback", exc_info=True)
        raise SystemExit(f"xmrc_jax: {e}") from None


if __name__ == "__main__":
    app.run(main)
