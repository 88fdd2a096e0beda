"""HBase housekeeping for Argus's tables: region statistics, major compaction, TTL drift.

Where each piece comes from, and why:

- **Region statistics** come from the region servers' ``/jmx`` (their info servers, port
  ``hbase.regionserver.info.port``): no Thrift call reports store files. Two beans matter.
  ``sub=Tables`` has per-table totals (regions, stores, store files, the most files in any
  one store) refreshed every ``hbase.regionserver.metrics.period`` (5 s); ``sub=Regions``
  has the same per region, but HBase refreshes its store-file figures only every 45 s
  (``MetricsRegionWrapperImpl.PERIOD``, fixed) and zeroes them when a region reopens. Its
  compaction counters (queued, completed, failed) are live.
- **Major compaction** runs HBase's own ``MajorCompactor`` tool (in hbase-server) in a JVM.
  Thrift cannot do it: in HBase 2.x the Thrift v1 ``majorCompact`` (happybase's
  ``compact_table(name, major=True)``) requests a *minor* compaction, which leaves fewer
  than ``hbase.hstore.compaction.min`` files alone, and Thrift2 has no compaction call.
  The tool only fires the requests (``-skipWait``); completion is read from the live
  ``compactionsQueuedCount`` of every region.
- **TTL housekeeping** compares the families' live TTL and max versions, read through the
  Thrift2 server, with ``argus.store.schema`` and fixes drift with ``modifyColumnFamily``
  (the live descriptor is sent back with only those fields changed, so nothing else resets).
  Cells past a shortened TTL are dropped by the next major compaction.
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import httpx

from argus.store.admin import FamilySpec, HBaseAdmin, TableSpec, hbase2

log = logging.getLogger(__name__)

#: HBase's "keep forever" TTL (HConstants.FOREVER), what a family without a TTL reports
FOREVER = 2**31 - 1
#: ``lastMajorCompactionAge`` of a region never major compacted is "now - 0": anything
#: older than this (~31 years, in ms) means never
_NEVER_AGE_MS = 10**12
REGIONS_BEAN = "Hadoop:service=HBase,name=RegionServer,sub=Regions"
TABLES_BEAN = "Hadoop:service=HBase,name=RegionServer,sub=Tables"
MAJOR_COMPACTOR = "org.apache.hadoop.hbase.util.compaction.MajorCompactor"

#: JMX metric name -> our field name (per region and per table)
_REGION_METRICS = {
    "storeCount": "stores", "storeFileCount": "store_files", "storeFileSize": "store_file_size_bytes",
    "memStoreSize": "memstore_size_bytes", "readRequestCount": "read_requests",
    "writeRequestCount": "write_requests", "compactionsCompletedCount": "compactions_completed",
    "compactionsQueuedCount": "compactions_queued", "compactionsFailedCount": "compactions_failed",
    "lastMajorCompactionAge": "last_major_compaction_age_ms", "replicaid": "replica_id",
}
_TABLE_METRICS = {
    "regionCount": "regions", "storeCount": "stores", "storeFileCount": "store_files",
    "maxStoreFileCount": "max_store_files_per_store", "storeFileSize": "store_file_size_bytes",
    "memStoreSize": "memstore_size_bytes", "readRequestCount": "read_requests",
    "writeRequestCount": "write_requests",
}


class MaintenanceError(RuntimeError):
    """A maintenance step failed; the message says which table and why."""


class CompactionTimeout(MaintenanceError):
    pass


def full_table_name(name: str) -> str:
    """``ns:table``; a name without a namespace is in ``default``."""
    return name if ":" in name else f"default:{name}"


def _jmx_prefix(table: str) -> str:
    ns, _, qualifier = full_table_name(table).partition(":")
    return f"Namespace_{ns}_table_{qualifier}_"


# ---- JMX parsing (pure) ----
def parse_region_metrics(bean: dict, table: str) -> dict[str, dict[str, int]]:
    """Per encoded region name, the metrics of ``table``'s regions in a ``sub=Regions`` bean.
    Attribute names look like ``Namespace_argus_table_frames_region_<encoded>_metric_storeFileCount``."""
    prefix = _jmx_prefix(table) + "region_"
    regions: dict[str, dict[str, int]] = {}
    for key, value in bean.items():
        if not key.startswith(prefix):
            continue
        # the table name is known, so the split is unambiguous even with "_" in names
        encoded, sep, metric = key[len(prefix):].partition("_metric_")
        if sep and metric in _REGION_METRICS:
            regions.setdefault(encoded, {})[_REGION_METRICS[metric]] = value
    return regions


def parse_table_metrics(bean: dict, table: str) -> dict[str, int]:
    """The totals of ``table`` in a ``sub=Tables`` bean (empty if the server hosts none of it)."""
    prefix = _jmx_prefix(table) + "metric_"
    return {_TABLE_METRICS[k[len(prefix):]]: v for k, v in bean.items()
            if k.startswith(prefix) and k[len(prefix):] in _TABLE_METRICS}


def encoded_region_name(region_name: bytes) -> str:
    """``argus:frames,01,1732550400000.<encoded>.`` -> ``<encoded>`` (the start key may hold dots)."""
    return region_name.rstrip(b".").rsplit(b".", 1)[1].decode()


class RegionServerJmx:
    """Reads beans from the region servers' ``/jmx``.

    :param info_port: ``hbase.regionserver.info.port`` (the same on every region server).
    :param timeout_s: HTTP timeout.
    :param retries: how often an empty answer is retried (HBase briefly serves none while
        its metrics sources re-register).
    """

    def __init__(self, info_port: int = 16030, timeout_s: float = 10.0, retries: int = 5, scheme: str = "http"):
        self.info_port, self.timeout_s, self.retries, self.scheme = info_port, timeout_s, retries, scheme

    def bean(self, host: str, name: str) -> dict:
        url = f"{self.scheme}://{host}:{self.info_port}/jmx"
        for attempt in range(self.retries + 1):
            try:
                resp = httpx.get(url, params={"qry": name}, timeout=self.timeout_s)
                resp.raise_for_status()
            except httpx.HTTPError as exc:
                raise MaintenanceError(
                    f"region server metrics unreachable at {url} ({exc}); is hbase.regionserver.info.port "
                    f"{self.info_port} enabled on {host}?") from exc
            beans = resp.json().get("beans", [])
            if beans:
                return beans[0]
            time.sleep(0.5 * (attempt + 1))
        raise MaintenanceError(f"{url} has no bean {name}")

    def region_metrics(self, host: str, table: str) -> dict[str, dict[str, int]]:
        return parse_region_metrics(self.bean(host, REGIONS_BEAN), table)

    def table_metrics(self, host: str, table: str) -> dict[str, int]:
        return parse_table_metrics(self.bean(host, TABLES_BEAN), table)


# ---- statistics ----
@dataclass
class RegionStats:
    """One region as its region server reports it (store-file figures: as of HBase's last
    refresh, at most 45 s old; compaction counters: live)."""

    region: str  # encoded name
    start_key: str
    end_key: str
    server: str
    stores: int = 0
    store_files: int = 0
    store_file_size_bytes: int = 0
    memstore_size_bytes: int = 0
    read_requests: int = 0
    write_requests: int = 0
    compactions_completed: int = 0
    compactions_queued: int = 0
    compactions_failed: int = 0
    last_major_compaction_age_ms: int | None = None


@dataclass
class TableStats:
    """A table's regions and its totals (totals: at most 5 s old)."""

    table: str
    regions: list[RegionStats]
    stores: int = 0
    store_files: int = 0
    max_store_files_per_store: int = 0
    store_file_size_bytes: int = 0
    memstore_size_bytes: int = 0
    read_requests: int = 0
    write_requests: int = 0

    @property
    def store_files_per_region(self) -> dict[str, int]:
        return {r.region: r.store_files for r in self.regions}

    def summary(self) -> dict:
        """Totals and store files per region (what a compaction report needs)."""
        out = {k: v for k, v in asdict(self).items() if k != "regions"}
        out["region_count"] = len(self.regions)
        out["store_files_per_region"] = self.store_files_per_region
        return out

    def to_dict(self) -> dict:
        return {**self.summary(), "regions": [asdict(r) for r in self.regions]}


