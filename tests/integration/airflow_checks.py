"""Checks the integration tests make through Airflow's REST API."""

from __future__ import annotations

from argus.airflow_client import AirflowClient


def assert_trigger_refused(client: AirflowClient, dag_id: str, conf: dict, param: str) -> None:
    """A trigger with ``conf`` gets HTTP 400 naming ``param``, and no run is created."""
    before = {r["dag_run_id"] for r in client.runs(dag_id)}
    resp = client.request("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})
    assert resp.status_code == 400, resp.text
    assert param in resp.text
    assert {r["dag_run_id"] for r in client.runs(dag_id)} == before
