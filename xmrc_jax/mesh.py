"""Device mesh, logical-axis rules and placing arrays on the mesh (training and evaluation).

The mesh has axes (``data``, ``fsdp``, ``tensor``) whose sizes come from the config
(``mesh.data = -1`` takes the devices left over). Pure data parallelism, what ``pmap`` did on an
8 x V100 box, is the mesh (8, 1, 1). The encoder names its axes logically; ``RULES`` maps them
onto the mesh.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

AXES = ("data", "fsdp", "tensor")
RULES = (
    ("batch", ("data", "fsdp")),
    ("length", None),
    ("embed", "fsdp"),
    ("vocab", "tensor"),
    ("heads", "tensor"),
    ("kv", None),
    ("mlp", "tensor"),
)


def mesh_shape(sizes: dict, num_devices: int) -> tuple:
    """Resolves ``{"data": -1, "fsdp": f, "tensor": t}`` for ``num_devices``; a mesh that does not
    fit is an error naming the sizes."""
    shape = [int(sizes.get(a, 1)) for a in AXES]
    unknown = set(sizes) - set(AXES)
    if unknown:
        raise ValueError(f"config.mesh: unknown axis {sorted(unknown)}; axes are {AXES}")
    free = [i for i, s in enumerate(shape) if s == -1]
    if len(free) > 1 or any(s == 0 or s < -1 for s in shape):
        raise ValueError(f"config.mesh {dict(zip(AXES, shape))}: at most one axis may be -1 and "
                         "the others must be positive")
    fixed = math.prod(s for s in shape if s != -1)
    if free:
        if num_devices % fixed:
            raise ValueError(f"config.mesh {dict(zip(AXES, shape))} does not fit {num_devices} "
                             f"devices ({num_devices} is not divisible by {fixed})")
        shape[free[0]] = num_devices // fixed
    if math.prod(shape) != num_devices:
        raise ValueError(f"config.mesh {dict(zip(AXES, shape))} needs {math.prod(shape)} devices, "
                         f"but {num_devices} are available")
    return tuple(shape)


def make_mesh(sizes: dict, devices=None) -> Mesh:
    devices = jax.devices() if devices is None else devices
    shape = mesh_shape(dict(sizes), len(devices))
    return Mesh(np.asarray(devices).reshape(shape), AXES)


def batch_sharding(mesh: Mesh, ndim: int = 2) -> NamedSharding:
    return NamedSharding(mesh, P(("data", "fsdp"), *([None] * (ndim - 1))))


def logical_shardings(abstract_boxed_tree, mesh: Mesh):
    """NamedShardings for a tree whose leaves may carry logical-axis boxes (``eval_shape`` of an
    init); plain leaves are replicated."""
    specs = nn.get_partition_spec(abstract_boxed_tree)
    return nn.logical_to_mesh_sharding(specs, mesh, RULES)


def put_batch(batch: dict, mesh: Mesh) -> dict:
    """Places host arrays (this process's rows) as global arrays sharded over the batch axes."""
    out = {}
    for k, v in batch.items():
        v = np.asarray(v)
        out[k] = jax.make_array_from_process_local_data(batch_sharding(mesh, v.ndim), v)
    return out


def local_rows(x, mesh: Mesh) -> np.ndarray:
    """The rows of a batch-sharded global array that this process put in (``put_batch``): the
    whole array in a single process; in a multi-process run, this process's part only."""
    if jax.process_count() == 1:
        return np.asarray(jax.device_get(x))
    from jax.experimental import multihost_utils
    local = multihost_utils.global_array_to_host_local_array(
        x, mesh, P(("data", "fsdp"), *([None] * (x.ndim - 1))))
    return np.asarray(local)


def replicated(tree, mesh: Mesh):
    """``tree`` placed whole on every device of ``mesh`` (evaluation parameters)."""
    return jax.device_put(tree, NamedSharding(mesh, P()))


def eval_batch_size(mesh: Mesh, requested: int) -> int:
    """``requested`` rounded down to a multiple of the mesh's batch-sharding size (at least one
    row per data shard)."""
    data = mesh.shape["data"] * mesh.shape["fsdp"]
    return max(data, requested - requested % data)
