"""`dbd-rt batch`: many videos and photos, each with a focus report, on local worker processes or on
an existing Ray cluster (the `cluster` extra). No scheduler of our own: local workers are a
multiprocessing pool, a cluster's are Ray actors handed out by Ray's ActorPool.

Each worker opens its backend once and takes files in turn. A file is finished when its outputs
are renamed into place and a record of it is written to OUT/.dbd-batch/; a later run with the same
model and options skips it (decided by that record: model checksum, options, the input's size and
modification time, the outputs still there), so an interrupted batch resumes where it stopped and
a partial output is never taken for a finished one.

Outputs per input, under OUT with the input's path relative to the folder it was found in:
NAME_VIEW.mp4 (unless --no-video), NAME_focus.jsonl (one row per frame, runtime.focus_report),
NAME_focus.json (the per-video summary: soft share and soft segments), NAME_timeline.png; for a
photo, NAME_VIEW.png and NAME_focus.json. Per batch: summary.json and summary.csv.
"""

from __future__ import annotations

import csv
import hashlib
import json
import signal
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from runtime.backends import BackendError, BackendOptions, open_backend
from runtime.datasets import IMAGE_SUFFIXES
from runtime.files import unique_names, write_atomically, write_bytes_atomically
from runtime.focus_report import FocusReport, ReportConfig, frame_row
from runtime.model_info import ModelError
from runtime.overlay import OverlayStyle
from runtime.photo_job import PhotoError, read_photo, write_png
from runtime.pipeline import PHOTO_IMGSZ, VIDEO_IMGSZ, FrameProcessor, FrameResult, Renderer, StageTimes
from runtime.smoothing import SmoothingConfig
from runtime.video_io import DEFAULT_PRESET, VideoError, probe_video
from runtime.video_job import process_video

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".m4v", ".webm", ".mts", ".m2ts", ".ts", ".h264", ".264", ".hevc")
MANIFEST_SUFFIXES = (".txt", ".list")
EXIT_SOME_FAILED = 3  # the batch ran to its end, and some inputs failed (summary.csv says which)
RECORDS = ".dbd-batch"


@dataclass(frozen=True)
class BatchOptions:
    """Everything that decides a batch's outputs (its fingerprint marks finished work)."""

    model: str | None = None
    backend: str = "auto"
    gpu: int = 0
    threads: int = 1  # per worker
    video_imgsz: int = VIDEO_IMGSZ
    photo_imgsz: int = PHOTO_IMGSZ
    style: OverlayStyle = field(default_factory=OverlayStyle)
    write_video: bool = True
    preset: str = DEFAULT_PRESET
    report: ReportConfig = field(default_factory=ReportConfig)
    smoothing: SmoothingConfig = field(default_factory=SmoothingConfig)

    def fingerprint(self) -> str:
        """What marks work as finished: these options and the model file's bytes."""
        model_sha = hashlib.sha256(Path(self.model).read_bytes()).hexdigest() if self.model else ""
        doc = {**asdict(self), "model": model_sha, "threads": None, "gpu": None}  # how it runs is not what it makes
        return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class BatchItem:
    source: Path  # absolute, so a worker on another node finds it on the shared path
    kind: str  # "video" | "photo"
    name: str  # output path under OUT without suffix, unique in the batch


@dataclass
class ItemResult:
    source: str
    kind: str
    status: str  # "done", "skipped" (finished by an earlier run), "failed"
    reason: str = ""
    soft_share: float | None = None
    frames: int = 0
    seconds: float = 0.0
    outputs: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- what to process


def _kind(path: Path) -> str | None:
    suffix = path.suffix.lower()
    return "video" if suffix in VIDEO_SUFFIXES else "photo" if suffix in IMAGE_SUFFIXES else None


def collect_inputs(inputs: list[Path]) -> tuple[list[BatchItem], list[ItemResult]]:
    """Files, folders (recursive) and manifests (a text file of paths, one a line; relative ones
    are read from the manifest's folder), as items with unique output names; what cannot be used
    comes back as failed results naming it."""
    found: list[tuple[Path, str]] = []  # (file, preferred name)
    failed: list[ItemResult] = []

    def add_file(path: Path, name: str) -> None:
        kind = _kind(path)
        if kind is None:
            failed.append(ItemResult(str(path), "unknown", "failed", f"{path}: not a video or photo dbd-rt reads"))
        else:
            found.append((path.resolve(), name))

    for given in inputs:
        if given.is_dir():
            for path in sorted(p for p in given.rglob("*") if p.is_file() and _kind(p)):
                add_file(path, str(Path(given.name) / path.relative_to(given).with_suffix("")))
        elif given.is_file() and given.suffix.lower() in MANIFEST_SUFFIXES:
            for line in given.read_text().splitlines():
                if line.strip() and not line.strip().startswith("#"):
                    path = Path(line.strip()) if Path(line.strip()).is_absolute() else given.parent / line.strip()
                    if path.is_file():
                        add_file(path, path.stem)
                    else:
                        failed.append(ItemResult(str(path), "unknown", "failed", f"{path}: file not found (listed in {given})"))
        elif given.is_file():
            add_file(given, given.stem)
        else:
            failed.append(ItemResult(str(given), "unknown", "failed", f"{given}: file not found"))
    first: dict[Path, str] = {}
    for path, name in found:
        first.setdefault(path, name)  # the same file given twice is done once, named as first found
    names = unique_names(list(first.items()))
    return [BatchItem(p, _kind(p) or "", names[p]) for p in first], failed


