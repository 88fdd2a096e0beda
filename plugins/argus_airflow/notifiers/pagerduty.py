"""On-call pages through the PagerDuty Events API v2."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from argus_airflow.notifiers._http import connection_url, post_json
from argus_airflow.notifiers.notifier import ChannelNotifier

if TYPE_CHECKING:
    from argus_airflow.notifiers.alert import ArgusAlert

EVENTS_API_URL = "https://events.pagerduty.com/v2/enqueue"


class PagerDutyAlertSender:
    """Triggers a PagerDuty event for an alert (deduplicated per DAG, task and run).

    Connection: the integration's routing key in password; host = the Events API URL
    (default ``https://events.pagerduty.com/v2/enqueue``); extra ``source`` (default: this
    host's name), ``client``, ``timeout`` (s).

    :param conn_id: the PagerDuty connection.
    """

    def __init__(self, conn_id: str = "argus_alert_pagerduty") -> None:
        self.conn_id = conn_id

    def send(self, alert: ArgusAlert) -> None:
        conn = BaseHook.get_connection(self.conn_id)
        if not conn.password:
            raise ValueError(f"connection {self.conn_id} has no routing key (password)")
        extra = conn.extra_dejson
        payload = pagerduty_event(alert, conn.password, source=extra.get("source"),
                                  client=extra.get("client", "Argus (Airflow)"))
        url = connection_url(conn, default=EVENTS_API_URL)
        post_json(url, payload, timeout=float(extra.get("timeout", 10)))


def pagerduty_event(alert: ArgusAlert, routing_key: str, *, source: str | None = None,
                    client: str = "Argus (Airflow)") -> dict[str, Any]:
    """An Events API v2 ``trigger`` event: summary, severity, source, component (task), group
    (DAG), the DAG/task/run/try and details in ``custom_details``, the log as a link."""
    data = alert.as_dict()
    custom = {key: data[key] for key in ("dag_id", "task_id", "run_id", "try_number", "log_url")}
    custom.update(data["details"])
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": alert.group_key[:255],
        "payload": {
            "summary": alert.summary[:1024],
            "severity": alert.severity,
            "source": source or alert.dag_id or socket.gethostname(),
            "component": alert.task_id or alert.dag_id or "argus",
            "group": alert.dag_id or "argus",
            "class": "airflow task" if alert.task_id else "argus",
            "timestamp": data["timestamp"],
            "custom_details": custom,
        },
        "client": client,
    }
    if alert.log_url:
        event["client_url"] = alert.log_url
        event["links"] = [{"href": alert.log_url, "text": "Airflow task log"}]
    return event


class PagerDutyAlertNotifier(ChannelNotifier):
    """Page from a callback (only this channel; delivery errors raise).

    :param conn_id: the PagerDuty connection, ``argus_alert_pagerduty`` by default.
    """

    channel = "pagerduty"
