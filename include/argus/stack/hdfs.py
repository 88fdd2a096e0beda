"""HDFS: one NameNode and one DataNode, as two JVMs run from Hadoop's shaded minicluster jar.

Unlike ``MiniHadoopClusterManager`` (which reformats on every start) the name and data
directories persist: the NameNode is formatted once, with a fixed cluster id so that a
DataNode directory can never end up "Incompatible clusterIDs" with it.
"""

from __future__ import annotations

import shutil
import subprocess
import urllib.request

from argus.archive.hdfs import namenode_jmx
from argus.stack.jvm import SetupError
from argus.stack.service import Service, StackContext, listening, write_hadoop_xml, write_properties

CLUSTER_ID = "CID-argus-local"

LOG4J = {
    "log4j.rootLogger": "INFO, console",
    "log4j.appender.console": "org.apache.log4j.ConsoleAppender",
    "log4j.appender.console.target": "System.out",
    "log4j.appender.console.layout": "org.apache.log4j.PatternLayout",
    "log4j.appender.console.layout.ConversionPattern": "%d{ISO8601} %p %c{2}: %m%n",
    # ~1000 "Added DIR lock" lines per DataNode start
    "log4j.logger.org.apache.hadoop.hdfs.server.datanode.fsdataset.impl.FsDatasetImpl": "WARN",
}


def _conf(ctx: StackContext):
    return ctx.cfg.conf_dir("hdfs")


def _write_conf(ctx: StackContext) -> None:
    cfg, host = ctx.cfg, ctx.cfg.host
    data = cfg.data_dir("hdfs")
    write_hadoop_xml(_conf(ctx) / "core-site.xml", {
        "fs.defaultFS": cfg.hdfs_uri,
        "hadoop.http.staticuser.user": "argus",
    })
    write_hadoop_xml(_conf(ctx) / "hdfs-site.xml", {
        "dfs.namenode.name.dir": f"file://{data / 'name'}",
        "dfs.datanode.data.dir": f"file://{data / 'data'}",
        "dfs.replication": 1,
        "dfs.permissions.enabled": "false",
        # leave safe mode as soon as the one DataNode has reported (default waits 30 s more)
        "dfs.namenode.safemode.extension": 0,
        "dfs.namenode.rpc-address": f"{host}:{cfg.port('hdfs_namenode')}",
        "dfs.namenode.http-address": f"{host}:{cfg.port('hdfs_http')}",
        "dfs.datanode.address": f"{host}:{cfg.port('hdfs_datanode')}",
        "dfs.datanode.http.address": f"{host}:{cfg.port('hdfs_datanode_http')}",
        "dfs.datanode.ipc.address": f"{host}:{cfg.port('hdfs_datanode_ipc')}",
        # the DataNode's internal Jetty behind its Netty HTTP server: loopback, fixed port
        "dfs.datanode.http.internal-proxy.port": cfg.port("hdfs_datanode_proxy"),
        # WebHDFS redirects to the DataNode by this name: without it, "localhost", which may be ::1
        "dfs.datanode.hostname": host,
        "dfs.namenode.datanode.registration.ip-hostname-check": "false",
    })
    write_properties(_conf(ctx) / "log4j.properties", LOG4J)


def _jmx(ctx: StackContext, query: str) -> dict:
    return namenode_jmx(ctx.cfg.webhdfs_url, query)


class _HdfsDaemon(Service):
    group = "hdfs"
    pom = "hdfs"
    data = ("hdfs",)
    heap = "512m"
    main_class = ""

    def _tmp(self, ctx: StackContext):
        # Jetty unpacks its webapps into java.io.tmpdir on each start: keep that out of /tmp
        tmp = ctx.cfg.data_dir("hdfs") / "jvmtmp" / self.name
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True, exist_ok=True)
        return tmp

    def argv(self, ctx: StackContext) -> list[str]:
        return self.java_argv(ctx, self.main_class, heap=self.heap, conf=_conf(ctx),
                              opts=(f"-Djava.io.tmpdir={self._tmp(ctx)}",))


class NameNodeService(_HdfsDaemon):
    name = "hdfs-namenode"
    ports = ("hdfs_namenode", "hdfs_http")
    main_class = marker = "org.apache.hadoop.hdfs.server.namenode.NameNode"
    startup_timeout = 120.0

    def url(self, cfg):
        return cfg.hdfs_uri

    def prepare(self, ctx: StackContext) -> None:
        _write_conf(ctx)
        if (ctx.cfg.data_dir("hdfs") / "name" / "current" / "VERSION").exists():
            return
        fmt = subprocess.run(
            [*self.java_argv(ctx, self.main_class, "-format", "-nonInteractive", "-clusterid", CLUSTER_ID,
                             heap="256m", conf=_conf(ctx))],
            capture_output=True, text=True, timeout=180,
        )
        if fmt.returncode != 0:
            raise SetupError(f"hdfs-namenode: formatting failed: {fmt.stdout[-800:]}{fmt.stderr[-800:]}")

    def ready(self, ctx: StackContext) -> bool:
        # WebHDFS answers 403 for a moment before the namesystem is loaded: ask for a listing
        url = f"{ctx.cfg.webhdfs_url}/webhdfs/v1/?op=LISTSTATUS&user.name=argus"
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                return resp.status == 200
        except OSError:
            return False


class DataNodeService(_HdfsDaemon):
    name = "hdfs-datanode"
    ports = ("hdfs_datanode", "hdfs_datanode_http", "hdfs_datanode_ipc", "hdfs_datanode_proxy")
    requires = ("hdfs-namenode",)
    main_class = marker = "org.apache.hadoop.hdfs.server.datanode.DataNode"
    heap = "384m"
    startup_timeout = 120.0

    def url(self, cfg):
        return f"http://{cfg.host}:{cfg.port('hdfs_datanode_http')}"

    def prepare(self, ctx: StackContext) -> None:
        _write_conf(ctx)

    def ready(self, ctx: StackContext) -> bool:
        # a DataNode that died still counts as live at the NameNode for minutes: check its port too
        if not listening(ctx.cfg.host, ctx.cfg.port("hdfs_datanode")):
            return False
        try:
            live = _jmx(ctx, "Hadoop:service=NameNode,name=FSNamesystemState").get("NumLiveDataNodes", 0)
            safemode = _jmx(ctx, "Hadoop:service=NameNode,name=NameNodeInfo").get("Safemode", "?")
        except OSError:
            return False
        return live >= 1 and safemode == ""
