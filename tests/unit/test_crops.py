"""Crops and live frames: what part of the frame, how small, how often."""

import numpy as np

from argus.media.codec import decode_jpeg
from argus.store.crops import LiveViewThrottle, crop_jpegs, downscale


def test_a_crop_is_its_box_of_the_frame_scaled_down_to_fit():
    frame = np.zeros((80, 100, 3), np.uint8)
    frame[:40, :50] = 255  # the top-left quarter is white
    [white, edge] = crop_jpegs(frame, [(0.0, 0.0, 0.5, 0.5), (0.99, 0.99, 1.0, 1.0)], max_px=128)
    assert decode_jpeg(white).shape[:2] == (40, 50) and decode_jpeg(white).mean() > 240
    assert decode_jpeg(edge).shape[:2] == (1, 1)  # a box at the border still gives a pixel
    [small] = crop_jpegs(frame, [(0, 0, 1, 1)], max_px=20)
    assert decode_jpeg(small).shape[:2] == (16, 20)


def test_downscale_never_enlarges():
    frame = np.zeros((48, 64, 3), np.uint8)
    assert downscale(frame, 640) is frame and downscale(frame, 32).shape == (24, 32, 3)


def test_the_throttle_lets_one_frame_a_second_through_per_camera():
    now = [0.0]
    throttle = LiveViewThrottle(1.0, clock=lambda: now[0])
    assert throttle.take("a") and throttle.take("b") and not throttle.take("a")
    now[0] = 0.99
    assert not throttle.take("a")
    now[0] = 1.0
    assert throttle.take("a")
