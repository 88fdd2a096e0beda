"""Multi-camera ground scenes for the simulator, with the truth written beside the video.

People walk on a flat ground plane (metres east and north of a reference point), seen by
several virtual pinhole cameras placed around it with known poses. Each camera's clip is
rendered from the same world: the ground (a real texture photo) warped through the
camera's ground homography, and each person (cut from a real photo) drawn upright at the
image point of their feet, as tall as 1.8 m is at that distance, far ones first.

Written into the scene's folder:

- ``<camera>.mp4``: each camera's H.264 clip (what ``argus ingest`` plays);
- ``cameras.yaml``: the camera registry for it: position, ``heading_deg`` and a ``ground``
  mapping of image points with their coordinates, computed from the camera's true pose
  (``argus cameras calibrate`` reproduces it to millimetres);
- ``truth.jsonl``: one line per frame time: every person's id, ground position (metres and
  WGS84), and box in each camera that sees them (None where it does not) — the ground truth
  tracking and cross-camera association are measured against.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from argus.media.images import load_image, photo_path
from argus.track.ground import to_degrees

#: where the default scene is on Earth (a square in Paris)
ORIGIN = (48.8530, 2.3499)
#: a person's height (m), and the part of a person photo they fill
PERSON_HEIGHT_M = 1.8
PERSON_PHOTO, PERSON_CROP = "astronaut.png", (0.05, 1.0, 0.15, 0.75)  # y0, y1, x0, x1 fractions
GROUND_PHOTO = "gravel.png"
#: the ground texture photo covers this many metres across, repeated without end
GROUND_TILE_M = 8.0
#: a person counts as seen by a camera when this much of their box is in the frame
MIN_VISIBLE = 0.5
SKY_RGB = (170, 190, 215)


@dataclass(frozen=True)
class VirtualCamera:
    """A pinhole camera looking at the ground.

    :param east: / :param north: / :param height_m: its position (m from the origin).
    :param heading_deg: where it looks, clockwise from north.
    :param pitch_deg: how far it looks down from the horizon.
    :param fov_deg: its horizontal field of view.
    :param size: (height, width) of its frames in pixels.
    """

    id: str
    east: float
    north: float
    height_m: float
    heading_deg: float
    pitch_deg: float
    fov_deg: float = 55.0
    size: tuple[int, int] = (480, 640)

    def rotation(self) -> np.ndarray:
        """World (east, north, up) -> camera (right, down, forward)."""
        psi, theta = math.radians(self.heading_deg), math.radians(self.pitch_deg)
        forward = np.array([math.sin(psi) * math.cos(theta), math.cos(psi) * math.cos(theta), -math.sin(theta)])
        right = np.array([math.cos(psi), -math.sin(psi), 0.0])
        return np.stack([right, np.cross(forward, right), forward])

    def intrinsics(self) -> np.ndarray:
        h, w = self.size
        f = (w / 2) / math.tan(math.radians(self.fov_deg) / 2)
        return np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1.0]])

    def projection(self) -> np.ndarray:
        """3x4: world (east, north, up, 1) -> pixels (homogeneous)."""
        rot = self.rotation()
        centre = np.array([self.east, self.north, self.height_m])
        return self.intrinsics() @ np.hstack([rot, (-rot @ centre)[:, None]])

    def ground_homography(self) -> np.ndarray:
        """3x3: ground (east, north, 1) -> pixels (homogeneous)."""
        return self.projection()[:, [0, 1, 3]]

    def project(self, east: float, north: float, up: float = 0.0) -> tuple[float, float, float]:
        """(x px, y px, depth m) of a world point."""
        x, y, w = self.projection() @ np.array([east, north, up, 1.0])
        return x / w, y / w, w

    def horizon_row(self) -> float:
        """The image row of the horizon (rows below it see the ground)."""
        h, _ = self.size
        f = self.intrinsics()[0, 0]
        return h / 2 - f * math.tan(math.radians(self.pitch_deg))

    def ground_points(self, origin: tuple[float, float], grid: int = 3) -> list[dict[str, float]]:
        """A ``ground`` mapping for ``cameras.yaml``: a grid of image points (normalised) in the
        lower part of the frame, each with the coordinates of the ground it shows."""
        h, w = self.size
        top = max(self.horizon_row() + 0.15 * h, 0.45 * h)
        inverse = np.linalg.inv(self.ground_homography())
        points = []
        for y in np.linspace(top, 0.95 * h, grid):
            for x in np.linspace(0.1 * w, 0.9 * w, grid):
                east, north, s = inverse @ np.array([x, y, 1.0])
                lat, lon = to_degrees(east / s, north / s, *origin)
                points.append({"x": round(float(x / w), 4), "y": round(float(y / h), 4), "latitude": round(lat, 8),
                               "longitude": round(lon, 8)})
        return points


@dataclass(frozen=True)
class Walker:
    """A person walking a closed path (waypoints in metres) at ``speed_mps``, from ``offset_m``."""

    id: int
    waypoints: tuple[tuple[float, float], ...]
    speed_mps: float = 1.3
    offset_m: float = 0.0

    def position(self, t_s: float) -> tuple[float, float]:
        points = [*self.waypoints, self.waypoints[0]]
        legs = [math.dist(a, b) for a, b in zip(points, points[1:])]
        along = (self.offset_m + self.speed_mps * t_s) % sum(legs)
        for (a, b), length in zip(zip(points, points[1:]), legs):
            if along <= length and length > 0:
                f = along / length
                return a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f
            along -= length
        return points[-1]


@dataclass(frozen=True)
class Scene:
    """Cameras and walkers on the ground around ``origin`` (lat, lon)."""

    cameras: tuple[VirtualCamera, ...]
    walkers: tuple[Walker, ...]
    origin: tuple[float, float] = ORIGIN
    extra: dict[str, Any] = field(default_factory=dict)


def plaza(cameras: int = 3, people: int = 4) -> Scene:
    """The default scene: a 20 m plaza watched from its corners by up to four cameras 5 m
    up, whose views overlap in the middle, crossed by ``people`` walking loops."""
    poses = [(-12, -12, 45), (12, -12, 315), (12, 12, 225), (-12, 12, 135)]
    cams = tuple(VirtualCamera(f"plaza-{i}", e, n, 5.0, heading, 20.0) for i, (e, n, heading) in
                 enumerate(poses[:cameras]))
    loops = [((-8, -6), (8, -6), (8, 6), (-8, 6)), ((-6, 8), (6, -8)), ((7, 7), (-7, -7), (-7, 5)),
             ((0, -9), (9, 0), (0, 9), (-9, 0))]
    walkers = tuple(Walker(i, loops[i % len(loops)], 1.1 + 0.15 * (i % 3), offset_m=3.0 * i) for i in range(people))
    return Scene(cams, walkers)


def _person_sprite() -> np.ndarray:
    img = load_image(photo_path(PERSON_PHOTO))
    y0, y1, x0, x1 = PERSON_CROP
    h, w = img.shape[:2]
    return img[int(y0 * h):int(y1 * h), int(x0 * w):int(x1 * w)]


def _ground(camera: VirtualCamera, texture: np.ndarray) -> np.ndarray:
    """The camera's view of the textured ground, sky above the horizon."""
    import cv2

    h, w = camera.size
    th, tw = texture.shape[:2]
    # texture pixel (u, v) -> ground (east, north), north up; the photo wraps around
    to_ground = np.array([[GROUND_TILE_M / tw, 0, 0], [0, -GROUND_TILE_M / th, 0], [0, 0, 1.0]])
    frame = cv2.warpPerspective(texture, camera.ground_homography() @ to_ground, (w, h), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_WRAP)
    frame[:max(0, min(h, int(math.ceil(camera.horizon_row())) + 1))] = SKY_RGB
    return frame


