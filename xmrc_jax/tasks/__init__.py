"""Tasks: what each method trains and predicts, apart from the generic trainer.

A task module owns the batch keys it consumes (one definition, used by stages, loaders and
evaluation), its objectives (pure ``objective(params, batch, rng, *consts) -> (loss, aux)``
closed over the module) and its inference functions, plus ``validate(config)`` for the config
section it reads. ``train/`` never imports a task; stages hand the trainer an objective.

* ``span_qa``: extractive QA with a span head (``mrc``, ``hl_aacl``; ``predict_top_k``).
* ``retrieval_qa``: a sentence encoder with an embedding head (``mccrolin``; ``embed``).
"""
