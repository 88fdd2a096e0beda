"""What the CLI prints: one console, and the stack's status table that several commands show."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console(stderr=False, width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True)


def reporter():
    def report(service: str, message: str) -> None:
        style = "red" if message.startswith("FAILED") else ("green" if message.startswith(("ready", "already")) else "dim")
        console.print(f"  [bold]{service:<22}[/bold] [{style}]{message}[/{style}]")
    return report


def print_status(stack, names, statuses=None) -> None:
    from argus.stack.airflow import airflow_login

    statuses = statuses if statuses is not None else stack.status(names)
    table = Table(title="Argus local stack", title_justify="left")
    for col in ("service", "state", "pid", "ports", "url", "RSS MiB"):
        table.add_column(col)
    colours = {"ready": "green", "starting": "yellow", "dead": "red", "stopped": "dim"}
    for s in statuses:
        table.add_row(s.name, f"[{colours[s.state]}]{s.state}[/]", str(s.pid or ""),
                      ", ".join(str(p) for p in s.ports.values()), s.url or "",
                      f"{s.rss_mb:.0f}" if s.rss_mb else "")
    console.print(table)
    login = airflow_login(stack.cfg)
    if login and any(s.group == "airflow" and s.state == "ready" for s in statuses):
        console.print(f"Airflow UI: {stack.cfg.airflow_url}  login: [bold]{login[0]}[/bold] / [bold]{login[1]}[/bold]")
    console.print(f"logs: {stack.cfg.state_dir / 'logs'}")


def print_alerting(cfg, channels: list[str] | None) -> None:
    from argus import alerting

    kept = alerting.undelivered(cfg, limit=alerting.OUTBOX_MAX)
    if channels:
        console.print(f"alerts: sent to {', '.join(channels)}")
    elif channels is not None:
        console.print("[yellow]alerts: no alert channel is configured[/yellow] (Airflow connections "
                      f"{', '.join(alerting.ALERT_CONNECTIONS.values())}; docs/alerts.md): alerts are written to "
                      "the task logs at warning level and kept in the outbox below")
    if kept:
        newest = kept[0]
        console.print(f"[yellow]{len(kept)} alert(s) reached no channel[/yellow]; newest: "
                      f"[{escape(str(newest.get('severity')))}] {escape(str(newest.get('summary')))}", highlight=False)
        console.print(f"outbox: {alerting.outbox_path(cfg)}")
