"""Registers the Argus operator console with the Airflow api-server: the app under
``/argus`` (``argus_airflow/console``) and an entry per page in the UI's navigation."""

from airflow.plugins_manager import AirflowPlugin

from argus_airflow.console.app import CONSOLE_URL_PREFIX, PAGES, create_app
from argus_airflow.web import LazyApp


class ArgusConsolePlugin(AirflowPlugin):
    name = "argus_console"
    fastapi_apps = [{"app": LazyApp(create_app), "url_prefix": CONSOLE_URL_PREFIX, "name": "Argus console"}]
    external_views = [{"name": f"Argus {title}", "href": f"{CONSOLE_URL_PREFIX}/{path}", "destination": "nav",
                       "category": "Argus", "url_route": f"argus-{path}"} for path, title in PAGES.items()]
