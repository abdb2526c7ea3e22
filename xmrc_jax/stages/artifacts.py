"""Everything a run writes into its workdir: the layout (every path), atomic writes, the
"done" rule and the fingerprints that decide whether a stage's output is still valid.

Each stage writes one artefact, the folder ``<workdir>/<stage>/``, with a record
``<stage>/artifact.json``::

    {"stage": ..., "status": "running" | "done", "fingerprint": ...,
     "config": {dotted key: value}, "inputs": {artefact or model: fingerprint}}

The fingerprint is a hash of the config fields the stage declares (``Stage.config``) and of
the fingerprints of its inputs, so it changes when anything that determines the output does.
A stage is **done** when its record says ``done`` with the fingerprint the current config gives;
it is then skipped. A record with another fingerprint, or a folder without a record, is stale:
the folder is cleared and the stage redone, and so are its dependants (their inputs'
fingerprints changed). A ``running`` record with the same fingerprint is an interrupted run of
the same work: its checkpoints are kept and training resumes.

All files are written atomically (a temporary name, then ``os.replace``), so an interrupted
write never leaves a half-written artefact that looks finished.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil

import numpy as np

from xmrc_jax import distributed

log = logging.getLogger("xmrc_jax")
RECORD = "artifact.json"


# --------------------------------------------------------------------------- atomic writes

def _tmp(path: str) -> str:
    return f"{path}.tmp{os.getpid()}"


def write_text(path: str, text: str):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = _tmp(path)
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def write_json(path: str, obj, indent=2):
    write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False))


def write_npz(path: str, **arrays):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = _tmp(path) + ".npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_dir(path: str):
    """Yields a temporary folder that replaces ``path`` (whole) when the block succeeds."""
    tmp = _tmp(path)
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    os.replace(tmp, path)


def read_json(path: str):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# --------------------------------------------------------------------------- fingerprints

def _plain(value):
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# Keys that say where finished work may be taken from, not what is computed: they are left
# out of every fingerprint (``mccrolin.first_round_from``: another run's identical round 1).
NOT_FINGERPRINTED = frozenset({"mccrolin.first_round_from"})


def config_subset(config, keys) -> dict:
    """``{dotted key: value}`` for ``keys``; a key naming a section gives one entry per field
    in it (``hl`` -> ``hl.alpha``, ``hl.variant``, ...), so a change is reported by its name.
    ``NOT_FINGERPRINTED`` keys are left out."""
    out = {}

    def add(key, value):
        if key in NOT_FINGERPRINTED:
            return
        if isinstance(value, dict):
            for k, v in value.items():
                add(f"{key}.{k}", v)
        else:
            out[key] = value

    for key in keys:
        node = config
        for part in key.split("."):
            node = node[part]
        add(key, _plain(node))
    return out


def fingerprint(stage: str, config: dict, inputs: dict) -> str:
    blob = json.dumps({"stage": stage, "config": config, "inputs": inputs}, sort_keys=True,
                      default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def why_different(old: dict, config: dict, inputs: dict) -> str:
    """What changed between a stored record and the current settings, in a few words."""
    diffs = []
    for key in sorted(set(old.get("config", {})) | set(config)):
        a, b = old.get("config", {}).get(key, "<absent>"), config.get(key, "<absent>")
        if a != b:
            diffs.append(f"{key} {_short(a)} -> {_short(b)}")
    for key in sorted(set(old.get("inputs", {})) | set(inputs)):
        a, b = old.get("inputs", {}).get(key), inputs.get(key)
        if a != b:
            diffs.append(f"input {key} changed" if a and b else
                         f"input {key} {'added' if b else 'removed'}")
    return "; ".join(diffs) or "fingerprint differs"


def _short(v) -> str:
    s = json.dumps(v, default=str)
    return s if len(s) <= 60 else s[:57] + "..."


# --------------------------------------------------------------------------- the workdir

class Workdir:
    """Paths and records of one workdir. Stages name their outputs through these methods only."""

    def __init__(self, root: str):
        self.root = root

    # layout ------------------------------------------------------------------
    def stage_dir(self, name: str) -> str:
        return os.path.join(self.root, name)

    def checkpoints(self, name: str) -> str:
        return os.path.join(self.root, name, "checkpoints")

    def export(self, name: str) -> str:
        """The Hugging Face export of a trained model (``name`` may be ``stage/sub``)."""
        return os.path.join(self.root, name, "hf")

    def best(self, name: str) -> str:
        return os.path.join(self.root, name, "best")

    def selection(self, name: str) -> str:
        return os.path.join(self.root, name, "selection.json")

    def tracked(self, name: str) -> str:
        """Top predictions of the tracked questions across training steps (Figure 3)."""
        return os.path.join(self.root, name, "tracked.json")

    def candidates(self) -> str:
        return os.path.join(self.root, "mine", "candidates.npz")

    def hl_weights(self, name: str) -> str:
        return os.path.join(self.root, name, "hl_type_weights.json")

    def results(self, name: str, ext: str) -> str:
        return os.path.join(self.root, name, f"results.{ext}")

    def predictions(self, name: str, dataset: str, lang: str, kind: str = "predictions") -> str:
        return os.path.join(self.root, name, f"{kind}_{dataset}_{lang}.json")

    def ranks(self, name: str) -> str:
        """Per-query ranks of the first relevant candidate, per model / level / language."""
        return os.path.join(self.root, name, "ranks.json")

    def round_name(self, r: int) -> str:
        return os.path.join("mccrolin", f"round_{r}")

    def round_dev(self, r: int) -> str:
        return os.path.join(self.root, self.round_name(r), "dev.json")

    def best_round_name(self) -> str:
        return os.path.join("mccrolin", "best")

    def rounds(self) -> str:
        return os.path.join(self.root, "mccrolin", "rounds.json")

    def cache(self) -> str:
        return os.path.join(self.root, "cache")

    def resolved_config(self) -> str:
        return os.path.join(self.root, "config.json")

    # models ------------------------------------------------------------------
    def exported(self, name: str):
        """``<name>/hf`` if it holds a finished export, else ``None``."""
        folder = self.export(name)
        return folder if os.path.exists(os.path.join(folder, "model.safetensors")) else None

    def trained_model(self, name: str, use_best: bool):
        """``(folder, description)`` of the model a finished training stage hands on: its best
        dev checkpoint (``<name>/best/hf``) when ``use_best`` and it exists, else the final
        export; ``(None, None)`` if there is none."""
        final = self.exported(name)
        best = self.exported(os.path.join(name, "best"))
        if final and best and use_best:
            meta = read_json(os.path.join(self.best(name), "best.json"))
            score = ", ".join(f"{k} {v:.2f}" for k, v in meta.items() if k != "step")
            return best, (f"{name}, best dev checkpoint (step {meta['step']}; {score}): "
                          f"{os.path.relpath(best, self.root)}")
        if final:
            return final, f"{name}, final checkpoint: {os.path.relpath(final, self.root)}"
        return None, None

    def save_model(self, folder: str, module, params, tokenizer, meta: dict = None,
                   meta_name: str = "best.json", prompts: dict = None):
        """Exports ``params`` atomically to ``folder`` (an ``hf`` folder), or to ``folder/hf``
        plus ``folder/<meta_name>`` when ``meta`` is given. Main process only."""
        from xmrc_jax.models import save_pretrained
        import jax
        if not distributed.is_main_process():
            return
        params = jax.device_get(params)
        with atomic_dir(folder) as tmp:
            if meta is None:
                save_pretrained(module, params, tmp, tokenizer, prompts)
            else:
                save_pretrained(module, params, os.path.join(tmp, "hf"), tokenizer, prompts)
                write_json(os.path.join(tmp, meta_name), meta, indent=None)

    def copy_model(self, src_folder: str, dst_name: str):
        if distributed.is_main_process():
            with atomic_dir(self.stage_dir(dst_name)) as tmp:
                shutil.copytree(src_folder, os.path.join(tmp, "hf"))

    # files -------------------------------------------------------------------
    @staticmethod
    def read_json(path: str):
        return read_json(path)

    def write_json(self, path: str, obj, indent=2):
        if distributed.is_main_process():
            write_json(path, obj, indent)

    def save_candidates(self, starts, ends, valid, gold_in_top):
        if distributed.is_main_process():
            write_npz(self.candidates(), cand_starts=starts, cand_ends=ends, cand_valid=valid,
                      gold_in_top=gold_in_top)

    def load_candidates(self, num_windows: int) -> dict:
        """The mined candidates, checked to have one row per training window."""
        with np.load(self.candidates()) as c:
            cands = {k: c[k] for k in ("cand_starts", "cand_ends", "cand_valid")}
        if len(cands["cand_starts"]) != num_windows:
            raise ValueError(f"{self.candidates()} has {len(cands['cand_starts'])} rows for "
                             f"{num_windows} training windows")
        return cands

    # results -----------------------------------------------------------------
    def write_results(self, name: str, table: str, payload: dict, plot=None):
        """The one results writer: ``results.md`` (``table``), ``results.json`` (``payload``)
        and ``results.png`` (``plot(path)``), then the table printed. Both files name the
        config that produced them (``config.json`` and the stage's fingerprint and fields)."""
        rec = self.record(name) or {}
        payload = {**payload, "config": {"file": os.path.relpath(self.resolved_config(), self.root),
                                         "fingerprint": rec.get("fingerprint"),
                                         "fields": rec.get("config", {})}}
        table = (f"Config: {payload['config']['file']} (stage fingerprint "
                 f"{payload['config']['fingerprint']})\n" + table)
        if distributed.is_main_process():
            write_text(self.results(name, "md"), table + "\n")
            if plot is not None:
                tmp = _tmp(self.results(name, "png")) + ".png"
                plot(tmp)
                os.replace(tmp, self.results(name, "png"))
            write_json(self.results(name, "json"), payload)
        print(table)

    def print_results(self, name: str) -> bool:
        path = self.results(name, "md")
        if os.path.exists(path):
            print(open(path, encoding="utf-8").read())
            return True
        return False

    # records -----------------------------------------------------------------
    def record_path(self, name: str) -> str:
        return os.path.join(self.root, name, RECORD)

    def record(self, name: str):
        path = self.record_path(name)
        if not os.path.exists(path):
            return None
        try:
            return read_json(path)
        except (OSError, json.JSONDecodeError):
            return None

    def write_record(self, name: str, status: str, fp: str, config: dict, inputs: dict,
                     **extra):
        if distributed.is_main_process():
            write_json(self.record_path(name), {"stage": name, "status": status,
                                                "fingerprint": fp, "config": config,
                                                "inputs": inputs, **extra})

    def done_fingerprint(self, name: str):
        """The fingerprint of a finished artefact, or ``None``."""
        rec = self.record(name)
        return rec["fingerprint"] if rec and rec.get("status") == "done" else None

    def clear(self, name: str):
        """Removes a stage's folder; a folder linked in from another workdir (shared runs) is
        unlinked, never deleted."""
        if distributed.is_main_process():
            path = self.stage_dir(name)
            if os.path.islink(path):
                os.unlink(path)
            else:
                shutil.rmtree(path, ignore_errors=True)
