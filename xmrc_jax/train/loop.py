"""The training loop shared by every stage: checkpoints, exact resume, SIGTERM, NaN guard, logs.

Checkpoints (Orbax ``CheckpointManager``, async, last ``keep`` kept) hold the train state, the
data iterator's state and the stage's progress. Running the same command again after a crash or
a kill resumes from the newest checkpoint and finishes with the same parameters as an
uninterrupted run. SIGTERM saves a checkpoint and stops cleanly (``Preempted``). What else happens
after a step is a list of hooks (``NanGuard``: a NaN or Inf loss stops the run before anything
is saved, so the last good checkpoint stays the newest; ``LogMetrics``; ``DevEvaluation``).
"""

from __future__ import annotations

import dataclasses
import glob
import logging
import math
import os
import shutil
import signal
import time
from typing import Optional

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

from xmrc_jax import console, distributed, mesh as sh

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


@jax.jit
def _opt_state_finite(opt_state):
    leaves = [x for x in jax.tree_util.tree_leaves(opt_state) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves])) if leaves else True


def _save(mngr, state, iterator, extra, force=False):
    step = int(jax.device_get(state.step))
    if not bool(_opt_state_finite(state.opt_state)):
        last = mngr.latest_step()
        raise FloatingPointError(
            f"{extra.get('stage', 'training')}: the optimizer state is not finite at step {step}; "
            "stopping without saving; " + (f"the last good checkpoint is step {last}"
                                           if last is not None else "no checkpoint yet"))
    meta = {"iterator": iterator.get_state(), **extra}
    mngr.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=force)


def _first_line(e: BaseException) -> str:
    """The first line of the innermost cause (the library's wrapper names only an array index;
    its cause names the file and what is wrong with it)."""
    seen = {id(e)}
    while e.__cause__ is not None and id(e.__cause__) not in seen:
        e = e.__cause__
        seen.add(id(e))
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:300] if text else ''}"


def _remove_unfinished_saves(directory: str):
    """Orbax's temporary folders of saves that a killed run did not finish: never a checkpoint
    (``all_steps`` ignores them); Orbax would remove each with a warning when it saves that
    step again, so they go now, in one log-file line."""
    if distributed.is_main_process():
        suffix = ocp.path.atomicity_types.TMP_DIR_SUFFIX
        unfinished = sorted(glob.glob(os.path.join(directory, f"*{suffix}*")))
        for path in unfinished:
            shutil.rmtree(path, ignore_errors=True)
        if unfinished:
            log.info("removed %d unfinished save(s) of an earlier run: %s", len(unfinished),
                     ", ".join(os.path.basename(p) for p in unfinished))
    distributed.sync("unfinished saves removed")    # every process, whatever it would list


def restore_latest(mngr, state, directory: str, keep: int = 2):
    """``(state, meta, mngr)`` from the newest checkpoint that restores, or ``(state, None,
    mngr)`` when there is none. A checkpoint that does not restore (a file truncated or
    missing) is said in one line and moved aside to ``<dir>/corrupt_<step>`` (never deleted),
    and the next older one is tried; the manager is then reopened without it. What the library
    reports about the aborted reads goes to the log file only (``xmrc_jax.console``)."""
    _remove_unfinished_saves(directory)
    steps = sorted(mngr.all_steps(), reverse=True)
    if not steps:
        return state, None, mngr
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, state)
    bad = []
    for step in steps:
        try:
            restored = mngr.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
        except Exception as e:   # noqa: BLE001 (whatever a damaged checkpoint raises)
            console.expect_library_errors()     # the aborted reads' own reports: log.txt only
            log.warning("checkpoint step %d in %s does not restore (%s)", step, directory,
                        _first_line(e))
            bad.append(step)
            continue
        if bad:
            mngr.close()
            if distributed.is_main_process():
                for b in bad:
                    aside = os.path.join(directory, f"corrupt_{b}")
                    os.replace(os.path.join(directory, str(b)), aside)
            distributed.sync("checkpoints moved aside")
            log.warning("resumed from checkpoint step %d; the newer step(s) %s did not restore "
                        "and were moved to %s", step, bad,
                        ", ".join(os.path.join(directory, f"corrupt_{b}") for b in bad))
            mngr = checkpoint_manager(directory, keep)
        else:
            log.info("resumed from checkpoint step %d", step)
        return restored["state"], restored["meta"], mngr
    raise RuntimeError(f"no checkpoint in {directory} restores (steps {bad}); move them away "
                       "to start this stage afresh")


