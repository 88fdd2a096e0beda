"""The stack's service model without starting anything."""

from __future__ import annotations

import pytest

from argus.config import DEFAULT_PORTS, ArgusConfig
from argus.stack.manager import _levels
from argus.stack.services import SERVICES, resolve


def test_every_service_is_reachable_only_on_loopback_by_default(monkeypatch):
    monkeypatch.delenv("ARGUS_BIND_HOST", raising=False)
    assert ArgusConfig().host == "127.0.0.1"


def test_ports_are_distinct_and_overridable(monkeypatch):
    assert len(set(DEFAULT_PORTS.values())) == len(DEFAULT_PORTS)
    monkeypatch.setenv("ARGUS_PORT_KAFKA", "19092")
    cfg = ArgusConfig()
    assert cfg.port("kafka") == 19092
    assert cfg.kafka_bootstrap == "127.0.0.1:19092"


def test_state_and_cache_dirs_follow_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ARGUS_STATE_DIR", str(tmp_path / "state"))
    cfg = ArgusConfig()
    assert cfg.log_file("kafka") == tmp_path / "state" / "logs" / "kafka.log"
    assert cfg.pid_file("kafka") == tmp_path / "state" / "run" / "kafka.pid"


def test_every_service_declares_ports_known_to_the_config():
    for svc in SERVICES:
        for port in svc.ports:
            assert port in DEFAULT_PORTS, (svc.name, port)


def test_requirements_name_existing_services_and_come_first():
    order = [s.name for s in SERVICES]
    for svc in SERVICES:
        for req in svc.requires:
            assert order.index(req) < order.index(svc.name), (svc.name, req)


def test_resolve_by_group_adds_requirements():
    names = [s.name for s in resolve(["hbase-thrift"], with_requirements=True)]
    assert names == ["hbase", "hbase-thrift"]
    assert {s.group for s in resolve(["spark"], with_requirements=False)} == {"spark"}
    assert len(resolve(None, with_requirements=True)) == len(SERVICES)


def test_resolve_rejects_unknown_names_listing_the_choices():
    with pytest.raises(ValueError, match="unknown service 'hbsae'.*kafka"):
        resolve(["hbsae"], with_requirements=True)


def test_levels_put_dependents_after_their_requirements():
    levels = [[s.name for s in level] for level in _levels(list(SERVICES))]
    flat = {name: i for i, level in enumerate(levels) for name in level}
    for svc in SERVICES:
        for req in svc.requires:
            assert flat[req] < flat[svc.name]
