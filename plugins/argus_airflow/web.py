"""What the Argus pages of the api-server share: an app built on its first request."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class LazyApp:
    """An ASGI app made by ``factory(**kwargs)`` on its first request: Airflow imports plugins
    in every process (scheduler, task runners), and only the api-server needs FastAPI and
    Airflow's security."""

    def __init__(self, factory: Callable[..., Any], **kwargs: Any):
        self._factory, self._kwargs, self._app = factory, kwargs, None

    async def __call__(self, scope, receive, send):
        if self._app is None:
            self._app = self._factory(**self._kwargs)
        await self._app(scope, receive, send)


__all__ = ["LazyApp"]
