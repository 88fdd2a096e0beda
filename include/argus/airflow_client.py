"""A small client for Airflow 3's REST API (v2), for the CLI and tests: no Airflow imports."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone

import httpx


class AirflowAPIError(RuntimeError):
    pass


@dataclass
class AirflowClient:
    """:param base_url: the api-server, e.g. http://127.0.0.1:8080
    :param username: / :param password: a user of the auth manager."""

    base_url: str
    username: str
    password: str
    timeout: float = 30.0

    def __post_init__(self) -> None:
        self._http = httpx.Client(base_url=self.base_url, timeout=self.timeout)
        self._token: str | None = None

    def _headers(self) -> dict[str, str]:
        if self._token is None:
            resp = self._http.post("/auth/token", json={"username": self.username, "password": self.password})
            if resp.status_code >= 400:
                raise AirflowAPIError(f"login to {self.base_url} as {self.username!r} failed: {resp.status_code} {resp.text[:200]}")
            self._token = resp.json()["access_token"]
        return {"Authorization": f"Bearer {self._token}"}

    def request(self, method: str, path: str, **kw) -> httpx.Response:
        resp = self._http.request(method, f"/api/v2{path}", headers=self._headers(), **kw)
        return resp

    def _json(self, method: str, path: str, **kw) -> dict:
        resp = self.request(method, path, **kw)
        if resp.status_code >= 400:
            raise AirflowAPIError(f"{method} {path}: {resp.status_code} {resp.text[:500]}")
        return resp.json()

    def get_dag(self, dag_id: str) -> dict:
        return self._json("GET", f"/dags/{dag_id}")

    def wait_for_dag(self, dag_id: str, timeout: float = 180) -> dict:
        """Wait until the dag-processor has parsed ``dag_id`` (it is then known to the API)."""
        deadline = time.monotonic() + timeout
        while True:
            resp = self.request("GET", f"/dags/{dag_id}")
            if resp.status_code == 200:
                return resp.json()
            if time.monotonic() > deadline:
                raise AirflowAPIError(f"DAG {dag_id} not known to Airflow after {timeout:.0f}s (last: {resp.status_code})")
            time.sleep(2)

    def unpause(self, dag_id: str) -> None:
        self._json("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def trigger(self, dag_id: str, conf: dict | None = None, attempts: int = 3) -> dict:
        """Trigger a run now; returns the dag run (``dag_run_id``, ``state``, ...).

        The run id is chosen here, as Airflow would name a manual run, so that a retry after a
        server error (SQLite answers a busy database with a 500) cannot start a second run:
        if the first attempt did land, the retry gets 409 and the existing run is returned.

        :param attempts: tries in all while the API answers 5xx or cannot be reached.
        """
        run_id = f"manual__{datetime.now(timezone.utc).isoformat()}"
        body = {"dag_run_id": run_id, "logical_date": None, "conf": conf or {}}
        for attempt in range(1, attempts + 1):
            try:
                resp = self.request("POST", f"/dags/{dag_id}/dagRuns", json=body)
            except httpx.TransportError as exc:
                error = str(exc)
            else:
                if resp.status_code == 409 and attempt > 1:
                    return self._json("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
                if resp.status_code < 400:
                    return resp.json()
                error = f"{resp.status_code} {resp.text[:500]}"
                if resp.status_code < 500:
                    break
            if attempt < attempts:
                time.sleep(2 * attempt)
        raise AirflowAPIError(f"POST /dags/{dag_id}/dagRuns: {error}")

    def runs(self, dag_id: str, states: list[str] | None = None, limit: int = 100) -> list[dict]:
        """Runs of ``dag_id`` (optionally in these states)."""
        params = {"limit": limit, **({"state": states} if states else {})}
        return self._json("GET", f"/dags/{dag_id}/dagRuns", params=params)["dag_runs"]

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 300) -> dict:
        """Poll until the run finishes; returns it (check ``state``)."""
        deadline = time.monotonic() + timeout
        while True:
            run = self._json("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
            if run["state"] in ("success", "failed"):
                return run
            if time.monotonic() > deadline:
                raise AirflowAPIError(f"run {run_id} of {dag_id} still {run['state']} after {timeout:.0f}s")
            time.sleep(2)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self._json("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value"):
        return self._json("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}")["value"]

    def connections(self) -> list[dict]:
        return self._json("GET", "/connections", params={"limit": 100})["connections"]

    def close(self) -> None:
        self._http.close()
