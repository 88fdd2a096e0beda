"""Rows in the real HBase through its Thrift server, with happybase."""

from __future__ import annotations

import happybase


def test_put_get_scan_and_major_compaction(stack, cfg, unique):
    conn = happybase.Connection(cfg.host, cfg.port("hbase_thrift"), timeout=60_000)
    table_name = f"test_detections_{unique}"
    try:
        conn.create_table(table_name, {"d": dict(max_versions=1), "m": dict()})
        table = conn.table(table_name)
        # several flushes so that the major compaction has store files to merge
        for batch in range(3):
            with table.batch() as b:
                for i in range(20):
                    b.put(f"cam-{i % 2}#{batch:02d}{i:04d}".encode(), {b"d:score": f"{i / 20:.2f}".encode(), b"m:batch": str(batch).encode()})
            conn.client.flushTable(table_name.encode()) if hasattr(conn.client, "flushTable") else None

        assert table.row(b"cam-0#000000") == {b"d:score": b"0.00", b"m:batch": b"0"}
        cam1 = list(table.scan(row_prefix=b"cam-1#"))
        assert len(cam1) == 30
        assert [k for k, _ in cam1] == sorted(k for k, _ in cam1)
        assert all(set(data) == {b"d:score", b"m:batch"} for _, data in cam1)
        only_scores = list(table.scan(row_start=b"cam-0#01", row_stop=b"cam-0#02", columns=[b"d"]))
        assert len(only_scores) == 10 and all(set(d) == {b"d:score"} for _, d in only_scores)

        conn.compact_table(table_name, major=True)
        # the data survives the compaction unchanged
        assert sum(1 for _ in table.scan()) == 60
        assert table.row(b"cam-1#020019") == {b"d:score": b"0.95", b"m:batch": b"2"}
    finally:
        if table_name.encode() in conn.tables():
            conn.delete_table(table_name, disable=True)
        conn.close()
