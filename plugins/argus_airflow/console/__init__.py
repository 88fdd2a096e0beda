"""The Argus operator console: pages and a JSON API inside the Airflow api-server, under
:data:`~argus_airflow.console.app.CONSOLE_URL_PREFIX`, behind Airflow's login."""

from argus_airflow.console.app import CONSOLE_URL_PREFIX, PAGES, create_app

__all__ = ["CONSOLE_URL_PREFIX", "PAGES", "create_app"]