def _record_path(out: Path, item: BatchItem) -> Path:
    return out / RECORDS / (hashlib.sha1(item.name.encode()).hexdigest()[:16] + ".json")


def _input_stamp(path: Path) -> dict[str, float]:
    st = path.stat()
    return {"size": st.st_size, "mtime": st.st_mtime}


def finished_result(out: Path, item: BatchItem, fingerprint: str) -> ItemResult | None:
    """The earlier run's result when `item` was finished with these options; else None."""
    path = _record_path(out, item)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if record.get("fingerprint") != fingerprint or record.get("input") != _input_stamp(item.source):
        return None
    result = ItemResult(**record["result"])
    if not all(Path(o).is_file() for o in result.outputs):
        return None
    result.status, result.seconds = "skipped", 0.0
    return result


def split_finished(out: Path, items: list[BatchItem], fingerprint: str) -> tuple[list[BatchItem], list[ItemResult]]:
    """The items still to do, and the results of those an earlier run finished with these options."""
    todo, finished = [], []
    for item in items:
        done = finished_result(out, item, fingerprint)
        if done:
            finished.append(done)
        else:
            todo.append(item)
    return todo, finished


# ---------------------------------------------------------------- one worker


class BatchWorker:
    """Opens the backend once; `process` turns one item into its outputs and record."""

    def __init__(self, options: BatchOptions, out: Path, fingerprint: str) -> None:
        self.options, self.out, self.fingerprint = options, Path(out), fingerprint
        (self.out / RECORDS).mkdir(parents=True, exist_ok=True)
        self.backend = open_backend(Path(options.model) if options.model else None, options.backend, BackendOptions(threads=options.threads, frames_in_flight=1, gpu=options.gpu))

    def process(self, item: BatchItem) -> ItemResult:
        """One input, never raising for a bad file: the batch goes on and the summary says why."""
        t0 = time.perf_counter()
        try:
            result = self._video(item) if item.kind == "video" else self._photo(item)
            result.seconds = time.perf_counter() - t0
            record = {"fingerprint": self.fingerprint, "input": _input_stamp(item.source), "result": asdict(result)}
            write_bytes_atomically(_record_path(self.out, item), json.dumps(record).encode())
        except (VideoError, ModelError, PhotoError, BackendError, OSError) as exc:
            return ItemResult(str(item.source), item.kind, "failed", str(exc).splitlines()[0], seconds=time.perf_counter() - t0)
        except Exception as exc:  # noqa: BLE001 (a bug must not stop the other files; the reason names it)
            return ItemResult(str(item.source), item.kind, "failed", f"{item.source}: {type(exc).__name__}: {exc}", seconds=time.perf_counter() - t0)
        return result

    def _target(self, item: BatchItem, ending: str) -> Path:
        path = self.out / f"{item.name}{ending}"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def _video(self, item: BatchItem) -> ItemResult:
        probe = probe_video(item.source)
        report = FocusReport(self.options.report)
        frame_hw = (probe.height, probe.width)

        def add(result: FrameResult) -> None:
            report.add(frame_row(float(result.pts * probe.time_base), result.in_focus_model, result.depth_model, frame_hw, self.options.report))

        video = self._target(item, f"_{self.options.style.view.value}.mp4") if self.options.write_video else None
        job = process_video(
            probe, video, self.backend, self.options.style, on_result=add, preset=self.options.preset, imgsz=self.options.video_imgsz, smoothing=self.options.smoothing
        )
        if job.interrupted:
            raise KeyboardInterrupt  # a worker never records half a file as finished
        rows, summary, timeline = self._target(item, "_focus.jsonl"), self._target(item, "_focus.json"), self._target(item, "_timeline.png")
        write_atomically(rows, report.write_jsonl)
        write_bytes_atomically(summary, json.dumps({"source": str(item.source), **report.summary(), "frames_expected": job.frames_expected}, indent=2).encode())
        write_png(timeline, report.timeline())
        outputs = [str(p) for p in (video, rows, summary, timeline) if p is not None]
        return ItemResult(str(item.source), "video", "done", soft_share=report.soft_share(), frames=job.frames, outputs=outputs)

    def _photo(self, item: BatchItem) -> ItemResult:
        image = read_photo(item.source)
        if image is None:
            raise PhotoError(f"{item.source}: unreadable or not an image")
        frame = FrameProcessor(self.backend, imgsz=self.options.photo_imgsz).process(image)
        report = FocusReport(self.options.report)
        report.add(frame_row(0.0, frame.in_focus_model, frame.depth_model, image.shape[:2], self.options.report))
        view = self._target(item, f"_{self.options.style.view.value}.png")
        write_png(view, Renderer(self.options.style, StageTimes())(frame))
        summary = self._target(item, "_focus.json")
        write_bytes_atomically(summary, json.dumps({"source": str(item.source), **report.summary(), "row": asdict(report.rows[0])}, indent=2).encode())
        return ItemResult(str(item.source), "photo", "done", soft_share=report.soft_share(), frames=1, outputs=[str(view), str(summary)])

    def close(self) -> None:
        self.backend.close()


