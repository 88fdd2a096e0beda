"""Argus: deep-learning object detection over camera streams and video archives.

The engine package. It must never import Airflow: DAGs and plugins depend on it, not the
other way round.
"""

__version__ = "0.1.0"
