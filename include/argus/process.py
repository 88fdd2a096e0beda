"""Processes Argus starts in the background, and finding and stopping them again.

Everything the engine leaves running (the stack's daemons, the streaming job's driver, a DOE
point's job, an archive job) is started by :func:`spawn_detached`: in a session of its own, so
that it outlives whoever started it and its whole process group can be signalled.

A process is recognised later by its :class:`ProcessIdentity`: its pid, its start time in
clock ticks since boot (``/proc/<pid>/stat``, field 22) and the boot id. None of them moves
when the wall clock is stepped (NTP after boot, a VM restored from a snapshot, a laptop
resumed), unlike ``psutil.Process.create_time()``, which adds the wall-clock boot time; and a
pid the kernel reuses for another program has another start time. A daemon's identity may also
name a word of its command line (its main class, its program) that must still be there, which
tells a daemon from a program that replaced it with ``exec``.

Stack daemons carry two environment tags, ``ARGUS_STACK`` (the state dir) and
``ARGUS_SERVICE`` (its name), inherited by children that start sessions of their own; they run
with the state dir as their working directory. :func:`find_daemon` uses all of it, so that a
daemon whose pid file is gone or stale (or whose environment its program rewrote, as Airflow's
setproctitle does) is still found by its session or its listening ports.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import IO

import psutil

from argus import config

STACK_TAG = "ARGUS_STACK"
SERVICE_TAG = "ARGUS_SERVICE"
#: written to a daemon's log before each start (logs are appended across restarts)
START_MARKER = b"==== argus: starting "
#: clock ticks per second, the unit of /proc/<pid>/stat's start time
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PROC = Path("/proc")


# ---- identity ----
@lru_cache(maxsize=1)
def boot_id() -> str:
    """This boot's id: start ticks count from the boot, so they compare only within one."""
    try:
        return (_PROC / "sys/kernel/random/boot_id").read_text().strip()
    except OSError:  # no procfs: fall back on the boot time, which is at least fixed per boot
        return f"btime:{psutil.boot_time():.0f}"


def start_ticks(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot; None if there is no such process."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except (OSError, ValueError):
        return None
    # the command name (field 2) is in parentheses and may itself hold spaces or ')'
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[19])  # field 22 of the whole line


