"""Airflow notifiers that turn a callback's context into an :class:`ArgusAlert` and deliver it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier

from argus_airflow.notifiers.alert import ArgusAlert, send_alert

if TYPE_CHECKING:
    from airflow.sdk import Context


class AlertNotifier(BaseNotifier):
    """Base of the Argus notifiers: builds the alert from the context, subclasses deliver it.

    Works as a task callback (``on_failure_callback``, ``on_retry_callback``; runs in the
    task's process) and as a deadline-miss callback (``AsyncCallback(<class>, kwargs=...)``;
    runs in the triggerer, where the context holds only the DAG run).

    :param summary: the alert's line (Jinja-templated); by default says which task failed and why.
    :param severity: ``critical``, ``error``, ``warning`` or ``info``.
    :param details: extra facts shown with the alert (templated).
    :param context: set by Airflow for deadline callbacks; leave it out.
    """

    template_fields: Sequence[str] = ("summary", "details")

    def __init__(self, *, summary: str | None = None, severity: str = "error",
                 details: dict[str, Any] | None = None, context: Context | None = None) -> None:
        super().__init__(context=context)
        self.summary = summary
        self.severity = severity
        self.details = dict(details or {})

    def build_alert(self, context: Context) -> ArgusAlert:
        return ArgusAlert.from_context(context, summary=self.summary, severity=self.severity, **self.details)

    def deliver(self, alert: ArgusAlert) -> None:
        raise NotImplementedError

    def notify(self, context: Context) -> None:
        self.deliver(self.build_alert(context))

    async def async_notify(self, context: Context) -> None:
        # the senders are synchronous (SmtpHook, httpx); a thread keeps the triggerer's loop free
        await asyncio.to_thread(self.notify, context)


class ArgusFailureNotifier(AlertNotifier):
    """Alert on-call on every configured channel (or the ones named) when a task fails.

    A channel that fails is logged and skipped; the notifier itself never raises for delivery.
    The outcome of the last delivery is kept in :attr:`results`.

    :param channels: channel names (``smtp``, ``slack``, ``pagerduty``, ``webhook``);
        by default every channel whose connection exists.
    """

    def __init__(self, *, channels: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.channels = list(channels) if channels is not None else None
        self.results: dict[str, str] = {}

    def deliver(self, alert: ArgusAlert) -> None:
        self.results = send_alert(alert, self.channels)


def failure_notifier(**kwargs: Any) -> ArgusFailureNotifier:
    """An :class:`ArgusFailureNotifier` for DAG ``default_args``.

    ``default_args={"on_failure_callback": failure_notifier()}``

    :param kwargs: see :class:`ArgusFailureNotifier` and :class:`AlertNotifier`.
    """
    return ArgusFailureNotifier(**kwargs)


class ChannelNotifier(AlertNotifier):
    """Base of the one-channel notifiers: delivery errors are raised (Airflow logs them).

    :param conn_id: the channel's connection; by default its ``argus_alert_<channel>`` one.
    """

    channel: str

    def __init__(self, *, conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id

    def deliver(self, alert: ArgusAlert) -> None:
        from argus_airflow.notifiers.alert import sender_for

        sender_for(self.channel, self.conn_id).send(alert)
