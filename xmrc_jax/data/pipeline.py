"""Batches for training (deterministic, per-process sharded, exactly resumable) and evaluation.

``TrainIterator`` shuffles the window indices with ``numpy.random.default_rng(seed + epoch)``,
cuts each epoch into global batches (the incomplete last batch of an epoch is left out, and
counted in ``dropped_per_epoch``), and gives each process its slice of every global batch.
Its state is two integers (``epoch``, ``position``), saved with checkpoints: a resumed iterator
yields exactly the batches an uninterrupted one would have.

Length-grouped batches (``length_multiple`` > 0, as ``group_by_length`` in the HF Trainer): the
epoch's shuffled windows are taken ``group_batches`` global batches at a time, sorted by length
within that group, cut into batches, and the epoch's batches shuffled again with the same
generator; each batch's ``sequence_keys`` arrays are cut to its longest window rounded up to a
multiple of ``length_multiple``. The padding columns an encoder would only mask out are never
computed, at most ``L / length_multiple`` batch shapes occur (each compiles once), and the same
windows are left out as without grouping. The order is a function of ``(seed, epoch)`` alone, so
resume stays exact. The batches hold windows of similar length: a different composition, so
the numbers differ from padded batches (to noise).

``eval_batches`` yields every window exactly once; the last batch is padded and carries a
``valid`` mask, so nothing is dropped or duplicated.
"""

from __future__ import annotations

import dataclasses

import numpy as np


def cut_length(lengths, multiple: int, full: int) -> int:
    """The length a batch of windows of ``lengths`` is cut to: its longest, rounded up to a
    multiple of ``multiple``, at most ``full``."""
    return min(full, -(-int(np.max(lengths)) // multiple) * multiple)


@dataclasses.dataclass
class TrainIterator:
    arrays: dict                  # name -> [num_windows, ...]
    global_batch_size: int
    seed: int = 0
    process_index: int = 0
    process_count: int = 1
    length_multiple: int = 0      # > 0: length-grouped batches cut to multiples of this
    sequence_keys: tuple = ()     # the [N, L] token-aligned arrays that are cut
    mask_key: str = "attention_mask"
    group_batches: int = 50       # global batches sorted by length together
    epoch: int = 0
    position: int = 0             # global batches already taken in this epoch

    def __post_init__(self):
        self.num = len(next(iter(self.arrays.values())))
        self.grouped = bool(self.length_multiple and self.sequence_keys)
        if self.grouped:
            missing = [k for k in (self.mask_key, *self.sequence_keys) if k not in self.arrays]
            if missing:
                raise ValueError(f"length-grouped batches: no array {missing[0]!r} (arrays: "
                                 f"{', '.join(sorted(self.arrays))})")
        if self.mask_key in self.arrays:
            self.full_length = self.arrays[self.mask_key].shape[1]
            self.lengths = self.arrays[self.mask_key].astype(bool).sum(1)
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
        """This epoch's window order: ``batches_per_epoch`` global batches, one after another."""
        if self._perm_epoch != self.epoch:
            rng = np.random.default_rng(self.seed + self.epoch)
            perm = rng.permutation(self.num)
            self._perm = self._grouped(perm, rng) if self.grouped else perm
            self._perm_epoch = self.epoch
        return self._perm

    def _grouped(self, perm, rng):
        g = self.global_batch_size
        used = perm[:self.batches_per_epoch * g]     # the rows an ungrouped epoch uses
        batches = []
        for lo in range(0, len(used), self.group_batches * g):
            group = used[lo:lo + self.group_batches * g]
            group = group[np.argsort(-self.lengths[group], kind="stable")]
            batches.extend(group[i:i + g] for i in range(0, len(group), g))
        return np.concatenate([batches[i] for i in rng.permutation(len(batches))])

    def cut_length(self, idx) -> int:
        """The sequence length of the global batch ``idx`` (its longest window, rounded up)."""
        return cut_length(self.lengths[idx], self.length_multiple, self.full_length)

    def padded_fraction(self) -> tuple:
        """``(at_full_length, as_cut)``: the fraction of the token positions of this epoch's
        batches that are padding, at full length and as this iterator cuts them."""
        g, order = self.global_batch_size, self._permutation()
        cuts = [self.cut_length(order[b * g:(b + 1) * g]) if self.grouped else self.full_length
                for b in range(self.batches_per_epoch)]
        tokens = int(self.lengths[order[:self.batches_per_epoch * g]].sum())
        return 1 - tokens / (self.batches_per_epoch * g * self.full_length), \
            1 - tokens / (g * sum(cuts))

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
        cut = self.cut_length(idx) if self.grouped else None    # from the global batch
        local = g // self.process_count
        idx = idx[self.process_index * local:(self.process_index + 1) * local]
        self.position += 1
        return {k: (v[idx, :cut] if cut is not None and k in self.sequence_keys else v[idx])
                for k, v in self.arrays.items()}


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
            cut = cut_length(lengths[idx], length_multiple, full)
            batch = {k: (v[:, :cut] if v.ndim >= 2 and v.shape[1] == full else v)
                     for k, v in batch.items()}
        if pad:
            batch = {k: np.concatenate([v, np.zeros((pad,) + v.shape[1:], v.dtype)])
                     for k, v in batch.items()}
        batch["valid"] = np.arange(batch_size) < len(idx)
        batch["index"] = np.concatenate([idx, -np.ones(pad, idx.dtype)])
        yield batch
