"""On-call alerts for Argus: SMTP, Slack webhook, PagerDuty and a generic webhook.

Each channel is configured by the Airflow connection of its name (``argus_alert_smtp``,
``argus_alert_slack``, ``argus_alert_pagerduty``, ``argus_alert_webhook``); the channels whose
connection exists are the deployment's channels. See docs/alerts.md.
"""

from argus_airflow.notifiers.alert import ArgusAlert, configured_channels, send_alert
from argus_airflow.notifiers.notifier import ArgusFailureNotifier, failure_notifier

__all__ = ["ArgusAlert", "ArgusFailureNotifier", "configured_channels", "failure_notifier", "send_alert"]
