"""The paper's MLQA setting (AAAI 2022 "From Good to Best"): XLM-R base (or mBERT), trained on
English SQuAD v1.1 (zero-shot) or on SQuAD translated by XTREME (translate-train), evaluated on
MLQA (7 languages, same-language context and question) with the official MLQA EM / F1.

    python -m xmrc_jax.main --config=configs/mlqa.py --workdir=DIR
    python -m xmrc_jax.main --config=configs/mlqa.py:model=mbert,setting=translate_train,root=DATA \\
        --config.model.name=/path/to/bert-base-multilingual-cased --workdir=DIR

Arguments after ``:`` (comma-separated ``key=value``; a bare value fits the key it belongs to):

* ``model``: ``xlmr`` (``xlm-roberta-base``, default) or ``mbert``
  (``bert-base-multilingual-cased``). Offline, pass a folder with ``--config.model.name=DIR``.
* ``setting``: ``zero_shot`` (default) or ``translate_train``.
* ``preset``: ``paper`` (default: the paper's settings, ``configs/common.apply_preset``) or
  ``short`` (2 + 2 epochs, the second stage from the baseline).
* ``ablation``: ``full`` (default), ``no_hl`` (L_mrc + AA-CL), ``no_aacl`` (alpha 0), ``mml``.
* ``selection``: what picks the checkpoint: ``english_dev`` (MLQA dev in English; the default
  for zero-shot, which must see no target-language data), ``target_dev`` (MLQA dev in every
  language; the default for translate-train) or ``last``.
* ``tt``: translate-train languages, ``paper`` (es de ar hi vi, default) or ``all`` (the ten
  XTREME ships: ar de el es hi ru th tr vi zh).
* ``root``: folder holding the files under their official names (default: ``XMRC_DATA``;
  without one, TFDS): ``train-v1.1.json``, ``squad.translate.train.en-<lang>.json``,
  ``dev-context-<lang>-question-<lang>.json`` / ``test-context-...``.
* ``split``: MLQA split to evaluate, ``test`` (default, the paper's numbers) or ``dev``.
"""

from configs.common import XMRC_ARGS, apply_preset, data_root, languages, parse_arg, train_specs
from configs.default import XMRC_STAGES, get_base_config

LANGS = languages("mlqa")


def get_config(arg=None):
    a = parse_arg(arg, {**XMRC_ARGS, "split": ("dev", "test")})
    def dev(spec, english_only):
        return [{**spec, "split": "dev", "languages": ["en"] if english_only else spec["languages"]}]
    return build(a, "mlqa", dev)


def build(a, dataset, dev_specs, no_target_dev=False):
    """The xMRC config for ``dataset`` (``mlqa`` | ``xquad``) from parsed arguments ``a``;
    ``dev_specs(eval_spec, english_only)`` gives the selection files."""
    from configs.common import MODELS
    root = data_root(a)
    setting = a.get("setting", "zero_shot")
    c = get_base_config()
    c.stages = XMRC_STAGES
    apply_preset(c, a.get("preset", "paper"))
    c.hl.ablation = a.get("ablation", "full")
    c.model.name = MODELS[a.get("model", "xlmr")]
    c.data.train = train_specs(setting, root, a.get("tt", "paper"))
    spec = dict(dataset=dataset, languages=list(languages(dataset)))
    if dataset == "mlqa":
        spec["split"] = a.get("split", "test")
    if root:
        spec["root"] = root
    c.data.eval = [spec]
    selection = a.get("selection", "english_dev" if setting == "zero_shot" or no_target_dev
                      else "target_dev")
    if selection == "target_dev" and no_target_dev:
        raise ValueError(f"{dataset} has no target-language dev split: use selection=english_dev "
                         "(SQuAD v1.1 dev without XQuAD's questions) or selection=last")
    c.eval.selection = selection
    c.data.dev = [] if selection == "last" else dev_specs(spec, selection == "english_dev")
    return c
