"""The monitor's sources, without services: dead letters' cameras and reasons, nvidia-smi's
output, driver starts and restarts, Spark's executors, process trees' CPU, the latency series."""

import subprocess
import sys
import time

from stream_fakes import MemoryStatusStore, keeper

from argus.detect.devices import parse_gpu_usage
from argus.live.deadletters import UNKNOWN_CAMERA, DeadLetterCounts, letter_camera, reason_kind
from argus.process import tree_usage
from argus.store.latency import series
from argus.supervision.executors import executor_rows
from argus.supervision.status import STARTS_KEPT


def test_a_dead_letter_belongs_to_its_key_else_its_camera_header_else_to_no_camera():
    assert letter_camera(b"gate-1", [("camera_id", b"other")]) == "gate-1"
    assert letter_camera(b"bad key#", [("camera_id", b"gate-2")]) == "gate-2"
    assert letter_camera(None, [("camera_id", b"gate-3")]) == "gate-3"
    assert letter_camera(b"\xff\xfe", None) == UNKNOWN_CAMERA and letter_camera(None, []) == UNKNOWN_CAMERA


def test_reasons_that_differ_only_in_numbers_are_one_kind():
    a = reason_kind([("dlq_reason", b"oversized payload: 3000001 bytes > 3000000"), ("dlq_stage", b"decode")])
    b = reason_kind([("dlq_reason", b"oversized payload: 5000000 bytes > 3000000"), ("dlq_stage", b"decode")])
    assert a == b == "decode: oversized payload: # bytes > #"
    assert reason_kind([]) == "no reason given"
    counts = DeadLetterCounts(0, 1)
    for reason in (a, b, "detect: model failed"):
        counts.add("gate-1", reason)
    assert counts.for_camera("gate-1") == {"count": 3, "reasons": [{"reason": a, "count": 2},
                                                                   {"reason": "detect: model failed", "count": 1}]}
    assert counts.for_camera("nobody") == {"count": 0, "reasons": []} and counts.read == 3


def test_nvidia_smi_rows_become_devices_and_unknown_values_none():
    out = "0, NVIDIA H200, 37, 20480, 143771\n1, NVIDIA H200, [N/A], 0, 143771\nbroken line\n"
    assert parse_gpu_usage(out) == [
        {"index": "0", "name": "NVIDIA H200", "utilization_pct": 37.0, "memory_used_mb": 20480.0,
         "memory_total_mb": 143771.0},
        {"index": "1", "name": "NVIDIA H200", "utilization_pct": None, "memory_used_mb": 0.0,
         "memory_total_mb": 143771.0}]
    assert parse_gpu_usage("") == []


def test_each_driver_start_is_recorded_and_later_starts_count_as_restarts():
    store = MemoryStatusStore()
    for _ in range(3):
        k, _lost = keeper(store)
        k.acquire()
        k.release("stopped")
    status = store.read("q")
    assert len(status.starts) == 3 and len({s["owner"] for s in status.starts}) == 3 and status.starts[-1]["owner"] == k.owner
    assert status.restarts(0) == 2 and status.restarts(status.starts[-1]["ms"] + 1) == 0
    for _ in range(STARTS_KEPT + 5):  # a crash loop does not grow the row without bound
        k, _lost = keeper(store)
        k.acquire()
        k.release("failed")
    assert len(store.read("q").starts) == STARTS_KEPT


def test_the_driver_records_its_spark_ui_in_its_lease():
    store = MemoryStatusStore()
    k, _lost = keeper(store)
    k.acquire()
    k.attach(None, app_id="app-20261204-0001", ui_url="http://127.0.0.1:4040")
    assert k.renew()  # a later heartbeat keeps them
    lease = store.read("q").lease
    assert (lease.app_id, lease.ui_url) == ("app-20261204-0001", "http://127.0.0.1:4040")


def test_executors_come_driver_first_then_by_number():
    rows = executor_rows([{"id": "10", "activeTasks": 1, "extra": 5}, {"id": "driver"}, {"id": "2"}])
    assert [r["id"] for r in rows] == ["driver", "2", "10"] and "extra" not in rows[1] and rows[2]["activeTasks"] == 1


def test_a_process_trees_cpu_counts_its_children():
    busy = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'while True: pass'])"
    proc = subprocess.Popen([sys.executable, "-c", busy])
    try:
        time.sleep(0.5)
        first = tree_usage(proc.pid)
        time.sleep(1.0)
        second = tree_usage(proc.pid)
        assert second[0] - first[0] > 0.3  # the spinning grandchild's CPU, not the waiting parent's
        assert second[1] > 1
    finally:
        subprocess.run(["pkill", "-P", str(proc.pid)])
        proc.kill()
        proc.wait()
    assert tree_usage(proc.pid) is None


def test_the_series_puts_each_frame_in_its_bucket_and_latency_over_all_cameras():
    rows = {"a": [{"captured": 1000, "written": 1100}, {"captured": 1999, "written": 2299}, {"captured": 500}],
            "b": [{"captured": 3999, "written": 4049}, {"captured": 9000}]}
    out = series(rows, 1000, 5000, buckets=4)
    assert out["start_ms"] == [1000, 2000, 3000, 4000] and out["step_ms"] == 1000
    assert out["fps"] == {"a": [2.0, 0.0, 0.0, 0.0], "b": [0.0, 0.0, 1.0, 0.0]}  # 500 and 9000: outside
    assert out["total_fps"] == [2.0, 0.0, 1.0, 0.0]
    assert out["p50_ms"] == [200.0, None, 50.0, None] and out["p99_ms"][0] == 298.0
