"""Hugging Face checkpoints in and out, through one explicit key map; tokenizer loading.

    module, params = load_pretrained("xlm-roberta-base", head="span")    # hub id or local folder
    save_pretrained(module, params, "out/")    # loads in transformers.AutoModelForQuestionAnswering

Loading maps every tensor by name (prefixes ``roberta.``, ``bert.`` or none), reports missing and
unexpected keys, and refuses a checkpoint that lacks an encoder weight: there is no silent random
initialisation. A head that an encoder-only checkpoint does not have is initialised and logged.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from xmrc_jax.models.encoder import EncoderConfig, resolve_kernels
from xmrc_jax.models.heads import EncoderWithHead

log = logging.getLogger("xmrc_jax")

_PREFIXES = ("roberta.", "bert.", "xlm_roberta.", "model.")
# Tensors that checkpoints carry but this model has no use for; they are reported, never an error.
_IGNORABLE = ("embeddings.position_ids", "lm_head.", "cls.", "pooler.")


@dataclasses.dataclass
class LoadReport:
    """What ``load_pretrained`` did with the checkpoint's tensors."""

    source: str
    loaded: list
    initialised: list          # head parameters the checkpoint did not have
    unexpected: list           # checkpoint tensors this model does not use

    def __str__(self):
        parts = [f"{self.source}: loaded {len(self.loaded)} tensors"]
        if self.initialised:
            parts.append(f"initialised (not in checkpoint): {', '.join(self.initialised)}")
        if self.unexpected:
            shown = ", ".join(self.unexpected[:8]) + (" ..." if len(self.unexpected) > 8 else "")
            parts.append(f"unused checkpoint tensors ({len(self.unexpected)}): {shown}")
        return "; ".join(parts)


# --------------------------------------------------------------------------- key map

@dataclasses.dataclass(frozen=True)
class _Entry:
    hf: str                          # Hugging Face name without the model prefix
    path: tuple                      # path in our parameter tree
    to_flax: Callable                # np array (HF layout) -> our layout
    to_hf: Callable                  # our layout -> HF layout
    is_head: bool = False


def _same(x):
    return x


def _key_map(cfg: EncoderConfig, head: Optional[str], with_pooler: bool) -> list:
    """Every parameter of ``EncoderWithHead`` with its Hugging Face name and layout transforms."""
    h, n, d = cfg.hidden_size, cfg.num_attention_heads, cfg.head_dim
    t = lambda w: np.ascontiguousarray(w.T)  # noqa: E731  (torch Linear is [out, in])
    entries = []

    def norm(hf, path):
        entries.append(_Entry(f"{hf}.weight", path + ("norm", "scale"), _same, _same))
        entries.append(_Entry(f"{hf}.bias", path + ("norm", "bias"), _same, _same))

    emb = ("encoder", "embeddings")
    for name in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        entries.append(_Entry(f"embeddings.{name}.weight", emb + (name, "embedding"), _same, _same))
    norm("embeddings.LayerNorm", emb + ("LayerNorm",))
    for i in range(cfg.num_hidden_layers):
        src, dst = f"encoder.layer.{i}", ("encoder", f"layer_{i}")
        for proj in ("query", "key", "value"):
            entries.append(_Entry(f"{src}.attention.self.{proj}.weight",
                                  dst + ("attention", proj, "kernel"),
                                  lambda w: t(w).reshape(h, n, d), lambda k: t(k.reshape(h, n * d))))
            entries.append(_Entry(f"{src}.attention.self.{proj}.bias",
                                  dst + ("attention", proj, "bias"),
                                  lambda b: b.reshape(n, d), lambda b: b.reshape(n * d)))
        entries.append(_Entry(f"{src}.attention.output.dense.weight",
                              dst + ("attention", "output", "kernel"),
                              lambda w: t(w).reshape(n, d, h), lambda k: t(k.reshape(n * d, h))))
        entries.append(_Entry(f"{src}.attention.output.dense.bias",
                              dst + ("attention", "output", "bias"), _same, _same))
        norm(f"{src}.attention.output.LayerNorm", dst + ("attention_norm",))
        for hf_name, ours in (("intermediate.dense", "intermediate"), ("output.dense", "output")):
            entries.append(_Entry(f"{src}.{hf_name}.weight", dst + (ours, "kernel"), t, t))
            entries.append(_Entry(f"{src}.{hf_name}.bias", dst + (ours, "bias"), _same, _same))
        norm(f"{src}.output.LayerNorm", dst + ("output_norm",))
    if with_pooler:
        entries.append(_Entry("pooler.dense.weight", ("encoder", "pooler", "kernel"), t, t))
        entries.append(_Entry("pooler.dense.bias", ("encoder", "pooler", "bias"), _same, _same))
    if head == "span":
        entries.append(_Entry("qa_outputs.weight", ("qa_outputs", "kernel"), t, t, is_head=True))
        entries.append(_Entry("qa_outputs.bias", ("qa_outputs", "bias"), _same, _same, is_head=True))
    return entries


