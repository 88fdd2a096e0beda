"""Shared test set-up: the plugins folder on sys.path, as Airflow puts it there."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for folder in (ROOT / "plugins", ROOT / "include"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
