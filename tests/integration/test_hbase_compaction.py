"""HBase maintenance against the real HBase: store files per region before and after a major
compaction, TTL drift fixed through Thrift2, and the argus_hbase_maintenance DAG run through
the Airflow REST API (and refused with bad params)."""

from __future__ import annotations

import time

import happybase
import httpx
import pytest

from argus.store import schema
from argus.store.admin import FamilySpec, TableSpec
from argus.store.maintenance import HBaseMaintenance, MaintenanceAdmin, MajorCompactorTool, RegionServerJmx

DAG_ID = "argus_hbase_maintenance"
ROUNDS = 3


@pytest.fixture(scope="module")
def jmx(stack, cfg) -> RegionServerJmx:
    port = cfg.port("hbase_regionserver_info")
    try:
        httpx.get(f"http://{cfg.host}:{port}/jmx", params={"qry": "java.lang:type=Runtime"}, timeout=10)
    except httpx.HTTPError as exc:
        pytest.fail(f"the region server's info port {port} does not answer ({exc}): HBase runs with an older "
                    "configuration; restart it (argus stack down hbase hbase-thrift hbase-thrift2 && argus stack up)")
    return RegionServerJmx(port)


@pytest.fixture
def hbase(stack, cfg, jmx):
    conn = happybase.Connection(cfg.host, cfg.port("hbase_thrift"), timeout=60_000)
    admin = MaintenanceAdmin(cfg.host, cfg.port("hbase_thrift2"))
    yield HBaseMaintenance(conn, admin, jmx, MajorCompactorTool.from_config(cfg)), conn, admin
    admin.close()
    conn.close()


@pytest.fixture
def test_table(hbase, unique):
    """A two-region table in the argus_test namespace, dropped afterwards."""
    _, _, admin = hbase
    spec = TableSpec("argus_test", f"compact_{unique}", (FamilySpec("d"),), (b"m",))
    admin.create_table(spec)
    yield spec
    admin.delete_table(spec)


def write_store_files(conn: happybase.Connection, table: str, rounds: int) -> int:
    """``rounds`` store files in each region: rows on both sides of the split, then
    disable/enable, which flushes every memstore (Thrift has no flush call)."""
    rows = 0
    for r in range(rounds):
        with conn.table(table).batch(batch_size=500) as batch:
            for i in range(200):
                batch.put(f"{'a' if i % 2 else 'z'}-{r}-{i:04d}".encode(), {b"d:v": b"x" * 200})
                rows += 1
        conn.disable_table(table)
        conn.enable_table(table)
    return rows


def test_major_compaction_leaves_one_store_file_per_region(hbase, test_table):
    maintenance, conn, admin = hbase
    table = test_table.full_name
    # opening a region with >= 3 files (hbase.hstore.compaction.min) would compact them on
    # its own; raise that for this family so the files stay until we compact
    family = admin.column_families(test_table)["d"]
    family.configuration = {"hbase.hstore.compaction.min": "10"}
    admin.modify_column_family(test_table, family)
    rows = write_store_files(conn, table, ROUNDS)

    # HBase refreshes per-region store file figures every 45 s
    deadline = time.monotonic() + 150
    while True:
        before = maintenance.region_stats(table)
        if all(r.store_files >= ROUNDS for r in before.regions):
            break
        assert time.monotonic() < deadline, before.summary()
        time.sleep(5)
    assert len(before.regions) == 2

    result = maintenance.major_compact(table, timeout_s=300, poll_s=2)

    assert all(n >= ROUNDS for n in result.before.store_files_per_region.values()), result.to_dict()
    assert result.after.store_files_per_region == {r.region: 1 for r in before.regions}, result.to_dict()
    assert result.after.store_files == 2 and result.after.max_store_files_per_store == 1
    assert sum(1 for _ in conn.table(table).scan()) == rows  # nothing lost