def _canonical(name: str) -> str:
    """Strips a model prefix and renames old-style ``LayerNorm.gamma/beta``."""
    for p in _PREFIXES:
        if name.startswith(p):
            name = name[len(p):]
            break
    if name.endswith(".gamma"):
        name = name[:-len(".gamma")] + ".weight"
    elif name.endswith(".beta"):
        name = name[:-len(".beta")] + ".bias"
    return name


# --------------------------------------------------------------------------- reading files

def looks_like_path(name: str) -> bool:
    """A local path rather than a hub id (``owner/name`` or ``name``)."""
    return (name.startswith((os.sep, ".", "~")) or name.count("/") > 1
            or (os.altsep is not None and os.altsep in name))


def _resolve(name_or_path: str) -> str:
    if os.path.isdir(name_or_path):
        return name_or_path
    if os.path.exists(name_or_path):
        raise ValueError(f"{name_or_path}: expected a checkpoint folder (config.json + weights), "
                         "got a file")
    if looks_like_path(name_or_path):
        raise FileNotFoundError(f"{name_or_path}: no such checkpoint folder")
    try:
        from huggingface_hub import snapshot_download
        return snapshot_download(name_or_path, allow_patterns=[
            "config.json", "*.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
            "tokenizer*", "sentencepiece*", "*.model", "vocab.txt", "special_tokens_map.json"])
    except Exception as e:  # offline, unknown repo, ...
        raise FileNotFoundError(
            f"{name_or_path!r} is neither a local checkpoint folder nor reachable on the Hugging "
            f"Face hub ({type(e).__name__}): download it where the hub is reachable "
            f"(hf download {name_or_path} --local-dir DIR) and pass the folder "
            "(--config.model.name=DIR).") from e


def _read_safetensors(path: str) -> dict:
    from safetensors import safe_open
    out = {}
    try:
        with safe_open(path, framework="np") as f:
            for k in f.keys():
                out[k] = f.get_tensor(k)
    except (TypeError, ValueError):   # bf16 tensors: numpy has no native dtype, read through jax
        with safe_open(path, framework="flax") as f:
            for k in f.keys():
                out[k] = np.asarray(f.get_tensor(k).astype(jnp.float32))
    return out


PLACEHOLDER_POOLER = "xmrc_jax.pooler"   # safetensors metadata: the pooler is transformers' init


def _placeholder_pooler(folder: str) -> bool:
    """Whether the export's pooler was written only for transformers' sake (never trained,
    never used): then it is not loaded, and the model stays without one."""
    path = os.path.join(folder, "model.safetensors")
    if not os.path.exists(path):
        return False
    from safetensors import safe_open
    with safe_open(path, "np") as f:
        return (f.metadata() or {}).get(PLACEHOLDER_POOLER) == "initialised"


