"""The package version: its one source (pyproject.toml reads it; `llmsched.__version__` re-exports it)."""

__version__ = "0.1.0"
