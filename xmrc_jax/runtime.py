"""The run's runtime: built once by ``stages.run`` and handed to every stage.

``Runtime`` holds what does not change between stages (mesh, precision, tokenizer, feature
cache, the architecture and, lazily, the initial weights). A stage asks it for the module with
the head it needs (``module("span")`` for xMRC, ``module("embed")`` for McCrolin), for the
initial weights with that head, or for a trained model from an exported folder; so stages of
both methods can share one run.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any, Optional

import jax

from xmrc_jax import mesh as sh
from xmrc_jax.models.hf_io import looks_like_path
from xmrc_jax.models import EncoderConfig, build_model, load_pretrained, load_tokenizer, \
    read_config
from xmrc_jax.train import state as st

log = logging.getLogger("xmrc_jax")


@dataclasses.dataclass(frozen=True)
class Runtime:
    mesh: Any
    precision: str
    tokenizer: Any
    cache_dir: str
    arch: EncoderConfig
    model_name: str = ""                # "" = random initialisation from config.model.arch
    pooling: str = "mean"
    remat: bool = False
    kernels: str = "auto"               # models.encoder.resolve_kernels
    remat_policy: str = "nothing_saveable"
    prompts: dict = dataclasses.field(default_factory=dict)   # embedding exports: e5's prefixes
    _weights: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @property
    def dtype(self):
        return st.DTYPES[self.precision]

    @property
    def _model_kw(self) -> dict:
        return dict(pooling=self.pooling, dtype=self.dtype, remat=self.remat,
                    kernels=self.kernels, remat_policy=self.remat_policy)

    def module(self, head: Optional[str]):
        """The encoder with ``head`` ("span" | "embed" | None) in the run's precision."""
        return build_model(self.arch, head, add_pooler=self._with_pooler(head), **self._model_kw)

    def _with_pooler(self, head) -> bool:
        return self.initial(head)[0].add_pooler if self.model_name else False

    def initial(self, head: Optional[str]):
        """``(module, params)`` of ``config.model.name`` with ``head``; ``params`` is ``None``
        when the run starts from a random initialisation. Loaded once per head."""
        if not self.model_name:
            return build_model(self.arch, head, **self._model_kw), None
        if head not in self._weights:
            self._weights[head] = load_pretrained(self.model_name, head=head, **self._model_kw)
        return self._weights[head]

    def load(self, folder: str, head: Optional[str]):
        """``(module, params)`` of an exported model, with ``head`` and the run's settings."""
        return load_pretrained(folder, head=head, **self._model_kw)

    @property
    def has_pretrained(self) -> bool:
        return bool(self.model_name)


def build(config, cache_dir: str) -> Runtime:
    """Mesh, precision, tokenizer and architecture for ``config`` (weights load lazily);
    ``cache_dir`` holds the feature cache."""
    precision = st.choose_precision(config.model.precision, config.model.v100_precision)
    mesh = sh.make_mesh(config.mesh.to_dict())
    log.info("devices: %d x %s; mesh %s; precision %s", jax.device_count(),
             jax.devices()[0].device_kind, dict(mesh.shape), precision)
    tok_path = config.model.tokenizer or config.model.name
    if not tok_path:
        raise ValueError("config.model.tokenizer (or config.model.name) must name a tokenizer "
                         "folder or hub id")
    name = config.model.name
    if name:
        if not os.path.isdir(name) and looks_like_path(name):
            raise FileNotFoundError(f"config.model.name {name!r}: no such checkpoint folder")
        if not os.path.isdir(name) and os.environ.get("HF_HUB_OFFLINE") == "1":
            raise FileNotFoundError(
                f"config.model.name {name!r} is not a local folder and the hub is "
                f"offline: download the checkpoint (hf download {name} --local-dir DIR) "
                "and pass --config.model.name=DIR")
        arch = read_config(name)
        tokenizer = load_tokenizer(tok_path, arch.vocab_size)
    else:
        tokenizer = load_tokenizer(tok_path, None)
        a = config.model.arch.to_dict()
        if not a.get("vocab_size"):
            a["vocab_size"] = len(tokenizer)
        arch = EncoderConfig(**a)
    return Runtime(mesh=mesh, precision=precision, tokenizer=tokenizer,
                   cache_dir=cache_dir, arch=arch,
                   model_name=name, pooling=config.model.pooling, remat=config.model.remat,
                   kernels=config.model.kernels, remat_policy=config.model.remat_policy,
                   prompts={k: v for k, v in (("query", config.retrieval.query_prefix),
                                              ("passage", config.retrieval.passage_prefix)) if v})
