"""HBase administration through the Thrift2 server: namespaces and tables with pre-splits,
TTLs and versions. (Data goes through Thrift v1 and happybase; v1 has no way to create a
namespace or a pre-split table.)"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import thriftpy2
from thriftpy2.rpc import make_client
from thriftpy2.transport import TTransportException

from argus.config import DEFAULT_PORTS

# The IDL ships with HBase's hbase-thrift module (Apache License 2.0); a copy is kept here so
# that any Python process can administer HBase without the HBase jars.
_IDL = Path(__file__).with_name("hbase2.thrift")
hbase2 = thriftpy2.load(str(_IDL), module_name="hbase2_thrift")


@dataclass(frozen=True)
class FamilySpec:
    """A column family: ``ttl_s`` None keeps cells forever."""

    name: str
    max_versions: int = 1
    ttl_s: int | None = None
    compression: str | None = None  # e.g. "SNAPPY"; None leaves the server default
    in_memory: bool = False


@dataclass(frozen=True)
class TableSpec:
    namespace: str
    name: str
    families: tuple[FamilySpec, ...]
    split_keys: tuple[bytes, ...] = field(default_factory=tuple)

    @property
    def full_name(self) -> str:
        return f"{self.namespace}:{self.name}"


class HBaseAdmin:
    """:param host: / :param port: the HBase Thrift2 server."""

    def __init__(self, host: str, port: int = DEFAULT_PORTS["hbase_thrift2"], timeout_ms: int = 60_000):
        self._client = make_client(hbase2.THBaseService, host, port, timeout=timeout_ms)

    def __enter__(self) -> HBaseAdmin:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._client.close()
        except TTransportException:
            pass

    def namespace_exists(self, name: str) -> bool:
        return name in {ns.name for ns in self._client.listNamespaceDescriptors()}

    def create_namespace(self, name: str) -> bool:
        """Create ``name`` unless it exists; True if it was created."""
        if self.namespace_exists(name):
            return False
        self._client.createNamespace(hbase2.TNamespaceDescriptor(name=name))
        return True

    def delete_namespace(self, name: str) -> bool:
        """Delete every table of namespace ``name``, then the namespace; True if it existed."""
        if not self.namespace_exists(name):
            return False
        for table in self._client.getTableNamesByNamespace(name):
            self.delete_table(f"{table.ns.decode()}:{table.qualifier.decode()}")
        self._client.deleteNamespace(name)
        return True

    @staticmethod
    def _table_name(spec_or_name: TableSpec | str):
        full = spec_or_name.full_name if isinstance(spec_or_name, TableSpec) else spec_or_name
        ns, _, qualifier = full.rpartition(":")
        return hbase2.TTableName(ns=(ns or "default").encode(), qualifier=qualifier.encode())

    def table_exists(self, spec_or_name: TableSpec | str) -> bool:
        return self._client.tableExists(self._table_name(spec_or_name))

    def create_table(self, spec: TableSpec) -> bool:
        """Create the table (its namespace too) unless it exists; True if it was created."""
        self.create_namespace(spec.namespace)
        if self.table_exists(spec):
            return False
        columns = []
        for fam in spec.families:
            col = hbase2.TColumnFamilyDescriptor(name=fam.name.encode(), maxVersions=fam.max_versions,
                                                 inMemory=fam.in_memory)
            if fam.ttl_s:
                col.timeToLive = int(fam.ttl_s)
            if fam.compression:
                col.compressionType = getattr(hbase2.TCompressionAlgorithm, fam.compression)
            columns.append(col)
        desc = hbase2.TTableDescriptor(tableName=self._table_name(spec), columns=columns)
        self._client.createTable(desc, list(spec.split_keys) or None)
        return True

    def describe(self, spec_or_name: TableSpec | str) -> dict:
        """Families with their TTL and versions, as the server reports them."""
        desc = self._client.getTableDescriptor(self._table_name(spec_or_name))
        return {c.name.decode(): {"ttl_s": c.timeToLive, "max_versions": c.maxVersions} for c in desc.columns}

    def region_count(self, spec_or_name: TableSpec | str) -> int:
        return len(self._client.getAllRegionLocations(self._table_name(spec_or_name).ns + b":" +
                                                       self._table_name(spec_or_name).qualifier))

    def delete_table(self, spec_or_name: TableSpec | str) -> None:
        name = self._table_name(spec_or_name)
        if self._client.tableExists(name):
            if self._client.isTableEnabled(name):
                self._client.disableTable(name)
            self._client.deleteTable(name)