def _every(step: int, every: int) -> bool:
    """Whether a periodic action falls on ``step``; ``every`` 0 = never (only at the end)."""
    return every > 0 and step % every == 0


@dataclasses.dataclass(frozen=True)
class LoopConfig:
    """What the loop itself needs: the stage name (for logs), where checkpoints go, how long."""

    name: str
    checkpoint_dir: str
    total_steps: int
    checkpoint_every: int
    keep: int = 2


@dataclasses.dataclass
class StepInfo:
    """What a hook sees after each step."""

    name: str
    step: int
    total_steps: int
    state: object
    metrics: dict
    checkpoint_dir: str
    _manager: object = None

    @property
    def latest_checkpoint(self) -> Optional[int]:
        return self._manager.latest_step() if self._manager is not None else None

    @property
    def last(self) -> bool:
        return self.step == self.total_steps


class Hook:
    """Loop behaviour that plugs in (t5x's "actions"): called after every step, in order.

    ``state_dict`` is saved in every checkpoint's metadata under the hook's ``key`` and handed
    back through ``restore`` on resume, so a hook's own progress (the best dev score) survives.
    A hook stops the run by raising.
    """

    key: Optional[str] = None

    def restore(self, value) -> None:
        pass

    def start(self, step: int) -> None:
        """Called once before the first step (``step`` is where the run resumes)."""

    def on_save(self, step: int) -> None:
        """Called after a checkpoint is written (what the hook keeps should reach disk too)."""

    def after_step(self, info: StepInfo) -> None:
        pass

    def state_dict(self):
        return None


class NanGuard(Hook):
    """Stops the run, before anything is saved, when the loss or the updated parameters are not
    finite (a NaN gradient can leave the loss finite and still wreck the parameters); names the
    last good checkpoint. The loop also checks the optimizer state before every save
    (``_check_finite``), so every saved checkpoint is finite."""

    CHECKS = (("loss", "loss"), ("param_norm", "the parameters"))

    def after_step(self, info):
        for key, what in self.CHECKS:
            if key not in info.metrics:
                continue
            value = float(info.metrics[key])
            if math.isfinite(value):
                continue
            last = info.latest_checkpoint
            where = (f"the last good checkpoint is step {last} in {info.checkpoint_dir}"
                     if last is not None else "no checkpoint yet")
            raise FloatingPointError(
                f"{info.name}: {what} {'is' if key == 'loss' else 'are'} not finite at step "
                f"{info.step} ({key} {value}); stopping without saving; {where}")


class LogMetrics(Hook):
    """Every ``every`` steps (and at the end): one log line with rate and ETA, and the scalars to
    ``writer`` (``eval.report.MetricsWriter``)."""

    def __init__(self, every: int, writer=None, examples_per_step: int = 0, schedule=None):
        self.every, self.writer, self.examples_per_step = every, writer, examples_per_step
        self.schedule = schedule            # step -> learning rate (logged as learning_rate)
        self._t, self._step = time.time(), 0

    def start(self, step):
        self._t, self._step = time.time(), step

    def after_step(self, info):
        if not (_every(info.step, self.every) or info.last):
            return
        now = time.time()
        rate = (info.step - self._step) / max(now - self._t, 1e-9)
        vals = {k: float(v) for k, v in info.metrics.items()}
        if self.schedule is not None:       # the rate the step just taken used
            vals["learning_rate"] = float(self.schedule(info.step - 1))
        eta = (info.total_steps - info.step) / max(rate, 1e-9)
        log.info("%s step %d/%d  %s  %.2f steps/s  %.1f ex/s  eta %.0fs", info.name, info.step,
                 info.total_steps, "  ".join(f"{k} {v:.4g}" for k, v in sorted(vals.items())),
                 rate, rate * self.examples_per_step, eta)
        if self.writer is not None:
            self.writer.write_scalars(info.step, {**vals, "steps_per_s": rate,
                                                  "examples_per_s": rate * self.examples_per_step})
        self._t, self._step = now, info.step

    def on_save(self, step):
        if self.writer is not None:
            self.writer.flush()


