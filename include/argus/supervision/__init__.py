"""Supervision of the never-ending streaming job, without Airflow (the Airflow side is
``argus_airflow.operators.stream_supervisor``).

- :mod:`~argus.supervision.status`: the query's status row in HBase (``argus:streams``): a
  lease taken and renewed by compare-and-set, so that one driver at most runs a query, and
  the query's latest progress;
- :mod:`~argus.supervision.driver`: the driver's side (lease keeper, progress listener);
- :mod:`~argus.supervision.health`: :func:`assess` judges dead / stalled / SLO breaches;
- :mod:`~argus.supervision.restart`: backoff and restart limits;
- :mod:`~argus.supervision.control`: fencing and stopping the driver (revoke its lease, kill it here);
- :mod:`~argus.supervision.process`: the driver's processes on this host.
"""

from argus.supervision.health import Health, Thresholds, assess, kafka_lag
from argus.supervision.restart import RestartPolicy, TooManyRestarts
from argus.supervision.status import Lease, LeaseHeld, StreamStatus, StreamStatusStore

__all__ = ["Health", "Lease", "LeaseHeld", "RestartPolicy", "StreamStatus", "StreamStatusStore", "Thresholds",
           "TooManyRestarts", "assess", "kafka_lag"]
