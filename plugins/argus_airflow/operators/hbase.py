"""Operators for Argus's HBase tables: create them from the schema, region statistics,
TTL housekeeping and major compaction (the work is in ``argus.store.maintenance``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from argus.store import schema
from argus.store.admin import TableSpec
from argus_airflow.hooks.hbase import HBaseHook


def known_tables() -> list[str]:
    """Short names of Argus's tables (``detections``, ``frames``, ...), from the schema."""
    return list(schema.tables())


class _HBaseTablesOperator(BaseOperator):
    """Base: a list of tables and the HBase connection.

    :param tables: short names of Argus tables (``detections``) or, where the operator
        allows it, full names (``ns:table``); None: every Argus table. Templated; a
        rendered string is split on commas.
    :param hbase_conn_id: the ``hbase`` connection.
    """

    template_fields: Sequence[str] = ("tables",)
    ui_color = "#fde8e8"
    #: whether tables outside the schema (``ns:table``) are accepted
    any_table = False

    def __init__(self, *, tables: Sequence[str] | str | None = None, hbase_conn_id: str = HBaseHook.default_conn_name,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tables = tables
        self.hbase_conn_id = hbase_conn_id

    def _names(self) -> list[str]:
        if self.tables is None:
            return known_tables()
        if isinstance(self.tables, str):  # a template rendered as text: "detections,frames"
            return [t.strip() for t in self.tables.split(",") if t.strip()]
        return list(self.tables)

    def table_specs(self) -> list[TableSpec]:
        """The schema's specs of the chosen tables; an unknown short name raises ValueError."""
        specs = schema.tables()
        unknown = [n for n in self._names() if n not in specs]
        if unknown:
            raise ValueError(f"unknown Argus table(s) {', '.join(unknown)}; known: {', '.join(specs)}")
        return [specs[n] for n in self._names()]

    def full_names(self) -> list[str]:
        """``ns:table`` of each chosen table (full names pass through where allowed)."""
        specs = schema.tables()
        out = []
        for name in self._names():
            if name in specs:
                out.append(specs[name].full_name)
            elif self.any_table and ":" in name:
                out.append(name)
            else:
                raise ValueError(f"unknown Argus table {name!r}; known: {', '.join(specs)}")
        return out

    def hook(self) -> HBaseHook:
        return HBaseHook(hbase_conn_id=self.hbase_conn_id)


class HBaseCreateTablesOperator(_HBaseTablesOperator):
    """Creates the ``argus`` namespace and the chosen tables as the schema defines them
    (pre-split, TTLs, versions) through the Thrift2 server. Idempotent: existing tables are
    left as they are. Returns ``{"created": [...], "existing": [...]}`` (full names)."""

    def execute(self, context) -> dict[str, list[str]]:
        created, existing = [], []
        with self.hook().get_admin() as admin:
            for spec in self.table_specs():
                (created if admin.create_table(spec) else existing).append(spec.full_name)
        self.log.info("created: %s; already there: %s", ", ".join(created) or "none", ", ".join(existing) or "none")
        return {"created": created, "existing": existing}


class HBaseRegionStatsOperator(_HBaseTablesOperator):
    """Region statistics of each table: regions, stores, store files (per region and the most
    in any store), store file and memstore sizes, read/write requests and compaction counters,
    as the region servers report them. Full names (``ns:table``) are accepted too.

    :param with_regions: include one entry per region (else totals and store files per region).
    """

    any_table = True

    def __init__(self, *, with_regions: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.with_regions = with_regions

    def execute(self, context) -> dict[str, dict]:
        out = {}
        with self.hook().maintenance() as maintenance:
            for table in self.full_names():
                stats = maintenance.region_stats(table)
                self.log.info("%s: %d regions, %d stores, %d store files (at most %d per store), %.1f MiB in files, "
                              "%.1f MiB in memstores, %d reads, %d writes", table, len(stats.regions), stats.stores,
                              stats.store_files, stats.max_store_files_per_store, stats.store_file_size_bytes / 2**20,
                              stats.memstore_size_bytes / 2**20, stats.read_requests, stats.write_requests)
                out[table] = stats.to_dict() if self.with_regions else stats.summary()
        return out


class HBaseTTLHousekeepingOperator(_HBaseTablesOperator):
    """Compares each family's live TTL and max versions with the schema and, with ``fix``,
    applies the schema (``modifyColumnFamily``; missing families are added, missing tables
    only reported). Returns the differences found, each with ``fixed``.

    :param fix: apply the schema; False only reports. Templated.
    """

    template_fields: Sequence[str] = (*_HBaseTablesOperator.template_fields, "fix")

    def __init__(self, *, fix: bool | str = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fix = fix

    def execute(self, context) -> list[dict]:
        fix = self.fix if isinstance(self.fix, bool) else str(self.fix).strip().lower() in ("true", "1", "yes")
        with self.hook().maintenance() as maintenance:
            drift = maintenance.ttl_housekeeping(self.table_specs(), fix=fix)
        for d in drift:
            self.log.warning("%s %s: %s is %s, schema says %s%s", d.table, d.family, d.setting, d.live, d.wanted,
                             " (fixed)" if d.fixed else "")
        if not drift:
            self.log.info("TTLs and versions match the schema")
        return [d.to_dict() for d in drift]


class HBaseMajorCompactOperator(_HBaseTablesOperator):
    """Major-compacts the tables one after the other and waits for each; returns, per table,
    the store files per region before and after (and the totals). Full names
    (``ns:table``) are accepted too.

    :param timeout_minutes: longest wait for one table's compaction. Templated.
    :param poll_interval: seconds between checks.
    :param servers: region servers compacting at once.
    """

    template_fields: Sequence[str] = (*_HBaseTablesOperator.template_fields, "timeout_minutes")
    any_table = True

    def __init__(self, *, timeout_minutes: float | str = 30, poll_interval: float = 5.0, servers: int = 1,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.timeout_minutes, self.poll_interval, self.servers = timeout_minutes, poll_interval, servers

    def execute(self, context) -> dict[str, dict]:
        timeout_s = float(self.timeout_minutes) * 60
        out = {}
        with self.hook().maintenance(compactor_servers=self.servers) as maintenance:
            for table in self.full_names():
                result = maintenance.major_compact(table, timeout_s=timeout_s, poll_s=self.poll_interval)
                before, after = result.before.store_files_per_region, result.after.store_files_per_region
                self.log.info("%s compacted in %.0fs: %d -> %d store files (at most %d -> %d per store)", table,
                              result.seconds, result.before.store_files, result.after.store_files,
                              result.before.max_store_files_per_store, result.after.max_store_files_per_store)
                for region in sorted(set(before) | set(after)):
                    self.log.info("  region %s: %s -> %s store files", region, before.get(region, "-"),
                                  after.get(region, "-"))
                out[table] = result.to_dict()
        return out
