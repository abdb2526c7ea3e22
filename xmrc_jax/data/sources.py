"""Dataset specs: local SQuAD-format files, TFDS builders, and a registry for MLQA / XQuAD / TyDi.

A config names data as a list of specs (plain dicts), each one of

* ``dict(path="file.json", language="es", name="mlqa")``: one local file;
* ``dict(dataset="mlqa", languages=["en", "es"], root="DIR")``: the registry expands this to the
  official file names under ``root`` (``dev-context-es-question-es.json``, ``xquad.es.json``,
  ``tydiqa.goldp.ar.dev.json``); ``split`` picks dev / test for MLQA;
* ``dict(tfds="xquad/es", split="test", language="es")``: a TFDS builder read through
  ``tfds.data_source`` (array_record, no TensorFlow). It needs the prepared dataset in
  ``data_dir`` (``tfds build`` where the internet is reachable); offline it fails with a message
  saying so.

Zero-shot training is one English spec; translate-train is one spec per language (several
training files). ``load_spec`` returns ``(name, language, examples, report)`` for each file.
"""

from __future__ import annotations

import dataclasses
import os

from xmrc_jax.data.squad_format import Answer, DataError, Example, ReadReport, parse_squad_json, \
    read_squad_file

REGISTRY = {
    "mlqa": dict(languages=("en", "es", "de", "ar", "hi", "vi", "zh"),
                 file="{split}-context-{lang}-question-{lang}.json", split="dev",
                 metric="mlqa", tfds="mlqa/{lang}", tfds_split={"dev": "validation", "test": "test"}),
    "xquad": dict(languages=("en", "es", "de", "el", "ru", "tr", "ar", "vi", "th", "zh", "hi", "ro"),
                  file="xquad.{lang}.json", split="test", metric="squad",
                  tfds="xquad/{lang}",
                  tfds_split={"test": "test"}),
    "tydiqa_goldp": dict(languages=("ar", "bn", "en", "fi", "id", "ko", "ru", "sw", "te"),
                         file="tydiqa.goldp.{lang}.dev.json", split="dev", metric="squad",
                         tfds="tydi_qa/goldp",
                         tfds_split={"dev": "validation-{lang}"}),
    "squad": dict(languages=("en",), file="{split}-v1.1.json", split="dev", metric="squad",
                  tfds="squad/v1.1",
                  tfds_split={"dev": "validation", "train": "train"}),
}
_SPEC_KEYS = {"path", "language", "name", "dataset", "languages", "root", "split", "tfds",
              "data_dir", "require_answers", "limit", "metric"}
METRICS = ("mlqa", "squad")


def metric_for(name: str, spec: dict = None) -> str:
    """The official script a dataset is scored with: the spec's ``metric``, else the registry's
    for a registered dataset name (MLQA's own script for MLQA), else SQuAD v1.1's."""
    metric = (spec or {}).get("metric") or REGISTRY.get(name, {}).get("metric", "squad")
    if metric not in METRICS:
        raise ValueError(f"metric {metric!r} of {name}: expected one of {METRICS}")
    return metric


@dataclasses.dataclass(frozen=True)
class FileSpec:
    """One concrete source after registry expansion."""

    name: str
    language: str
    path: str = ""
    tfds: str = ""
    split: str = ""
    data_dir: str = ""
    require_answers: bool = True
    limit: int = 0
    metric: str = "squad"          # official script: "mlqa" | "squad" (from the registry)


def expand(spec: dict, where: str = "data spec") -> list:
    """Turns a config spec into ``FileSpec`` s (one per language / file)."""
    spec = dict(spec)
    unknown = set(spec) - _SPEC_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}; known: {sorted(_SPEC_KEYS)}")
    require = bool(spec.get("require_answers", True))
    limit = int(spec.get("limit", 0))
    if "dataset" in spec:
        name = spec["dataset"]
        if name not in REGISTRY:
            raise ValueError(f"{where}: unknown dataset {name!r}; known: {sorted(REGISTRY)}")
        reg = REGISTRY[name]
        langs = spec.get("languages") or list(reg["languages"])
        if isinstance(langs, str):
            langs = [s.strip() for s in langs.split(",") if s.strip()]
        bad = [lang for lang in langs if lang not in reg["languages"]]
        if bad:
            raise ValueError(f"{where}: {name} has no language(s) {bad}; it has {list(reg['languages'])}")
        split = spec.get("split", reg["split"])
        if name == "tydiqa_goldp":
            require = bool(spec.get("require_answers", False))
        out = []
        for lang in langs:
            if spec.get("root"):
                path = os.path.join(spec["root"], reg["file"].format(split=split, lang=lang))
                out.append(FileSpec(name, lang, path=path, require_answers=require, limit=limit,
                                    metric=metric_for(name, spec)))
            else:
                if split not in reg["tfds_split"]:
                    raise ValueError(f"{where}: {name} has no TFDS split for {split!r}")
                out.append(FileSpec(name, lang, tfds=reg["tfds"].format(lang=lang),
                                    split=reg["tfds_split"][split].format(lang=lang),
                                    data_dir=spec.get("data_dir", ""), require_answers=require,
                                    limit=limit, metric=metric_for(name, spec)))
        return out
    if "path" in spec:
        if "language" not in spec:
            raise ValueError(f"{where}: a 'path' spec needs 'language'")
        name = spec.get("name") or os.path.splitext(os.path.basename(spec["path"]))[0]
        return [FileSpec(name, spec["language"], path=spec["path"], require_answers=require,
                         limit=limit, metric=metric_for(name, spec))]
    if "tfds" in spec:
        if "language" not in spec or "split" not in spec:
            raise ValueError(f"{where}: a 'tfds' spec needs 'language' and 'split'")
        name = spec.get("name") or spec["tfds"].split("/")[0]
        return [FileSpec(name, spec["language"], tfds=spec["tfds"], split=spec["split"],
                         data_dir=spec.get("data_dir", ""), require_answers=require, limit=limit,
                         metric=metric_for(name, spec))]
    raise ValueError(f"{where}: needs one of 'path', 'dataset' or 'tfds'")


