"""Bring the local stack up and down, and report on it.

``up`` starts services in parallel, each as soon as the services it requires are ready; a
service that is already running (found by :func:`argus.process.find_daemon`, pid file or not)
is adopted: waited for if it is still starting, left alone once ready, so ``up`` twice, or
after an ``up`` that failed half-way, starts nothing twice. ``down`` stops dependents first,
then sweeps any process still tagged with this stack or left working in its state dir.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from argus import process
from argus.config import ArgusConfig
from argus.stack.jvm import SetupError, fetch_jars
from argus.stack.service import Service, StackContext
from argus.stack.services import SERVICES, by_name, resolve


#: written by every ``up`` that started a service (see :func:`stack_epoch`)
EPOCH_FILE = "stack-epoch"


def stack_epoch(cfg: ArgusConfig | None = None) -> str | None:
    """Which start of the stack this is (changes whenever ``up`` starts a service), or None."""
    try:
        return ((cfg or ArgusConfig()).state_dir / "run" / EPOCH_FILE).read_text().strip() or None
    except OSError:
        return None


class StackError(RuntimeError):
    """One or more services could not be started; the message names each and its log."""


@dataclass
class ServiceStatus:
    name: str
    group: str
    #: ready | starting | stopped | dead (its pid file names a process that is gone) |
    #: foreign (answering on its ports, but no process of this stack serves them)
    state: str
    pid: int | None
    ports: dict[str, int]
    url: str | None
    log: str
    rss_mb: float | None = None
    healthy: bool = False


@dataclass
class UpResult:
    started: list[str] = field(default_factory=list)
    already_running: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


Reporter = Callable[[str, str], None]  # (service, message)


class Stack:
    """The local Argus stack described by an :class:`ArgusConfig`."""

    def __init__(self, cfg: ArgusConfig | None = None, reporter: Reporter | None = None):
        self.ctx = StackContext(cfg or ArgusConfig())
        self.cfg = self.ctx.cfg
        self.report: Reporter = reporter or (lambda service, msg: None)

    # ---- status ----
    def find(self, svc: Service) -> process.FoundDaemon:
        """The service's running processes; one found other than by its pid file is adopted
        (its pid file rewritten), so that later calls find it directly."""
        pid_file = self.cfg.pid_file(svc.name)
        found = process.find_daemon(
            pid_file, stack_id=self.ctx.stack_id, service=svc.name, state_dir=self.cfg.state_dir,
            host=self.cfg.host, ports=[self.cfg.port(p) for p in svc.ports], marker=svc.marker)
        if found.root is not None and found.how != "pid file":
            pid_file.parent.mkdir(parents=True, exist_ok=True)
            pid_file.write_text(found.root.encode())
            self.report(svc.name, f"adopted pid {found.root.pid} (found by its {found.how})")
        return found

    def status(self, names: Iterable[str] | None = None) -> list[ServiceStatus]:
        out = []
        for svc in resolve(names, with_requirements=False):
            found = self.find(svc)
            pid = found.root.pid if found.root is not None else None
            healthy = _safe_ready(svc, self.ctx)
            if found.processes:
                state = "ready" if healthy else "starting"
            elif healthy:
                state = "foreign"
                healthy = False  # answering, but not ours: nothing this stack can vouch for
            else:
                state = "dead" if self.cfg.pid_file(svc.name).exists() else "stopped"
            out.append(ServiceStatus(
                name=svc.name, group=svc.group, state=state, pid=pid,
                ports={p: self.cfg.port(p) for p in svc.ports}, url=svc.url(self.cfg),
                log=str(self.cfg.log_file(svc.name)),
                rss_mb=round(process.resident_mb(pid), 1) if pid else None, healthy=healthy,
            ))
        return out

    # ---- up ----
    def up(self, names: Iterable[str] | None = None, *, reset: bool = False) -> UpResult:
        services = resolve(names, with_requirements=True)
        if reset:
            self.down([s.name for s in services], reset=True)
        self._preflight(services)
        result = UpResult()
        done = {s.name: threading.Event() for s in services}
        failed: dict[str, str] = {}
        lock = threading.Lock()

        def bring_up(svc: Service) -> None:
            try:
                for dep in svc.requires:
                    done[dep].wait()
                    if dep in failed:
                        raise StackError(f"not started: {dep} failed")
                started = time.monotonic()
                if self._adopt(svc):
                    with lock:
                        result.already_running.append(svc.name)
                    self.report(svc.name, "already running")
                    return
                self._start(svc)
                with lock:
                    result.started.append(svc.name)
                    result.seconds[svc.name] = round(time.monotonic() - started, 1)
                self.report(svc.name, f"ready in {time.monotonic() - started:.0f}s")
            except Exception as exc:  # collected and raised together below
                with lock:
                    failed[svc.name] = str(exc)
                self.report(svc.name, f"FAILED: {exc}")
            finally:
                done[svc.name].set()

        with ThreadPoolExecutor(max_workers=len(services)) as pool:
            list(pool.map(bring_up, services))
        if result.started:  # a new start of the stack: supervisors forget the restarts before it
            epoch = self.cfg.state_dir / "run" / EPOCH_FILE
            epoch.parent.mkdir(parents=True, exist_ok=True)
            epoch.write_text(f"{time.time():.3f} {','.join(sorted(result.started))}\n")
        if failed:
            lines = "\n".join(f"- {name}: {msg}" for name, msg in failed.items())
            raise StackError(f"{len(failed)} service(s) did not come up:\n{lines}")
        return result

    def _preflight(self, services: list[Service]) -> None:
        """Fail fast, before starting anything: Java, jars, ports taken by other programs."""
        if any(s.pom for s in services):
            self.ctx.java  # noqa: B018 - raises SetupError naming what is missing
        problems = []
        for svc in services:
            if self.find(svc).processes:  # ours, whatever holds its ports: adopted or restarted
                continue
            for port_name in svc.ports:
                port = self.cfg.port(port_name)
                owner = process.port_owner(self.cfg.host, port)
                if owner:
                    problems.append(
                        f"- {svc.name}: port {port} ({port_name}) on {self.cfg.host} is taken by {owner}; "
                        f"stop it or move Argus with ARGUS_PORT_{port_name.upper()}=<port>"
                    )
        if problems:
            raise StackError("cannot start the stack:\n" + "\n".join(problems))
        for pom in sorted({s.pom for s in services if s.pom}):
            fetch_jars(self.cfg, pom)

    def _adopt(self, svc: Service) -> bool:
        """Whether the service already runs and is ready, after waiting out a start that is
        still under way (an earlier ``up`` that gave up on another service, say). A service
        that does not become ready in its start-up time is stopped, for :meth:`_start`."""
        found = self.find(svc)
        if not found.processes:
            return False
        if found.root is None:  # what a dead daemon left behind (children, a port held)
            self.report(svc.name, f"stopping {len(found.processes)} process(es) left by its last run")
            process.terminate(found.processes)
            return False
        deadline = time.monotonic() + svc.startup_timeout
        while time.monotonic() < deadline:
            if _safe_ready(svc, self.ctx):
                return True
            if found.root is None or not found.root.alive():
                break
            time.sleep(1.0)
        self.report(svc.name, "running but not ready: restarting it")
        process.terminate(self.find(svc).processes)
        return False

    def _start(self, svc: Service) -> None:
        log = self.cfg.log_file(svc.name)
        self.report(svc.name, "starting")
        try:
            svc.prepare(self.ctx)
        except SetupError:
            raise
        except Exception as exc:
            raise StackError(f"preparing {svc.name} failed: {exc} (log: {log})") from exc
        pid = process.spawn_daemon(
            svc.argv(self.ctx), env=svc.env(self.ctx), log_file=log,
            pid_file=self.cfg.pid_file(svc.name), cwd=self.cfg.state_dir,
            stack_id=self.ctx.stack_id, service=svc.name, marker=svc.marker,
        )
        deadline = time.monotonic() + svc.startup_timeout
        while time.monotonic() < deadline:
            if process.live_pid(self.cfg.pid_file(svc.name)) is None:
                process.terminate(self._processes(svc))  # children it left, if any
                raise StackError(
                    f"{svc.name} exited during start-up; log: {log}\n{_indent(process.tail(log))}"
                )
            if _safe_ready(svc, self.ctx):
                return
            time.sleep(1.0)
        process.terminate(self._processes(svc))
        raise StackError(
            f"{svc.name} (pid {pid}) was not ready after {svc.startup_timeout:.0f}s and was stopped; "
            f"log: {log}\n{_indent(process.tail(log))}"
        )

    def _processes(self, svc: Service):
        return self.find(svc).processes

    # ---- down ----
    def down(self, names: Iterable[str] | None = None, *, reset: bool = False) -> list[str]:
        """Stop services (dependents first); with ``reset`` also delete their data."""
        selected = resolve(names, with_requirements=False)
        # a service's dependents must stop with it
        chosen = {s.name for s in selected}
        changed = True
        while changed:
            changed = False
            for svc in SERVICES:
                if svc.name not in chosen and any(r in chosen for r in svc.requires):
                    chosen.add(svc.name)
                    changed = True
        stopped = []
        for level in reversed(_levels([s for s in SERVICES if s.name in chosen])):
            procs = []
            for svc in level:
                found = self._processes(svc)
                if found:
                    stopped.append(svc.name)
                    self.report(svc.name, "stopping")
                procs.extend(found)
            process.terminate(procs)
            for svc in level:
                self.cfg.pid_file(svc.name).unlink(missing_ok=True)
        if names is None:  # everything: sweep whatever else carries our tag or works in our state dir
            left = {p.pid: p for p in (*process.tagged(self.ctx.stack_id), *self.strays())}
            process.terminate(left.values())
        if reset:
            for svc in SERVICES:
                if svc.name in chosen:
                    svc.reset(self.cfg)
        return stopped


    def strays(self) -> list:
        """Processes of this stack that no pid file or tag accounts for any more: the stack's
        Java or Python programs working in its state dir."""
        programs = [sys.executable]
        try:
            programs.append(self.ctx.java.executable)
        except SetupError:  # no Java here: no JVM of ours either
            pass
        return process.strays(self.cfg.state_dir, programs)


def _levels(services: list[Service]) -> list[list[Service]]:
    """Group services by dependency depth (level 0 requires nothing selected)."""
    names = {s.name for s in services}
    depth: dict[str, int] = {}

    def d(svc: Service) -> int:
        if svc.name not in depth:
            depth[svc.name] = 1 + max((d(by_name(r)) for r in svc.requires if r in names), default=-1)
        return depth[svc.name]

    levels: dict[int, list[Service]] = {}
    for svc in services:
        levels.setdefault(d(svc), []).append(svc)
    return [levels[k] for k in sorted(levels)]


def _safe_ready(svc: Service, ctx: StackContext) -> bool:
    try:
        return bool(svc.ready(ctx))
    except Exception:
        return False


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def status_dicts(statuses: list[ServiceStatus]) -> list[dict]:
    return [asdict(s) for s in statuses]


__all__ = ["Stack", "StackError", "ServiceStatus"]
