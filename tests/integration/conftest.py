"""The real local stack, started once per test session (or reused when already running).

Services this fixture started are stopped at the end of the session; those already running
(a developer's `argus stack up`) are left running. ARGUS_KEEP_STACK=1 keeps everything up.
"""

from __future__ import annotations

import os
import time
import uuid

import pytest

from argus.airflow_client import AirflowClient
from argus.config import ArgusConfig
from argus.stack.airflow import airflow_login
from argus.stack.manager import Stack

pytestmark = pytest.mark.integration


def pytest_collection_modifyitems(items):
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def cfg() -> ArgusConfig:
    return ArgusConfig()


@pytest.fixture(scope="session")
def stack(cfg: ArgusConfig):
    def report(service: str, message: str) -> None:
        print(f"[stack] {service}: {message}", flush=True)

    stack = Stack(cfg, reporter=report)
    t0 = time.monotonic()
    result = stack.up()
    print(f"[stack] ready after {time.monotonic() - t0:.0f}s; started {result.started}, "
          f"already running {result.already_running}", flush=True)
    yield stack
    if result.started and os.environ.get("ARGUS_KEEP_STACK") != "1":
        stack.down(result.started)


@pytest.fixture
def unique() -> str:
    """A short unique suffix so that reruns against a kept stack never collide."""
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def airflow(stack, cfg):
    """A REST client of the stack's Airflow, logged in as its admin."""
    user, password = airflow_login(cfg)
    client = AirflowClient(cfg.airflow_url, user, password)
    yield client
    client.close()

