"""Generic training: state and optimizer, the jitted step, the loop with its hooks, the trainer."""
