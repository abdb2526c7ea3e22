"""SQuAD-format data: reading and validation, sources, sliding-window features, loaders."""

from xmrc_jax.data.features import build_features, build_features_per_example
from xmrc_jax.data.pipeline import TrainIterator, eval_batches
from xmrc_jax.data.sources import FileSpec, expand, load, load_specs, remove_overlap
from xmrc_jax.data.squad_format import (Answer, DataError, Example, ReadReport, parse_squad_json,
                                        read_squad_file)

__all__ = ["Answer", "DataError", "Example", "FileSpec", "ReadReport", "TrainIterator",
           "build_features", "build_features_per_example", "eval_batches", "expand", "load",
           "load_specs", "parse_squad_json", "remove_overlap", "read_squad_file"]
