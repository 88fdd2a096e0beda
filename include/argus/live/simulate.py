"""The video stream simulator (the talk's "video stream simulator").

Without a video of your own, it makes short H.264 clips with PyAV from real photos: a
background photo slowly panned and zoomed, with people and vehicles cut from other photos
moving across it. N virtual cameras then play those clips in real time, looping, through
the same ingest path as real cameras.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from argus.media.images import load_image, photo_path

CLIP_SECONDS = 8
CLIP_FPS = 15
CLIP_SIZE = (480, 640)  # height, width
#: (background photo, moving object photo, object crop box y0, y1, x0, x1 as fractions)
SCENES = (
    ("rocket.jpg", "astronaut.png", (0.0, 1.0, 0.0, 0.75)),
    ("coffee.png", "motorcycle_left.png", (0.1, 0.95, 0.0, 1.0)),
    ("chelsea.png", "camera.png", (0.0, 1.0, 0.1, 0.8)),
)


def _resize(img: np.ndarray, height: int, width: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(img).resize((width, height), Image.BILINEAR))


def make_clip(path: Path, scene: int = 0, seconds: int = CLIP_SECONDS, fps: int = CLIP_FPS,
              size: tuple[int, int] = CLIP_SIZE, gop: int = CLIP_FPS) -> Path:
    """Write an H.264 MP4 of one synthetic scene; returns its path."""
    import av

    bg_name, obj_name, (y0, y1, x0, x1) = SCENES[scene % len(SCENES)]
    height, width = size
    bg = _resize(load_image(photo_path(bg_name)), int(height * 1.3), int(width * 1.3))
    obj = load_image(photo_path(obj_name))
    oh, ow = obj.shape[:2]
    obj = obj[int(y0 * oh):int(y1 * oh), int(x0 * ow):int(x1 * ow)]
    obj_h = int(height * 0.7)
    obj = _resize(obj, obj_h, max(1, int(obj.shape[1] * obj_h / obj.shape[0])))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial.mp4")
    n = seconds * fps
    with av.open(str(tmp), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = gop
        stream.options = {"preset": "veryfast", "crf": "23"}
        for i in range(n):
            t = i / max(1, n - 1)
            # pan and zoom over the background
            zoom = 1.0 + 0.2 * np.sin(np.pi * t)
            ch, cw = int(height * 1.3 / zoom), int(width * 1.3 / zoom)
            top = int((bg.shape[0] - ch) * (0.5 + 0.4 * np.sin(2 * np.pi * t)) / 1.0 * 0.5)
            left = int((bg.shape[1] - cw) * t)
            frame = _resize(bg[top:top + ch, left:left + cw], height, width).copy()
            # the object walks across the scene
            ox = int(-obj.shape[1] + (width + obj.shape[1]) * t)
            oy = height - obj.shape[0] - 10
            sx0, sx1 = max(0, ox), min(width, ox + obj.shape[1])
            if sx1 > sx0:
                frame[oy:oy + obj.shape[0], sx0:sx1] = obj[:, sx0 - ox:sx1 - ox]
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    tmp.rename(path)
    return path


def ensure_clips(folder: Path, count: int = len(SCENES)) -> list[Path]:
    """The simulator's clips, made once and cached."""
    return [p if (p := folder / f"scene-{i}.mp4").exists() else make_clip(p, i) for i in range(count)]


def simulated_cameras(n: int, rate_hz: float, clips: list[Path], models: list[str] | None = None,
                      prefix: str = "sim") -> list:
    """``n`` virtual cameras playing the clips in real time, in a loop, round-robin over models."""
    from argus.live.cameras import CameraSpec

    return [CameraSpec(id=f"{prefix}-{i:03d}", url=str(clips[i % len(clips)]), rate_hz=rate_hz,
                       latitude=48.85 + i * 0.001, longitude=2.35 + i * 0.001,
                       model=models[i % len(models)] if models else None, realtime=True, loop=True)
            for i in range(n)]
