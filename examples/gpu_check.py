"""One prepared check for a borrowed GPU machine (PyTorch with CUDA; no TensorRT, no pycuda there).

Measures the torch backend on CUDA against ONNX Runtime on the CPU and writes one JSON document:
- parity: mean/max |in_focus(torch CUDA FP16) - in_focus(ORT CPU FP32)| on frames of the sample clip
  at 256x352 and 320x416;
- network speed at batch 1 for those sizes: synchronous latency (p50/p90) and throughput with two
  frames in flight, both from CUDA-synchronised wall clock, and the same with a CUDA graph replay;
- `dbd-rt video` end to end on the sample clip with --backend torch (needs PyAV there; skipped
  with the reason if it is missing).

Run from the repository root, well inside 8 minutes:
    PYTHONPATH=. python3 examples/gpu_check.py --out $OUT/gpu_check.json
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SIZES = ((256, 352), (320, 416))


def clip_frames(count: int = 6) -> list[np.ndarray]:
    """Frames spread over the sample clip, decoded by OpenCV (PyAV may be missing there)."""
    cap = cv2.VideoCapture(str(ROOT / "runtime" / "samples" / "cuhk_pan.mp4"))
    frames = []
    ok, frame = cap.read()
    while ok:
        frames.append(frame)
        ok, frame = cap.read()
    cap.release()
    return frames[15::30][:count]


def parity(torch_backend, frames: list[np.ndarray]) -> dict:
    import onnxruntime as ort

    from runtime.backends import infer

    ref = ort.InferenceSession(str(ROOT / "runtime" / "models" / "dbd_lite0_320.onnx"), providers=["CPUExecutionProvider"])
    out = {}
    for h, w in SIZES:
        diffs = []
        for f in frames:
            x = cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA)[None]
            want = ref.run(["in_focus"], {"frames": x})[0]
            got = infer(torch_backend, x).in_focus
            diffs.append(np.abs(got - want).ravel())
        d = np.concatenate(diffs)
        out[f"{h}x{w}"] = {"in_focus_mean_abs": float(d.mean()), "in_focus_max_abs": float(d.max())}
    return out


def speed(torch_backend, warmup: int, iters: int) -> dict:
    import torch

    from runtime.backends import infer

    out = {}
    model, dev = torch_backend.model, torch_backend._dev
    for h, w in SIZES:
        x = np.random.default_rng(0).integers(0, 256, (1, h, w, 3), dtype=np.uint8)
        for _ in range(warmup):
            infer(torch_backend, x)
        lat = []
        for _ in range(iters):
            t0 = time.perf_counter()
            infer(torch_backend, x)
            lat.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        torch_backend.submit(x)
        for _ in range(iters - 1):
            torch_backend.submit(x)
            torch_backend.collect()
        torch_backend.collect()
        two_in_flight = iters / (time.perf_counter() - t0)
        # CUDA graph: the whole network replayed from one launch, input already on the GPU.
        static_in = torch.from_numpy(x).to(dev)
        with torch.inference_mode():
            side = torch.cuda.Stream(dev)
            side.wait_stream(torch.cuda.current_stream(dev))
            with torch.cuda.stream(side):
                for _ in range(3):
                    model(static_in)
            torch.cuda.current_stream(dev).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = model(static_in)
            for _ in range(warmup):
                graph.replay()
            torch.cuda.synchronize(dev)
            t0 = time.perf_counter()
            for _ in range(iters):
                graph.replay()
            torch.cuda.synchronize(dev)
            graph_ms = (time.perf_counter() - t0) * 1000 / iters
        del static_out
        out[f"{h}x{w}"] = {
            "latency_ms_p50": float(np.percentile(lat, 50)),
            "latency_ms_p90": float(np.percentile(lat, 90)),
            "fps_sync": 1000.0 / float(np.mean(lat)),
            "fps_two_in_flight": two_in_flight,
            "cuda_graph_ms_per_frame_gpu_resident": graph_ms,
        }
    return out


def video_end_to_end(out_dir: Path) -> dict:
    try:
        import av  # noqa: F401
    except ImportError:
        return {"skipped": "PyAV is not installed on this machine; carry its wheel to run dbd-rt video"}
    cmd = [sys.executable, "-m", "runtime", "video", "runtime/samples/cuhk_pan.mp4", "--out", str(out_dir / "gpu_demo.mp4"), "--backend", "torch", "--json"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240)
    if done.returncode != 0:
        return {"failed": done.stderr[-2000:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="Where to write the JSON result.")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--iters", type=int, default=300)
    args = parser.parse_args()
    import torch

    from runtime.backends.torch_backend import TorchBackend

    doc: dict = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda}
    if not torch.cuda.is_available():
        doc["error"] = "PyTorch sees no CUDA GPU"
    else:
        doc["gpu"] = torch.cuda.get_device_name(0)
        backend = TorchBackend(TorchBackend.default_model(), device="cuda")
        t0 = time.perf_counter()
        doc["parity_vs_onnxruntime_cpu_fp32"] = parity(backend, clip_frames())
        doc["network_batch1"] = speed(backend, args.warmup, args.iters)
        backend.close()
        doc["dbd_rt_video_sample_clip"] = video_end_to_end(args.out.parent)
        doc["seconds"] = time.perf_counter() - t0
    args.out.write_text(json.dumps(doc, indent=2))
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