class DevEvaluation(Hook):
    """Every ``every`` steps and at the end, ``evaluator.score(state)`` (higher is better); when
    it beats the best so far, ``evaluator.save_best(state, step, score)`` keeps that model. The
    best score travels with the checkpoints (``key = "best"``)."""

    key = "best"

    def __init__(self, evaluator, every: int, writer=None):
        self.evaluator, self.every, self.writer = evaluator, every, writer
        self.best = {"step": None, "score": None}

    def restore(self, value):
        if value:
            self.best = value

    def state_dict(self):
        return self.best

    def after_step(self, info):
        if not (_every(info.step, self.every) or info.last):
            return
        score = float(self.evaluator.score(info.state))
        best = self.best
        improved = best["score"] is None or score > best["score"]
        log.info("%s step %d: dev score %.3f (best %s)", info.name, info.step, score,
                 f"{score:.3f}, new" if improved else f"{best['score']:.3f} at step {best['step']}")
        if self.writer is not None:
            details = getattr(self.evaluator, "details", None) or {}
            self.writer.write_scalars(info.step, {"dev_score": score,
                                                  **{f"dev/{k}": v for k, v in details.items()}})
        if improved:
            self.best = {"step": info.step, "score": score}
            self.evaluator.save_best(info.state, info.step, score)


def train(cfg: LoopConfig, state, step_fn, iterator, mesh, hooks=()):
    """Runs ``step_fn`` until ``state.step == cfg.total_steps``; returns the final state.

    After every step each hook's ``after_step`` runs in order (``NanGuard``, ``LogMetrics``,
    ``DevEvaluation``, ...); then a checkpoint is saved every ``cfg.checkpoint_every`` steps and
    at the end. A run started again resumes from the newest checkpoint: state, data iterator
    and every hook's ``state_dict``.
    """
    mngr = checkpoint_manager(cfg.checkpoint_dir, cfg.keep)
    state, meta, mngr = restore_latest(mngr, state, cfg.checkpoint_dir, cfg.keep)
    if meta is not None:
        iterator.set_state(meta["iterator"])
        for h in hooks:
            if h.key:
                h.restore(meta.get(h.key))
    step = int(jax.device_get(state.step))
    for h in hooks:
        h.start(step)
    try:
        with _SigtermFlag() as sigterm:
            while step < cfg.total_steps:
                batch = sh.put_batch(next(iterator), mesh)
                state, metrics = step_fn(state, batch)
                step += 1
                info = StepInfo(cfg.name, step, cfg.total_steps, state, metrics,
                                cfg.checkpoint_dir, mngr)
                for h in hooks:
                    h.after_step(info)
                meta = {"stage": cfg.name, "step": step,
                        **{h.key: h.state_dict() for h in hooks if h.key}}
                saved = _every(step, cfg.checkpoint_every) or step == cfg.total_steps
                if saved:
                    _save(mngr, state, iterator, meta)
                    for h in hooks:
                        h.on_save(step)
                if sigterm.raised:
                    if not saved:
                        _save(mngr, state, iterator, meta, force=True)
                        for h in hooks:
                            h.on_save(step)
                    mngr.wait_until_finished()
                    raise Preempted(f"{cfg.name}: SIGTERM at step {step}; checkpoint saved, run "
                                    "the same command again to resume")
    finally:
        mngr.wait_until_finished()
        mngr.close()
    return state