def read_state_dict(folder: str) -> dict:
    """All tensors of a Hugging Face checkpoint folder as numpy arrays, by their stored names."""
    single = os.path.join(folder, "model.safetensors")
    index = os.path.join(folder, "model.safetensors.index.json")
    torch_bin = os.path.join(folder, "pytorch_model.bin")
    if os.path.exists(single):
        return _read_safetensors(single)
    if os.path.exists(index):
        with open(index, encoding="utf-8") as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
        tensors = {}
        for name in files:
            tensors.update(_read_safetensors(os.path.join(folder, name)))
        return tensors
    if os.path.exists(torch_bin):
        try:
            import torch
        except ImportError as e:
            raise ImportError(f"{torch_bin}: reading pytorch_model.bin needs torch; convert the "
                              "checkpoint to model.safetensors or install torch") from e
        sd = torch.load(torch_bin, map_location="cpu", weights_only=True)
        return {k: v.float().numpy() for k, v in sd.items()}
    raise FileNotFoundError(f"{folder}: no model.safetensors, model.safetensors.index.json or "
                            "pytorch_model.bin")


# --------------------------------------------------------------------------- public API

def build_model(config: EncoderConfig, head: Optional[str] = "span", *, pooling: str = "mean",
                dtype=jnp.float32, param_dtype=jnp.float32, remat: bool = False,
                add_pooler: bool = False, kernels: str = "auto",
                remat_policy: str = "nothing_saveable",
                attention_impl: Optional[str] = "auto") -> EncoderWithHead:
    """The encoder with ``head``. ``kernels="auto"`` picks the CPU-tuned kernels on CPU and the
    XLA idioms elsewhere; ``attention_impl="auto"`` picks cuDNN flash attention on GPU for half
    precision (``jax.nn.dot_product_attention``) and XLA's otherwise."""
    kernels = resolve_kernels(kernels)
    if attention_impl == "auto":
        half = jnp.dtype(dtype) in (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))
        attention_impl = "cudnn" if (kernels == "xla" and half and
                                     jax.default_backend() == "gpu") else None
    return EncoderWithHead(config, head=head, pooling=pooling, dtype=dtype,
                           param_dtype=param_dtype, remat=remat, add_pooler=add_pooler,
                           kernels=kernels, remat_policy=remat_policy,
                           attention_impl=attention_impl)


def init_params(module: EncoderWithHead, rng: jax.Array, seq_len: int = 8) -> dict:
    """Random parameters (a plain pytree, logical-axis boxes removed)."""
    import flax.linen as nn
    ids = jnp.zeros((1, seq_len), jnp.int32)
    variables = module.init(rng, ids, jnp.ones_like(ids))
    return nn.meta.unbox(variables["params"])


def _get(tree, path):
    for p in path:
        tree = tree[p]
    return tree


def _set(tree, path, value):
    for p in path[:-1]:
        tree = tree.setdefault(p, {})
    tree[path[-1]] = value


def read_config(name_or_path: str) -> EncoderConfig:
    """The architecture in a checkpoint's ``config.json`` (without reading its weights)."""
    folder = _resolve(name_or_path)
    cfg_path = os.path.join(folder, "config.json")
    if not os.path.exists(cfg_path):
        raise FileNotFoundError(f"{folder}: no config.json")
    return EncoderConfig.from_json_file(cfg_path)


