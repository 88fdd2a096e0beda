"""HBase maintenance without HBase: JMX parsing (a recorded region server answer), region
statistics, the compaction wait, TTL drift, and the operators' table handling."""

from __future__ import annotations

import copy
import json
from contextlib import contextmanager
from pathlib import Path

import pytest

from argus.store import schema
from argus.store.admin import FamilySpec, TableSpec, hbase2
from argus.store.maintenance import (
    FOREVER, CompactionTimeout, HBaseMaintenance, MaintenanceError, MajorCompactorTool, encoded_region_name,
    parse_region_metrics, parse_table_metrics,
)

#: /jmx of a real HBase 2.6.1 region server (sub=Regions and sub=Tables), trimmed to
#: hbase:meta and a table argus_test:exp4 with families d, e, f in two regions
JMX = json.loads((Path(__file__).parent / "data" / "hbase_jmx.json").read_text())
R1, R2 = "cf8b0941062ef2520169af57e32d9e00", "589f0f640d95a5883faa5ad8c000b8d4"


def test_region_metrics_of_one_table_are_parsed_from_the_regions_bean():
    regions = parse_region_metrics(JMX["Regions"]["beans"][0], "argus_test:exp4")
    assert set(regions) == {R1, R2}  # not hbase:meta, not the per-store keys
    assert regions[R1]["stores"] == 3 and regions[R1]["store_files"] == 2
    assert regions[R1]["store_file_size_bytes"] == 102475
    assert {"read_requests", "write_requests", "memstore_size_bytes", "compactions_queued",
            "compactions_completed", "compactions_failed"} <= set(regions[R1])
    assert parse_region_metrics(JMX["Regions"]["beans"][0], "argus:detections") == {}
    # a namespace-less name means the default namespace, not a prefix match on anything
    assert parse_region_metrics(JMX["Regions"]["beans"][0], "exp4") == {}


def test_table_totals_are_parsed_from_the_tables_bean():
    totals = parse_table_metrics(JMX["Tables"]["beans"][0], "argus_test:exp4")
    assert totals["regions"] == 2 and totals["stores"] == 6 and totals["store_files"] == 4
    assert totals["max_store_files_per_store"] == 1
    meta = parse_table_metrics(JMX["Tables"]["beans"][0], "hbase:meta")
    assert meta["regions"] == 1


def test_encoded_region_name_survives_dots_in_the_start_key():
    assert encoded_region_name(b"argus:frames,0a.b,1732550400000.0123abcd.") == "0123abcd"
    assert encoded_region_name(b"t,,1.f00.") == "f00"


# ---- fakes ----
class FakeTable:
    def __init__(self, regions):
        self._regions = regions

    def regions(self):
        return self._regions


class FakeConnection:
    """happybase.Connection: only ``table(name).regions()``."""

    def __init__(self, regions_by_table):
        self.regions_by_table = regions_by_table

    def table(self, name):
        return FakeTable(self.regions_by_table.get(name, []))


def region(encoded, start, end, host="rs1"):
    return {"name": f"t,{start},1.{encoded}.".encode(), "start_key": start.encode(), "end_key": end.encode(),
            "server_name": host.encode(), "port": 16020}


class FakeJmx:
    """Serves a scripted series of (per-region, per-table) metrics, one per ``region_stats`` call."""

    def __init__(self, states):
        self.states, self.calls = list(states), 0

    def _state(self):
        return self.states[min(self.calls, len(self.states) - 1)]

    def region_metrics(self, host, table):
        return self._state()[0].get(host, {})

    def table_metrics(self, host, table):
        totals = self._state()[1].get(host, {})
        self.calls += 1  # region_stats reads regions first, then totals: one state per call
        return totals


