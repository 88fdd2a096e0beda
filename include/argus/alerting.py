"""What the engine knows of on-call alerting: which Airflow connections are its channels, and
the outbox where an alert that reached no channel is kept so that a person still sees it.

Sending is Airflow's side (``argus_airflow.notifiers``); this module has no Airflow imports so
that ``argus stack status`` and the console can say what was not delivered.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from argus import config
from argus.config import ArgusConfig

#: channel name -> the Airflow connection that configures it, in delivery order
ALERT_CONNECTIONS: dict[str, str] = {
    "smtp": "argus_alert_smtp",
    "slack": "argus_alert_slack",
    "pagerduty": "argus_alert_pagerduty",
    "webhook": "argus_alert_webhook",
}
#: undelivered alerts kept at most (the oldest go first)
OUTBOX_MAX = 1000


def outbox_path(cfg: ArgusConfig | None = None) -> Path:
    """The file of alerts no channel delivered (JSON lines, newest last)."""
    return (cfg or ArgusConfig()).state_dir / "logs" / "alerts-undelivered.jsonl"


def keep_undelivered(alert: dict[str, Any], why: str, cfg: ArgusConfig | None = None) -> Path:
    """Append an alert that reached no channel to the outbox, with why; returns its path."""
    path = outbox_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        out.write(json.dumps({**alert, "undelivered": why, "kept_ms": int(time.time() * 1000)}, default=str) + "\n")
    if path.stat().st_size > OUTBOX_MAX * 4096:  # bounded: keep the newest OUTBOX_MAX
        lines = path.read_text().splitlines()[-OUTBOX_MAX:]
        tmp = path.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        os.replace(tmp, path)
    return path


def undelivered(cfg: ArgusConfig | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """The newest undelivered alerts, newest first."""
    try:
        lines = outbox_path(cfg).read_text().splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in reversed(lines):
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
        if len(out) >= limit:
            break
    return out


def channels_in_environment() -> list[str]:
    """Channels configured as ``AIRFLOW_CONN_<ID>`` variables, which Airflow's REST API does not list."""
    return [name for name, conn_id in ALERT_CONNECTIONS.items() if config.airflow_connection_in_environment(conn_id)]


def configured_channels(cfg: ArgusConfig | None = None) -> list[str] | None:
    """The alert channels the local stack's Airflow has a connection for (its REST API, plus
    ``AIRFLOW_CONN_*`` variables here); None when Airflow cannot be asked."""
    from argus.airflow_client import AirflowClient
    from argus.stack.airflow import airflow_login

    cfg = cfg or ArgusConfig()
    login = airflow_login(cfg)
    if login is None:
        return None
    try:
        client = AirflowClient(cfg.airflow_url, *login)
        try:
            ids = {c["connection_id"] for c in client.connections()}
        finally:
            client.close()
    except Exception:  # noqa: BLE001 - Airflow down or refusing: unknown, not "none"
        return None
    env = set(channels_in_environment())
    return [name for name, conn_id in ALERT_CONNECTIONS.items() if conn_id in ids or name in env]
