"""The REST client's trigger: retried on server errors without ever starting a run twice."""

import json

import httpx
import pytest

from argus import airflow_client
from argus.airflow_client import AirflowAPIError, AirflowClient


class FakeAirflow:
    """Answers /auth/token and the dag-run routes; ``failures`` POSTs land but answer 500."""

    def __init__(self, failures: int = 0, status: int = 500, lands: bool = True):
        self.failures, self.status, self.lands = failures, status, lands
        self.runs: dict[str, dict] = {}
        self.posts = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/auth/token":
            return httpx.Response(201, json={"access_token": "t"})
        assert request.headers["Authorization"] == "Bearer t"
        if request.method == "GET":
            return httpx.Response(200, json=self.runs[request.url.path.rsplit("/", 1)[1]])
        self.posts += 1
        run_id = json.loads(request.content)["dag_run_id"]
        if run_id in self.runs:
            return httpx.Response(409, json={"detail": "exists"})
        if self.failures and self.lands:
            self.runs[run_id] = {"dag_run_id": run_id, "state": "queued"}  # landed, then the answer failed
        if self.failures:
            self.failures -= 1
            return httpx.Response(self.status, json={"detail": {"reason": "Database error"}})
        self.runs[run_id] = {"dag_run_id": run_id, "state": "queued"}
        return httpx.Response(200, json=self.runs[run_id])


def _client(fake: FakeAirflow, monkeypatch) -> AirflowClient:
    monkeypatch.setattr(airflow_client.time, "sleep", lambda s: None)
    client = AirflowClient("http://airflow.test", "admin", "pw")
    client._http = httpx.Client(base_url="http://airflow.test", transport=httpx.MockTransport(fake))
    return client


def test_a_trigger_that_landed_behind_a_server_error_is_not_started_twice(monkeypatch):
    fake = FakeAirflow(failures=1)
    run = _client(fake, monkeypatch).trigger("argus_smoke")
    assert fake.posts == 2 and list(fake.runs) == [run["dag_run_id"]]
    assert run["dag_run_id"].startswith("manual__")


def test_a_rejected_trigger_is_not_retried_and_says_why(monkeypatch):
    fake = FakeAirflow(failures=1, status=400, lands=False)
    with pytest.raises(AirflowAPIError, match="400"):
        _client(fake, monkeypatch).trigger("argus_smoke", {"rate": -1})
    assert fake.posts == 1 and not fake.runs


def test_a_database_that_stays_busy_fails_after_the_last_attempt(monkeypatch):
    fake = FakeAirflow(failures=5, lands=False)
    with pytest.raises(AirflowAPIError, match="500 .*Database error"):
        _client(fake, monkeypatch).trigger("argus_smoke")
    assert fake.posts == 3 and not fake.runs
