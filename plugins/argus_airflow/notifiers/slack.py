"""On-call messages to a Slack incoming webhook."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from argus_airflow.notifiers._http import connection_url, post_json
from argus_airflow.notifiers.notifier import ChannelNotifier

if TYPE_CHECKING:
    from argus_airflow.notifiers.alert import ArgusAlert

_ICONS = {"critical": ":rotating_light:", "error": ":red_circle:", "warning": ":warning:",
          "info": ":information_source:"}


class SlackAlertSender:
    """Posts an alert to a Slack incoming webhook.

    Connection: the webhook URL in password (it is a secret) or in host; extra ``channel``
    and ``username`` override the webhook's defaults where Slack allows it, ``timeout`` (s).

    :param conn_id: the Slack webhook connection.
    """

    def __init__(self, conn_id: str = "argus_alert_slack") -> None:
        self.conn_id = conn_id

    def send(self, alert: ArgusAlert) -> None:
        conn = BaseHook.get_connection(self.conn_id)
        extra = conn.extra_dejson
        payload = slack_payload(alert)
        payload.update({key: extra[key] for key in ("channel", "username", "icon_emoji") if extra.get(key)})
        post_json(connection_url(conn, url_in_password=True), payload, timeout=float(extra.get("timeout", 10)))


def slack_payload(alert: ArgusAlert) -> dict[str, Any]:
    """Slack blocks (header, fields, details, log button) with the whole alert as fallback text."""
    fields = dict(alert.fields())
    where = [{"type": "mrkdwn", "text": f"*{label}*\n{_code(fields[label])}"}
             for label in ("DAG", "Task", "Run", "Try") if label in fields]
    blocks: list[dict[str, Any]] = [
        # Slack caps header text at 150 characters
        {"type": "header", "text": {"type": "plain_text", "text": alert.title[:150], "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{_ICONS[alert.severity]} {alert.summary[:2900]}"}},
    ]
    if where:
        blocks.append({"type": "section", "fields": where})
    extra = [(k, v) for k, v in fields.items() if k not in ("DAG", "Task", "Run", "Try", "Log")]
    if extra:
        text = "\n".join(f"*{k}*: {_code(v)}" for k, v in extra)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text[:2900]}})
    if alert.log_url:
        blocks.append({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Task log"}, "url": alert.log_url},
        ]})
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"<{alert.log_url}|{alert.log_url}> · dedup `{alert.group_key}`"},
        ]})
    return {"text": alert.as_text(), "blocks": blocks}


def _code(value: str) -> str:
    return f"```{value}```" if "\n" in value else f"`{value}`"


class SlackAlertNotifier(ChannelNotifier):
    """Post to Slack from a callback (only this channel; delivery errors raise).

    :param conn_id: the Slack webhook connection, ``argus_alert_slack`` by default.
    """

    channel = "slack"
