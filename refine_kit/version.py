"""The kit's version, declared once: pyproject.toml reads it, and cache versions include it."""

__version__ = "0.1.0"
