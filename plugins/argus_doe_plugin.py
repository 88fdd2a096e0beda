"""Registers the DOE sweep reports with the Airflow api-server: pages under ``/argus-doe``
(see ``argus_airflow/doe_reports.py``) and an "Argus DOE sweeps" entry in the Argus menu of the UI's
navigation, with the console's pages."""

from airflow.plugins_manager import AirflowPlugin

from argus_airflow.doe_reports import REPORTS_URL_PREFIX, LazyReportsApp


class ArgusDoePlugin(AirflowPlugin):
    name = "argus_doe"
    fastapi_apps = [{"app": LazyReportsApp(), "url_prefix": REPORTS_URL_PREFIX, "name": "Argus DOE sweep reports"}]
    # beside the console's pages: Plugins > Argus > Argus DOE sweeps
    external_views = [{"name": "Argus DOE sweeps", "href": f"{REPORTS_URL_PREFIX}/sweeps/", "destination": "nav",
                       "category": "Argus", "url_route": "argus-doe-sweeps"}]
