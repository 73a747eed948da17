"""Generators: training -> run folders with self-describing checkpoints."""
