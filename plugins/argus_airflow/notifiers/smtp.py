"""On-call mail through the SMTP provider's hook."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from airflow.providers.smtp.hooks.smtp import SmtpHook

from argus_airflow.notifiers.notifier import ChannelNotifier

if TYPE_CHECKING:
    from argus_airflow.notifiers.alert import ArgusAlert


class SmtpAlertSender:
    """Mails an alert to the on-call addresses of an SMTP connection.

    Connection (type ``smtp``): host, port, login/password when the server wants them; extra
    ``to`` (addresses separated by ``,`` or ``;``) and ``from_email``, plus the SmtpHook's own
    extras (``disable_ssl``, ``disable_tls``, ``timeout``, ``retry_limit``).

    :param conn_id: the SMTP connection.
    """

    def __init__(self, conn_id: str = "argus_alert_smtp") -> None:
        self.conn_id = conn_id

    def send(self, alert: ArgusAlert) -> None:
        with SmtpHook(smtp_conn_id=self.conn_id) as smtp:
            to = smtp.conn.extra_dejson.get("to")
            if not to:
                raise ValueError(f"connection {self.conn_id} has no 'to' addresses in its extra")
            smtp.send_email_smtp(
                to=to,
                subject=alert.title,
                html_content=html_body(alert),
                custom_headers={"X-Argus-Dedup-Key": alert.group_key, "X-Argus-Severity": alert.severity},
            )


def html_body(alert: ArgusAlert) -> str:
    """The mail body: the summary, a table of DAG, task, run, try, details, and the log link."""
    rows = []
    for label, value in alert.fields():
        shown = (f'<a href="{escape(value, quote=True)}">{escape(value)}</a>' if label == "Log"
                 else f"<pre>{escape(value)}</pre>" if "\n" in value else escape(value))
        rows.append(f"<tr><th align=\"left\">{escape(label)}</th><td>{shown}</td></tr>")
    link = (f'<p><a href="{escape(alert.log_url, quote=True)}">Open the task log</a></p>'
            if alert.log_url else "")
    return f"<p><b>{escape(alert.summary)}</b></p>\n<table>\n{chr(10).join(rows)}\n</table>\n{link}"


class SmtpAlertNotifier(ChannelNotifier):
    """Mail on-call from a callback (only this channel; delivery errors raise).

    :param conn_id: the SMTP connection, ``argus_alert_smtp`` by default.
    """

    channel = "smtp"
