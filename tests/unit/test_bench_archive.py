"""argus bench archive's plan and arithmetic, with the runs faked (the real ones need the stack)."""

from __future__ import annotations

import pytest

from argus.bench import archive
from argus.cli.main import main


def test_runs_interleave_bare_and_job_and_reverse_every_other_round():
    assert archive.run_order([1, 2], 2) == [
        ("bare", 1), ("job", 1), ("bare", 2), ("job", 2),
        ("job", 2), ("bare", 2), ("job", 1), ("bare", 1)]
    assert archive.run_order([1, 2], 1) == [("bare", 1), ("job", 1), ("bare", 2), ("job", 2)]
    with pytest.raises(ValueError, match="repeats must be at least 1"):
        archive.run_order([1, 2], 0)


@pytest.fixture
def drifting_machine(monkeypatch):
    """Fake runs on a machine that slows down 10% per measurement: the job always does 90%
    of bare, and n workers do n times one worker's frames/s."""
    calls = []

    def speed():
        calls.append(None)
        return 0.9 ** len(calls)

    monkeypatch.setattr(archive, "_archive", lambda cfg, recordings, seconds: [])
    monkeypatch.setattr(archive, "bare_decode_detect",
                        lambda layout, model, rate, window, batch, workers: {"workers": workers,
                                                                             "fps": 20.0 * workers * speed()})
    monkeypatch.setattr(archive, "_job_run",
                        lambda cfg, n, *a: {"executors": n, "fps": 18.0 * n * speed()})
    return calls


def test_ratios_are_of_means_over_interleaved_runs(drifting_machine):
    result = archive.bench_archive([1, 2], cfg=object(), repeats=2)
    assert len(drifting_machine) == 8 and len(result["runs"]) == 4 and len(result["bare_runs"]) == 4
    assert result["fps"]["1"] == pytest.approx(sum(r["fps"] for r in result["runs"] if r["executors"] == 1) / 2,
                                               abs=1e-3)
    # interleaved ABBA: the drift nearly cancels, the ratios stay near the machine's 0.9 and 2
    assert result["efficiency"] == pytest.approx(0.9, abs=0.03)
    assert result["speedup"] == pytest.approx(2.0, rel=0.1)
    assert result["bare_speedup"] == pytest.approx(2.0, rel=0.1)


def test_cli_refuses_zero_repeats_before_running_anything(monkeypatch, capsys):
    monkeypatch.setattr(archive, "bench_archive", lambda *a, **k: pytest.fail("nothing may run"))
    assert main(["bench", "archive", "--repeats", "0"]) == 2
    assert "repeats must be at least 1" in capsys.readouterr().err