@dataclass(frozen=True)
class ProcessIdentity:
    """One process, recognisable for as long as it runs and never confused with another.

    :param pid: its process id.
    :param start_ticks: its start time in clock ticks since boot.
    :param boot: the boot id it started in.
    :param marker: a word that must be in its command line (None: not checked).
    """

    pid: int
    start_ticks: int
    boot: str
    marker: str | None = None

    @classmethod
    def of(cls, pid: int, marker: str | None = None) -> ProcessIdentity | None:
        ticks = start_ticks(pid)
        return None if ticks is None else cls(pid, ticks, boot_id(), marker)

    @classmethod
    def current(cls) -> ProcessIdentity:
        identity = cls.of(os.getpid())
        assert identity is not None  # this very process
        return identity

    def alive(self) -> bool:
        """Whether this very process still runs (not a zombie, command line still its own)."""
        return self.process() is not None

    def process(self) -> psutil.Process | None:
        if self.boot != boot_id() or start_ticks(self.pid) != self.start_ticks:
            return None
        try:
            proc = psutil.Process(self.pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            if self.marker and not _may_be(proc, self.marker):
                return None
        except psutil.Error:
            return None
        return proc

    def encode(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def decode(cls, text: str) -> ProcessIdentity | None:
        """An identity written by :meth:`encode`; None for anything else (such as the
        ``pid create_time`` pid files of older versions, which :func:`find_daemon` still
        finds through the daemon's session and ports)."""
        try:
            data = json.loads(text)
            return cls(int(data["pid"]), int(data["start_ticks"]), str(data["boot"]), data.get("marker"))
        except (ValueError, KeyError, TypeError):
            return None


def _may_be(proc: psutil.Process, marker: str) -> bool:
    """Whether ``proc``'s command line holds ``marker``, or is not known yet.

    A process still inside ``execve`` has an empty command line: the kernel closes the
    close-on-exec pipe through which ``Popen`` learns that the exec succeeded before it sets up
    the new program's arguments, so a check right after ``Popen`` returns (a loaded machine
    makes it likely) sees nothing. Nothing is not another program."""
    cmdline = proc.cmdline()
    return not cmdline or marker in " ".join(cmdline)


def recorded_pid(pid_file: Path) -> int | None:
    """The pid a pid file names, whatever its format or whether that process still runs."""
    try:
        text = pid_file.read_text()
    except OSError:
        return None
    identity = ProcessIdentity.decode(text)
    if identity is not None:
        return identity.pid
    try:
        return int(text.split()[0])
    except (ValueError, IndexError):
        return None


def read_identity(pid_file: Path) -> ProcessIdentity | None:
    try:
        return ProcessIdentity.decode(pid_file.read_text())
    except OSError:
        return None


def live_pid(pid_file: Path) -> int | None:
    """The pid in ``pid_file`` if that very process is still alive."""
    identity = read_identity(pid_file)
    return identity.pid if identity is not None and identity.alive() else None


# ---- starting ----
def spawn_detached(argv: Sequence[str], *, env: Mapping[str, str], cwd: Path | str,
                   stdout: IO | int | None = subprocess.DEVNULL, stderr: IO | int | None = subprocess.STDOUT,
                   text: bool = False, service: str | None = None) -> subprocess.Popen:
    """Start ``argv`` in a session of its own (it leads its process group), stdin closed.

    :param env: its whole environment. A ``ARGUS_SERVICE`` tag inherited from the process that
        starts it (an Airflow task carries its scheduler's) is dropped: the job is not that
        daemon (``ARGUS_STACK`` stays, so that ``argus stack down`` still sweeps it).
    :param cwd: its working directory.
    :param stdout: / :param stderr: where its output goes (a file, ``subprocess.PIPE``, ...).
    :param service: the service tag to give it (:func:`spawn_daemon`'s daemons).
    """
    env = {k: v for k, v in env.items() if k != SERVICE_TAG}
    if service is not None:
        env[SERVICE_TAG] = service
    return subprocess.Popen(list(argv), env=env, cwd=cwd, stdout=stdout, stderr=stderr,
                            stdin=subprocess.DEVNULL, start_new_session=True, close_fds=True, text=text)


def spawn_daemon(argv: Sequence[str], *, env: Mapping[str, str], log_file: Path, pid_file: Path, cwd: Path,
                 stack_id: str, service: str, marker: str | None = None) -> int:
    """Start a stack daemon detached, logging to ``log_file`` and tagged with its stack and
    service; its identity goes to ``pid_file``. Returns its pid.

    :param marker: a word of its command line that stays there while it runs.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    full_env = config.child_environment(**env, **{STACK_TAG: stack_id})
    with log_file.open("ab") as log:
        log.write(b"\n" + START_MARKER + f"{service} at {time.strftime('%Y-%m-%d %H:%M:%S')}: "
                  f"{' '.join(argv)}\n".encode())
        log.flush()
        proc = spawn_detached(argv, env=full_env, cwd=cwd, stdout=log, service=service)
    # Popen returns once the program is exec'd: the ticks are the daemon's, and a program that
    # exits at once leaves a pid file that no longer matches (the caller's wait reports it)
    identity = ProcessIdentity.of(proc.pid, marker) or ProcessIdentity(proc.pid, -1, boot_id(), marker)
    pid_file.write_text(identity.encode())
    return proc.pid


# ---- finding ----
def _tags(proc: psutil.Process) -> tuple[str | None, str | None]:
    try:
        env = proc.environ()
    except (psutil.Error, OSError):
        return None, None
    return env.get(STACK_TAG), env.get(SERVICE_TAG)


def tagged(stack_id: str, service: str | None = None) -> list[psutil.Process]:
    """Live processes started by this stack (optionally by one service), children included."""
    found = []
    for proc in psutil.process_iter():
        stack, svc = _tags(proc)
        if stack == stack_id and (service is None or svc == service):
            found.append(proc)
    return found


def works_in(proc: psutil.Process, folder: Path) -> bool:
    """Whether ``proc``'s working directory is ``folder`` or below it."""
    try:
        cwd = Path(proc.cwd())
    except (psutil.Error, OSError):
        return False
    return cwd == folder or folder in cwd.parents


def session_members(sid: int, *, since_ticks: int | None = None) -> list[psutil.Process]:
    """Live processes of session ``sid`` (optionally only those started at or after a time)."""
    return _members(os.getsid, sid, lambda ticks: since_ticks is None or ticks >= since_ticks)


def group_members(pgid: int, *, until_ticks: int | None = None) -> list[psutil.Process]:
    """Live processes of process group ``pgid`` (optionally only those started no later than
    ``until_ticks``, so that a group id reused after the group ended matches nothing)."""
    return _members(os.getpgid, pgid, lambda ticks: until_ticks is None or ticks <= until_ticks)


def _members(id_of: Callable[[int], int], wanted: int, started: Callable[[int], bool]) -> list[psutil.Process]:
    members = []
    for proc in psutil.process_iter():
        try:
            if id_of(proc.pid) != wanted or proc.status() == psutil.STATUS_ZOMBIE:
                continue
        except (OSError, psutil.Error):
            continue
        ticks = start_ticks(proc.pid)
        if ticks is not None and started(ticks):
            members.append(proc)
    return members


def listeners(host: str, ports: Iterable[int]) -> dict[int, int]:
    """Which pid listens on each of ``ports`` (on ``host`` or every address), where known."""
    wanted = set(ports)
    found: dict[int, int] = {}
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if (conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port in wanted and conn.pid
                    and conn.laddr.ip in (host, "0.0.0.0", "::", "::ffff:" + host)):
                found.setdefault(conn.laddr.port, conn.pid)
    except (psutil.Error, OSError):
        pass
    return found


@dataclass
class FoundDaemon:
    """What :func:`find_daemon` found of one daemon.

    :param root: the daemon's own process (its session leader), when found.
    :param processes: the daemon and everything of it still running (children included).
    :param how: how it was found: ``"pid file"``, ``"session"`` or ``"port"`` (the root with
        it), ``"orphans"`` (what is left of a daemon that died: no root), or ``""``.
    """

    root: ProcessIdentity | None = None
    processes: list[psutil.Process] = field(default_factory=list)
    how: str = ""


def find_daemon(pid_file: Path, *, stack_id: str, service: str, state_dir: Path, host: str = "127.0.0.1",
                ports: Iterable[int] = (), marker: str | None = None) -> FoundDaemon:
    """Find a stack daemon however it can still be recognised:

    1. the identity in its pid file;
    2. else the session its pid file names: processes of that session, started no earlier,
       that work in the state dir (the daemon's session outlives a pid file of an older format);
    3. else the owner of one of its ports, if it works in the state dir (a pid file deleted);

    plus every descendant of the root and every process still tagged as this service.
    """
    found = FoundDaemon()
    procs: dict[int, psutil.Process] = {p.pid: p for p in tagged(stack_id, service)}
    identity = read_identity(pid_file)
    if identity is not None and identity.alive():
        found.root, found.how = identity, "pid file"
    elif identity is None or identity.boot == boot_id():  # ticks compare within one boot only
        sid = recorded_pid(pid_file)
        if sid is not None:
            since = identity.start_ticks if identity is not None else None
            members = [p for p in session_members(sid, since_ticks=since) if works_in(p, state_dir)]
            leader = next((p for p in members if p.pid == sid), None)
            if leader is None and members:
                # the daemon died and left children behind (a session id is not reused while
                # any member lives): stop them, never adopt them
                found.how = "orphans"
                procs.update({p.pid: p for p in members})
            elif leader is not None and identity is None:  # a pid file of an older format
                root = ProcessIdentity.of(sid, marker)
                if root is not None and root.alive():
                    found.root, found.how = root, "session"
                    procs.update({p.pid: p for p in members})
            # a leader whose identity does not match its pid file is another process: not ours
    if found.root is None and not found.how:
        for pid in listeners(host, ports).values():
            try:
                owner = psutil.Process(pid)
                leader = psutil.Process(os.getsid(pid))
            except (psutil.Error, OSError):
                continue
            if works_in(owner, state_dir):
                root_proc = leader if works_in(leader, state_dir) else owner
                root = ProcessIdentity.of(root_proc.pid, marker)
                if root is None or not root.alive():  # not the service's program (its word is missing)
                    continue
                found.root, found.how = root, "port"
                procs.update({p.pid: p for p in session_members(root_proc.pid)})
                break
    if found.root is not None:
        try:
            root = psutil.Process(found.root.pid)
            for proc in (root, *root.children(recursive=True)):
                procs.setdefault(proc.pid, proc)
        except psutil.Error:
            pass
    found.processes = [p for p in procs.values() if _running(p)]
    return found


def strays(state_dir: Path, programs: Iterable[str]) -> list[psutil.Process]:
    """Processes left by a stack whose tags and pid files are gone: those working in the state
    dir whose executable is one of ``programs`` (the stack's Java, its Python). Only the stack
    starts such programs there; a person's shell in that folder is neither."""
    wanted = {os.path.realpath(p) for p in programs}
    me = psutil.Process()
    spared = {me.pid, *(p.pid for p in me.parents())}
    own_group = os.getpgid(0)
    out = []
    for proc in psutil.process_iter():
        try:
            if proc.pid in spared or os.getpgid(proc.pid) == own_group:
                continue
            if os.path.realpath(proc.exe()) in wanted and works_in(proc, state_dir) and _running(proc):
                out.append(proc)
        except (psutil.Error, OSError):
            continue
    return out


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def tree_usage(pid: int) -> tuple[float, float] | None:
    """(CPU seconds, user and system, RSS in MiB) of a daemon and all its live children;
    None if the daemon is gone."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return None
    cpu = rss = 0.0
    for proc in procs:
        try:
            with proc.oneshot():
                times = proc.cpu_times()
                cpu += times.user + times.system
                rss += proc.memory_info().rss
        except psutil.Error:
            pass
    return cpu, rss / 2**20


def resident_mb(pid: int) -> float:
    """RSS of a daemon and all its children, in MiB."""
    usage = tree_usage(pid)
    return usage[1] if usage else 0.0


# ---- stopping ----
def terminate(procs: Iterable[psutil.Process], timeout: float = 30.0) -> None:
    """SIGTERM each process (its whole group, if it leads one), then SIGKILL whatever is still
    alive after ``timeout``."""
    procs = list(procs)
    for proc in procs:
        _signal(proc, signal.SIGTERM)
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for proc in alive:
        _signal(proc, signal.SIGKILL)
    psutil.wait_procs(alive, timeout=10)


def _signal(proc: psutil.Process, sig: int) -> None:
    try:
        pgid = os.getpgid(proc.pid)
        if pgid == proc.pid:  # a session leader we started: signal its whole group
            os.killpg(pgid, sig)
        else:
            proc.send_signal(sig)
    except (ProcessLookupError, psutil.Error, PermissionError):
        pass


def kill_group(pgid: int, members: Iterable[psutil.Process], timeout: float = 30.0) -> bool:
    """SIGKILL process group ``pgid`` and wait for ``members`` (its processes, e.g. from
    :func:`group_members`) to end.

    :return: whether none of them still runs (a zombie counts as ended).
    """
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    _, alive = psutil.wait_procs(list(members), timeout=timeout)
    return not [p for p in alive if _running(p)]


def stop_group(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 60.0) -> None:
    """Signal the process group ``proc`` leads (one started by :func:`spawn_detached`), wait
    for ``proc`` to end, and SIGKILL the group if it has not after ``timeout``."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(30)


# ---- for messages ----
def port_owner(host: str, port: int) -> str | None:
    """Who listens on ``host:port`` ("pid 123 (java)"), ``"unknown process"`` if taken by an
    unseen process, or None if the port is free."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            return None
        except OSError:
            pass
    pid = listeners(host, [port]).get(port)
    if pid:
        try:
            return f"pid {pid} ({psutil.Process(pid).name()})"
        except psutil.Error:
            return f"pid {pid}"
    return "unknown process"


def tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log file, for error messages."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            return "\n".join(f.read().decode(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""
