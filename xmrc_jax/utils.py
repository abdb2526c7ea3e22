"""Loop plumbing shared by training and evaluation: the metrics writer and progress lines."""

from __future__ import annotations

import json
import logging
import os
import time

log = logging.getLogger("xmrc_jax")


class MetricsWriter:
    """Scalars to TensorBoard event files and ``metrics.jsonl`` (process 0 only); the training
    loop logs the same values as lines.

    The interface is clu's ``write_scalars`` / ``flush``; clu's own writers are not used because
    ``clu.metric_writers`` cannot be imported without TensorFlow. Event files are written with
    ``tensorboardX`` (no TensorFlow); without it only the jsonl file is written.
    """

    def __init__(self, logdir: str, enabled: bool = True):
        self._f = self._tb = None
        if enabled:
            os.makedirs(logdir, exist_ok=True)
            self._f = open(os.path.join(logdir, "metrics.jsonl"), "a", encoding="utf-8")
            try:
                from tensorboardX import SummaryWriter
                self._tb = SummaryWriter(logdir)
            except ImportError:
                log.info("tensorboardX is not installed: metrics go to %s/metrics.jsonl only", logdir)

    def write_text(self, tag: str, text: str, step: int = 0):
        """A text entry (TensorBoard's Text tab; a ``{"text": ...}`` line in metrics.jsonl)."""
        if self._f is not None:
            self._f.write(json.dumps({"step": int(step), "tag": tag, "text": text}) + "\n")
            if self._tb is not None:
                self._tb.add_text(tag, text, int(step))

    def write_scalars(self, step, scalars):
        if self._f is not None:
            values = {k: float(v) for k, v in scalars.items()}
            self._f.write(json.dumps({"step": int(step), **values}) + "\n")
            if self._tb is not None:
                for k, v in values.items():
                    self._tb.add_scalar(k, v, int(step))

    def flush(self):
        if self._f is not None:
            self._f.flush()
        if self._tb is not None:
            self._tb.flush()

    def close(self):
        if self._f is not None:
            self._f.close()
            self._f = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def progress(items, total: int, what: str, every_s: float = 30.0, unit: str = "batches"):
    """Yields ``items``; every ``every_s`` seconds logs how far ``what`` is, its rate and ETA
    (long mining and evaluation loops)."""
    t0 = last = time.time()
    for i, item in enumerate(items, 1):
        yield item
        now = time.time()
        if now - last >= every_s and i < total:
            rate = i / (now - t0)
            log.info("%s: %d/%d %s, %.1f %s/s, eta %.0fs", what, i, total, unit, rate, unit,
                     (total - i) / max(rate, 1e-9))
            last = now
