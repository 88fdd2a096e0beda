AIRFLOW_SERVICES=()
def airflow_login(cfg): return None
