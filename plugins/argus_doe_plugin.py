"""Registers the DOE sweep reports with the Airflow api-server: pages under ``/argus-doe``
(see ``argus_airflow/doe_reports.py``) and a "DOE sweeps" entry in the UI's navigation."""

from airflow.plugins_manager import AirflowPlugin

from argus_airflow.doe_reports import REPORTS_URL_PREFIX, LazyReportsApp


class ArgusDoePlugin(AirflowPlugin):
    name = "argus_doe"
    fastapi_apps = [{"app": LazyReportsApp(), "url_prefix": REPORTS_URL_PREFIX, "name": "Argus DOE sweep reports"}]
    external_views = [{"name": "DOE sweeps", "href": f"{REPORTS_URL_PREFIX}/sweeps/", "destination": "nav",
                       "category": "browse", "url_route": "argus-doe-sweeps"}]
