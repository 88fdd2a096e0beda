"""On-call alerts as a JSON POST to any HTTP endpoint (an incident tool, a chat bridge)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import BaseHook

from argus_airflow.notifiers._http import connection_url, post_json
from argus_airflow.notifiers.notifier import ChannelNotifier

if TYPE_CHECKING:
    from argus_airflow.notifiers.alert import ArgusAlert


class WebhookAlertSender:
    """POSTs :meth:`ArgusAlert.as_dict` (plus a ``text`` rendering) as JSON to a URL.

    Connection: host = the URL (or ``schema``/host/port); password, when set, goes in the
    ``auth_header`` header of extra (default ``Authorization``, as ``Bearer <password>``;
    extra ``auth_scheme`` changes the word, ``""`` sends the password alone); extra
    ``headers`` adds fixed headers, ``timeout`` (s).

    :param conn_id: the webhook connection.
    """

    def __init__(self, conn_id: str = "argus_alert_webhook") -> None:
        self.conn_id = conn_id

    def send(self, alert: ArgusAlert) -> None:
        conn = BaseHook.get_connection(self.conn_id)
        extra = conn.extra_dejson
        headers = {str(k): str(v) for k, v in (extra.get("headers") or {}).items()}
        if conn.password:
            header = extra.get("auth_header", "Authorization")
            scheme = extra.get("auth_scheme", "Bearer" if header.lower() == "authorization" else "")
            headers[header] = f"{scheme} {conn.password}".strip()
        post_json(connection_url(conn), {**alert.as_dict(), "text": alert.as_text()}, headers=headers,
                  timeout=float(extra.get("timeout", 10)))


class WebhookAlertNotifier(ChannelNotifier):
    """POST the alert from a callback (only this channel; delivery errors raise).

    :param conn_id: the webhook connection, ``argus_alert_webhook`` by default.
    """

    channel = "webhook"