@dataclass
class CompactionResult:
    table: str
    before: TableStats
    after: TableStats
    seconds: float

    def to_dict(self) -> dict:
        return {"table": self.table, "seconds": round(self.seconds, 1),
                "before": self.before.summary(), "after": self.after.summary()}


@dataclass(frozen=True)
class FamilyDrift:
    """One difference between a live column family and the schema; ``fixed`` once applied."""

    table: str
    family: str
    setting: str  # "ttl_s", "max_versions", "family" (a missing family) or "table" (a missing table)
    live: int | str | None
    wanted: int | str | None
    fixed: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


# ---- administration through Thrift2 ----
def _family_descriptor(spec: FamilySpec):
    col = hbase2.TColumnFamilyDescriptor(name=spec.name.encode(), maxVersions=spec.max_versions,
                                         inMemory=spec.in_memory, timeToLive=int(spec.ttl_s or FOREVER))
    if spec.compression:
        col.compressionType = getattr(hbase2.TCompressionAlgorithm, spec.compression)
    return col


class MaintenanceAdmin(HBaseAdmin):
    """:class:`HBaseAdmin` plus the column-family calls that housekeeping needs."""

    def column_families(self, spec_or_name: TableSpec | str) -> dict[str, object]:
        """The live ``TColumnFamilyDescriptor`` of each family, by name."""
        desc = self._client.getTableDescriptor(self._table_name(spec_or_name))
        return {c.name.decode(): c for c in desc.columns}

    def modify_column_family(self, spec_or_name: TableSpec | str, column) -> None:
        self._client.modifyColumnFamily(self._table_name(spec_or_name), column)

    def add_column_family(self, spec_or_name: TableSpec | str, family: FamilySpec) -> None:
        self._client.addColumnFamily(self._table_name(spec_or_name), _family_descriptor(family))


