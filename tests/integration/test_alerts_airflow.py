"""A failing task's on_failure_callback, run by the real Airflow task runner, reaches local receivers.

dags/ holds production DAGs only, so the DAG lives in this test and runs with ``dag.test()`` in a
subprocess with its own AIRFLOW_HOME and metadata DB; the task runner, the in-process Execution
API and the connection lookup (``AIRFLOW_CONN_*``) are Airflow's own. The stack is not needed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from alert_receivers import http_receiver, smtp_receiver

ROOT = Path(__file__).resolve().parents[2]

PROBE_DAG = textwrap.dedent('''
    import json
    from datetime import datetime

    from airflow.sdk import DAG, task

    from argus_airflow.notifiers import failure_notifier

    with DAG("argus_alert_probe", schedule=None, start_date=datetime(2026, 1, 1), catchup=False,
             default_args={"retries": 0, "on_failure_callback": failure_notifier(details={"probe": True})}) as dag:

        @task
        def detect_batch():
            raise RuntimeError("detector crashed on batch 42")

        detect_batch()

    if __name__ == "__main__":
        run = dag.test()
        print("RESULT " + json.dumps({"state": str(run.state), "run_id": run.run_id}))
''')


@pytest.fixture
def http():
    with http_receiver() as server:
        yield server


@pytest.fixture
def mail():
    with smtp_receiver() as mailbox:
        yield mailbox


def test_failed_task_alerts_through_its_on_failure_callback(tmp_path, http, mail):
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "argus_alert_probe.py").write_text(PROBE_DAG)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AIRFLOW__"))}
    env.update({
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path / 'airflow.db'}",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__API__BASE_URL": "http://airflow.example.com:8080",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT / "include")]),
        "AIRFLOW_CONN_ARGUS_ALERT_WEBHOOK": json.dumps({"conn_type": "http", "host": f"{http.url}/hook"}),
        "AIRFLOW_CONN_ARGUS_ALERT_SMTP": json.dumps({
            "conn_type": "smtp", "host": "127.0.0.1", "port": mail.port,
            "extra": json.dumps({"from_email": "argus@example.com", "to": "oncall@example.com",
                                 "disable_ssl": True, "disable_tls": True, "retry_limit": 0}),
        }),
    })
    airflow = Path(sys.executable).with_name("airflow")
    migrate = subprocess.run([str(airflow), "db", "migrate"], env=env, capture_output=True, text=True, timeout=300)
    assert migrate.returncode == 0, migrate.stderr[-3000:]

    probe = subprocess.run([sys.executable, str(dags / "argus_alert_probe.py")], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=300)
    output = probe.stdout + probe.stderr
    result_lines = [line for line in probe.stdout.splitlines() if line.startswith("RESULT ")]
    assert result_lines, output[-5000:]
    result = json.loads(result_lines[-1].removeprefix("RESULT "))
    assert result["state"].endswith("failed"), output[-5000:]
    run_id = result["run_id"]

    [hook] = http.on("/hook")
    alert = hook["json"]
    assert (alert["dag_id"], alert["task_id"], alert["run_id"], alert["try_number"]) == (
        "argus_alert_probe", "detect_batch", run_id, 1)
    assert alert["summary"] == "argus_alert_probe.detect_batch failed: RuntimeError: detector crashed on batch 42"
    assert alert["log_url"].startswith("http://airflow.example.com:8080/dags/argus_alert_probe/runs/")
    assert alert["log_url"].endswith("/tasks/detect_batch?try_number=1")
    assert alert["details"] == {"exception": "RuntimeError: detector crashed on batch 42", "probe": True}

    [(rcpt, msg)] = mail.messages
    assert rcpt == ["oncall@example.com"]
    assert "argus_alert_probe.detect_batch failed" in msg["Subject"]
    body = msg.get_body(preferencelist=("html",)).get_content()
    assert run_id.replace("+", "") in body.replace("+", "") and "detect_batch" in body
