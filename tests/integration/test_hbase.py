"""Rows in the real HBase through its Thrift server, with happybase; flushes that write store
files, and a major compaction that merges them into one per store."""

from __future__ import annotations

import time

import happybase
import pytest

from argus.store.maintenance import HBaseMaintenance, MajorCompactorTool, RegionServerJmx

from hbase_checks import flush

#: flushes before the compaction: two store files per store, fewer than HBase's
#: hbase.hstore.compaction.min (3), so that no compaction merges them on its own and only
#: a real major compaction (not the minor one Thrift's majorCompact asks for) leaves one
FLUSHES = 2
FAMILIES = ("d", "m")


def wait_for_store_files(maintenance: HBaseMaintenance, table: str, total: int, per_store: int, timeout_s=60):
    """The table's store files as its region server reports them (``sub=Tables``, refreshed
    every 5 s), once they are ``total`` with at most ``per_store`` in one store."""
    deadline = time.monotonic() + timeout_s
    while True:
        stats = maintenance.region_stats(table)
        if (stats.store_files, stats.max_store_files_per_store) == (total, per_store):
            return stats
        if time.monotonic() > deadline:
            pytest.fail(f"{table}: wanted {total} store files, at most {per_store} per store; "
                        f"the region server reports {stats.summary()}")
        time.sleep(2)


def test_put_get_scan_flush_and_major_compaction(stack, cfg, unique):
    conn = happybase.Connection(cfg.host, cfg.port("hbase_thrift"), timeout=60_000)
    maintenance = HBaseMaintenance(conn, None, RegionServerJmx(cfg.port("hbase_regionserver_info")),
                                   MajorCompactorTool.from_config(cfg))
    table_name = f"test_detections_{unique}"
    try:
        conn.create_table(table_name, {"d": dict(max_versions=1), "m": dict()})
        table = conn.table(table_name)
        assert maintenance.region_stats(table_name).store_files == 0
        for batch in range(FLUSHES):
            with table.batch() as b:
                for i in range(30):
                    b.put(f"cam-{i % 2}#{batch:02d}{i:04d}".encode(),
                          {b"d:score": f"{i / 30:.2f}".encode(), b"m:batch": str(batch).encode()})
            flush(cfg, table_name)
            # each flush wrote one new file in each of the two stores
            wait_for_store_files(maintenance, table_name, total=len(FAMILIES) * (batch + 1), per_store=batch + 1)

        assert table.row(b"cam-0#000000") == {b"d:score": b"0.00", b"m:batch": b"0"}
        cam1 = list(table.scan(row_prefix=b"cam-1#"))
        assert len(cam1) == 30
        assert [k for k, _ in cam1] == sorted(k for k, _ in cam1)
        assert all(set(data) == {b"d:score", b"m:batch"} for _, data in cam1)
        only_scores = list(table.scan(row_start=b"cam-0#01", row_stop=b"cam-0#02", columns=[b"d"]))
        assert len(only_scores) == 15 and all(set(d) == {b"d:score"} for _, d in only_scores)

        result = maintenance.major_compact(table_name, timeout_s=300, poll_s=2)
        assert (result.before.store_files, result.before.max_store_files_per_store) == (4, 2), result.to_dict()
        # one file per store; the per-table figures lag by up to 5 s
        after = wait_for_store_files(maintenance, table_name, total=len(FAMILIES), per_store=1)
        assert after.stores == len(FAMILIES)
        # the data survives the compaction unchanged
        assert sum(1 for _ in table.scan()) == 30 * FLUSHES
        assert table.row(b"cam-1#010029") == {b"d:score": b"0.97", b"m:batch": b"1"}
    finally:
        if table_name.encode() in conn.tables():
            conn.delete_table(table_name, disable=True)
        conn.close()
