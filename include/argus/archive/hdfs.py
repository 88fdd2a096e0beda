"""HDFS access from Python through WebHDFS (HdfsCLI); Spark reads the same files by hdfs://."""

from __future__ import annotations

import getpass
import json
import urllib.request

from hdfs import InsecureClient

from argus.config import ArgusConfig


def webhdfs_client(cfg: ArgusConfig | None = None, user: str | None = None) -> InsecureClient:
    cfg = cfg or ArgusConfig()
    return InsecureClient(cfg.webhdfs_url, user=user or getpass.getuser(), timeout=60)


def namenode_jmx(webhdfs_url: str, bean: str, timeout_s: float = 3.0) -> dict:
    """One JMX bean of the NameNode (e.g. ``Hadoop:service=NameNode,name=NameNodeInfo``), from
    its HTTP server (the WebHDFS address); ``{}`` if it has no such bean.

    :raises OSError: the NameNode does not answer.
    """
    with urllib.request.urlopen(f"{webhdfs_url}/jmx?qry={bean}", timeout=timeout_s) as resp:
        beans = json.load(resp).get("beans", [])
    return beans[0] if beans else {}
