"""The ``argus`` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import fields
from pathlib import Path

# TensorFlow's C++ start-up chatter (oneDNN, CPU features) is noise for CLI users (TensorFlow
# reads the level from the environment when it loads)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from rich.markup import escape
from rich.table import Table

from argus.cli.output import console, err, print_alerting, print_status, reporter


def _services_arg(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def cmd_setup(args: argparse.Namespace) -> int:
    from argus.cli.setup import run_setup

    run_setup(console)
    return 0


def cmd_stack_up(args: argparse.Namespace) -> int:
    from argus.stack.manager import Stack

    stack = Stack(reporter=reporter())
    t0 = time.monotonic()
    console.print(f"[bold]argus stack up[/bold] (state: {stack.cfg.state_dir})")
    result = stack.up(_services_arg(args.services), reset=args.reset)
    console.print(f"[green]stack ready[/green] in {time.monotonic() - t0:.0f}s "
                  f"({len(result.started)} started, {len(result.already_running)} already running)")
    print_status(stack, _services_arg(args.services))
    return 0


def cmd_stack_down(args: argparse.Namespace) -> int:
    from argus.stack.manager import Stack

    stack = Stack(reporter=reporter())
    stopped = stack.down(_services_arg(args.services), reset=args.reset)
    console.print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}"
                  + (" (data deleted)" if args.reset else ""))
    return 0


def cmd_stack_status(args: argparse.Namespace) -> int:
    from argus.stack.manager import Stack, status_dicts

    from argus import alerting

    stack = Stack()
    statuses = stack.status(_services_arg(args.services))
    airflow_up = any(s.name == "airflow-api-server" and s.state == "ready" for s in statuses)
    channels = alerting.configured_channels(stack.cfg) if airflow_up else None
    if args.json:
        print(json.dumps({"state_dir": str(stack.cfg.state_dir), "services": status_dicts(statuses),
                          "alert_channels": channels, "undelivered_alerts": str(alerting.outbox_path(stack.cfg))},
                         indent=2))
    else:
        print_status(stack, _services_arg(args.services), statuses)
        print_alerting(stack.cfg, channels)
    return 0 if all(s.healthy for s in statuses) else 3


def cmd_demo(args: argparse.Namespace) -> int:
    if args.round_trip:
        from argus.cli.roundtrip import run_demo as run_round_trip

        return run_round_trip(console)
    from argus.cli.demo import run_demo

    return run_demo(console, measure_s=args.seconds)


def cmd_detect(args: argparse.Namespace) -> int:
    from pathlib import Path

    from argus.media.annotate import annotate
    from argus.detect import Detector
    from argus.media.images import load_image

    images = []
    for path in args.images:
        try:
            images.append(load_image(path))
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read image {path}: {exc}") from exc
    detector = Detector(args.model, batch_size=args.batch, score_threshold=args.threshold)
    results = detector.detect(images)
    if args.json:
        print(json.dumps([{"image": str(p), "model": detector.spec.name,
                           "detections": [d.to_dict() for d in dets]} for p, dets in zip(args.images, results)],
                         indent=2))
    else:
        for path, dets in zip(args.images, results):
            table = Table(title=f"{path} ({detector.spec.name})", title_justify="left")
            for col in ("class", "score", "box x1,y1,x2,y2"):
                table.add_column(col)
            for d in dets:
                table.add_row(d.class_name, f"{d.score:.3f}", ", ".join(f"{v:.3f}" for v in d.box))
            console.print(table if dets else f"{path}: nothing detected ({detector.spec.name})")
    if args.out:
        out = Path(args.out)
        for path, image, dets in zip(args.images, images, results):
            target = out / f"{Path(path).stem}.annotated.jpg" if len(images) > 1 or out.is_dir() else out
            written = annotate(image, dets, target)
            if not args.json:
                console.print(f"annotated: {written}")
    return 0


def _print_json(result: dict, out: str | None) -> int:
    """A benchmark's result on stdout, and in ``out`` when given (``--json OUT``)."""
    from pathlib import Path

    text = json.dumps(result, indent=2)
    if out:
        Path(out).write_text(text + "\n")
    print(text)
    return 0