# ---- major compaction through HBase's MajorCompactor ----
@dataclass(frozen=True)
class MajorCompactorTool:
    """Runs ``org.apache.hadoop.hbase.util.compaction.MajorCompactor`` to request a major
    compaction of every region (and store) of a table, without waiting for it.

    :param java: the ``java`` executable.
    :param classpath: HBase client configuration dir (``hbase-site.xml``: ZooKeeper quorum,
        ``hbase.rootdir``, which the tool reads to find stores with files) and the HBase jars.
    :param servers: region servers compacting at once.
    :param sleep_ms: the tool's pause whenever no server is free, i.e. after each request
        (its default, 30 s, would make a 16-region table take 8 minutes just to request).
    :param timeout_s: limit for the tool itself (it only fires requests).
    """

    java: str
    classpath: str
    servers: int = 1
    sleep_ms: int = 500
    timeout_s: float = 600.0
    jvm_opts: tuple[str, ...] = ("-Xmx256m",)

    @classmethod
    def from_config(cls, cfg=None, conf_dir: str | Path | None = None, **kw) -> MajorCompactorTool:
        """The local stack's Java, HBase jars and generated HBase configuration."""
        from argus.config import ArgusConfig
        from argus.stack.jvm import JAVA17_OPTS, classpath, find_java

        cfg = cfg or ArgusConfig()
        conf = Path(conf_dir) if conf_dir else cfg.conf_dir("hbase")
        kw.setdefault("jvm_opts", (*JAVA17_OPTS, "-Xmx256m"))
        return cls(find_java().executable, classpath(cfg, "hbase", conf), **kw)

    def command(self, table: str) -> list[str]:
        return [self.java, *self.jvm_opts, "-cp", self.classpath, MAJOR_COMPACTOR,
                "-table", full_table_name(table), "-servers", str(self.servers), "-sleep", str(self.sleep_ms),
                "-skipWait"]

    def request(self, table: str) -> None:
        try:
            proc = subprocess.run(self.command(table), capture_output=True, text=True, timeout=self.timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise MaintenanceError(f"MajorCompactor for {table} did not return within {self.timeout_s:.0f}s") from exc
        output = proc.stdout + proc.stderr
        for line in output.splitlines():
            if "Firing off compaction request" in line:
                log.info("%s", line.split("MajorCompactor: ", 1)[-1])
        if proc.returncode != 0:
            tail = "\n".join(line for line in output.splitlines() if not line.startswith("\tat "))[-2000:]
            raise MaintenanceError(f"MajorCompactor for {table} exited with {proc.returncode}:\n{tail}")


class HBaseMaintenance:
    """Region statistics, major compaction and TTL housekeeping of HBase tables.

    :param connection: a happybase connection (Thrift v1): region boundaries and servers.
    :param admin: a :class:`MaintenanceAdmin` (Thrift2): column families.
    :param jmx: where region metrics are read.
    :param compactor: what requests major compactions.
    """

    def __init__(self, connection, admin: MaintenanceAdmin, jmx: RegionServerJmx, compactor: MajorCompactorTool | None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        self.connection, self.admin, self.jmx, self.compactor = connection, admin, jmx, compactor
        self._clock, self._sleep = clock, sleep

    # ---- statistics ----
    def region_stats(self, table: str) -> TableStats:
        table = full_table_name(table)
        regions = self.connection.table(table.removeprefix("default:")).regions()
        if not regions:
            raise MaintenanceError(f"table {table} does not exist (it has no regions)")
        by_host: dict[str, list[dict]] = {}
        for region in regions:
            by_host.setdefault(region["server_name"].decode(), []).append(region)
        stats = TableStats(table, [])
        for host, hosted in by_host.items():
            metrics = self.jmx.region_metrics(host, table)
            for region in hosted:
                encoded = encoded_region_name(region["name"])
                m = metrics.get(encoded, {})
                if m.get("replica_id", 0):
                    continue
                age = m.get("last_major_compaction_age_ms")
                stats.regions.append(RegionStats(
                    region=encoded, server=host,
                    start_key=region["start_key"].decode("utf-8", "backslashreplace"),
                    end_key=region["end_key"].decode("utf-8", "backslashreplace"),
                    last_major_compaction_age_ms=None if age is None or age >= _NEVER_AGE_MS else age,
                    **{k: v for k, v in m.items() if k not in ("replica_id", "last_major_compaction_age_ms")}))
            totals = self.jmx.table_metrics(host, table)
            for name in ("stores", "store_files", "store_file_size_bytes", "memstore_size_bytes",
                         "read_requests", "write_requests"):
                setattr(stats, name, getattr(stats, name) + totals.get(name, 0))
            stats.max_store_files_per_store = max(stats.max_store_files_per_store,
                                                  totals.get("max_store_files_per_store", 0))
        return stats

    # ---- major compaction ----
    def major_compact(self, table: str, timeout_s: float = 1800.0, poll_s: float = 5.0,
                      settle_s: float = 60.0) -> CompactionResult:
        """Major-compact ``table`` and wait until it is done; store files before and after.

        Done means no region of the table has a compaction queued or running (a live
        counter). Then, for at most ``settle_s``, it waits for HBase's store-file figures
        to catch up (they refresh every 45 s) until no store has more than one file, so
        that ``after`` shows the result; live writes may flush new files meanwhile, so this
        wait ends without error.

        :raises CompactionTimeout: still compacting after ``timeout_s``.
        :raises MaintenanceError: the request failed or a compaction of the table failed.
        """
        if self.compactor is None:
            raise MaintenanceError("no MajorCompactorTool configured")
        table = full_table_name(table)
        start = self._clock()
        before = self.region_stats(table)
        log.info("%s before: %d store files in %d regions (at most %d per store)", table,
                 before.store_files, len(before.regions), before.max_store_files_per_store)
        self.compactor.request(table)
        deadline = start + timeout_s
        while True:
            current = self.region_stats(table)
            failed = self._failed(before, current)
            if failed:
                raise MaintenanceError(f"major compaction of {table} failed in region(s) {', '.join(failed)}")
            queued = [r.region for r in current.regions if r.compactions_queued]
            if not queued:
                break
            if self._clock() > deadline:
                raise CompactionTimeout(f"{table}: {len(queued)} region(s) still compacting after {timeout_s:.0f}s "
                                        f"({', '.join(queued[:5])})")
            self._sleep(poll_s)
        settle_until = min(self._clock() + settle_s, deadline)
        while not self._settled(current) and self._clock() < settle_until:
            self._sleep(poll_s)
            current = self.region_stats(table)
        result = CompactionResult(table, before, current, self._clock() - start)
        log.info("%s after %.0fs: %d store files (at most %d per store)", table, result.seconds,
                 current.store_files, current.max_store_files_per_store)
        return result

    @staticmethod
    def _failed(before: TableStats, now: TableStats) -> list[str]:
        was = {r.region: r.compactions_failed for r in before.regions}
        return [r.region for r in now.regions if r.compactions_failed > was.get(r.region, 0)]

    @staticmethod
    def _settled(stats: TableStats) -> bool:
        return stats.max_store_files_per_store <= 1 and all(r.store_files <= r.stores for r in stats.regions)

    # ---- TTL housekeeping ----
    def ttl_drift(self, specs: Iterable[TableSpec]) -> list[FamilyDrift]:
        """Where the live families' TTL and max versions differ from ``specs``."""
        drift: list[FamilyDrift] = []
        for spec in specs:
            if not self.admin.table_exists(spec):
                drift.append(FamilyDrift(spec.full_name, "*", "table", "missing", "present"))
                continue
            live = self.admin.column_families(spec)
            for fam in spec.families:
                col = live.get(fam.name)
                if col is None:
                    drift.append(FamilyDrift(spec.full_name, fam.name, "family", "missing", "present"))
                    continue
                wanted_ttl = int(fam.ttl_s or FOREVER)
                if col.timeToLive != wanted_ttl:
                    drift.append(FamilyDrift(spec.full_name, fam.name, "ttl_s", col.timeToLive, wanted_ttl))
                if col.maxVersions != fam.max_versions:
                    drift.append(FamilyDrift(spec.full_name, fam.name, "max_versions", col.maxVersions,
                                             fam.max_versions))
        return drift

    def ttl_housekeeping(self, specs: Sequence[TableSpec], fix: bool = True) -> list[FamilyDrift]:
        """Find drift and, with ``fix``, apply the schema's TTL / versions (one
        ``modifyColumnFamily`` per family) and add missing families. A missing table is
        only reported: creating tables is not housekeeping."""
        drift = self.ttl_drift(specs)
        if not fix:
            return drift
        by_name = {s.full_name: s for s in specs}
        result: list[FamilyDrift] = []
        for (table, name), items in _group_by_family(drift).items():
            spec = by_name[table]
            kinds = {d.setting for d in items}
            if "table" in kinds:
                result.extend(items)
                continue
            fam_spec = next(f for f in spec.families if f.name == name)
            if "family" in kinds:
                self.admin.add_column_family(spec, fam_spec)
            else:
                col = self.admin.column_families(spec)[name]
                col.timeToLive, col.maxVersions = int(fam_spec.ttl_s or FOREVER), fam_spec.max_versions
                if col.attributes:  # the raw values too, so that both say the same
                    col.attributes[b"TTL"] = str(col.timeToLive).encode()
                    col.attributes[b"VERSIONS"] = str(col.maxVersions).encode()
                self.admin.modify_column_family(spec, col)
            log.info("%s:%s: %s", table, name, ", ".join(f"{d.setting} {d.live} -> {d.wanted}" for d in items))
            result.extend(replace(d, fixed=True) for d in items)
        return result


def _group_by_family(drift: list[FamilyDrift]) -> dict[tuple[str, str], list[FamilyDrift]]:
    groups: dict[tuple[str, str], list[FamilyDrift]] = {}
    for d in drift:
        groups.setdefault((d.table, d.family), []).append(d)
    return groups
