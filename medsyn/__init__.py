"""medsyn: evaluation-first benchmarking of synthetic medical images."""

__version__ = "0.1.0"
