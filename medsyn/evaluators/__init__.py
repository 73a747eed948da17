"""Evaluators: images (checkpoint samples, a folder, an npz) -> results.json."""
