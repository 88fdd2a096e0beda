"""Bring the local stack up and down, and report on it.

``up`` starts services in parallel, each as soon as the services it requires are ready;
a service that is already running and ready is left alone, so ``up`` twice is harmless.
``down`` stops dependents first, then sweeps any process still tagged with this stack.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from argus.config import ArgusConfig
from argus.jvm import SetupError, fetch_jars
from argus.stack import process
from argus.stack.service import Service, StackContext
from argus.stack.services import SERVICES, by_name, resolve


class StackError(RuntimeError):
    """One or more services could not be started; the message names each and its log."""


@dataclass
class ServiceStatus:
    name: str
    group: str
    state: str  # ready | starting | stopped | dead
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
    def pid(self, svc: Service) -> int | None:
        return process.live_pid(self.cfg.pid_file(svc.name))

    def status(self, names: Iterable[str] | None = None) -> list[ServiceStatus]:
        out = []
        for svc in resolve(names, with_requirements=False):
            pid = self.pid(svc)
            healthy = False
            if pid is not None:
                healthy = _safe_ready(svc, self.ctx)
                state = "ready" if healthy else "starting"
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
                if self.pid(svc) is not None and _safe_ready(svc, self.ctx):
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
            if self.pid(svc) is not None:
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

    def _start(self, svc: Service) -> None:
        log = self.cfg.log_file(svc.name)
        stale = self.pid(svc)
        if stale is not None:  # running but not healthy: restart it cleanly
            process.terminate(self._processes(svc))
        self.report(svc.name, "starting")
        try:
            svc.prepare(self.ctx)
        except SetupError:
            raise
        except Exception as exc:
            raise StackError(f"preparing {svc.name} failed: {exc} (log: {log})") from exc
        pid = process.spawn(
            svc.argv(self.ctx), env=svc.env(self.ctx), log_file=log,
            pid_file=self.cfg.pid_file(svc.name), cwd=self.cfg.state_dir,
            stack_id=self.ctx.stack_id, service=svc.name,
        )
        deadline = time.monotonic() + svc.startup_timeout
        while time.monotonic() < deadline:
            if process.live_pid(self.cfg.pid_file(svc.name)) is None:
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
        return process.service_processes(self.cfg.pid_file(svc.name), self.ctx.stack_id, svc.name)

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
        if names is None:  # everything: sweep whatever else carries our tag
            process.terminate(process.tagged(self.ctx.stack_id))
        if reset:
            for svc in SERVICES:
                if svc.name in chosen:
                    svc.reset(self.cfg)
        return stopped


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
