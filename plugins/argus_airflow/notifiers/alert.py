"""The alert every channel delivers, and its dispatch to the configured channels."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from argus.alerting import ALERT_CONNECTIONS, keep_undelivered

log = logging.getLogger(__name__)

SEVERITIES = ("critical", "error", "warning", "info")

_SENDERS = {
    "smtp": "argus_airflow.notifiers.smtp:SmtpAlertSender",
    "slack": "argus_airflow.notifiers.slack:SlackAlertSender",
    "pagerduty": "argus_airflow.notifiers.pagerduty:PagerDutyAlertSender",
    "webhook": "argus_airflow.notifiers.webhook:WebhookAlertSender",
}
#: channel name -> (Airflow connection id, "module:class" of its sender), in delivery order.
CHANNELS: dict[str, tuple[str, str]] = {name: (conn_id, _SENDERS[name]) for name, conn_id in ALERT_CONNECTIONS.items()}

# Long exception texts are cut: pagers and chat messages have size limits, the log link has the rest.
_MAX_EXCEPTION_CHARS = 2000


@dataclass
class ArgusAlert:
    """One on-call alert: what broke, where (DAG, task, run, try) and the link to its log.

    :param summary: one line, e.g. ``"argus_stream_detection: streaming job restarted"``.
    :param severity: ``critical``, ``error``, ``warning`` or ``info`` (PagerDuty's levels).
    :param dag_id: the DAG concerned.
    :param task_id: the task concerned.
    :param run_id: the DAG run concerned.
    :param try_number: the task's try.
    :param log_url: link to the task log in the Airflow UI.
    :param details: further facts shown with the alert (lag, batch age, restart count, exception).
    :param dedup_key: groups repeated alerts (PagerDuty incident, Slack message grouping);
        defaults to ``argus/<dag>/<task>/<run>`` so that the retries of one task run page once.
    """

    summary: str
    severity: str = "error"
    dag_id: str | None = None
    task_id: str | None = None
    run_id: str | None = None
    try_number: int | None = None
    log_url: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    dedup_key: str | None = None

    def __post_init__(self) -> None:
        self.severity = (self.severity or "error").lower()
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}, not {self.severity!r}")

    @classmethod
    def from_context(
        cls, context: Mapping[str, Any], summary: str | None = None, severity: str = "error", **details: Any
    ) -> ArgusAlert:
        """Build an alert from an Airflow context (task callback or deadline-miss callback).

        Takes DAG, task, run, try and ``ti.log_url`` from the task instance and the exception
        text from ``context["exception"]``; a deadline callback's context has only the DAG run,
        for which the link goes to the run's page.

        :param context: the Airflow context handed to the callback.
        :param summary: the alert's line; by default says which task failed and why.
        :param severity: see :class:`ArgusAlert`.
        :param details: extra facts added to ``details``.
        """
        ti = context.get("ti") or context.get("task_instance")
        dag_run = context.get("dag_run")
        dag = context.get("dag")

        dag_id = _attr(ti, "dag_id") or _attr(dag_run, "dag_id") or _attr(dag, "dag_id")
        task_id = _attr(ti, "task_id")
        run_id = _attr(ti, "run_id") or context.get("run_id") or _attr(dag_run, "run_id")
        try_number = _attr(ti, "try_number")
        log_url = _log_url(ti) or _run_url(dag_id, run_id)

        facts: dict[str, Any] = {}
        map_index = _attr(ti, "map_index")
        if isinstance(map_index, int) and map_index >= 0:
            facts["map_index"] = map_index
        deadline = context.get("deadline")
        if deadline:
            facts["deadline_time"] = str(_attr(deadline, "deadline_time"))
        error = context.get("exception")
        if error:
            facts["exception"] = _exception_text(error)
        facts.update(details)

        if summary is None:
            summary = _default_summary(dag_id, task_id, _attr(ti, "state"), error, deadline)
        return cls(
            summary=summary,
            severity=severity,
            dag_id=dag_id,
            task_id=task_id,
            run_id=run_id,
            try_number=int(try_number) if try_number is not None else None,
            log_url=log_url,
            details=facts,
        )

    @property
    def group_key(self) -> str:
        """The dedup key, or one made of DAG, task and run (the summary when those are unknown)."""
        if self.dedup_key:
            return self.dedup_key
        if self.dag_id:
            return "/".join(["argus", self.dag_id, self.task_id or "-", self.run_id or "-"])
        return f"argus/{self.summary}"

    @property
    def title(self) -> str:
        """``[Argus ERROR] <summary>``: the subject line of mails and chat messages."""
        return f"[Argus {self.severity.upper()}] {self.summary}"

    def fields(self) -> list[tuple[str, str]]:
        """(label, value) of what every message shows: DAG, task, run, try, log, then the details."""
        shown = [
            ("DAG", self.dag_id),
            ("Task", self.task_id),
            ("Run", self.run_id),
            ("Try", self.try_number),
            ("Log", self.log_url),
        ]
        shown += [(str(key), value) for key, value in self.details.items()]
        return [(label, str(value)) for label, value in shown if value is not None]

    def as_text(self) -> str:
        """Plain-text message: the title, then one ``label: value`` line per field."""
        return "\n".join([self.title, *(f"{label}: {value}" for label, value in self.fields())])

    def as_dict(self) -> dict[str, Any]:
        """The alert as JSON-ready data (the generic webhook's body), with a UTC timestamp."""
        data = asdict(self)
        data["dedup_key"] = self.group_key
        data["details"] = {str(k): _jsonable(v) for k, v in self.details.items()}
        data["timestamp"] = datetime.now(timezone.utc).isoformat()
        data["source"] = "argus"
        return data


def configured_channels() -> list[str]:
    """The channels whose Airflow connection exists in this deployment, in delivery order."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    found = []
    for channel, (conn_id, _) in CHANNELS.items():
        try:
            BaseHook.get_connection(conn_id)
        except AirflowNotFoundException:
            continue
        except Exception as exc:  # a secrets backend that is down must not stop the other channels
            log.warning("Could not look up alert connection %s: %s", conn_id, exc)
            continue
        found.append(channel)
    return found


def sender_for(channel: str, conn_id: str | None = None):
    """The sender of one channel (``smtp``, ``slack``, ``pagerduty``, ``webhook``).

    :param channel: channel name, a key of :data:`CHANNELS`.
    :param conn_id: connection to use instead of the channel's default one.
    """
    default_conn_id, target = CHANNELS[channel]
    module_name, class_name = target.split(":")
    # imported on use: each channel module imports this one for ArgusAlert
    sender_class = getattr(importlib.import_module(module_name), class_name)
    return sender_class(conn_id or default_conn_id)


def send_alert(alert: ArgusAlert, channels: list[str] | None = None) -> dict[str, str]:
    """Deliver an alert to every channel; a channel that fails is logged and reported, never raised.

    :param alert: the alert; without ``log_url`` it links to its DAG run's page.
    :param channels: channel names; by default every configured one (:func:`configured_channels`).
    :return: ``{channel: "sent" | "failed: <reason>"}``.
    """
    if not alert.log_url and alert.dag_id:
        # built by hand without a log link: on-call still gets the DAG run's page
        alert = replace(alert, log_url=_run_url(alert.dag_id, alert.run_id))
    if channels is None:
        channels = configured_channels()
    results: dict[str, str] = {}
    for channel in channels:
        try:
            if channel not in CHANNELS:
                raise ValueError(f"unknown channel (known: {', '.join(CHANNELS)})")
            sender_for(channel).send(alert)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}".strip()
            log.error("Alert to %s failed: %s (alert: %s)", channel, reason, alert.title)
            results[channel] = f"failed: {reason}"
        else:
            log.info("Alert sent to %s: %s", channel, alert.title)
            results[channel] = "sent"
    if "sent" not in results.values():
        _keep(alert, results)
    return results


def _keep(alert: ArgusAlert, results: dict[str, str]) -> None:
    """An alert no channel took is still seen: in the task log at warning level, whole, and in
    the outbox (``argus.alerting``) that ``argus stack status`` reports."""
    why = ("no alert channel is configured (connections "
           f"{', '.join(conn_id for conn_id, _ in CHANNELS.values())})" if not results
           else "every channel failed: " + "; ".join(f"{c}: {r}" for c, r in results.items()))
    try:
        where = f"kept in {keep_undelivered(alert.as_dict(), why)}"
    except OSError as exc:
        where = f"could not be kept ({exc})"
    log.warning("ALERT NOT DELIVERED (%s; %s):\n%s", why, where, alert.as_text())


def _attr(obj: Any, name: str) -> Any:
    """An attribute of an object or a key of a dict (deadline contexts carry dicts)."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    try:
        return getattr(obj, name, None)
    except Exception:  # properties of a detached ORM object can raise
        return None


def _log_url(ti: Any) -> str | None:
    url = _attr(ti, "log_url")
    return str(url) if url else None


def _run_url(dag_id: str | None, run_id: str | None) -> str | None:
    """The DAG run's page in the Airflow UI (no task log to link to)."""
    if not dag_id:
        return None
    from airflow.sdk.configuration import conf

    base = conf.get("api", "base_url", fallback="http://localhost:8080/").rstrip("/")
    return f"{base}/dags/{dag_id}/runs/{quote(run_id, safe='')}" if run_id else f"{base}/dags/{dag_id}"


def _exception_text(error: Any) -> str:
    text = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error)
    return text if len(text) <= _MAX_EXCEPTION_CHARS else text[: _MAX_EXCEPTION_CHARS - 1] + "…"


def _default_summary(dag_id, task_id, state, error, deadline) -> str:
    where = ".".join(part for part in (dag_id, task_id) if part) or "Airflow"
    if deadline and not task_id:
        return f"{where}: DAG run missed its deadline"
    what = "failed, will retry" if getattr(state, "value", state) == "up_for_retry" else "failed"
    if error:
        first_line = _exception_text(error).splitlines()[0][:200]
        return f"{where} {what}: {first_line}"
    return f"{where} {what}"


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    return str(value)