def state(files: dict[str, int], queued=(), failed=(), stores=2, host="rs1"):
    regions = {r: {"stores": stores, "store_files": n, "compactions_queued": int(r in queued),
                   "compactions_failed": int(r in failed), "last_major_compaction_age_ms": 1_795_000_000_000}
               for r, n in files.items()}
    totals = {"stores": stores * len(files), "store_files": sum(files.values()),
              "max_store_files_per_store": max(-(-n // stores) for n in files.values())}
    return {host: regions}, {host: totals}


class FakeCompactor:
    def __init__(self):
        self.requested = []

    def request(self, table):
        self.requested.append(table)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, s):
        self.now += s


def maintenance(jmx, compactor=None, admin=None, regions=None):
    regions = regions or {"argus:frames": [region("a1", "", "08"), region("b2", "08", "")]}
    clock = Clock()
    return HBaseMaintenance(FakeConnection(regions), admin, jmx, compactor or FakeCompactor(),
                            clock=clock, sleep=clock.sleep), clock


def test_region_stats_join_region_boundaries_with_metrics_and_totals():
    m, _ = maintenance(FakeJmx([state({"a1": 3, "b2": 5})]))
    stats = m.region_stats("argus:frames")
    assert [(r.region, r.start_key, r.end_key, r.server) for r in stats.regions] == [
        ("a1", "", "08", "rs1"), ("b2", "08", "", "rs1")]
    assert stats.store_files_per_region == {"a1": 3, "b2": 5}
    assert stats.store_files == 8 and stats.stores == 4 and stats.max_store_files_per_store == 3
    assert stats.regions[0].last_major_compaction_age_ms is None  # "now - 0": never compacted
    assert stats.to_dict()["regions"][1]["store_files"] == 5
    json.dumps(stats.to_dict())


def test_region_stats_of_a_missing_table_raise():
    m, _ = maintenance(FakeJmx([state({"a1": 1})]))
    with pytest.raises(MaintenanceError, match="argus:nope does not exist"):
        m.region_stats("argus:nope")


def test_major_compaction_waits_for_the_queue_then_for_the_figures_to_settle():
    compactor = FakeCompactor()
    jmx = FakeJmx([
        state({"a1": 6, "b2": 4}),                                  # before
        state({"a1": 6, "b2": 4}, queued={"a1", "b2"}),            # compacting
        state({"a1": 6, "b2": 4}, queued={"a1"}),
        state({"a1": 6, "b2": 4}),                                  # queue empty, figures stale
        state({"a1": 2, "b2": 2}),                                  # refreshed: one file per store
    ])
    m, clock = maintenance(jmx, compactor)
    result = m.major_compact("argus:frames", timeout_s=600, poll_s=5)
    assert compactor.requested == ["argus:frames"]
    assert result.before.store_files_per_region == {"a1": 6, "b2": 4}
    assert result.after.store_files_per_region == {"a1": 2, "b2": 2}
    out = result.to_dict()
    assert out["before"]["store_files_per_region"] == {"a1": 6, "b2": 4}
    assert out["after"]["max_store_files_per_store"] == 1 and out["seconds"] == clock.now
    json.dumps(out)


def test_settling_gives_up_quietly_when_new_flushes_keep_a_store_at_two_files():
    jmx = FakeJmx([state({"a1": 6, "b2": 4}), state({"a1": 4, "b2": 2})])  # a1: one new flush per store
    m, clock = maintenance(jmx)
    result = m.major_compact("argus:frames", timeout_s=600, poll_s=5, settle_s=30)
    assert result.after.store_files_per_region == {"a1": 4, "b2": 2}
    assert 30 <= clock.now <= 40


def test_major_compaction_times_out_while_regions_are_still_queued():
    jmx = FakeJmx([state({"a1": 6, "b2": 4}), state({"a1": 6, "b2": 4}, queued={"b2"})])
    m, _ = maintenance(jmx)
    with pytest.raises(CompactionTimeout, match=r"argus:frames: 1 region\(s\) still compacting after 60s \(b2\)"):
        m.major_compact("argus:frames", timeout_s=60, poll_s=5)


def test_a_failed_compaction_fails_the_table():
    jmx = FakeJmx([state({"a1": 6, "b2": 4}), state({"a1": 6, "b2": 4}, failed={"a1"})])
    m, _ = maintenance(jmx)
    with pytest.raises(MaintenanceError, match="failed in region"):
        m.major_compact("argus:frames", timeout_s=60)


# ---- TTL housekeeping ----
class FakeAdmin:
    """The Thrift2 calls of MaintenanceAdmin over in-memory descriptors."""

    def __init__(self, tables):
        self.tables = tables  # full name -> {family: TColumnFamilyDescriptor}
        self.modified, self.added = [], []

    def table_exists(self, spec):
        return spec.full_name in self.tables

    def column_families(self, spec):
        # a fresh copy per call, as a Thrift answer is
        return {n: hbase2.TColumnFamilyDescriptor(**vars(c)) for n, c in self.tables[spec.full_name].items()}

    def modify_column_family(self, spec, column):
        self.modified.append((spec.full_name, column))
        self.tables[spec.full_name][column.name.decode()] = column

    def add_column_family(self, spec, family):
        self.added.append((spec.full_name, family.name))


def live_family(name, ttl, versions, **kw):
    return hbase2.TColumnFamilyDescriptor(name=name.encode(), timeToLive=ttl, maxVersions=versions,
                                          blockSize=65536, configuration={"hbase.hstore.compaction.min": "10"},
                                          attributes={b"TTL": str(ttl).encode(), b"VERSIONS": str(versions).encode()},
                                          **kw)


SPECS = [
    TableSpec("argus", "frames", (FamilySpec("t", ttl_s=3600), FamilySpec("f", ttl_s=3600))),
    TableSpec("argus", "cameras", (FamilySpec("i", max_versions=3),)),
    TableSpec("argus", "segments", (FamilySpec("m"),)),
]


def drifted_admin():
    return FakeAdmin({
        "argus:frames": {"t": live_family("t", 7200, 1), "f": live_family("f", 3600, 1)},
        "argus:cameras": {},  # family i missing
    })  # argus:segments missing


def test_drift_is_reported_per_family_and_setting():
    m, _ = maintenance(FakeJmx([]), admin=drifted_admin())
    drift = {(d.table, d.family, d.setting): (d.live, d.wanted, d.fixed) for d in m.ttl_drift(SPECS)}
    assert drift == {
        ("argus:frames", "t", "ttl_s"): (7200, 3600, False),
        ("argus:cameras", "i", "family"): ("missing", "present", False),
        ("argus:segments", "*", "table"): ("missing", "present", False),
    }


def test_housekeeping_fixes_ttl_and_versions_keeping_the_rest_of_the_family():
    admin = drifted_admin()
    admin.tables["argus:cameras"]["i"] = live_family("i", FOREVER, 1, inMemory=True)
    m, _ = maintenance(FakeJmx([]), admin=admin)
    result = m.ttl_housekeeping(SPECS, fix=True)
    assert {(d.table, d.family, d.setting, d.fixed) for d in result} == {
        ("argus:frames", "t", "ttl_s", True), ("argus:cameras", "i", "max_versions", True),
        ("argus:segments", "*", "table", False)}
    sent = {table: col for table, col in admin.modified}
    assert sent["argus:frames"].timeToLive == 3600 and sent["argus:frames"].attributes[b"TTL"] == b"3600"
    assert sent["argus:cameras"].maxVersions == 3 and sent["argus:cameras"].attributes[b"VERSIONS"] == b"3"
    # what was not drift goes back unchanged (Thrift2 resets fields that are not sent)
    assert sent["argus:cameras"].inMemory is True and sent["argus:frames"].blockSize == 65536
    assert sent["argus:frames"].configuration == {"hbase.hstore.compaction.min": "10"}
    assert m.ttl_drift(SPECS[:2]) == []


def test_housekeeping_adds_a_missing_family_and_report_only_changes_nothing():
    admin = drifted_admin()
    m, _ = maintenance(FakeJmx([]), admin=admin)
    assert all(not d.fixed for d in m.ttl_housekeeping(SPECS, fix=False))
    assert admin.modified == [] and admin.added == []
    m.ttl_housekeeping(SPECS, fix=True)
    assert admin.added == [("argus:cameras", "i")]


def test_the_schema_has_no_drift_against_itself():
    specs = list(schema.tables().values())
    admin = FakeAdmin({s.full_name: {f.name: live_family(f.name, int(f.ttl_s or FOREVER), f.max_versions)
                                     for f in s.families} for s in specs})
    m, _ = maintenance(FakeJmx([]), admin=admin)
    assert m.ttl_drift(specs) == []


# ---- the MajorCompactor JVM ----
def test_major_compactor_command_fires_requests_without_waiting():
    tool = MajorCompactorTool("java", "/conf:/jars/*", servers=2, sleep_ms=100, jvm_opts=("-Xmx1m",))
    assert tool.command("frames") == [
        "java", "-Xmx1m", "-cp", "/conf:/jars/*", "org.apache.hadoop.hbase.util.compaction.MajorCompactor",
        "-table", "default:frames", "-servers", "2", "-sleep", "100", "-skipWait"]


def test_major_compactor_failure_carries_the_tool_output(tmp_path):
    fake_java = tmp_path / "java"
    fake_java.write_text("#!/bin/sh\necho 'Exception in thread \"main\" TableNotFoundException: argus:x' >&2\n"
                         "echo '\tat org.apache.Some.frame' >&2\nexit 1\n")
    fake_java.chmod(0o755)
    with pytest.raises(MaintenanceError, match="exited with 1:\n.*TableNotFoundException") as err:
        MajorCompactorTool(str(fake_java), "cp").request("argus:x")
    assert "\tat " not in str(err.value)  # stack frames left out


# ---- operators ----
@pytest.fixture(scope="module")
def operators(airflow_home):
    import argus_airflow.operators.hbase as ops

    return ops


def test_operators_resolve_short_and_full_table_names(operators):
    stats = operators.HBaseRegionStatsOperator(task_id="s", tables="detections, argus_test:t1")
    assert stats.full_names() == ["argus:detections", "argus_test:t1"]
    everything = operators.HBaseRegionStatsOperator(task_id="a")
    assert everything.full_names() == [s.full_name for s in schema.tables().values()]
    ttl = operators.HBaseTTLHousekeepingOperator(task_id="t", tables=["argus_test:t1"])
    with pytest.raises(ValueError, match="unknown Argus table"):
        ttl.table_specs()
    with pytest.raises(ValueError, match="unknown Argus table 'nope'"):
        operators.HBaseMajorCompactOperator(task_id="c", tables=["nope"]).full_names()


class FakeHook:
    def __init__(self, maintenance):
        self._maintenance = maintenance
        self.servers = None

    @contextmanager
    def maintenance(self, compactor_servers=None):
        self.servers = compactor_servers
        yield self._maintenance


def test_compaction_operator_returns_store_files_before_and_after_per_table(operators, monkeypatch):
    jmx = FakeJmx([state({"a1": 6, "b2": 4}), state({"a1": 2, "b2": 2})])
    m, _ = maintenance(jmx, regions={"argus:frames": [region("a1", "", "08"), region("b2", "08", "")]})
    hook = FakeHook(m)
    op = operators.HBaseMajorCompactOperator(task_id="c", tables="frames", timeout_minutes="2", servers=3)
    monkeypatch.setattr(op, "hook", lambda: hook)
    out = op.execute({})
    assert hook.servers == 3
    assert out["argus:frames"]["before"]["store_files_per_region"] == {"a1": 6, "b2": 4}
    assert out["argus:frames"]["after"]["store_files_per_region"] == {"a1": 2, "b2": 2}


def test_ttl_operator_reads_a_rendered_boolean(operators, monkeypatch):
    admin = drifted_admin()
    m, _ = maintenance(FakeJmx([]), admin=admin)
    op = operators.HBaseTTLHousekeepingOperator(task_id="t", tables="frames", fix="False")
    monkeypatch.setattr(op, "hook", lambda: FakeHook(m))
    monkeypatch.setattr(operators.schema, "tables", lambda: {"frames": SPECS[0]})
    assert op.execute({}) == [{"table": "argus:frames", "family": "t", "setting": "ttl_s", "live": 7200,
                               "wanted": 3600, "fixed": False}]
    assert admin.modified == []


def test_maintenance_dag_params_reject_unknown_tables_and_bad_timeouts(airflow_home):
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk.exceptions import ParamValidationError

    dags = Path(__file__).resolve().parents[2] / "dags"
    bag = DagBag(dag_folder=str(dags / "argus_hbase_maintenance.py"))
    dag = bag.dags["argus_hbase_maintenance"]
    assert [t.task_id for t in dag.topological_sort()] == [
        "ensure_tables", "region_stats_before", "ttl_housekeeping", "major_compaction", "region_stats_after"]
    assert dag.max_active_runs == 1 and not dag.catchup
    assert dag.params["tables"] == list(schema.tables())
    ok = copy.deepcopy(dag.params)
    ok.update({"tables": ["frames"], "compaction_timeout_minutes": 240, "fix_ttl_drift": False})
    assert ok.validate()["tables"] == ["frames"]
    for name, bad in (("tables", ["nope"]), ("tables", []), ("tables", ["frames", "frames"]),
                      ("compaction_timeout_minutes", 0), ("compaction_timeout_minutes", 241),
                      ("compaction_timeout_minutes", "ten"), ("fix_ttl_drift", "yes")):
        with pytest.raises(ParamValidationError, match=f"Invalid input for param {name}:"):
            copy.deepcopy(dag.params).update({name: bad})
