"""HBase 2.6 standalone (master, region server and ZooKeeper in one JVM), its Thrift v1
server (what happybase talks to, for data) and its Thrift2 server (for administration:
namespaces, pre-split tables and TTLs, which Thrift v1 cannot express)."""

from __future__ import annotations

from argus.process import START_MARKER
from argus.stack.jvm import JAVA17_OPTS
from argus.stack.service import (
    LOG4J2_STDOUT, Service, StackContext, listening, write_hadoop_xml, write_properties,
)



def _hbase_conf(ctx: StackContext):
    return ctx.cfg.conf_dir("hbase")


def _opts(ctx: StackContext) -> tuple[str, ...]:
    return (*JAVA17_OPTS, f"-Dlog4j2.configurationFile={_hbase_conf(ctx) / 'log4j2.properties'}")


class HBaseService(Service):
    name = "hbase"
    marker = "org.apache.hadoop.hbase.master.HMaster"
    group = "hbase"
    ports = ("zookeeper", "hbase_master", "hbase_regionserver", "hbase_master_info", "hbase_regionserver_info")
    pom = "hbase"
    startup_timeout = 240.0
    data = ("hbase",)

    def url(self, cfg):
        return f"zk://{cfg.host}:{cfg.port('zookeeper')}"

    def prepare(self, ctx: StackContext) -> None:
        cfg = ctx.cfg
        data, host = cfg.data_dir("hbase"), cfg.host
        write_hadoop_xml(_hbase_conf(ctx) / "hbase-site.xml", {
            "hbase.cluster.distributed": "false",
            "hbase.rootdir": f"file://{data / 'root'}",
            "hbase.tmp.dir": data / "tmp",
            "hbase.zookeeper.property.dataDir": data / "zookeeper",
            "hbase.zookeeper.quorum": host,
            "hbase.zookeeper.property.clientPort": cfg.port("zookeeper"),
            "hbase.zookeeper.property.clientPortAddress": host,
            # the local file system has no hflush/hsync; standalone HBase on it needs this
            "hbase.unsafe.stream.capability.enforce": "false",
            "hbase.master.hostname": host,
            "hbase.regionserver.hostname": host,
            "hbase.master.ipc.address": host,
            "hbase.regionserver.ipc.address": host,
            "hbase.master.port": cfg.port("hbase_master"),
            "hbase.regionserver.port": cfg.port("hbase_regionserver"),
            # the web UIs: the region server's /jmx is the one place that reports store files
            # per region (argus.store.maintenance); Thrift has no region metrics
            "hbase.master.info.port": cfg.port("hbase_master_info"),
            "hbase.master.info.bindAddress": host,
            "hbase.regionserver.info.port": cfg.port("hbase_regionserver_info"),
            "hbase.regionserver.info.bindAddress": host,
            "hbase.thrift.info.port": -1,
            # master, region server and ZooKeeper share one heap here, which HBase's defaults
            # (40% block cache + 40% memstore + a 1 GB call queue) assume is the region
            # server's alone: a burst of large Thrift batches then ran it out of memory
            # (OutOfMemoryError in the RPC handlers). Smaller shares, and a call queue that
            # pushes back (CallQueueTooBigException, retried by the client) instead of growing
            "hfile.block.cache.size": 0.2,
            "hbase.regionserver.global.memstore.size": 0.3,
            "hbase.ipc.server.max.callqueue.size": 128 * 2**20,
            # idle Thrift sockets are closed after 60 s by default ("TSocket read 0 bytes")
            "hbase.thrift.server.socket.read.timeout": 24 * 3600 * 1000,
            "hbase.thrift.connection.max-idletime": 24 * 3600 * 1000,
        })
        write_properties(_hbase_conf(ctx) / "log4j2.properties", LOG4J2_STDOUT)

    def argv(self, ctx: StackContext) -> list[str]:
        return self.java_argv(ctx, "org.apache.hadoop.hbase.master.HMaster", "start", heap="1536m",
                              opts=_opts(ctx), conf=_hbase_conf(ctx))

    def ready(self, ctx: StackContext) -> bool:
        # the master is usable once its region server has registered and hbase:meta is online,
        # which the log states; the Thrift server's check (a real table listing) confirms it.
        return listening(ctx.cfg.host, ctx.cfg.port("hbase_regionserver")) and b"Master has completed initialization" in _log_bytes(ctx, self.name)


def _log_bytes(ctx: StackContext, service: str) -> bytes:
    """The service's log since its latest start (logs are appended across restarts)."""
    try:
        text = ctx.cfg.log_file(service).read_bytes()
    except FileNotFoundError:
        return b""
    return text[max(0, text.rfind(START_MARKER)):]


class _ThriftServerService(Service):
    """An HBase Thrift server JVM (same jars and configuration as the master)."""

    group = "hbase"
    requires = ("hbase",)
    pom = "hbase"
    startup_timeout = 120.0
    main_class: str = ""
    port_name: str = ""
    scheme: str = ""
    heap = "384m"

    def url(self, cfg):
        return f"{self.scheme}://{cfg.host}:{cfg.port(self.port_name)}"

    def argv(self, ctx: StackContext) -> list[str]:
        cfg = ctx.cfg
        # default thread-pool server, buffered transport, binary protocol: what happybase
        # and thriftpy2 speak by default (no -f/-c/-hsha/-nonblocking flags)
        return self.java_argv(ctx, self.main_class, "-b", cfg.host, "-p", str(cfg.port(self.port_name)), "start",
                              heap=self.heap, opts=_opts(ctx), conf=_hbase_conf(ctx))

    def ready(self, ctx: StackContext) -> bool:
        if not listening(ctx.cfg.host, ctx.cfg.port(self.port_name)):
            return False
        try:
            return self.answers(ctx.cfg.host, ctx.cfg.port(self.port_name))
        except Exception:
            return False

    def answers(self, host: str, port: int) -> bool:
        raise NotImplementedError


class HBaseThriftService(_ThriftServerService):
    """Thrift v1: data access through happybase."""

    name = "hbase-thrift"
    ports = ("hbase_thrift",)
    main_class = marker = "org.apache.hadoop.hbase.thrift.ThriftServer"
    port_name, scheme = "hbase_thrift", "thrift"

    def answers(self, host: str, port: int) -> bool:
        import happybase

        conn = happybase.Connection(host, port, timeout=5000)
        try:
            conn.tables()
        finally:
            conn.close()
        return True


class HBaseThrift2Service(_ThriftServerService):
    """Thrift2: administration (namespaces, pre-split tables, TTLs)."""

    name = "hbase-thrift2"
    ports = ("hbase_thrift2",)
    main_class = marker = "org.apache.hadoop.hbase.thrift2.ThriftServer"
    port_name, scheme = "hbase_thrift2", "thrift2"
    heap = "256m"

    def answers(self, host: str, port: int) -> bool:
        from argus.store.admin import HBaseAdmin

        with HBaseAdmin(host, port, timeout_ms=5000) as admin:
            return admin.namespace_exists("default")