def person_box(camera: VirtualCamera, east: float, north: float, aspect: float) -> tuple[float, ...] | None:
    """A person's box (x1, y1, x2, y2 in pixels) in ``camera``, None if behind it."""
    fx, fy, depth = camera.project(east, north, 0.0)
    _, hy, _ = camera.project(east, north, PERSON_HEIGHT_M)
    if depth <= 0.5:
        return None
    height = fy - hy
    width = height * aspect
    return fx - width / 2, hy, fx + width / 2, fy


def visible_box(box: Sequence[float] | None, size: tuple[int, int]) -> list[float] | None:
    """The normalised box clipped to the frame, if at least :data:`MIN_VISIBLE` of it is in it."""
    if box is None:
        return None
    h, w = size
    x1, y1, x2, y2 = box
    cx1, cy1, cx2, cy2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
    inside = max(0, cx2 - cx1) * max(0, cy2 - cy1)
    if inside < MIN_VISIBLE * max(1e-9, (x2 - x1) * (y2 - y1)):
        return None
    return [round(float(v), 5) for v in (cx1 / w, cy1 / h, cx2 / w, cy2 / h)]


def render(camera: VirtualCamera, ground: np.ndarray, sprite: np.ndarray,
           people: Sequence[tuple[int, float, float]]) -> tuple[np.ndarray, dict[int, list[float] | None]]:
    """One frame of ``camera``: the ground and each person (id, east, north), far ones first;
    and each person's visible box (normalised), None where not seen."""
    import cv2

    frame = ground.copy()
    h, w = camera.size
    aspect = sprite.shape[1] / sprite.shape[0]
    placed = []
    for pid, east, north in people:
        box = person_box(camera, east, north, aspect)
        placed.append((camera.project(east, north)[2], pid, box))
    boxes = {}
    for _, pid, box in sorted(placed, key=lambda p: -p[0]):
        boxes[pid] = visible_box(box, camera.size)
        if box is None or boxes[pid] is None:
            continue
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        if x2 - x1 < 2 or y2 - y1 < 2:
            boxes[pid] = None
            continue
        scaled = cv2.resize(sprite, (x2 - x1, y2 - y1), interpolation=cv2.INTER_AREA)
        sx1, sy1, sx2, sy2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
        frame[sy1:sy2, sx1:sx2] = scaled[sy1 - y1:sy2 - y1, sx1 - x1:sx2 - x1]
    return frame, boxes


