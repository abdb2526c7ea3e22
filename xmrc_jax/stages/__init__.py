"""Stages of a run, selected by ``config.stages`` and run in order by ``run_stages``.

Each stage is a function ``(config, workdir, context) -> None`` that is resumable and skips
itself when its output already exists. ``context`` carries objects that stages share (tokenizer,
model, datasets), built once.
"""

import importlib
import logging

log = logging.getLogger("xmrc_jax")

# stage name -> "module:function"; modules are imported only when a stage is used.
REGISTRY = {
    "baseline": "xmrc_jax.stages.mrc:baseline",
    "mine": "xmrc_jax.stages.mrc:mine",
    "hl_aacl": "xmrc_jax.stages.mrc:hl_aacl",
    "evaluate": "xmrc_jax.stages.mrc:evaluate",
    "mccrolin": "xmrc_jax.stages.mccrolin:mccrolin",
    "retrieval": "xmrc_jax.stages.mccrolin:retrieval",
}


def resolve(name: str):
    if name not in REGISTRY:
        raise ValueError(f"config.stages: unknown stage {name!r}; known stages: {sorted(REGISTRY)}")
    module, fn = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), fn)


def names(value) -> list:
    """A tuple-of-names config value as a list; a string such as ``"(baseline,evaluate)"``
    (what a shell override like ``--config.stages=(baseline,evaluate)`` gives, the names being
    unquoted) is split on commas."""
    text = value if isinstance(value, str) else ",".join(str(s) for s in value)
    return [s.strip(" '\"()[]") for s in text.split(",") if s.strip(" '\"()[]")]


stage_names = names


def run_stages(config, workdir: str) -> dict:
    names = stage_names(config.stages)
    stages = [resolve(name) for name in names]     # validate all names before any work
    context = {}
    for name, stage in zip(names, stages):
        log.info("=== stage %s", name)
        stage(config, workdir, context)
    return context