def load_pretrained(name_or_path: str, head: Optional[str] = "span", *, pooling: str = "mean",
                    dtype=jnp.float32, param_dtype=jnp.float32, remat: bool = False,
                    seed: int = 0, kernels: str = "auto", remat_policy: str = "nothing_saveable",
                    require_head: bool = False):
    """Loads a Hugging Face BERT-family checkpoint. Returns ``(module, params)``.

    Raises ``ValueError`` naming the key when an encoder weight is missing or has the wrong shape,
    and with ``require_head`` when the checkpoint has no weights for ``head`` (instead of
    initialising it randomly).
    """
    folder = _resolve(name_or_path)
    config = read_config(folder)
    raw = read_state_dict(folder)
    tensors = {}
    for k, v in raw.items():
        tensors.setdefault(_canonical(k), (k, v))
    with_pooler = (head != "span" and "pooler.dense.weight" in tensors
                   and not _placeholder_pooler(folder))
    module = build_model(config, head, pooling=pooling, dtype=dtype, param_dtype=param_dtype,
                         remat=remat, add_pooler=with_pooler, kernels=kernels,
                         remat_policy=remat_policy)
    fresh = jax.eval_shape(lambda: init_params(module, jax.random.PRNGKey(seed)))
    params, loaded, initialised, used = {}, [], [], set()
    missing = []
    head_init = None
    for e in _key_map(config, head, with_pooler):
        want = _get(fresh, e.path)
        if e.hf not in tensors:
            if not e.is_head:
                missing.append(e.hf)
                continue
            if head_init is None:
                head_init = init_params(module, jax.random.PRNGKey(seed))
            _set(params, e.path, np.asarray(_get(head_init, e.path)))
            initialised.append(e.hf)
            continue
        stored_name, value = tensors[e.hf]
        value = e.to_flax(np.asarray(value, dtype=np.float32))
        if value.shape != want.shape:
            raise ValueError(f"{folder}: tensor {stored_name} has shape {tuple(np.shape(raw[stored_name]))}"
                             f", which does not fit {'/'.join(e.path)} {want.shape} of config.json")
        _set(params, e.path, value)
        loaded.append(e.hf)
        used.add(e.hf)
    if missing:
        raise ValueError(f"{folder}: checkpoint is missing {len(missing)} encoder weight(s): "
                         f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}")
    unexpected = sorted(orig for k, (orig, _) in tensors.items() if k not in used)
    report = LoadReport(folder, loaded, initialised, unexpected)
    surprising = [k for k in unexpected if not _canonical(k).startswith(_IGNORABLE)]
    if initialised and require_head:
        raise ValueError(f"{folder}: the checkpoint has no {head} head ({', '.join(initialised)} "
                         f"missing); it is not a fine-tuned {'question-answering' if head == 'span' else head} model")
    if initialised:
        log.warning("head initialised randomly (checkpoint has no %s): %s", head, report)
    elif surprising:
        log.warning("%s", report)
    else:
        log.info("%s", report)
    params = jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype=param_dtype), params)
    return module, params


def _hf_config(module: EncoderWithHead) -> dict:
    cfg = module.config
    arch_prefix = "XLMRoberta" if cfg.model_type == "xlm-roberta" else (
        "Roberta" if cfg.is_roberta else "Bert")
    arch = arch_prefix + ("ForQuestionAnswering" if module.head == "span" else "Model")
    d = cfg.to_dict()
    d.update(architectures=[arch], initializer_range=module.initializer_range,
             position_embedding_type="absolute", torch_dtype="float32")
    if cfg.is_roberta:
        d.update(bos_token_id=0, eos_token_id=2)
    return d


