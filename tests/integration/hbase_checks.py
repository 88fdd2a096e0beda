"""HBase operations the integration tests need that Argus itself does not: a real memstore
flush, and tombstones that give a store something to flush without changing what any
reader sees."""

from __future__ import annotations

import subprocess
from pathlib import Path

import happybase

from argus.config import ArgusConfig
from argus.store.maintenance import MajorCompactorTool, full_table_name

FLUSH_SOURCE = Path(__file__).with_name("FlushTable.java")


def flush(cfg: ArgusConfig, *tables: str, timeout_s: float = 300) -> None:
    """Flush every memstore of ``tables`` with HBase's ``Admin.flush`` (it returns once the
    flush procedure completed), in a JVM on the local stack's HBase jars and client
    configuration, the ones the ``MajorCompactor`` runs on. Thrift has no flush call."""
    tool = MajorCompactorTool.from_config(cfg)
    names = [full_table_name(t) for t in tables]
    proc = subprocess.run([tool.java, *tool.jvm_opts, "-cp", tool.classpath, str(FLUSH_SOURCE), *names],
                          capture_output=True, text=True, timeout=timeout_s)
    flushed = {line.removeprefix("flushed ") for line in proc.stdout.splitlines() if line.startswith("flushed ")}
    assert proc.returncode == 0 and flushed == set(names), proc.stdout[-2000:] + proc.stderr[-4000:]


def tombstone_every_store(conn: happybase.Connection, table: str, families: list[str], tag: str) -> int:
    """One delete marker per region and family, on a row of the test's own (``tag``) that
    holds no data: the next flush writes a store file in each of those stores, readers see
    nothing, and a major compaction drops the markers. Returns how many were written."""
    t = conn.table(full_table_name(table).removeprefix("default:"))
    written = 0
    for region in t.regions():
        row = region["start_key"] + f"\x00argus-test-{tag}".encode()
        assert not region["end_key"] or row < region["end_key"], (region, row)
        for family in families:
            t.delete(row, columns=[f"{family}:argus_test".encode()])
            written += 1
    return written
