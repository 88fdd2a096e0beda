"""Tracking in the streaming job (issue 19): the same object in a camera's frames keeps one
track id (d:tid, argus:tracks), and a driver killed with kill -9 resumes the same tracks
from the tracking query's checkpoint."""

from __future__ import annotations

from confluent_kafka import Producer
from stream_checks import one_partition_job, wait_while_running

from argus.live.launcher import StreamJob
from argus.live.message import FrameMessage
from argus.media.codec import encode_jpeg
from argus.media.images import sample_frames
from argus.store import DetectionStore

T0 = 1_795_000_000_000


def send(cfg, topic: str, camera: str, seqs) -> None:
    """The same photo as frames ``seqs`` of ``camera``, 0.5 s apart in capture time (a still
    scene: the person in it is one object throughout)."""
    producer = Producer({"bootstrap.servers": cfg.kafka_bootstrap})
    image = encode_jpeg(sample_frames(1, (480, 640))[0])
    for seq in seqs:
        msg = FrameMessage(camera, T0 + 500 * seq, seq, 640, 480, image)
        producer.produce(topic, key=msg.key, value=msg.jpeg, headers=msg.headers())
    assert producer.flush(30) == 0


def track_ids(store: DetectionStore, camera: str, seq: int) -> list[int | None]:
    frame = store.frame(camera, T0 + 500 * seq, seq)
    return [] if frame is None else [d["track_id"] for d in frame["detections"] if d["class_name"] == "person"]


def test_a_camera_s_person_keeps_one_track_and_a_killed_driver_resumes_it(stack, cfg, unique, tmp_path):
    topic, spec = one_partition_job(cfg, "track", unique, camera_models={"*": "ssdlite-person"}, tracking=True)
    camera = f"trk-{unique}"
    store = DetectionStore.from_config(cfg)
    store.ensure_tables()
    send(cfg, topic, camera, range(6))
    job = StreamJob(spec, cfg, tmp_path / "first.log").start()
    try:
        wait_while_running(lambda: all(track_ids(store, camera, s) and None not in track_ids(store, camera, s)
                                       for s in range(1, 6)), job, 300, "frames 1-5 tracked")
        first = {tid for s in range(1, 6) for tid in track_ids(store, camera, s)}
        assert len(first) == 1, first  # one person, one track
        assert track_ids(store, camera, 0) == [None]  # not confirmed on its first sighting
    finally:
        job.kill()
    # kill -9 done; a new driver resumes both queries from their checkpoints
    send(cfg, topic, camera, range(6, 9))
    job = StreamJob(spec, cfg, tmp_path / "second.log").start()
    try:
        wait_while_running(lambda: all(track_ids(store, camera, s) for s in range(6, 9))
                           and all(None not in track_ids(store, camera, s) for s in range(6, 9)), job, 300,
                           "frames 6-8 tracked after the restart")
        # frame 6 is no first sighting: the tracker came back with its state, not afresh
        assert {tid for s in range(6, 9) for tid in track_ids(store, camera, s)} == first
    finally:
        job.kill()
    (track,) = [t for t in store.tracks(camera) if t["track_id"] in first]
    assert [p[1] for p in track["path"]] == list(range(1, 9)) and track["class_name"] == "person"
    assert (track["first_ms"], track["last_ms"]) == (T0 + 500, T0 + 4000)
