"""binexp: an experiment runner for binary and sub-1-bit neural networks."""

__version__ = "0.1.0"
