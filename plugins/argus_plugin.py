"""Registers Argus with Airflow's plugin manager (UI views come with later work)."""

from airflow.plugins_manager import AirflowPlugin


class ArgusPlugin(AirflowPlugin):
    name = "argus"
