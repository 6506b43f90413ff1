"""Where bundled run-time data lives: `data/` in a checkout, `llmsched/data` when installed."""

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
