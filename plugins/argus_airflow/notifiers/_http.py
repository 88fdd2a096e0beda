"""JSON POSTs shared by the HTTP channels (Slack, PagerDuty, generic webhook)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx

DEFAULT_TIMEOUT_S = 10.0


class AlertDeliveryError(RuntimeError):
    """A receiver refused an alert (the message names its host, never the full URL: it may hold a token)."""


def connection_url(conn: Any, *, default: str | None = None, url_in_password: bool = False) -> str:
    """The URL a connection points at: the host when it is a full URL, else ``schema://host:port``,
    else ``default``.

    :param conn: an Airflow connection.
    :param default: used when the connection names no URL.
    :param url_in_password: the password may hold the URL (webhook URLs that carry a token)
        and wins when it does.
    """
    candidates = (conn.password, conn.host) if url_in_password else (conn.host,)
    for candidate in candidates:
        if candidate and "://" in candidate:
            return candidate
    if conn.host:
        port = f":{conn.port}" if conn.port else ""
        return f"{conn.schema or 'https'}://{conn.host}{port}"
    if default:
        return default
    raise ValueError(f"connection {conn.conn_id} names no URL (set host, or password for a secret URL)")


def post_json(url: str, payload: dict[str, Any], *, headers: dict[str, str] | None = None,
              timeout: float = DEFAULT_TIMEOUT_S) -> httpx.Response:
    """POST ``payload`` as JSON; raise :class:`AlertDeliveryError` unless the answer is 2xx.

    :param url: the receiver.
    :param payload: the JSON body.
    :param headers: extra headers (auth).
    :param timeout: seconds for connecting and for the answer.
    """
    # retries=2 covers a receiver that refuses the first connection (restarting proxy)
    with httpx.Client(timeout=timeout, transport=httpx.HTTPTransport(retries=2)) as client:
        response = client.post(url, json=payload, headers=headers or {})
    if not response.is_success:
        host = urlsplit(url).netloc.rsplit("@", 1)[-1]
        raise AlertDeliveryError(f"HTTP {response.status_code} from {host}: {response.text[:300]}")
    return response