def save_pretrained(module: EncoderWithHead, params, out_dir: str, tokenizer=None,
                    prompts: Optional[dict] = None) -> str:
    """Writes ``config.json`` + ``model.safetensors`` (float32) that ``transformers`` loads.

    With a tokenizer, its ``tokenizer_config.json`` gets ``model_max_length`` = the model's
    positions (so a consumer truncates where the model ends). An ``embed``-head export also gets
    the sentence-transformers files (``modules.json``, the pooling config, the maximum length
    and ``prompts``, e.g. e5's ``{"query": "query: ", "passage": "passage: "}``), so that
    ``SentenceTransformer(out_dir)`` pools as this project does."""
    from safetensors.numpy import save_file
    os.makedirs(out_dir, exist_ok=True)
    cfg = module.config
    prefix = ("roberta." if cfg.is_roberta else "bert.") if module.head == "span" else ""
    tensors = {}
    for e in _key_map(cfg, module.head, module.add_pooler):
        value = np.asarray(jax.device_get(_get(params, e.path)), dtype=np.float32)
        name = e.hf if e.is_head else prefix + e.hf
        tensors[name] = np.ascontiguousarray(e.to_hf(value))
    if module.head == "embed" and not module.add_pooler:
        # transformers' BertModel / XLMRobertaModel always build a pooler; write one initialised
        # as transformers initialises it (never used: embeddings are pooled from the tokens) so
        # that AutoModel loads the export without reporting missing weights
        rng = np.random.default_rng(0)
        h = cfg.hidden_size
        tensors["pooler.dense.weight"] = (rng.standard_normal((h, h)) * module.initializer_range
                                          ).astype(np.float32)
        tensors["pooler.dense.bias"] = np.zeros(h, np.float32)
        metadata = {"format": "pt", PLACEHOLDER_POOLER: "initialised"}
    else:
        metadata = {"format": "pt"}
    save_file(tensors, os.path.join(out_dir, "model.safetensors"), metadata=metadata)
    with open(os.path.join(out_dir, "config.json"), "w", encoding="utf-8") as f:
        json.dump(_hf_config(module), f, indent=2, sort_keys=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(out_dir)
        path = os.path.join(out_dir, "tokenizer_config.json")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                tok_cfg = json.load(f)
            tok_cfg["model_max_length"] = cfg.max_tokens
            with open(path, "w", encoding="utf-8") as f:
                json.dump(tok_cfg, f, indent=2, ensure_ascii=False)
    if module.head == "embed":
        _write_sentence_transformers(module, out_dir, prompts or {})
    return out_dir


def _write_sentence_transformers(module: EncoderWithHead, out_dir: str, prompts: dict):
    cfg = module.config
    files = {
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling",
             "type": "sentence_transformers.models.Pooling"}],
        "sentence_bert_config.json": {"max_seq_length": cfg.max_tokens, "do_lower_case": False},
        "config_sentence_transformers.json": {"prompts": dict(prompts),
                                              "default_prompt_name": None,
                                              "similarity_fn_name": "cosine"},
        os.path.join("1_Pooling", "config.json"): {
            "word_embedding_dimension": cfg.hidden_size,
            "pooling_mode_cls_token": module.pooling == "cls",
            "pooling_mode_mean_tokens": module.pooling == "mean",
            "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False},
    }
    for name, content in files.items():
        path = os.path.join(out_dir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(content, f, indent=2)


# The first transformers release whose tokenizers encode as their tokenizer.json says, checked
# on the demo tokenizer and multilingual-e5-small (pair ids and offsets as under 5.24):
# 5.0.0 - 5.2.0 rebuild XLM-R's pair template with one "</s>" between question and context;
# 5.3.0 - 5.5.4 load mE5's tokenizer as a generic backend whose offsets include the leading space.
MIN_TRANSFORMERS = (5, 6, 0)


def check_transformers_version(version: Optional[str] = None):
    """Refuses a transformers older than ``MIN_TRANSFORMERS``: its windows would differ from the
    ones a model was trained on, silently."""
    if version is None:
        import transformers
        version = transformers.__version__
    parts = tuple(int(p) for p in re.findall(r"\d+", version)[:3])
    if parts < MIN_TRANSFORMERS:
        floor = ".".join(map(str, MIN_TRANSFORMERS))
        raise ValueError(f"transformers {version} is too old: before {floor} the XLM-R tokenizers "
                         "do not encode as their tokenizer.json says (one '</s>' between question "
                         f"and context, or offsets with the leading space); pip install "
                         f"'transformers>={floor},<6'")


def load_tokenizer(name_or_path: str, vocab_size: Optional[int] = None):
    """A fast (offset-mapping) tokenizer from a folder or hub id, checked against ``vocab_size``.

    The model's embedding table may be padded a little beyond the tokenizer (mE5: 250037 rows for
    250002 tokens); a tokenizer larger than the table, or much smaller (transformers 5 builds a
    5-token vocabulary from ``XLMRobertaTokenizerFast(vocab_file=...)``), is refused.
    """
    check_transformers_version()
    from transformers import AutoTokenizer
    try:
        tok = AutoTokenizer.from_pretrained(name_or_path)
    except Exception as e:
        raise FileNotFoundError(f"{name_or_path!r}: cannot load a tokenizer ({type(e).__name__}: "
                                f"{e})") from e
    if not getattr(tok, "is_fast", False):
        raise ValueError(f"{name_or_path}: tokenizer {type(tok).__name__} is not a fast tokenizer; "
                         "offset mappings need the tokenizers backend (tokenizer.json)")
    if vocab_size is not None:
        n = len(tok)
        slack = max(256, vocab_size // 100)
        if n > vocab_size or n < vocab_size - slack:
            raise ValueError(
                f"{name_or_path}: tokenizer has {n} tokens but the model's vocab_size is "
                f"{vocab_size}; they do not belong together (load the tokenizer from the "
                "checkpoint's own folder with from_pretrained)")
    return tok
