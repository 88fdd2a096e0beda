"""Shared test set-up: the plugins folder on sys.path, as Airflow puts it there."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
for folder in (ROOT / "plugins", ROOT / "include"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


def pytest_addoption(parser):
    parser.addoption("--update-screenshots", action="store_true",
                     help="the UI tests write their screenshots over docs/screenshots/ (default: a temporary folder)")


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory):
    """A throwaway AIRFLOW_HOME for tests that import Airflow in-process (never ~/airflow)."""
    home = tmp_path_factory.mktemp("airflow_home")
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(ROOT / "plugins"))
    os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{home}/airflow.db")
    return home

