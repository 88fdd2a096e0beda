"""On-call alerts delivered to real local receivers: an HTTP server and an SMTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json

import pytest
from alert_receivers import free_port, http_receiver, smtp_receiver

DAG, TASK, RUN = "argus_stream_detection", "supervise_stream", "scheduled__2026-01-01T00:00:00+00:00"
RUN_IN_URL = "scheduled__2026-01-01T00%3A00%3A00%2B00%3A00"  # as RuntimeTaskInstance.log_url quotes it
LOG_URL = f"http://127.0.0.1:8080/dags/{DAG}/runs/{RUN_IN_URL}/tasks/{TASK}?try_number=2"


@pytest.fixture(autouse=True)
def outbox(tmp_path, monkeypatch):
    """Undelivered alerts go to a state dir of the test's own, never the developer's."""
    monkeypatch.setenv("ARGUS_STATE_DIR", str(tmp_path / "state"))
    from argus.alerting import outbox_path

    return outbox_path()


@pytest.fixture
def receiver():
    with http_receiver() as server:
        yield server


@pytest.fixture
def mailbox():
    with smtp_receiver() as box:
        yield box


def _conn(monkeypatch, conn_id: str, **fields):
    if "extra" in fields:
        fields["extra"] = json.dumps(fields["extra"])
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


@pytest.fixture
def channels(airflow_home, monkeypatch, receiver, mailbox):
    """All four channels configured through AIRFLOW_CONN_* variables, pointing at the local receivers."""
    for name in ("SMTP", "SLACK", "PAGERDUTY", "WEBHOOK"):
        monkeypatch.delenv(f"AIRFLOW_CONN_ARGUS_ALERT_{name}", raising=False)
    _conn(monkeypatch, "argus_alert_smtp", conn_type="smtp", host="127.0.0.1", port=mailbox.port,
          extra={"from_email": "argus@example.com", "to": "oncall@example.com; lead@example.com",
                 "disable_ssl": True, "disable_tls": True, "timeout": 5, "retry_limit": 0})
    _conn(monkeypatch, "argus_alert_slack", conn_type="http", password=f"{receiver.url}/slack/T000/B000/XXXX")
    _conn(monkeypatch, "argus_alert_pagerduty", conn_type="http", host=f"{receiver.url}/pagerduty",
          password="R0UT1NGKEY")
    _conn(monkeypatch, "argus_alert_webhook", conn_type="http", host=f"{receiver.url}/hook", password="s3cret",
          extra={"headers": {"X-Team": "vision"}})
    return receiver, mailbox


def _alert(**overrides):
    from argus_airflow.notifiers import ArgusAlert

    fields = dict(summary=f"{DAG}: streaming job restarted (driver heartbeat lost)", severity="critical",
                  dag_id=DAG, task_id=TASK, run_id=RUN, try_number=2, log_url=LOG_URL,
                  details={"lag_messages": 12000, "restarts": 3})
    fields.update(overrides)
    return ArgusAlert(**fields)


def _names_everything(text: str):
    for expected in (DAG, TASK, RUN, LOG_URL):
        assert expected in text, f"{expected!r} missing from:\n{text}"


def test_configured_channels_are_those_with_a_connection(airflow_home, monkeypatch):
    from argus_airflow.notifiers import configured_channels

    for name in ("SMTP", "SLACK", "PAGERDUTY", "WEBHOOK"):
        monkeypatch.delenv(f"AIRFLOW_CONN_ARGUS_ALERT_{name}", raising=False)
    assert configured_channels() == []
    _conn(monkeypatch, "argus_alert_webhook", conn_type="http", host="http://127.0.0.1:9/x")
    _conn(monkeypatch, "argus_alert_smtp", conn_type="smtp", host="127.0.0.1")
    assert configured_channels() == ["smtp", "webhook"]


def test_every_channel_receives_the_alert(channels):
    from argus_airflow.notifiers import send_alert

    receiver, mail = channels
    results = send_alert(_alert())
    assert results == {"smtp": "sent", "slack": "sent", "pagerduty": "sent", "webhook": "sent"}

    # SMTP: one mail to both on-call addresses, subject = the summary, body names everything
    [(rcpt, msg)] = mail.messages
    assert sorted(rcpt) == ["lead@example.com", "oncall@example.com"]
    assert msg["Subject"] == f"[Argus CRITICAL] {DAG}: streaming job restarted (driver heartbeat lost)"
    assert msg["From"] == "argus@example.com"
    html = msg.get_body(preferencelist=("html",)).get_content()
    _names_everything(html.replace("&amp;", "&"))
    assert f'href="{LOG_URL.replace("&", "&amp;")}"' in html and "12000" in html

    # Slack: blocks with the fields and a button to the log, full text as fallback
    [slack] = receiver.on("/slack/T000/B000/XXXX")
    _names_everything(slack["json"]["text"])
    blocks = json.dumps(slack["json"]["blocks"])
    _names_everything(blocks)
    button = next(b for b in slack["json"]["blocks"] if b["type"] == "actions")["elements"][0]
    assert button["url"] == LOG_URL

    # PagerDuty: an Events API v2 trigger, deduplicated per DAG/task/run, linking to the log
    [page] = receiver.on("/pagerduty")
    event = page["json"]
    assert event["routing_key"] == "R0UT1NGKEY" and event["event_action"] == "trigger"
    assert event["dedup_key"] == f"argus/{DAG}/{TASK}/{RUN}"
    assert event["payload"]["severity"] == "critical"
    assert event["payload"]["component"] == TASK and event["payload"]["group"] == DAG
    assert event["payload"]["custom_details"]["run_id"] == RUN
    assert event["payload"]["custom_details"]["try_number"] == 2
    assert event["payload"]["custom_details"]["lag_messages"] == 12000
    assert event["links"] == [{"href": LOG_URL, "text": "Airflow task log"}]

    # generic webhook: the alert as JSON, with the password as bearer token and fixed headers
    [hook] = receiver.on("/hook")
    body = hook["json"]
    assert (body["dag_id"], body["task_id"], body["run_id"], body["try_number"], body["log_url"]) == (
        DAG, TASK, RUN, 2, LOG_URL)
    assert body["details"] == {"lag_messages": 12000, "restarts": 3}
    assert hook["headers"]["Authorization"] == "Bearer s3cret"
    assert hook["headers"]["X-Team"] == "vision"
    _names_everything(body["text"])


def test_one_channel_down_does_not_stop_the_others(channels, monkeypatch):
    from argus_airflow.notifiers import send_alert

    receiver, mail = channels
    # Slack answers 503, and nothing listens where the SMTP connection points
    _conn(monkeypatch, "argus_alert_slack", conn_type="http", password=f"{receiver.url}/down")
    _conn(monkeypatch, "argus_alert_smtp", conn_type="smtp", host="127.0.0.1", port=free_port(),
          extra={"from_email": "argus@example.com", "to": "oncall@example.com", "disable_ssl": True,
                 "disable_tls": True, "timeout": 5, "retry_limit": 0})
    results = send_alert(_alert())

    assert results["slack"].startswith("failed: ") and "503" in results["slack"]
    assert "/down" not in results["slack"], "the webhook URL (a secret) must not be reported"
    assert results["smtp"].startswith("failed: ")
    assert results["pagerduty"] == "sent" and results["webhook"] == "sent"
    assert len(receiver.on("/pagerduty")) == 1 and len(receiver.on("/hook")) == 1
    assert mail.messages == []


def test_only_the_channels_asked_for(channels):
    from argus_airflow.notifiers import send_alert

    receiver, mail = channels
    results = send_alert(_alert(), channels=["webhook", "sms"])
    assert results["webhook"] == "sent"
    assert results["sms"].startswith("failed: ") and "unknown channel" in results["sms"]
    assert [r["path"] for r in receiver.requests] == ["/hook"] and mail.messages == []


def test_an_alert_without_log_link_links_to_its_run(channels, monkeypatch):
    from argus_airflow.notifiers import send_alert

    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://airflow.example.com:8080/")
    receiver, _ = channels
    send_alert(_alert(log_url=None, task_id=None, run_id="manual__1"), channels=["webhook"])
    assert receiver.on("/hook")[0]["json"]["log_url"] == f"http://airflow.example.com:8080/dags/{DAG}/runs/manual__1"


def test_a_missing_connection_is_reported_not_raised(airflow_home, monkeypatch):
    from argus_airflow.notifiers import send_alert

    monkeypatch.delenv("AIRFLOW_CONN_ARGUS_ALERT_PAGERDUTY", raising=False)
    results = send_alert(_alert(), channels=["pagerduty"])
    assert results["pagerduty"].startswith("failed: ") and "argus_alert_pagerduty" in results["pagerduty"]


def test_an_alert_no_channel_takes_is_logged_whole_and_kept(airflow_home, monkeypatch, outbox, caplog):
    from argus.alerting import undelivered
    from argus_airflow.notifiers import send_alert

    for name in ("SMTP", "SLACK", "PAGERDUTY", "WEBHOOK"):
        monkeypatch.delenv(f"AIRFLOW_CONN_ARGUS_ALERT_{name}", raising=False)
    with caplog.at_level("WARNING"):
        assert send_alert(_alert()) == {}
    [record] = [r for r in caplog.records if "ALERT NOT DELIVERED" in r.getMessage()]
    assert record.levelname == "WARNING" and "no alert channel is configured" in record.getMessage()
    _names_everything(record.getMessage())
    [kept] = undelivered()
    assert kept["summary"] == _alert().summary and kept["undelivered"].startswith("no alert channel")
    # every channel failing counts as undelivered too, with each channel's reason
    _conn(monkeypatch, "argus_alert_webhook", conn_type="http", host=f"http://127.0.0.1:{free_port()}/gone")
    send_alert(_alert(summary="second"))
    newest = undelivered()[0]
    assert newest["summary"] == "second" and newest["undelivered"].startswith("every channel failed: webhook: failed")


class FakeTaskInstance:
    """What a failure callback's ``ti`` offers (Airflow's RuntimeTaskInstance builds log_url the same way)."""

    dag_id, task_id, run_id, try_number, map_index, state = DAG, TASK, RUN, 2, -1, "failed"

    @property
    def log_url(self) -> str:
        return LOG_URL


def test_failure_notifier_from_a_task_context(channels):
    from argus_airflow.notifiers import ArgusFailureNotifier, failure_notifier

    receiver, mail = channels
    notifier = failure_notifier(channels=["webhook", "slack"], details={"restarts": 3})
    assert isinstance(notifier, ArgusFailureNotifier)
    error = RuntimeError("streaming query stopped: driver heartbeat lost")
    notifier({"ti": FakeTaskInstance(), "task_instance": FakeTaskInstance(), "run_id": RUN, "exception": error})

    assert notifier.results == {"webhook": "sent", "slack": "sent"}
    [hook] = receiver.on("/hook")
    body = hook["json"]
    assert body["summary"] == f"{DAG}.{TASK} failed: RuntimeError: streaming query stopped: driver heartbeat lost"
    assert body["severity"] == "error"
    assert (body["dag_id"], body["task_id"], body["run_id"], body["try_number"], body["log_url"]) == (
        DAG, TASK, RUN, 2, LOG_URL)
    assert body["details"] == {"exception": "RuntimeError: streaming query stopped: driver heartbeat lost",
                               "restarts": 3}
    _names_everything(receiver.on("/slack/T000/B000/XXXX")[0]["json"]["text"])


def test_failure_notifier_never_raises_when_every_channel_fails(airflow_home, monkeypatch):
    from argus_airflow.notifiers import ArgusFailureNotifier

    _conn(monkeypatch, "argus_alert_webhook", conn_type="http", host=f"http://127.0.0.1:{free_port()}/gone")
    notifier = ArgusFailureNotifier(channels=["webhook"])
    notifier({"ti": FakeTaskInstance(), "exception": ValueError("x")})
    assert notifier.results["webhook"].startswith("failed: ")


def test_retry_callback_summary_and_templated_summary(channels):
    from airflow.sdk import TaskInstanceState

    from argus_airflow.notifiers import ArgusFailureNotifier

    receiver, _ = channels
    ti = FakeTaskInstance()
    ti.state = TaskInstanceState.UP_FOR_RETRY
    ArgusFailureNotifier(channels=["webhook"], severity="warning")({"ti": ti, "exception": "timeout"})
    ArgusFailureNotifier(channels=["webhook"], summary="{{ ti.dag_id }}: batch age over SLO")({"ti": ti})
    first, second = (r["json"] for r in receiver.on("/hook"))
    assert first["summary"] == f"{DAG}.{TASK} failed, will retry: timeout" and first["severity"] == "warning"
    assert second["summary"] == f"{DAG}: batch age over SLO"


def test_deadline_miss_callback_in_the_triggerer(channels):
    """A DeadlineAlert's AsyncCallback(ArgusFailureNotifier, kwargs=...) gets only the DAG run."""
    from argus_airflow.notifiers import ArgusFailureNotifier

    receiver, _ = channels
    context = {"dag_run": {"dag_id": DAG, "run_id": RUN, "state": "running"},
               "deadline": {"id": "1", "deadline_time": "2026-01-01T01:00:00+00:00"}}
    notifier = ArgusFailureNotifier(channels=["pagerduty"], severity="critical", context=context)
    asyncio.run(_await(notifier))

    [page] = receiver.on("/pagerduty")
    event = page["json"]
    assert event["payload"]["summary"] == f"{DAG}: DAG run missed its deadline"
    assert event["payload"]["custom_details"]["deadline_time"] == "2026-01-01T01:00:00+00:00"
    assert event["payload"]["custom_details"]["run_id"] == RUN
    assert event["links"][0]["href"].endswith(f"/dags/{DAG}/runs/{RUN_IN_URL}")


async def _await(notifier):
    await notifier


def test_one_channel_notifier_raises_on_failure(channels, monkeypatch):
    from argus_airflow.notifiers.slack import SlackAlertNotifier

    receiver, _ = channels
    SlackAlertNotifier()({"ti": FakeTaskInstance()})
    assert len(receiver.on("/slack/T000/B000/XXXX")) == 1
    _conn(monkeypatch, "argus_alert_slack", conn_type="http", password=f"{receiver.url}/down")
    with pytest.raises(Exception, match="503"):
        SlackAlertNotifier()({"ti": FakeTaskInstance()})


def test_alert_rejects_an_unknown_severity():
    from argus_airflow.notifiers import ArgusAlert

    with pytest.raises(ValueError, match="severity"):
        ArgusAlert("x", severity="fatal")
    assert ArgusAlert("x", severity="WARNING").severity == "warning"