def test_ttl_housekeeping_puts_the_schema_back(hbase, test_table):
    maintenance, _, admin = hbase
    family = admin.column_families(test_table)["d"]
    family.configuration = {"hbase.hstore.compaction.min": "7"}
    admin.modify_column_family(test_table, family)
    wanted = TableSpec(test_table.namespace, test_table.name,
                       (FamilySpec("d", ttl_s=7 * 86400, max_versions=2), FamilySpec("x", ttl_s=3600)))

    drift = maintenance.ttl_housekeeping([wanted], fix=True)

    assert {(d.family, d.setting, d.live, d.wanted, d.fixed) for d in drift} == {
        ("d", "ttl_s", 2**31 - 1, 7 * 86400, True), ("d", "max_versions", 1, 2, True),
        ("x", "family", "missing", "present", True)}
    assert admin.describe(test_table) == {"d": {"ttl_s": 7 * 86400, "max_versions": 2},
                                          "x": {"ttl_s": 3600, "max_versions": 1}}
    # the rest of the family is as it was
    assert admin.column_families(test_table)["d"].configuration == {"hbase.hstore.compaction.min": "7"}
    assert maintenance.ttl_drift([wanted]) == []


# ---- the DAG, through the Airflow REST API ----
@pytest.fixture
def airflow(airflow):
    airflow.wait_for_dag(DAG_ID, timeout=240)
    return airflow


def test_maintenance_dag_runs_end_to_end(airflow, jmx):
    tables = list(schema.tables())
    run = airflow.trigger(DAG_ID, conf={"tables": tables, "compaction_timeout_minutes": 20})
    finished = airflow.wait_for_run(DAG_ID, run["dag_run_id"], timeout=1500)
    assert finished["state"] == "success", airflow.task_instances(DAG_ID, run["dag_run_id"])

    run_id = run["dag_run_id"]
    full_names = [schema.tables()[t].full_name for t in tables]
    ensured = airflow.xcom(DAG_ID, run_id, "ensure_tables")
    assert sorted(ensured["created"] + ensured["existing"]) == sorted(full_names)
    assert isinstance(airflow.xcom(DAG_ID, run_id, "ttl_housekeeping"), list)

    compaction = airflow.xcom(DAG_ID, run_id, "major_compaction")
    assert set(compaction) == set(full_names)
    for table, result in compaction.items():
        before, after = result["before"], result["after"]
        assert set(before["store_files_per_region"]) == set(after["store_files_per_region"]), table
        assert len(after["store_files_per_region"]) == after["region_count"] >= 1
        # one file per store, but for what live writes flushed during the run
        assert after["max_store_files_per_store"] <= max(1, before["max_store_files_per_store"]), result

    stats_before = airflow.xcom(DAG_ID, run_id, "region_stats_before")
    stats_after = airflow.xcom(DAG_ID, run_id, "region_stats_after")
    for table in full_names:
        assert len(stats_after[table]["regions"]) == len(stats_before[table]["regions"]) >= 1
        assert {"store_files", "stores", "read_requests", "write_requests", "memstore_size_bytes"} <= set(
            stats_after[table]["regions"][0])
    assert len(stats_after["argus:detections"]["regions"]) == schema.SALT_BUCKETS


@pytest.mark.parametrize("conf, param", [
    ({"tables": ["detections", "not_a_table"]}, "tables"),
    ({"tables": []}, "tables"),
    ({"compaction_timeout_minutes": 0}, "compaction_timeout_minutes"),
    ({"compaction_timeout_minutes": 10_000}, "compaction_timeout_minutes"),
    ({"compaction_timeout_minutes": "thirty"}, "compaction_timeout_minutes"),
    ({"tables": "detections"}, "tables"),
    ({"fix_ttl_drift": "maybe"}, "fix_ttl_drift"),
])
def test_bad_params_are_refused_before_any_task_runs(airflow, conf, param):
    runs_before = airflow.request("GET", f"/dags/{DAG_ID}/dagRuns").json()["total_entries"]
    resp = airflow.request("POST", f"/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": conf})
    assert resp.status_code == 400, resp.text
    assert f"Invalid input for param {param}" in resp.json()["detail"], resp.text
    assert airflow.request("GET", f"/dags/{DAG_ID}/dagRuns").json()["total_entries"] == runs_before
