"""JVM services' jars: fetched from Maven Central with one small pom per service.

The poms live in ``include/jvm/<name>/pom.xml``; ``mvn dependency:copy-dependencies`` puts
their runtime closure in the cache (``.cache/jvm/<name>/lib``), stamped with the pom's hash
so that later runs skip the fetch and an edited pom refetches.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from argus import config
from argus.config import ArgusConfig

#: The poms under include/jvm/, by name.
POMS = ("kafka", "hbase", "hdfs", "spark-kafka")
MIN_JAVA = 17

#: What HBase's own launcher (bin/hbase) adds for Java 17 (its bin/hbase is not on Maven Central).
JAVA17_OPTS = (
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-exports=java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports=java.security.jgss/sun.security.krb5=ALL-UNNAMED",
    "--add-exports=java.base/sun.net.dns=ALL-UNNAMED",
    "--add-exports=java.base/sun.net.util=ALL-UNNAMED",
    "--add-modules=jdk.unsupported",
    "-Dorg.apache.hbase.thirdparty.io.netty.tryReflectionSetAccessible=true",
)


class SetupError(RuntimeError):
    """A prerequisite is missing or an install step failed; the message says what to do."""


@dataclass(frozen=True)
class Java:
    executable: str
    version: int


def find_java() -> Java:
    """The ``java`` to run services with: ``$JAVA_HOME/bin/java``, else the one on PATH (≥ 17)."""
    home = config.java_home()
    exe = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not exe or not Path(exe).exists():
        raise SetupError(
            f"Java {MIN_JAVA}+ not found (JAVA_HOME={home or 'unset'}, no java on PATH): "
            "install a JDK 17 (e.g. apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
        )
    out = subprocess.run([exe, "-version"], capture_output=True, text=True, timeout=30)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        raise SetupError(f"could not read the Java version from `{exe} -version`: {out.stderr.strip()}")
    major = int(match.group(1))
    if major == 1:  # "1.8.0_x" style
        major = int(match.group(2) or 0)
    if major < MIN_JAVA:
        raise SetupError(f"{exe} is Java {major}; the Argus services need Java {MIN_JAVA} or newer")
    return Java(exe, major)


def _pom_path(cfg: ArgusConfig, name: str) -> Path:
    return cfg.root / "include" / "jvm" / name / "pom.xml"


def _stamp(pom: Path) -> str:
    return hashlib.sha256(pom.read_bytes()).hexdigest()[:16]


def jars_ready(cfg: ArgusConfig, name: str) -> bool:
    lib = cfg.jar_dir(name)
    stamp = lib.parent / ".stamp"
    return lib.is_dir() and stamp.exists() and stamp.read_text().strip() == _stamp(_pom_path(cfg, name))


def fetch_jars(cfg: ArgusConfig, name: str) -> Path:
    """Copy one pom's runtime dependencies into the cache; a no-op when already current."""
    lib = cfg.jar_dir(name)
    if jars_ready(cfg, name):
        return lib
    mvn = shutil.which("mvn")
    if not mvn:
        raise SetupError("Maven (mvn) not found: install it (apt-get install maven) to fetch the service jars")
    pom = _pom_path(cfg, name)
    staging = lib.parent / "lib.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    log = lib.parent / "mvn.log"
    with log.open("w") as out:
        proc = subprocess.run(
            [mvn, "-B", "-f", str(pom), "dependency:copy-dependencies",
             f"-DoutputDirectory={staging}", "-DincludeScope=runtime"],
            stdout=out, stderr=subprocess.STDOUT,
        )
    if proc.returncode != 0:
        raise SetupError(f"fetching the {name} jars from Maven Central failed; see {log}")
    shutil.rmtree(lib, ignore_errors=True)
    staging.rename(lib)
    (lib.parent / ".stamp").write_text(_stamp(pom))
    return lib


def classpath(cfg: ArgusConfig, name: str, *extra: Path) -> str:
    """A ``-cp`` value: extra dirs (configs) first, then every jar of the pom."""
    return os.pathsep.join([*(str(p) for p in extra), str(cfg.jar_dir(name) / "*")])
