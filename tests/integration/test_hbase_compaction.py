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

from hbase_checks import flush, tombstone_every_store

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


def arrange_store_files(cfg, maintenance: HBaseMaintenance, specs: dict, tag: str, rounds: int = 6) -> None:
    """Files for the DAG's compaction to merge in every table: delete markers on rows of the
    test's own (readers see nothing; the compaction drops them) flushed until, in HBase's
    figures, the one store of a one-family one-region table holds exactly 2 files and a
    larger table has a store with 2 or more. Only tables short of that are flushed again: a
    third file would set off a minor compaction back to one."""
    def short(spec) -> bool:
        totals = maintenance.region_stats(spec.full_name)
        if totals.stores == 1:
            return totals.store_files < 2  # 2 or more: files to merge (earlier tests may have left more)
        return totals.max_store_files_per_store < 2

    todo = [s for s in specs.values() if short(s)]
    for _ in range(rounds):
        if not todo:
            break
        for spec in todo:
            tombstone_every_store(maintenance.connection, spec.full_name, [f.name for f in spec.families], tag)
        flush(cfg, *(s.full_name for s in todo))
        time.sleep(6)  # sub=Tables figures refresh every 5 s
        todo = [s for s in todo if short(s)]
    assert not todo, {s.full_name: maintenance.region_stats(s.full_name).summary() for s in todo}
    # the per-region figures the DAG reports refresh every 45 s: wait until they agree
    deadline = time.monotonic() + 150
    while True:
        stale = {}
        for spec in specs.values():
            stats = maintenance.region_stats(spec.full_name)
            if sum(r.store_files for r in stats.regions) != stats.store_files:
                stale[spec.full_name] = stats.summary()
        if not stale:
            return
        assert time.monotonic() < deadline, stale
        time.sleep(5)


def assert_store_files_went_down(compaction: dict, stats_before: dict) -> None:
    """The ``major_compaction`` XCom shows merged files: each region that had a store with
    two or more files when the compaction started has fewer files after it, the tables'
    total went down, and the many-region tables (where ``arrange_store_files`` left two
    files in every store) had such regions. A one-store table may have been merged back to
    one file by HBase itself before the task ran (a flush forced by WAL pressure, then a
    minor compaction at 3 files); its region then has nothing to merge."""
    total_before = total_after = 0
    for table, result in compaction.items():
        before, after = result["before"], result["after"]
        assert set(before["store_files_per_region"]) == set(after["store_files_per_region"]), table
        assert len(after["store_files_per_region"]) == after["region_count"] >= 1
        stores = {r["region"]: r["stores"] for r in stats_before[table]["regions"]}
        # live writes may flush a new file in a store meanwhile, never as many as were merged
        merged = {r: n for r, n in before["store_files_per_region"].items() if n > stores[r]}
        fewer = {r: after["store_files_per_region"][r] for r in merged}
        assert all(fewer[r] < n for r, n in merged.items()), (table, merged, fewer)
        if before["region_count"] > 1:
            assert merged, (table, result)
        if before["max_store_files_per_store"] >= 2 and before["stores"] == 1:
            assert after["store_files"] == 1, result
        total_before += before["store_files"]
        total_after += after["store_files"]
    assert total_after < total_before, compaction


@pytest.mark.timeout(1800)  # the run may wait on a busy scheduler; wait_for_run has 1500 s
def test_maintenance_dag_runs_end_to_end(airflow, hbase, cfg, unique):
    maintenance, _, _ = hbase
    tables = list(schema.tables())
    specs = schema.tables()
    arrange_store_files(cfg, maintenance, specs, f"dag-{unique}")

    run = airflow.trigger(DAG_ID, conf={"tables": tables, "compaction_timeout_minutes": 20})
    finished = airflow.wait_for_run(DAG_ID, run["dag_run_id"], timeout=1500)
    assert finished["state"] == "success", airflow.task_instances(DAG_ID, run["dag_run_id"])

    run_id = run["dag_run_id"]
    full_names = [specs[t].full_name for t in tables]
    ensured = airflow.xcom(DAG_ID, run_id, "ensure_tables")
    assert sorted(ensured["created"] + ensured["existing"]) == sorted(full_names)
    assert isinstance(airflow.xcom(DAG_ID, run_id, "ttl_housekeeping"), list)

    compaction = airflow.xcom(DAG_ID, run_id, "major_compaction")
    stats_before = airflow.xcom(DAG_ID, run_id, "region_stats_before")
    assert set(compaction) == set(full_names)
    assert_store_files_went_down(compaction, stats_before)

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
