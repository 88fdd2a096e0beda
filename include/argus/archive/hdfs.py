"""HDFS access from Python through WebHDFS (HdfsCLI); Spark reads the same files by hdfs://."""

from __future__ import annotations

import getpass

from hdfs import InsecureClient

from argus.config import ArgusConfig


def webhdfs_client(cfg: ArgusConfig | None = None, user: str | None = None) -> InsecureClient:
    cfg = cfg or ArgusConfig()
    return InsecureClient(cfg.webhdfs_url, user=user or getpass.getuser(), timeout=60)
