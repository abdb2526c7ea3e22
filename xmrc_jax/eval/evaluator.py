"""The dev-evaluator interface both methods use during training (big_vision's evaluators).

An evaluator scores a train state on held-out data (higher is better) and, when the training
loop finds a new best, keeps that model through the ``save`` callback the stage gives it (the
stage owns where artefacts go). ``train.loop.DevEvaluation`` calls it every
``config.train.eval_every`` steps.
"""

from __future__ import annotations

from typing import Callable, Optional


class Evaluator:
    """``score(state) -> float``; ``save_best(state, step, score)`` keeps the best model."""

    def __init__(self, score_params: Callable, save: Optional[Callable] = None, what: str = "dev"):
        self._score_params, self._save, self.what = score_params, save, what
        self.details = {}

    def score(self, state) -> float:
        """The score; a ``score_params`` that returns ``(score, details)`` leaves its details
        (``{name: value}``, e.g. per-language F1 / EM) in ``self.details`` for the metrics."""
        out = self._score_params(state.params["model"])
        out, self.details = out if isinstance(out, tuple) else (out, {})
        return float(out)

    def save_best(self, state, step: int, score: float):
        if self._save is not None:
            self._save(state.params["model"], {"step": step, self.what: score})
