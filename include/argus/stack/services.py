"""The services of the local stack, in start order, and selection by name or group."""

from __future__ import annotations

from collections.abc import Iterable

from argus.stack.airflow import AIRFLOW_SERVICES
from argus.stack.hbase import HBaseService, HBaseThrift2Service, HBaseThriftService
from argus.stack.hdfs import DataNodeService, NameNodeService
from argus.stack.kafka import KafkaService
from argus.stack.service import Service
from argus.stack.spark import SparkMasterService, SparkWorkerService

SERVICES: tuple[Service, ...] = (
    KafkaService(),
    HBaseService(),
    HBaseThriftService(),
    HBaseThrift2Service(),
    NameNodeService(),
    DataNodeService(),
    SparkMasterService(),
    SparkWorkerService(),
    *AIRFLOW_SERVICES,
)
GROUPS: tuple[str, ...] = tuple(dict.fromkeys(s.group for s in SERVICES))


def by_name(name: str) -> Service:
    for svc in SERVICES:
        if svc.name == name:
            return svc
    raise KeyError(name)


def resolve(names: Iterable[str] | None, *, with_requirements: bool) -> list[Service]:
    """Services named directly or by group (all when ``names`` is None), in start order,
    plus everything they require when ``with_requirements``."""
    if names is None:
        return list(SERVICES)
    wanted: set[str] = set()
    for name in names:
        matched = [s.name for s in SERVICES if name in (s.name, s.group)]
        if not matched:
            choices = ", ".join([*GROUPS, *(s.name for s in SERVICES if s.name not in GROUPS)])
            raise ValueError(f"unknown service {name!r}; choose from: {choices}")
        wanted.update(matched)
    if with_requirements:
        todo = list(wanted)
        while todo:
            for req in by_name(todo.pop()).requires:
                if req not in wanted:
                    wanted.add(req)
                    todo.append(req)
    return [s for s in SERVICES if s.name in wanted]
