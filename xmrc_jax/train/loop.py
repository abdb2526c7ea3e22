"""The training loop shared by every stage: checkpoints, exact resume, SIGTERM, NaN guard, logs.

Checkpoints (Orbax ``CheckpointManager``, async, last ``keep`` kept) hold the train state, the
data iterator's state and the stage's progress. Running the same command again after a crash or
a kill resumes from the newest checkpoint and finishes with the same parameters as an
uninterrupted run. SIGTERM saves a checkpoint and stops cleanly (``Preempted``). A NaN or Inf
loss stops the run before anything is saved (``FloatingPointError``), so the last good
checkpoint stays the newest.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import time

import jax
import orbax.checkpoint as ocp

from xmrc_jax.train import sharding as sh

log = logging.getLogger("xmrc_jax")


class Preempted(SystemExit):
    """Raised after SIGTERM once the checkpoint is written; exits with status 0."""

    def __init__(self, message):
        super().__init__(0)
        self.message = message
        log.warning("%s", message)


class _SigtermFlag:
    def __init__(self):
        self.raised = False
        self._old = None

    def __enter__(self):
        try:
            self._old = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:          # not the main thread: no handler
            self._old = None
        return self

    def _handle(self, *_):
        self.raised = True

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)


def checkpoint_manager(directory: str, keep: int) -> ocp.CheckpointManager:
    opts = ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=True,
                                        create=True)
    return ocp.CheckpointManager(os.path.abspath(directory), options=opts)


def _save(mngr, state, iterator, extra, force=False):
    meta = {"iterator": iterator.get_state(), **extra}
    mngr.save(int(jax.device_get(state.step)), args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=force)


def restore_latest(mngr, state):
    """``(state, meta)`` from the newest checkpoint, or ``(state, None)`` when there is none."""
    step = mngr.latest_step()
    if step is None:
        return state, None
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, state)
    restored = mngr.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
    log.info("resumed from checkpoint step %d", step)
    return restored["state"], restored["meta"]


def train(name: str, ckpt_dir: str, state, step_fn, iterator, mesh, total_steps: int,
          checkpoint_every: int, keep: int = 2, log_every: int = 50, writer=None,
          examples_per_step: int = 0, evaluator=None, eval_every: int = 0):
    """Runs ``step_fn`` until ``state.step == total_steps``; returns the final state.

    With ``evaluator`` and ``eval_every > 0``, every ``eval_every`` steps and at the end
    ``evaluator(state)`` gives a dev score (higher is better); when it beats the best so far
    ``evaluator.save_best(state, step, score)`` keeps that model. The best score travels with
    the checkpoints, so a resumed run keeps comparing against it.
    """
    mngr = checkpoint_manager(ckpt_dir, keep)
    state, meta = restore_latest(mngr, state)
    best = {"step": None, "score": None}
    if meta is not None:
        iterator.set_state(meta["iterator"])
        best = meta.get("best", best)
    step = int(jax.device_get(state.step))
    t_last, step_last = time.time(), step
    try:
        with _SigtermFlag() as sigterm:
            while step < total_steps:
                batch = sh.put_batch(next(iterator), mesh)
                state, metrics = step_fn(state, batch)
                step += 1
                loss = float(metrics["loss"])
                if not math.isfinite(loss):
                    last = mngr.latest_step()
                    raise FloatingPointError(
                        f"{name}: loss is {loss} at step {step}; stopping without saving. The last "
                        f"good checkpoint is step {last} in {ckpt_dir}" if last is not None else
                        f"{name}: loss is {loss} at step {step}; stopping (no checkpoint yet)")
                if step % log_every == 0 or step == total_steps:
                    now = time.time()
                    rate = (step - step_last) / max(now - t_last, 1e-9)
                    vals = {k: float(v) for k, v in metrics.items()}
                    eta = (total_steps - step) / max(rate, 1e-9)
                    log.info("%s step %d/%d  %s  %.2f steps/s  %.1f ex/s  eta %.0fs", name, step,
                             total_steps, "  ".join(f"{k} {v:.4g}" for k, v in sorted(vals.items())),
                             rate, rate * examples_per_step, eta)
                    if writer is not None:
                        writer.write_scalars(step, {**vals, "steps_per_s": rate,
                                                    "examples_per_s": rate * examples_per_step})
                    t_last, step_last = now, step
                if evaluator is not None and eval_every > 0 and (
                        step % eval_every == 0 or step == total_steps):
                    score = float(evaluator(state))
                    improved = best["score"] is None or score > best["score"]
                    log.info("%s step %d: dev score %.3f (best %s)", name, step, score,
                             f"{score:.3f}, new" if improved else f"{best['score']:.3f} at step {best['step']}")
                    if writer is not None:
                        writer.write_scalars(step, {"dev_score": score})
                    if improved:
                        best = {"step": step, "score": score}
                        evaluator.save_best(state, step, score)
                meta = {"stage": name, "step": step, "best": best}
                saved = step % checkpoint_every == 0 or step == total_steps
                if saved:
                    _save(mngr, state, iterator, meta)
                if sigterm.raised:
                    if not saved:
                        _save(mngr, state, iterator, meta, force=True)
                    mngr.wait_until_finished()
                    raise Preempted(f"{name}: SIGTERM at step {step}; checkpoint saved, run the "
                                    "same command again to resume")
    finally:
        mngr.wait_until_finished()
        mngr.close()
    return state
