"""Batches for training (deterministic, per-process sharded, exactly resumable) and evaluation.

``TrainIterator`` shuffles the window indices with ``numpy.random.default_rng(seed + epoch)``,
cuts each epoch into global batches (the incomplete last batch of an epoch is left out, and
counted in ``dropped_per_epoch``), and gives each process its slice of every global batch.
Its state is two integers (``epoch``, ``position``), saved with checkpoints: a resumed iterator
yields exactly the batches an uninterrupted one would have.

``eval_batches`` yields every window exactly once; the last batch is padded and carries a
``valid`` mask, so nothing is dropped or duplicated.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class TrainIterator:
    arrays: dict                  # name -> [num_windows, ...]
    global_batch_size: int
    seed: int = 0
    process_index: int = 0
    process_count: int = 1
    epoch: int = 0
    position: int = 0             # global batches already taken in this epoch

    def __post_init__(self):
        self.num = len(next(iter(self.arrays.values())))
        if self.global_batch_size % self.process_count:
            raise ValueError(f"global batch {self.global_batch_size} is not divisible by "
                             f"{self.process_count} processes")
        if self.num < self.global_batch_size:
            raise ValueError(f"{self.num} training windows are fewer than one global batch of "
                             f"{self.global_batch_size}")
        self.batches_per_epoch = self.num // self.global_batch_size
        self.dropped_per_epoch = self.num - self.batches_per_epoch * self.global_batch_size
        self._perm_epoch, self._perm = None, None

    def _permutation(self):
        if self._perm_epoch != self.epoch:
            self._perm = np.random.default_rng(self.seed + self.epoch).permutation(self.num)
            self._perm_epoch = self.epoch
        return self._perm

    def get_state(self) -> dict:
        return {"epoch": int(self.epoch), "position": int(self.position)}

    def set_state(self, state: dict):
        self.epoch, self.position = int(state["epoch"]), int(state["position"])

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        if self.position >= self.batches_per_epoch:
            self.epoch += 1
            self.position = 0
        g = self.global_batch_size
        idx = self._permutation()[self.position * g:(self.position + 1) * g]
        local = g // self.process_count
        idx = idx[self.process_index * local:(self.process_index + 1) * local]
        self.position += 1
        return {k: v[idx] for k, v in self.arrays.items()}


def eval_batches(arrays: dict, batch_size: int, length_multiple: int = 0,
                 mask_key: str = "attention_mask"):
    """Every window once; each batch has ``batch_size`` rows, a ``valid`` mask and ``index``
    (window index, -1 on padding).

    ``length_multiple`` > 0: windows go longest first and each batch is cut to its longest
    window (``mask_key``), rounded up to a multiple of ``length_multiple``; the padding columns
    an encoder would only mask out are never computed (at most ``L / length_multiple`` shapes
    compile). ``0``: file order at full length."""
    n = len(next(iter(arrays.values())))
    full = arrays[mask_key].shape[1] if length_multiple else 0
    if length_multiple:
        lengths = arrays[mask_key].astype(bool).sum(1)
        order = np.argsort(-lengths, kind="stable")
    else:
        order = np.arange(n)
    for lo in range(0, n, batch_size):
        idx = order[lo:lo + batch_size]
        pad = batch_size - len(idx)
        batch = {k: v[idx] for k, v in arrays.items()}
        if length_multiple:
            cut = min(full, -(-int(lengths[idx].max()) // length_multiple) * length_multiple)
            batch = {k: (v[:, :cut] if v.ndim >= 2 and v.shape[1] == full else v)
                     for k, v in batch.items()}
        if pad:
            batch = {k: np.concatenate([v, np.zeros((pad,) + v.shape[1:], v.dtype)])
                     for k, v in batch.items()}
        batch["valid"] = np.arange(batch_size) < len(idx)
        batch["index"] = np.concatenate([idx, -np.ones(pad, idx.dtype)])
        yield batch