def cmd_bench_detector(args: argparse.Namespace) -> int:
    from argus.bench.detector import bench_detector, bench_detector_processes

    if args.processes < 1:
        err.print(f"--processes must be at least 1, got {args.processes}")
        return 2
    if args.threads is not None and args.threads < 1:
        err.print(f"--threads must be at least 1, got {args.threads}")
        return 2
    if args.processes == 1 and args.threads is None:
        result = bench_detector(args.model, args.batch, args.seconds)
    else:  # N model processes at once, as N executors sharing a machine (or a GPU)
        threads = args.threads or max(1, (os.cpu_count() or 1) // args.processes)
        result = bench_detector_processes(args.model, args.batch, args.seconds, args.processes, threads)
    return _print_json(result, args.json)


def _tracker_flags(parser: argparse.ArgumentParser) -> None:
    """A flag per :class:`~argus.track.bytetrack.TrackerSettings` field (``--high-score`` ...)."""
    from argus.track.settings import TrackerSettings

    for f in fields(TrackerSettings):
        parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=type(f.default), default=None,
                            help=f"tracker setting (default {f.default})")


def cmd_bench_tracking(args: argparse.Namespace) -> int:
    from argus.bench.tracking import bench_tracking

    if not 1 <= args.cameras <= 4 or args.people < 1 or args.seconds <= 0 or args.rate <= 0 or args.batch < 1:
        raise ValueError("--cameras must be 1 to 4; --people, --seconds, --rate and --batch positive")
    from argus.track.settings import TrackerSettings

    given = {f.name: getattr(args, f.name) for f in fields(TrackerSettings) if getattr(args, f.name) is not None}
    with console.status(f"tracking the plaza scene's {args.cameras} camera(s) with {args.model or 'the default model'}"
                        " and with the true boxes"):
        result = bench_tracking(cameras=args.cameras, people=args.people, seconds=args.seconds, rate_hz=args.rate,
                                model=args.model, batch=args.batch, settings=TrackerSettings(**given))
    return _print_json(result, args.json)


def parse_time(value: str | None, now_ms: int | None = None) -> int | None:
    """ms since the epoch from an ISO-8601 time, a relative "-90s"/"-15m"/"-2h"/"-7d", or ms."""
    import datetime as dt
    import re

    if value is None:
        return None
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    rel = re.fullmatch(r"-(\d+(?:\.\d+)?)([smhd])", value.strip())
    if rel:
        return now_ms - int(float(rel.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[rel.group(2)] * 1000)
    if value.isdigit():
        return int(value)
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"cannot read time {value!r}: use ISO-8601 (2026-11-26T10:00), -15m, -2h or ms") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return int(parsed.timestamp() * 1000)


