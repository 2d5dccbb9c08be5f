"""The frame and processor benchmarks of ``make bench`` (``run.py`` prints
them): handing frames to readers, reading y4m, X11 capture beside mss, and
the processor against ONNX Runtime alone and the idiomatic pipeline."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import dav2d
from timing import fastest


# -- 8. frames: handoff of a 1080p BGRA frame to NumPy, y4m throughput ----------------


# Peak resident memory, for the scripts below: `reset_peak()` sets the peak
# to the current resident size (writing 5 to /proc/self/clear_refs) and
# returns it; `peak()` is the peak since.
PEAK = """
def _status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
def reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status("VmRSS")
def peak():
    return _status("VmHWM")
"""


def frame_handoff(frames: int) -> dict:
    """ns per frame and net Python blocks per frame for each way of getting a
    1920x1080 BGRA frame into NumPy, all over one published frame (so the
    producer's painting is not measured)."""
    import ctypes
    import sys

    height, width = 1080, 1920
    stream = dav2d.FrameStream.open(f"synthetic:{width}x{height}@0?format=bgra8&frames=1")
    stream.latest(timeout=10).release()

    def timed(step):
        for _ in range(100):
            step()
        blocks = sys.getallocatedblocks()
        start = time.perf_counter_ns()
        for _ in range(frames):
            step()
        elapsed = time.perf_counter_ns() - start
        return elapsed / frames, (sys.getallocatedblocks() - blocks) / frames

    def lease():
        with stream.latest() as frame:
            np.asarray(frame)

    target = np.empty((height, width, 4), np.uint8)

    def read_into():
        stream.read_into(target)

    # The frame's memory as a capture library holds it.
    source = bytearray(width * height * 4)
    source_array = np.frombuffer(source, np.uint8).reshape(height, width, 4)

    class CaptureFrame:  # what windows-capture builds per frame
        def __init__(self, buffer, width, height):
            self.buffer, self.width, self.height = buffer, width, height
            self.timestamp = time.time()

    def per_frame_object():
        frame = CaptureFrame(source, width, height)
        pointer = (ctypes.c_uint8 * len(frame.buffer)).from_buffer(frame.buffer)
        np.ctypeslib.as_array(pointer).reshape(frame.height, frame.width, 4).copy()

    def fresh_copy():  # DXcam's default: a new array per frame
        source_array.copy()

    def floor():  # one memcpy of the frame into a kept array
        np.copyto(target, source_array)

    results = {name: timed(step) for name, step in [
        ("lease", lease), ("read_into", read_into), ("per_frame_object", per_frame_object),
        ("fresh_copy", fresh_copy), ("floor", floor)]}
    stream.close()
    return results


def y4m_throughput(frames: int) -> dict:
    """Frames/s reading a 1080p y4m file into NumPy: dav2d, numpy.fromfile, PyAV."""
    width, height = 1920, 1080
    size = width * height * 3 // 2
    folder = Path(tempfile.mkdtemp(prefix="dav2d-y4m-"))
    path = folder / "clip.y4m"
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F30:1 Ip A1:1 C420jpeg\n".encode())
        frame = bytes(range(256)) * (size // 256) + bytes(size % 256)
        for _ in range(frames):
            out.write(b"FRAME\n")
            out.write(frame)
    results = {}
    start = time.perf_counter()
    stream = dav2d.FrameStream.open(f"y4m:{path}")
    count = 0
    for lease in stream:
        np.asarray(lease)
        lease.release()
        count += 1
    results["dav2d"] = count / (time.perf_counter() - start)
    start = time.perf_counter()
    with open(path, "rb") as handle:
        handle.readline()
        count = 0
        while handle.readline():
            np.fromfile(handle, np.uint8, size)
            count += 1
    results["fromfile"] = count / (time.perf_counter() - start)
    try:
        import av

        start = time.perf_counter()
        with av.open(str(path), format="yuv4mpegpipe") as container:
            count = sum(1 for video in container.decode(video=0) if video.to_ndarray() is not None)
        results["pyav"] = count / (time.perf_counter() - start)
    except ImportError:
        results["pyav"] = None
    shutil.rmtree(folder, ignore_errors=True)
    results["bytes"] = size
    return results


def x11_capture(seconds: float) -> dict | None:
    """Frames/s and CPU per frame capturing a 1920x1080 Xvfb display: dav2d
    (MIT-SHM) beside mss, each for ``seconds``."""
    import resource

    if not shutil.which("Xvfb"):
        return None
    number = next(n for n in range(150, 250) if not Path(f"/tmp/.X11-unix/X{n}").exists())
    display = f":{number}"
    server = subprocess.Popen(
        ["Xvfb", display, "-screen", "0", "1920x1080x24", "-nolisten", "tcp", "-noreset"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if Path(f"/tmp/.X11-unix/X{number}").exists():
                break
            time.sleep(0.025)
        time.sleep(0.2)

        def cpu() -> float:
            usage = resource.getrusage(resource.RUSAGE_SELF)
            return usage.ru_utime + usage.ru_stime

        results = {}
        stream = dav2d.FrameStream.open(f"x11:{display}?rate=1000")
        stream.next(timeout=10).release()
        count, cpu0, start = 0, cpu(), time.perf_counter()
        while time.perf_counter() - start < seconds:
            with stream.next(timeout=10) as frame:
                np.asarray(frame)
            count += 1
        elapsed = time.perf_counter() - start
        results["dav2d"] = (count / elapsed, (cpu() - cpu0) / count)
        stream.close()
        try:
            import mss

            with mss.mss(display=display) as grabber:
                monitor = grabber.monitors[1]
                np.asarray(grabber.grab(monitor))
                count, cpu0, start = 0, cpu(), time.perf_counter()
                while time.perf_counter() - start < seconds:
                    np.asarray(grabber.grab(monitor))
                    count += 1
                elapsed = time.perf_counter() - start
                results["mss"] = (count / elapsed, (cpu() - cpu0) / count)
        except ImportError:
            results["mss"] = None
        return results
    finally:
        server.terminate()
        server.wait(timeout=10)


# -- 9. the processor: a 1080p image to a 1024x1024 mask, processor nodes ------------


def processor_bench(repeats: int, seconds: float) -> dict | None:
    """dav2d's processor beside onnxruntime alone and the idiomatic Python
    pipeline (OpenCV resize, NumPy normalise and transpose, onnxruntime,
    threshold), all on the same small convolution model and threads."""
    try:
        import cv2
        import onnxruntime as ort

        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python" / "tests"))
        import models
    except ImportError as error:
        print(f"processor benchmark skipped: {error}")
        return None
    folder = Path(tempfile.mkdtemp(prefix="dav2d-processor-"))
    paths = models.write_models(folder)
    model = paths["linear_logits"]
    cores = os.cpu_count() or 1

    def config(threads: int, **extra) -> str:
        path = folder / f"p{threads}{len(extra)}.yaml"
        lines = [f'model_path: "{model}"', "processing:", "  threshold: 0.45", "  resolution: [1024, 1024]", f"  threads: {threads}"]
        lines += [f"  {k}: {v}" for k, v in extra.items()]
        path.write_text("\n".join(lines) + "\n")
        return str(path)

    image = np.random.default_rng(1).integers(0, 256, size=(1080, 1920, 3), dtype=np.uint8)
    results = {}
    processor = dav2d.Dav2dProcessor(config_path=config(cores))
    tensor = processor.preprocess(image)
    options = ort.SessionOptions()
    options.intra_op_num_threads = cores
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])

    def idiomatic():
        resized = cv2.resize(image, (1024, 1024), interpolation=cv2.INTER_LINEAR)
        x = (resized.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
        logits = session.run(None, {"x": np.ascontiguousarray(x)})[0]
        return ((1.0 / (1.0 + np.exp(-logits[0, 0]))) > 0.45).astype(np.uint8)

    def measured(run) -> float:
        start = time.perf_counter()
        run()
        return time.perf_counter() - start

    # dav2d (all threads), onnxruntime alone and the idiomatic pipeline take
    # turns within each repetition, so the machine's load moves all three
    # alike. A turn is a few calls back to back, as a stream of images would
    # make them, after a pause: onnxruntime's threads spin for tens of
    # milliseconds after a run of the peers' session (dav2d's stop when its
    # run returns), and without the pause they would spin on one of the two
    # cores through the next contender's turn. The figures are the fastest
    # call of all (each dav2d stage on its own); the verdicts are on the
    # ratios, taken per repetition from the fastest call of each turn and
    # then the median over the repetitions, because the load here moves
    # times by more than the bars' margins from one repetition to the next
    # and the fastest of all pairs calls from different moments.
    for warm in (lambda: processor.run(image), lambda: session.run(None, {"x": tensor}), idiomatic):
        warm()
    fastest_total, stages = float("inf"), {}
    ort_alone = idiomatic_best = float("inf")
    turn = 5
    pause = 0.1
    model_ratios, total_ratios = [], []
    for _ in range(repeats):
        time.sleep(pause)
        turn_total = turn_inference = float("inf")
        for _ in range(turn):
            turn_total = min(turn_total, measured(lambda: processor.run(image)))
            for stage, spent in processor.last_timings.items():
                stages[stage] = min(stages.get(stage, float("inf")), spent)
            turn_inference = min(turn_inference, processor.last_timings["inference"])
        time.sleep(pause)
        turn_ort = min(measured(lambda: session.run(None, {"x": tensor})) for _ in range(turn))
        time.sleep(pause)
        turn_idiomatic = min(measured(idiomatic) for _ in range(turn))
        fastest_total = min(fastest_total, turn_total)
        ort_alone = min(ort_alone, turn_ort)
        idiomatic_best = min(idiomatic_best, turn_idiomatic)
        model_ratios.append(turn_inference / turn_ort)
        total_ratios.append(turn_total / turn_idiomatic)
    results[f"dav2d_{cores}"] = (fastest_total, stages)
    results["ort_alone"] = ort_alone
    results["idiomatic"] = idiomatic_best
    results["model_ratio"] = statistics.median(model_ratios)
    results["total_ratio"] = statistics.median(total_ratios)
    results["ratio_spread"] = (min(model_ratios), max(model_ratios), min(total_ratios), max(total_ratios))
    if cores != 1:
        one = dav2d.Dav2dProcessor(config_path=config(1))
        one.run(image)
        results["dav2d_1"] = (fastest(repeats, lambda: one.run(image)), {})

    # A processor node on a 1080p stream at 60 frames/s.
    graph = dav2d.Graph()
    camera = graph.frames("camera", "synthetic:1920x1080@60?format=rgb8")
    graph.processor_node("mask", "camera", config(cores))
    updates = graph.subscribe("mask", capacity=100_000)
    latencies = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        update = updates.get(timeout=1.0)
        if update is not None:
            latencies.append(time.time_ns() - update.ts)
    elapsed = time.perf_counter() - start
    stats = graph.stats()["nodes"]["mask"]
    published = camera.published
    camera.close()
    graph.close()
    latencies.sort()
    results["node"] = {
        "masks_per_s": len(latencies) / elapsed,
        "frames_per_s": published / elapsed,
        "conflated": stats["conflated"],
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] / 1e6 if latencies else float("nan"),
    }

    # Peak memory of a batch of 64 1080p images, in a process of its own:
    # the peak resident size is reset just before the batch (Linux's
    # clear_refs), so a higher mark left by making the images cannot hide
    # what the batch itself takes.
    script = f"""
import numpy as np, dav2d
p = dav2d.Dav2dProcessor(config_path={config(cores, max_batch=8)!r})
images = [np.random.default_rng(i).integers(0, 256, size=(1080, 1920, 3), dtype=np.uint8) for i in range(64)]
p.run(images[0])
{PEAK}
before = reset_peak()
masks = p.run(images)
print(peak() - before, masks.nbytes)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    # The same batch the idiomatic way: one tensor for all 64 through onnxruntime.
    naive = f"""
import numpy as np, cv2, onnxruntime as ort
s = ort.InferenceSession({str(model)!r}, providers=["CPUExecutionProvider"])
images = [np.random.default_rng(i).integers(0, 256, size=(1080, 1920, 3), dtype=np.uint8) for i in range(64)]
def run(batch):
    x = np.stack([(cv2.resize(i, (1024, 1024)).astype(np.float32) / 255).transpose(2, 0, 1) for i in batch])
    return ((1 / (1 + np.exp(-s.run(None, {{"x": x}})[0][:, 0]))) > 0.45).astype(np.uint8)
run(images[:1])
{PEAK}
before = reset_peak()
masks = run(images)
print(peak() - before)
"""
    peer = subprocess.run([sys.executable, "-c", naive], capture_output=True, text=True, check=True).stdout.split()
    results["batch64"] = {"peak_growth": int(out[0]), "masks": int(out[1]), "naive_growth": int(peer[0])}
    shutil.rmtree(folder, ignore_errors=True)
    return results