def make_scene(folder: Path, scene: Scene | None = None, seconds: float = 20.0, fps: int = 10,
               rate_hz: float = 2.0) -> Path:
    """Render ``scene`` (default :func:`plaza`) into ``folder``: a clip per camera,
    ``cameras.yaml`` and ``truth.jsonl``; returns the registry's path."""
    import av
    import yaml

    scene = scene or plaza()
    folder.mkdir(parents=True, exist_ok=True)
    texture = load_image(photo_path(GROUND_PHOTO))
    sprite = _person_sprite()
    grounds = {c.id: _ground(c, texture) for c in scene.cameras}
    outputs, streams = {}, {}
    for cam in scene.cameras:
        out = av.open(str(folder / f"{cam.id}.partial.mp4"), "w")
        stream = out.add_stream("libx264", rate=fps)
        stream.height, stream.width = cam.size
        stream.pix_fmt, stream.options = "yuv420p", {"preset": "veryfast", "crf": "23"}
        stream.codec_context.gop_size = fps
        outputs[cam.id], streams[cam.id] = out, stream
    with open(folder / "truth.jsonl", "w") as truth:
        for i in range(int(seconds * fps)):
            t = i / fps
            people = [(w.id, *w.position(t)) for w in scene.walkers]
            views = {}
            for cam in scene.cameras:
                frame, boxes = render(cam, grounds[cam.id], sprite, people)
                views[cam.id] = boxes
                for packet in streams[cam.id].encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    outputs[cam.id].mux(packet)
            objects = []
            for pid, east, north in people:
                lat, lon = to_degrees(east, north, *scene.origin)
                objects.append({"id": pid, "class": "person", "east": round(east, 3), "north": round(north, 3),
                                "latitude": round(lat, 8), "longitude": round(lon, 8),
                                "views": {cam: views[cam][pid] for cam in views}})
            truth.write(json.dumps({"t_ms": int(round(t * 1000)), "objects": objects}) + "\n")
    for cam in scene.cameras:
        for packet in streams[cam.id].encode():
            outputs[cam.id].mux(packet)
        outputs[cam.id].close()
        (folder / f"{cam.id}.partial.mp4").rename(folder / f"{cam.id}.mp4")
    registry = {"cameras": [{
        "id": cam.id, "url": f"{cam.id}.mp4", "rate_hz": rate_hz, "realtime": True, "loop": True,
        **dict(zip(("latitude", "longitude"), (round(v, 8) for v in to_degrees(cam.east, cam.north, *scene.origin)))),
        "heading_deg": cam.heading_deg, "ground": cam.ground_points(scene.origin)} for cam in scene.cameras]}
    path = folder / "cameras.yaml"
    path.write_text("# made by argus.live.scenes: cameras of a simulated ground scene (truth in truth.jsonl)\n"
                    + yaml.safe_dump(registry, sort_keys=False))
    return path


def read_truth(folder: Path) -> list[dict[str, Any]]:
    """``truth.jsonl`` of a scene, one dict per frame time."""
    return [json.loads(line) for line in (folder / "truth.jsonl").read_text().splitlines() if line]
