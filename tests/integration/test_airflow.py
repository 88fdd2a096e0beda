"""A DAG run through the real Airflow scheduler reaching HBase through its connection."""

from __future__ import annotations

import happybase

from argus.airflow_client import AirflowClient
from argus.stack.airflow import airflow_login


def test_smoke_dag_reaches_hbase_through_its_connection(stack, cfg):
    user, password = airflow_login(cfg)
    client = AirflowClient(cfg.airflow_url, user, password)
    try:
        dag = client.wait_for_dag("argus_smoke", timeout=240)
        assert not dag["is_paused"]
        run = client.trigger("argus_smoke")
        finished = client.wait_for_run("argus_smoke", run["dag_run_id"], timeout=300)
        assert finished["state"] == "success", client.task_instances("argus_smoke", run["dag_run_id"])
        result = client.xcom("argus_smoke", run["dag_run_id"], "hbase_round_trip")
    finally:
        client.close()
    assert result == {"table": "argus_smoke", "row": run["dag_run_id"], "status": "ok"}

    # the row is really in HBase, written by the task through the argus_hbase connection
    conn = happybase.Connection(cfg.host, cfg.port("hbase_thrift"))
    try:
        assert conn.table("argus_smoke").row(run["dag_run_id"].encode()) == {b"r:status": b"ok"}
    finally:
        conn.close()


def test_connections_for_every_service_exist(stack, cfg):
    user, password = airflow_login(cfg)
    client = AirflowClient(cfg.airflow_url, user, password)
    try:
        conns = {c["connection_id"]: c for c in client.connections()}
    finally:
        client.close()
    assert {"argus_hbase", "argus_kafka", "argus_spark", "argus_hdfs"} <= set(conns)
    assert conns["argus_hbase"]["conn_type"] == "hbase"
    assert conns["argus_hbase"]["port"] == cfg.port("hbase_thrift")
    assert conns["argus_spark"]["host"] == f"spark://{cfg.host}"


def test_login_is_required(stack, cfg):
    import httpx

    assert httpx.get(f"{cfg.airflow_url}/api/v2/dags", timeout=10).status_code == 401
    bad = httpx.post(f"{cfg.airflow_url}/auth/token", json={"username": "admin", "password": "wrong"}, timeout=10)
    assert bad.status_code in (401, 403)


def test_the_console_needs_a_login_and_shows_the_cameras_table(stack, cfg, unique):
    """The console is served by the api-server under /argus, behind the same login as the
    REST API: no token, 401; a token, the cameras table as HBase holds it, escaped."""
    import httpx

    from argus.store import DetectionStore

    camera = f"console-{unique}"
    DetectionStore.from_config(cfg).put_camera(camera, url="<script>alert(1)</script>", latitude="48.85",
                                               longitude="2.35", model="blazeface")
    base = f"{cfg.airflow_url}/argus"
    for path in ("/cameras", "/api/cameras", f"/api/cameras/{camera}", "/api/openapi.json"):
        assert httpx.get(base + path, timeout=10).status_code == 401, path
    user, password = airflow_login(cfg)
    client = AirflowClient(cfg.airflow_url, user, password)
    try:
        auth = client._headers()
    finally:
        client.close()
    one = httpx.get(f"{base}/api/cameras/{camera}", headers=auth, timeout=30)
    assert one.status_code == 200 and one.json()["latitude"] == "48.85"
    page = httpx.get(f"{base}/cameras", headers=auth, timeout=30)
    assert page.status_code == 200 and camera in page.text
    assert "<script>alert(1)" not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    bad = httpx.get(f"{base}/api/cameras/%3Cscript%3E", headers=auth, timeout=30)
    assert bad.status_code == 422 and "is not valid" in bad.json()["detail"]
