"""How many CPU threads a detector process takes."""

from __future__ import annotations

import os

from argus.detect.devices import cpu_threads


def test_threads_follow_the_environment_then_the_machine(monkeypatch):
    monkeypatch.setenv("ARGUS_CPU_THREADS", "3")
    assert cpu_threads() == 3
    monkeypatch.setenv("ARGUS_CPU_THREADS", "0")
    assert cpu_threads() == 1
    monkeypatch.delenv("ARGUS_CPU_THREADS")
    assert cpu_threads() == (os.cpu_count() or 1)  # no Spark task in this process
