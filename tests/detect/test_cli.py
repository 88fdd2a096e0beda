"""`argus detect` and `argus bench detector` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys

from argus.media.images import photo_path

ARGUS = [sys.executable, "-m", "argus.cli"]


def run(*args, timeout=600):
    return subprocess.run([*ARGUS, *args], capture_output=True, text=True, timeout=timeout)


def test_detect_prints_json_and_saves_an_annotated_image(tmp_path):
    out = tmp_path / "annotated.jpg"
    proc = run("detect", str(photo_path("astronaut.png")), "--model", "ssdlite-person", "--json", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    (result,) = json.loads(proc.stdout)
    assert result["model"] == "ssdlite-person"
    assert result["detections"][0]["class_name"] == "person" and result["detections"][0]["score"] >= 0.8
    from PIL import Image

    with Image.open(out) as img:
        assert img.size == (512, 512)


def test_detect_rejects_what_it_cannot_use(tmp_path):
    not_image = tmp_path / "frame.jpg"
    not_image.write_bytes(b"definitely not a jpeg")
    proc = run("detect", str(not_image))
    assert proc.returncode == 2 and "cannot read image" in proc.stderr and "frame.jpg" in proc.stderr
    proc = run("detect", str(photo_path("coffee.png")), "--model", "resnet-9000")
    assert proc.returncode == 2 and "unknown model 'resnet-9000'" in proc.stderr


def test_bench_detector_writes_the_documented_keys(tmp_path):
    out = tmp_path / "bench.json"
    proc = run("bench", "detector", "--model", "blazeface", "--batch", "2", "--seconds", "1", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert {"model", "batch", "images", "seconds", "img_per_s", "bare_img_per_s", "ratio"} <= set(result)
    assert result["model"] == "blazeface" and result["batch"] == 2 and result["images"] >= 2
    assert result["img_per_s"] > 0 and result["bare_img_per_s"] > 0 and result["images"] % 2 == 0
    # the two rates come from the image count and the two loops' timers, whose sum is
    # `seconds`: images / rate for each loop adds back up to it (within the rounding)
    loops_s = result["images"] / result["img_per_s"] + result["images"] / result["bare_img_per_s"]
    assert abs(loops_s - result["seconds"]) <= 0.01 * result["seconds"] + 0.002, result


def test_bench_detector_runs_processes_side_by_side(tmp_path):
    """``--processes``: N model processes at once, as N executors sharing a machine or a GPU."""
    out = tmp_path / "bench.json"
    proc = run("bench", "detector", "--model", "blazeface", "--batch", "2", "--seconds", "1",
               "--processes", "2", "--threads", "1", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["processes"] == 2 and result["backend"] == "tensorflow"
    assert result["images"] >= 4 and result["images"] % 2 == 0  # each process ran whole batches of 2
    assert result["img_per_s"] > 0 and result["bare_img_per_s"] > 0 and result["ratio"] > 0
    proc = run("bench", "detector", "--model", "blazeface", "--processes", "0")
    assert proc.returncode == 2 and "--processes must be at least 1" in proc.stderr
    proc = run("bench", "detector", "--model", "blazeface", "--threads", "0")
    assert proc.returncode == 2 and "--threads must be at least 1" in proc.stderr