def cmd_search(args: argparse.Namespace) -> int:
    import datetime as dt

    from argus.store import DetectionStore

    store = DetectionStore.from_config()
    classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
    found = store.search(camera=args.camera, since=parse_time(args.since), until=parse_time(args.until),
                         classes=classes, min_score=args.min_score, limit=args.limit)
    if args.json:
        print(json.dumps([d.to_dict() for d in found], indent=2))
        return 0
    table = Table(title=f"{len(found)} detection(s), newest first", title_justify="left")
    for col in ("captured (UTC)", "camera", "seq", "class", "score", "box", "model", "source"):
        table.add_column(col)
    for d in found:
        when = dt.datetime.fromtimestamp(d.capture_ts_ms / 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        table.add_row(when, d.camera_id, str(d.seq), d.class_name, f"{d.score:.3f}",
                      ", ".join(f"{v:.3f}" for v in d.box), d.model, d.source)
    console.print(table)
    return 0


def cmd_hbase_create_tables(args: argparse.Namespace) -> int:
    from argus.store import DetectionStore

    created = DetectionStore.from_config().ensure_tables()
    console.print(f"created: {', '.join(created)}" if created else "all Argus tables exist")
    return 0


def cmd_hbase_reindex(args: argparse.Namespace) -> int:
    from argus.store import DetectionStore

    since, until = parse_time(args.since), parse_time(args.until)
    with console.status("indexing detections for the all-camera search") as status:
        n = DetectionStore.from_config().reindex(since, until, progress=lambda k: status.update(f"{k} indexed"))
    console.print(f"{n} detection(s) indexed in argus:detections_by_time")
    return 0


def _run_ingest_with_progress(cameras, args) -> int:
    import threading

    from rich.live import Live

    from argus.config import ArgusConfig
    from argus.live.ingest import KafkaFrameSink, run_ingest

    from argus.live.topics import ensure_topics

    cfg = ArgusConfig()
    bootstrap = args.bootstrap or cfg.kafka_bootstrap
    ensure_topics(bootstrap, args.topic, f"{args.topic}.dlq")
    _register_cameras(cameras)
    sink = KafkaFrameSink(bootstrap, args.topic)
    stop = threading.Event()
    t0 = time.monotonic()

    def render(run) -> Table:
        table = Table(title=f"ingest → {sink.topic}  ({time.monotonic() - t0:.0f}s)", title_justify="left")
        for col in ("camera", "decoded", "sent", "delivered", "failed", "reconnects", "last error"):
            table.add_column(col)
        for cam, st in run.stats.items():
            table.add_row(cam, str(st.decoded), str(st.sent), str(st.delivered), str(st.failed),
                          str(st.reconnects), st.last_error[:60])
        return table

    live = Live(console=console, refresh_per_second=2, transient=not sys.stdout.isatty())
    with live:
        run = run_ingest(cameras, sink, stop, seconds=args.seconds, on_tick=lambda r: live.update(render(r)))
    undelivered = sink.close()
    console.print(render(run))
    failed = sum(st.failed for st in run.stats.values()) + undelivered
    if failed:
        err.print(f"[red]{failed} frame(s) were not delivered to Kafka[/red]")
    return 1 if failed else 0


def _register_cameras(cameras) -> None:
    """Record the cameras in ``argus:cameras``; ingest goes on without HBase (it feeds Kafka),
    saying what it could not record."""
    from argus.live.cameras import register_cameras
    from argus.store import DetectionStore

    try:
        register_cameras(DetectionStore.from_config(), cameras)
    except Exception as exc:  # HBase down or unreachable: ingest does not need it
        err.print(f"[yellow]cameras not recorded in argus:cameras ({escape(str(exc))}); "
                  f"`argus cameras import` records them later[/yellow]")


def cmd_cameras_import(args: argparse.Namespace) -> int:
    from argus.live.cameras import camera_registry_path, load_cameras, register_cameras
    from argus.store import DetectionStore

    path = args.cameras or camera_registry_path()
    n = register_cameras(DetectionStore.from_config(), load_cameras(path))
    console.print(f"{n} camera(s) from {path} recorded in argus:cameras")
    return 0


def cmd_cameras_list(args: argparse.Namespace) -> int:
    from argus.live.cameras import TABLE_FIELDS
    from argus.store import DetectionStore

    cameras = DetectionStore.from_config().cameras()
    if args.json:
        print(json.dumps(cameras, indent=2))
        return 0
    table = Table(title=f"{len(cameras)} camera(s) in argus:cameras", title_justify="left")
    for col in ("camera", *TABLE_FIELDS):
        table.add_column(col)
    def cell(row: dict, name: str) -> str:
        if name == "ground" and row.get(name):  # the mapping's points, not their JSON
            try:
                return f"{len(json.loads(row[name]))} points"
            except ValueError:
                return "unreadable"
        return row.get(name, "")

    for camera, row in cameras.items():
        table.add_row(escape(camera), *(escape(cell(row, name)) for name in TABLE_FIELDS))
    console.print(table)
    return 0


def cmd_scene(args: argparse.Namespace) -> int:
    from argus.live.scenes import make_scene, plaza

    if not 1 <= args.cameras <= 4:
        raise ValueError("--cameras must be 1 to 4 (the plaza's corners)")
    if args.people < 1 or args.seconds <= 0 or args.fps < 1 or args.rate <= 0:
        raise ValueError("--people, --seconds, --fps and --rate must be positive")
    with console.status(f"rendering {args.cameras} camera(s), {args.people} people, {args.seconds:g} s"):
        registry = make_scene(Path(args.out), plaza(args.cameras, args.people), seconds=args.seconds, fps=args.fps,
                              rate_hz=args.rate)
    console.print(f"scene in {escape(str(registry.parent))}: argus ingest --cameras {escape(str(registry))}")
    return 0


def cmd_cameras_calibrate(args: argparse.Namespace) -> int:
    from argus.live.cameras import camera_registry_path, load_cameras
    from argus.track.ground import MAX_REPROJECTION_M, calibration_report

    path = args.cameras or camera_registry_path()
    cameras = [c for c in load_cameras(path) if not args.camera or c.id in args.camera]
    unknown = set(args.camera or ()) - {c.id for c in cameras}
    if unknown:
        raise ValueError(f"{path} has no camera {', '.join(sorted(unknown))}")
    limit = MAX_REPROJECTION_M if args.max_error_m is None else args.max_error_m
    report = calibration_report(cameras, max_error_m=limit)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        table = Table(title=f"image-to-ground mappings of {path} (refused over {limit:g} m)",
                      title_justify="left")
        for col in ("camera", "points", "RMS error m", "worst m", "verdict"):
            table.add_column(col)
        for row in report:
            worst = max(row["errors_m"]) if row["errors_m"] else None
            table.add_row(escape(row["camera"]), str(row["points"]),
                          "" if row["rms_error_m"] is None else f"{row['rms_error_m']:.3f}",
                          "" if worst is None else f"{worst:.3f}", escape(row["verdict"]))
        console.print(table)
    return 2 if any(not row["ok"] for row in report) else 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from argus.live.cameras import load_cameras

    return _run_ingest_with_progress(load_cameras(args.cameras), args)


def cmd_simulate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from argus.config import ArgusConfig
    from argus.live.simulate import ensure_clips, simulated_cameras

    if args.cameras < 1:
        raise ValueError("--cameras must be at least 1")
    if args.video:
        if not Path(args.video).is_file():
            raise ValueError(f"video {args.video} does not exist")
        clips = [Path(args.video)]
    else:
        with console.status("making simulator clips from real photos (first run only)"):
            clips = ensure_clips(ArgusConfig().cache_dir / "simulator")
    models = [m.strip() for m in args.models.split(",")] if args.models else None
    cameras = simulated_cameras(args.cameras, args.rate, clips, models)
    return _run_ingest_with_progress(cameras, args)


def cmd_bench_pipeline(args: argparse.Namespace) -> int:
    from argus.bench.live import bench_pipeline
    from argus.cli.settings import settings_from

    with console.status("benchmarking the pipeline (bare detector, drain, live latency)"):
        result = bench_pipeline(args.cameras, args.rate, args.seconds, model=args.model, batch=args.batch,
                                executors=args.executors, cores_per_executor=args.cores_per_executor,
                                task_cpus=args.task_cpus, trigger_seconds=args.trigger_seconds,
                                checkpoint=args.checkpoint, job_settings=settings_from(args, BENCH_PIPELINE_FLAGS))
    return _print_json(result, args.json)


def cmd_bench_console(args: argparse.Namespace) -> int:
    from argus.bench.console import bench_console

    result = bench_console(args.cameras, args.seconds, slice_s=args.slice, rate_hz=args.rate,
                           live_view_px=args.live_view_px, progress=lambda msg: err.print(msg, highlight=False))
    return _print_json(result, args.json)


def cmd_bench_search(args: argparse.Namespace) -> int:
    from argus.bench.search import bench_search

    with console.status(f"benchmarking the console's search over {args.rows} detection rows "
                        f"(namespace {args.namespace}; loaded once, then reused)"):
        result = bench_search(args.rows, args.cameras, span_s=int(args.span_hours * 3600), repeats=args.repeats,
                              seed=args.seed, baseline_rows=args.baseline_rows,
                              baseline_repeats=args.baseline_repeats, namespace=args.namespace, keep=args.keep)
    return _print_json(result, args.json)


def cmd_archive_put(args: argparse.Namespace) -> int:
    from pathlib import Path

    from argus.archive.layout import put
    from argus.archive.hdfs import webhdfs_client

    uploads = put([Path(p) for p in args.files], args.camera, webhdfs_client(),
                  start_ms=parse_time(args.start) if args.start else None, root=args.root)
    for u in uploads:
        console.print(f"{'[dim]kept[/dim]    ' if u.skipped else '[green]uploaded[/green]'} {u.source} -> {u.target} "
                      f"({u.bytes / 2**20:.1f} MiB)")
    return 0


def cmd_archive_reprocess(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from argus.config import ArgusConfig
    from argus.archive.reprocess import utc_day
    from argus.archive.launcher import ReprocessJobSpec, parse_line
    from argus.cli.settings import settings_from

    settings = settings_from(args, REPROCESS_FLAGS)
    for day in ("since", "until"):  # any ISO date the user types, as the spec's YYYY-MM-DD
        if day in settings:
            settings[day] = utc_day(settings[day])
    spec = ReprocessJobSpec(**settings)
    cfg = ArgusConfig()
    log = cfg.state_dir / "logs" / "batch_reprocess.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    proc = spec.start(cfg, log_path=log)
    summary = None
    with Progress(TextColumn("reprocessing"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                  TimeElapsedColumn(), console=err) as progress:
        task = progress.add_task("segments", total=None, info="starting Spark")
        for line in proc.stdout:
            parsed = parse_line(line)
            if parsed is None:
                continue
            kind, data = parsed
            if kind == "ARGUS_PROGRESS":
                progress.update(task, total=data["segments"], completed=data["segments_done"],
                                info=f"{data['frames']} frames, {data['fps']:.1f}/s")
            elif kind == "ARGUS_RESULT":
                summary = data
    code = proc.wait()
    if summary is None:
        err.print(f"[red]argus: the reprocessing job failed (exit {code}); its log: {log}[/red]")
        return 1
    print(json.dumps(summary, indent=2))
    for failure in summary["failures"]:
        err.print(f"[yellow]not processed: {failure['path']}: {failure['error']}[/yellow]")
    return 0 if code == 0 else 1


def cmd_bench_archive(args: argparse.Namespace) -> int:
    from argus.bench.archive import bench_archive, run_order

    executors = [int(n) for n in args.executors.split(",")]
    run_order(executors, args.repeats)  # a bad --repeats is refused before anything runs
    with console.status(f"benchmarking archive reprocessing on {executors} executor(s) and bare decode+detect"):
        result = bench_archive(executors, recordings=args.recordings, seconds=args.recording_seconds,
                               rate_hz=args.rate, window_s=args.window,
                               model=args.model, batch=args.batch, repeats=args.repeats)
    return _print_json(result, args.json)


def cmd_bench_doe(args: argparse.Namespace) -> int:
    from argus.bench.doe import TALK_FACTORS, bench_doe
    from argus.doe.cli import parse_factor

    factors = TALK_FACTORS
    if args.factor:
        parsed = [parse_factor(text) for text in args.factor]
        if any(f is None for _, f in parsed):
            err.print("[red]give each --factor a range: NAME=LOW:HIGH[:int][/red]")
            return 2
        factors = tuple(f for _, f in parsed)
    from argus.doe.spec import SweepError

    try:
        result = bench_doe(factors, seconds=args.seconds, latency_target=args.latency_target, repeats=args.repeats,
                           seed=args.seed, comparison_id=args.id, model=args.model, window_s=args.window,
                           cores=args.cores, progress=lambda msg: err.print(msg, highlight=False))
    except SweepError as exc:  # e.g. --id names a comparison of other factors
        err.print(f"[red]argus: {exc}[/red]")
        return 2
    return _print_json(result, args.json)


#: ``argus archive reprocess`` flags -> ReprocessJobSpec settings
REPROCESS_FLAGS = {"--since": "since", "--until": "until", "--cameras": "cameras", "--model": "model",
                   "--rate": "rate_hz", "--window": "window_s", "--batch": "batch_size", "--executors": "executors",
                   "--root": "archive_root", "--no-resume": "resume"}
#: ``argus bench pipeline`` flags -> StreamJobSpec settings of both measured jobs
BENCH_PIPELINE_FLAGS = {"--crop-px": "crop_px", "--live-view-px": "live_view_px"}


def build_parser() -> argparse.ArgumentParser:
    from argus.archive.launcher import ReprocessJobSpec
    from argus.archive.layout import ARCHIVE_ROOT
    from argus.cli.settings import add_settings
    from argus.live.launcher import StreamJobSpec
    from argus.live.message import FRAMES_TOPIC

    parser = argparse.ArgumentParser(prog="argus", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("setup", help="install what the stack needs (service jars from Maven Central)")
    p.set_defaults(func=cmd_setup)

    stack = sub.add_parser("stack", help="the local stack: Kafka, HBase, HDFS, Spark, Airflow on 127.0.0.1")
    ssub = stack.add_subparsers(dest="stack_command", required=True)
    svc_help = "comma-separated services or groups (kafka, hbase, hdfs, spark, airflow); default: all"
    p = ssub.add_parser("up", help="start services (those already running are left alone)")
    p.add_argument("--services", help=svc_help)
    p.add_argument("--reset", action="store_true", help="delete the services' data first (HDFS, Kafka, HBase, Airflow DB)")
    p.set_defaults(func=cmd_stack_up)
    p = ssub.add_parser("down", help="stop services; leaves no process behind")
    p.add_argument("--services", help=svc_help)
    p.add_argument("--reset", action="store_true", help="also delete the services' data")
    p.set_defaults(func=cmd_stack_down)
    p = ssub.add_parser("status", help="state, port and URL of each service (exit 3 if any is not ready)")
    p.add_argument("--services", help=svc_help)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_stack_status)

    p = sub.add_parser("detect", help="detect objects in image files")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--model", help="registry model (default: the registry's default)")
    p.add_argument("--threshold", type=float, help="score threshold (default: the model's)")
    p.add_argument("--batch", type=int, default=8, help="images per model call")
    p.add_argument("--json", action="store_true", help="print detections as JSON")
    p.add_argument("--out", help="save an annotated copy (a file, or a folder for several images)")
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser("ingest", help="decode cameras (RTSP URLs, video files) into the Kafka frames topic")
    p.add_argument("--cameras", required=True, help="camera registry YAML (cameras: [{id, url, rate_hz, ...}])")
    p.add_argument("--topic", default=FRAMES_TOPIC)
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (default: the local stack)")
    p.add_argument("--seconds", type=float, help="stop after this long (default: until Ctrl-C or the files end)")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("simulate", help="play N virtual cameras in real time into Kafka")
    p.add_argument("--cameras", type=int, default=3)
    p.add_argument("--rate", type=float, default=2.0, help="decoding rate per camera, Hz")
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--video", help="an H.264 video to play instead of the clips made from photos")
    p.add_argument("--models", help="comma-separated models, assigned to cameras round-robin")
    p.add_argument("--topic", default=FRAMES_TOPIC)
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (default: the local stack)")
    p.set_defaults(func=cmd_simulate)
    p = sub.add_parser("scene", help="render a multi-camera ground scene with its truth (tracking tests, "
                                     "benchmarks); play it with argus ingest --cameras DIR/cameras.yaml")
    p.add_argument("out", help="folder for the clips, cameras.yaml and truth.jsonl")
    p.add_argument("--cameras", type=int, default=3, help="cameras around the plaza (1-4)")
    p.add_argument("--people", type=int, default=4)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--fps", type=int, default=10, help="the clips' frame rate")
    p.add_argument("--rate", type=float, default=2.0, help="decoding rate the registry gives each camera, Hz")
    p.set_defaults(func=cmd_scene)

    cameras = sub.add_parser("cameras", help="the cameras table (argus:cameras)")
    csub = cameras.add_subparsers(dest="cameras_command", required=True)
    p = csub.add_parser("list", help="the cameras recorded in HBase, with their coordinates and model")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_cameras_list)
    p = csub.add_parser("calibrate", help="fit each camera's image-to-ground mapping (cameras.yaml 'ground') "
                                          "and report its reprojection error; exit 2 if one is unusable")
    p.add_argument("--cameras", help="camera registry (default: cameras.yaml / ARGUS_CAMERAS)")
    p.add_argument("--camera", action="append", help="only this camera (repeatable)")
    p.add_argument("--max-error-m", type=float, default=None, help="refuse a mapping whose worst point is off "
                                                                     "by more (m; default 2)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_cameras_calibrate)
    p = csub.add_parser("import", help="record a camera registry in HBase (ingest does it when it starts)")
    p.add_argument("--cameras", help="camera registry YAML (default: ARGUS_CAMERAS, else cameras.yaml)")
    p.set_defaults(func=cmd_cameras_import)

    p = sub.add_parser("search", help="search stored detections (newest first)")
    p.add_argument("--camera", help="one camera id (a range scan); default: all cameras")
    p.add_argument("--since", help="capture time from: ISO-8601, -15m, -2h, -7d or ms")
    p.add_argument("--until", help="capture time to (inclusive)")
    p.add_argument("--classes", help="comma-separated class names, e.g. person,car")
    p.add_argument("--min-score", type=float, default=0.0)
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_search)

    archive = sub.add_parser("archive", help="video archives on HDFS")
    asub = archive.add_subparsers(dest="archive_command", required=True)
    p = asub.add_parser("put", help="upload recordings (or folders of JPEG frames) into the archive layout")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--camera", required=True)
    p.add_argument("--start", help="recording start (ISO-8601 or ms); default: from the file")
    p.add_argument("--root", default=ARCHIVE_ROOT, help="archive root on HDFS")
    p.set_defaults(func=cmd_archive_put)
    p = asub.add_parser("reprocess", help="detect over archived recordings with Spark (resumable)")
    add_settings(p, ReprocessJobSpec, REPROCESS_FLAGS)
    p.set_defaults(func=cmd_archive_reprocess)

    hbase = sub.add_parser("hbase", help="HBase administration")
    hsub = hbase.add_subparsers(dest="hbase_command", required=True)
    p = hsub.add_parser("create-tables", help="create the argus namespace and tables (pre-split, TTLs)")
    p.set_defaults(func=cmd_hbase_create_tables)
    p = hsub.add_parser("reindex", help="index detections stored before argus:detections_by_time existed, so "
                                        "that a search over every camera finds them (idempotent)")
    p.add_argument("--since", help="captured since: ISO time, ms, or relative as --since=-7d (default: all)")
    p.add_argument("--until", help="captured until")
    p.set_defaults(func=cmd_hbase_reindex)

    bench = sub.add_parser("bench", help="benchmarks, JSON out")
    bsub = bench.add_subparsers(dest="bench_command", required=True)
    p = bsub.add_parser("detector", help="Detector path vs the bare model call, side by side")
    p.add_argument("--model", required=True)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seconds", type=float, default=20.0, help="measured time (after warm-up)")
    p.add_argument("--processes", type=int, default=1,
                   help="model processes running at once, e.g. executors sharing one GPU (images/s summed)")
    p.add_argument("--threads", type=int, help="CPU threads per process (default: the cores / --processes)")
    p.add_argument("--json", metavar="OUT", help="also write the result to this file")
    p.set_defaults(func=cmd_bench_detector)

    p = bsub.add_parser("tracking", help="the per-camera tracker on a simulated ground scene vs its truth "
                                         "(MOTA, IDF1, HOTA per camera), on a model's detections and on the true boxes")
    p.add_argument("--cameras", type=int, default=3, help="cameras of the plaza scene (1-4)")
    p.add_argument("--people", type=int, default=4)
    p.add_argument("--seconds", type=float, default=20.0, help="length of the scene")
    p.add_argument("--rate", type=float, default=2.0, help="decoding rate, Hz (frames tracked per second)")
    p.add_argument("--model", help="detector (default: the default model); 'truth': the true boxes only")
    p.add_argument("--batch", type=int, default=8)
    _tracker_flags(p)
    p.add_argument("--json", metavar="OUT", help="also write the result to this file")
    p.set_defaults(func=cmd_bench_tracking)

    p = bsub.add_parser("pipeline", help="live pipeline throughput and latency vs the bare detector")
    p.add_argument("--cameras", type=int, default=3)
    p.add_argument("--rate", type=float, default=2.0, help="per-camera decoding rate for the latency run, Hz")
    p.add_argument("--seconds", type=float, default=30.0, help="length of the live latency run")
    p.add_argument("--model", help="a model of the registry (default: its default model)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--executors", type=int, default=1)
    p.add_argument("--cores-per-executor", type=int, default=2,
                   help="cores of each executor")
    p.add_argument("--task-cpus", type=int, default=None,
                   help="cores of each task, its TensorFlow threads (default: all of its executor's); "
                        "fewer make more tasks per micro-batch")
    p.add_argument("--trigger-seconds", type=float, default=0.5, help="the streaming job's trigger interval")
    p.add_argument("--checkpoint", choices=("hdfs", "local"), default="hdfs",
                   help="where the job checkpoints: HDFS, or a local folder on the driver's host")
    add_settings(p, StreamJobSpec, BENCH_PIPELINE_FLAGS)
    p.add_argument("--json", metavar="OUT", help="also write the result to this file")
    p.set_defaults(func=cmd_bench_pipeline)

    p = bsub.add_parser("console", help="what a live wall of N cameras refreshing at 1 Hz costs the Airflow "
                                        "api-server, with and without the wall side by side")
    p.add_argument("--cameras", type=int, default=16, help="tiles of the wall, one bench camera each")
    p.add_argument("--seconds", type=float, default=60.0, help="measured time with the wall, and as long without")
    p.add_argument("--slice", type=float, default=10.0, help="the with/without slices alternate at this length, s")
    p.add_argument("--rate", type=float, default=2.0, help="frames rows per bench camera per second")
    p.add_argument("--live-view-px", type=int, default=StreamJobSpec.__dataclass_fields__["live_view_px"].default,
                   help="width of the bench cameras' live frames (default: the streaming job's)")
    p.add_argument("--json", metavar="OUT", help="also write the result to this file")
    p.set_defaults(func=cmd_bench_console)

    from argus.bench.search import BENCH_NAMESPACE

    p = bsub.add_parser("search", help="the console's search over synthetic detections (own namespace), "
                                       "p50/p95/p99 per query kind, and the old full-scan search side by side")
    p.add_argument("--rows", type=int, default=1_000_000, help="detection rows loaded (reused when already there)")
    p.add_argument("--cameras", type=int, default=200, help="cameras the rows are spread over")
    p.add_argument("--span-hours", type=float, default=168.0, help="time span the rows are spread over")
    p.add_argument("--repeats", type=int, default=30, help="timed queries of each kind (after one warm-up)")
    p.add_argument("--seed", type=int, default=18, help="seed of the data and of the query mix")
    p.add_argument("--baseline-rows", type=int, default=20_000,
                   help="rows of the sample the old full-scan search is timed on (0: skip it)")
    p.add_argument("--baseline-repeats", type=int, default=5, help="old/new pairs timed on the sample")
    p.add_argument("--namespace", default=BENCH_NAMESPACE, help="the bench's own HBase namespace")
    keep = p.add_mutually_exclusive_group()
    keep.add_argument("--keep", dest="keep", action="store_true", default=True,
                      help="keep the loaded rows for the next run (default)")
    keep.add_argument("--drop", dest="keep", action="store_false",
                      help="drop the bench namespaces (and their rows) after the run")
    p.add_argument("--json", metavar="OUT", help="also write the result to this file")
    p.set_defaults(func=cmd_bench_search)

    p = bsub.add_parser("archive", help="archive reprocessing on 1, 2, ... executors vs bare decode+detect")
    p.add_argument("--executors", default="1,2", help="comma-separated executor counts")
    p.add_argument("--recordings", type=int, default=4, help="recordings in the benchmark archive")
    p.add_argument("--recording-seconds", type=int, default=32, help="length of each recording")
    p.add_argument("--rate", type=float, default=5.0, help="decoding rate, Hz")
    p.add_argument("--window", type=float, default=10.0, help="segment length, seconds")
    p.add_argument("--model", help="a model of the registry (default: its default model)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=2,
                   help="runs of each figure, bare and job runs interleaved (ratios are of the means)")
    p.add_argument("--json", metavar="OUT", help="also write the result to this file")
    p.set_defaults(func=cmd_bench_archive)

    p = bsub.add_parser("doe", help="the 20-run FCCD's optimum vs the best of a full 3-level grid (27 runs), "
                                    "measured in one session (archive mode)")
    p.add_argument("--factor", action="append", metavar="NAME=LOW:HIGH:int",
                   help="a factor and its range (repeat; default the talk's: executors 1:3, batch_size 1:15, "
                        "decoding_rate 1:9)")
    p.add_argument("--seconds", type=float, default=24.0, help="seconds of archived video per point")
    p.add_argument("--latency-target", type=float, help="processing-time target, s (default: --seconds, real time)")
    p.add_argument("--repeats", type=int, default=3, help="side-by-side runs of each optimum")
    p.add_argument("--seed", type=int, default=2019, help="seed of the designs and their interleaving")
    p.add_argument("--id", help="comparison folder under the sweeps dir; an existing one is resumed")
    p.add_argument("--model", help="a model of the registry (default: its default model)")
    p.add_argument("--window", type=float, default=4.0, help="segment length, seconds")
    p.add_argument("--cores", type=int, default=2, help="cores every point's executors share")
    p.add_argument("--json", metavar="OUT", help="also write the result to this file")
    p.set_defaults(func=cmd_bench_doe)

    from argus.doe.cli import add_doe_parser

    add_doe_parser(sub)

    p = sub.add_parser("demo", help="start the stack and run the live pipeline under Airflow, then summarize")
    p.add_argument("--seconds", type=float, default=30.0, help="how long to measure once detections land")
    p.add_argument("--round-trip", action="store_true",
                   help="only push a round trip through every service (no detection)")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    from argus.detect.types import DetectorError
    from argus.stack.jvm import SetupError
    from argus.stack.manager import StackError
    from thriftpy2.transport import TTransportException

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (SetupError, StackError, DetectorError, ValueError) as exc:
        err.print(f"[red]argus: {escape(str(exc))}[/red]")
        return 2
    except TTransportException as exc:  # HBase's Thrift servers (the store, its admin)
        err.print(f"[red]argus: HBase is unreachable: {escape(exc.message or str(exc))}. Is the stack up "
                  "(`argus stack status`)?[/red]")
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
