"""Training system: precision policy, mesh and sharding, train state, step, checkpoints, loop."""