# ---------------------------------------------------------------- local workers and Ray


# One worker per process, made by the pool's initializer: multiprocessing's way of giving each
# process its own state (the backend opened once).
_PROCESS_WORKER: BatchWorker | None = None


def _start_process(options: BatchOptions, out: Path, fingerprint: str) -> None:
    global _PROCESS_WORKER
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what an interrupt stops
    _PROCESS_WORKER = BatchWorker(options, out, fingerprint)


def _process_in_pool(item: BatchItem) -> ItemResult:
    assert _PROCESS_WORKER is not None
    return _PROCESS_WORKER.process(item)


def run_local(items: list[BatchItem], options: BatchOptions, out: Path, fingerprint: str, workers: int) -> Iterator[ItemResult]:
    """Results as files finish, from `workers` processes (spawned: no state shared by fork)."""
    import multiprocessing

    pool = multiprocessing.get_context("spawn").Pool(workers, initializer=_start_process, initargs=(options, out, fingerprint))
    try:
        yield from pool.imap_unordered(_process_in_pool, items)
        pool.close()
    finally:
        pool.terminate()  # interrupted: unfinished files are left unrecorded, their temporaries stale
        pool.join()


def run_on_ray(items: list[BatchItem], options: BatchOptions, out: Path, fingerprint: str, workers: int, address: str, gpus_per_worker: float) -> Iterator[ItemResult]:
    """Results as files finish, from one Ray actor per worker on the cluster at `address` ("auto":
    the one this machine belongs to; "local": start one here). Inputs and outputs must be on a
    path every node sees."""
    try:
        import ray
        from ray.util import ActorPool
    except ImportError:
        raise BackendError("--cluster needs Ray: pip install 'dbd-rt[cluster]'") from None
    started = not ray.is_initialized()
    if started:
        kwargs = {"num_cpus": workers} if address == "local" else {"address": address}
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False, **kwargs)
    try:
        actor = ray.remote(num_cpus=1, num_gpus=gpus_per_worker)(BatchWorker)
        pool = ActorPool([actor.remote(options, out, fingerprint) for _ in range(workers)])
        yield from pool.map_unordered(lambda a, item: a.process.remote(item), items)
    finally:
        if started:
            ray.shutdown()


def write_summary(out: Path, results: list[ItemResult], seconds: float, options: BatchOptions) -> dict[str, object]:
    """summary.json (everything) and summary.csv (one row per input)."""
    counts = {s: sum(r.status == s for r in results) for s in ("done", "skipped", "failed")}
    doc = {"inputs": [asdict(r) for r in results], **counts, "frames": sum(r.frames for r in results if r.status == "done"), "seconds": seconds}
    doc["options"] = json.loads(json.dumps(asdict(options), default=str))
    write_bytes_atomically(out / "summary.json", json.dumps(doc, indent=2).encode())

    def write_csv(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["source", "kind", "status", "reason", "soft_share", "frames", "seconds"])
            for r in results:
                w.writerow([r.source, r.kind, r.status, r.reason, "" if r.soft_share is None else f"{r.soft_share:.4f}", r.frames, f"{r.seconds:.2f}"])

    write_atomically(out / "summary.csv", write_csv)
    return doc


def default_workers(backend: str) -> int:
    """One per GPU for TensorRT; on a CPU, one per core, each with one network thread: across
    files, as across frames, whole jobs side by side use the cores better than threads split
    inside one (dbd-bench batch on 2 cores: 2 workers x1.35 the frames/s of 1 worker)."""
    from runtime.backends.onnxruntime_backend import default_threads

    return 1 if backend == "tensorrt" else default_threads()
