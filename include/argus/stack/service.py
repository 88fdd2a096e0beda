"""What a stack service is: how to configure, start and probe one daemon."""

from __future__ import annotations

import shutil
import socket
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import ClassVar
from xml.sax.saxutils import escape

from argus.config import ArgusConfig
from argus.stack.jvm import Java, classpath, find_java


@dataclass
class StackContext:
    """What every service needs to build its configuration and command line."""

    cfg: ArgusConfig = field(default_factory=ArgusConfig)

    @cached_property
    def java(self) -> Java:
        return find_java()

    @property
    def stack_id(self) -> str:
        return str(self.cfg.state_dir)


class Service:
    """One daemon of the local stack.

    Subclasses set the class attributes and implement :meth:`argv` and :meth:`ready`;
    :meth:`prepare` writes configuration and does one-time initialisation (formatting
    storage, migrating a database) and must be idempotent.
    """

    name: ClassVar[str]
    group: ClassVar[str]
    #: names of ArgusConfig ports this daemon listens on (checked free before start)
    ports: ClassVar[tuple[str, ...]] = ()
    #: services that must be ready before this one starts
    requires: ClassVar[tuple[str, ...]] = ()
    #: Maven pom (include/jvm/<pom>) whose jars it runs on, if a JVM service
    pom: ClassVar[str | None] = None
    startup_timeout: ClassVar[float] = 180.0
    #: folders under the state dir's data/ that ``--reset`` wipes
    data: ClassVar[tuple[str, ...]] = ()
    #: a word of the daemon's command line that stays there while it runs (its main class, its
    #: program's name), checked with its start time so that no other process is taken for it
    marker: ClassVar[str | None] = None

    def url(self, cfg: ArgusConfig) -> str | None:
        """The address a user opens or a client connects to."""
        return None

    def prepare(self, ctx: StackContext) -> None:
        """Write configs and run one-time initialisation; idempotent."""

    def argv(self, ctx: StackContext) -> list[str]:
        raise NotImplementedError

    def env(self, ctx: StackContext) -> dict[str, str]:
        return {}

    def ready(self, ctx: StackContext) -> bool:
        raise NotImplementedError

    def reset(self, cfg: ArgusConfig) -> None:
        for name in self.data:
            shutil.rmtree(cfg.data_dir(name), ignore_errors=True)

    # helpers for JVM services
    def java_argv(self, ctx: StackContext, main: str, *args: str, heap: str,
                  opts: tuple[str, ...] = (), conf: Path | None = None) -> list[str]:
        extra = (conf,) if conf else ()
        return [ctx.java.executable, f"-Xmx{heap}", "-XX:+UseG1GC", "-Djava.net.preferIPv4Stack=true",
                *opts, "-cp", classpath(ctx.cfg, self.pom, *extra), main, *args]


def listening(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def write_hadoop_xml(path: Path, props: dict[str, object]) -> None:
    """Write a Hadoop-style ``*-site.xml`` (used by HDFS and HBase)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "\n".join(
        f"  <property><name>{escape(k)}</name><value>{escape(str(v))}</value></property>"
        for k, v in props.items()
    )
    path.write_text(f'<?xml version="1.0"?>\n<!-- written by argus stack up -->\n<configuration>\n{body}\n</configuration>\n')


def write_properties(path: Path, props: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# written by argus stack up\n" + "".join(f"{k}={v}\n" for k, v in props.items()))


#: log4j2 to stdout (the daemon's log file); noisy libraries at WARN.
LOG4J2_STDOUT = {
    "rootLogger.level": "INFO",
    "rootLogger.appenderRef.stdout.ref": "STDOUT",
    "appender.stdout.type": "Console",
    "appender.stdout.name": "STDOUT",
    "appender.stdout.layout.type": "PatternLayout",
    "appender.stdout.layout.pattern": "%d{ISO8601} %p [%t] %c{2}: %m%n",
    "logger.zk.name": "org.apache.zookeeper",
    "logger.zk.level": "WARN",
}
