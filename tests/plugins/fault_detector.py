"""A detector backend for fault tests (ARGUS_DETECTOR_PLUGINS=fault_detector): detects
nothing, and kills its Python process on a white frame, as a decoder segfault or an
out-of-memory kill would. Nothing in Python can catch that: only isolating the record can."""

from __future__ import annotations

import os

import numpy as np

from argus.detect import backends


class CrashOnWhite:
    def __init__(self, name: str, input_size: tuple[int, int]):
        self.name, self.input_size = name, input_size

    def preprocess(self, frames):
        return frames, len(frames)

    def infer(self, batch):
        if any(float(np.mean(frame)) > 240 for frame in batch):
            os._exit(134)  # what SIGABRT in native code looks like to Spark
        return batch

    def postprocess(self, raw, meta, score_threshold, iou_threshold, max_detections):
        return [[] for _ in range(meta)]


@backends.register("test-crash-on-white")
def _crash_on_white(spec, threads):
    return CrashOnWhite(spec.name, spec.input_size)
