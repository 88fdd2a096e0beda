"""Argus's Airflow integration, laid out like an Airflow provider (hooks/, operators/, ...).

Airflow puts the plugins folder on sys.path, so DAGs import ``argus_airflow.hooks...``.
"""