def _read_tfds(fs: FileSpec, skip_bad: bool):
    try:
        import tensorflow_datasets as tfds
        source = tfds.data_source(fs.tfds, split=fs.split, data_dir=fs.data_dir or None,
                                  download=False)
    except Exception as e:
        raise DataError(
            f"TFDS {fs.tfds} split {fs.split}: not available ({type(e).__name__}: {e}). Prepare it "
            f"where the internet is reachable (`tfds build {fs.tfds}` or tfds.builder(...)."
            "download_and_prepare(file_format='array_record')) and pass its data_dir, or use local "
            "files (a 'path' or 'root' spec).") from e
    # Rebuild the SQuAD JSON shape so that one validator serves both sources.
    paragraphs = {}
    for rec in source:
        dec = lambda v: v.decode("utf-8") if isinstance(v, bytes) else str(v)  # noqa: E731
        key = (dec(rec["title"]), dec(rec["context"]))
        answers = [{"text": dec(t), "answer_start": int(s)}
                   for t, s in zip(rec["answers"]["text"], rec["answers"]["answer_start"])]
        paragraphs.setdefault(key, []).append({"id": dec(rec["id"]), "question": dec(rec["question"]),
                                               "answers": answers})
    data = {"data": [{"title": t, "paragraphs": [{"context": c, "qas": qas}]}
                     for (t, c), qas in paragraphs.items()]}
    return parse_squad_json(data, f"tfds:{fs.tfds}[{fs.split}]", fs.language, skip_bad,
                            fs.require_answers)


def load(fs: FileSpec, skip_bad: bool = False):
    """``(examples, report)`` for one ``FileSpec``."""
    if fs.path:
        if not os.path.exists(fs.path):
            raise DataError(f"{fs.path}: no such file ({fs.name} {fs.language})")
        ex, rep = read_squad_file(fs.path, fs.language, skip_bad, fs.limit, fs.require_answers)
        return ex, rep
    ex, rep = _read_tfds(fs, skip_bad)
    if fs.limit:
        ex = ex[:fs.limit]
        rep.read = len(ex)
    return ex, rep


def load_specs(specs, skip_bad: bool = False, where: str = "data") -> list:
    """Expands and reads a list of config specs: ``[(FileSpec, examples, report)]``."""
    out = []
    for i, spec in enumerate(specs):
        for fs in expand(spec, f"{where}[{i}]"):
            ex, rep = load(fs, skip_bad)
            if not ex:
                raise DataError(f"{where}[{i}]: {fs.path or fs.name} ({fs.language}) has 0 "
                                f"questions{_why_empty(rep)}")
            out.append((fs, ex, rep))
    return out


def _why_empty(rep) -> str:
    n = getattr(rep, "num_skipped", 0)
    return f" ({n} skipped as bad records)" if n else ""


def _norm_context(text: str) -> str:
    return " ".join(text.split())


def remove_overlap(examples, held_out) -> tuple:
    """``examples`` without any question whose id, or whose context (whitespace-normalised),
    occurs in ``held_out`` (test examples): ``(kept, removed_count)``. Model selection uses
    this so that no test question or passage reaches it (XQuAD is built from SQuAD v1.1 dev)."""
    ids = {ex.id for ex in held_out}
    contexts = {_norm_context(ex.context) for ex in held_out}
    kept = [ex for ex in examples
            if ex.id not in ids and _norm_context(ex.context) not in contexts]
    return kept, len(examples) - len(kept)


__all__ = ["Answer", "DataError", "Example", "FileSpec", "REGISTRY", "ReadReport", "expand",
           "load", "load_specs", "remove_overlap"]
