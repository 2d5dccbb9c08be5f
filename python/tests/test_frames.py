"""Frames from Rust to NumPy with no copy: the buffer protocol's shape,
strides and read-only flag, slot lifetime under a running producer, the
``with`` block, ``read_into`` without allocations, and y4m from a real pipe."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import dav2d
from conftest import need, wait_until
from dav2d import _dav2d


def pattern_ok(array: np.ndarray, seq: int) -> bool:
    """The synthetic source's pattern: seq in the first 8 bytes, row r = (seq + r) % 251."""
    flat = np.ascontiguousarray(array).reshape(array.shape[0], -1)
    stamp = int.from_bytes(bytes(flat[0, :8]), "little")
    rows = (seq + np.arange(array.shape[0])) % 251
    body_ok = bool((flat[1:] == rows[1:, None]).all()) and bool((flat[0, 8:] == rows[0]).all())
    return stamp == seq and body_ok


def test_a_frame_is_an_array_of_the_slot_without_a_copy() -> None:
    with dav2d.FrameStream.open("synthetic:64x32@0?format=bgra8&stride=512&frames=10") as stream:
        frame = stream.latest(timeout=10)
        assert frame is not None
        with frame:
            array = np.asarray(frame)
            assert array.shape == (32, 64, 4)
            assert array.strides == (512, 4, 1)
            assert array.dtype == np.uint8
            assert not array.flags.writeable
            assert frame.stride == 512 and frame.format == "bgra8"
            assert pattern_ok(array, frame.seq)
            again = np.asarray(frame)
            assert again.__array_interface__["data"][0] == array.__array_interface__["data"][0]
            assert memoryview(frame).readonly
            with pytest.raises(ValueError, match="read-only"):
                array[0, 0, 0] = 1
    gray = dav2d.FrameStream.open("synthetic:16x8@0?format=gray8&frames=3")
    with gray.latest(timeout=10) as frame:
        assert np.asarray(frame).shape == (8, 16)
    gray.close()


def test_a_frame_is_unreadable_after_its_with_block_but_its_arrays_stay_valid() -> None:
    stream = dav2d.FrameStream.open("synthetic:32x8@0?format=rgb8&slots=3")
    frame = stream.next(timeout=10)
    with frame:
        kept = np.asarray(frame)
    seq = frame.seq
    assert frame.released
    with pytest.raises(dav2d.Dav2dError, match="released when its `with` block ended"):
        np.asarray(frame)
    # The array still pins its slot: thousands of frames later it reads its own pixels.
    for _ in range(2000):
        stream.next(timeout=10)
    assert pattern_ok(kept, seq)
    assert stream.leased >= 1
    del kept
    stream.close()


def test_arrays_kept_across_thousands_of_frames_read_their_own_frame() -> None:
    stream = dav2d.FrameStream.open("synthetic:128x64@0?format=bgra8&slots=4")
    kept: list[tuple[int, np.ndarray]] = []
    views = 0
    for _ in range(5000):
        frame = stream.next(timeout=10)
        assert frame is not None
        array = np.asarray(frame)
        views += 1
        assert pattern_ok(array, frame.seq)
        if len(kept) < 3 and frame.seq % 500 == 0:
            kept.append((frame.seq, array))
        frame.release()
        del frame, array
    # Three kept arrays held three of the four slots while the producer ran.
    stream.close()
    for seq, array in kept:
        assert pattern_ok(array, seq), seq
    assert views == 5000
    assert len(kept) == 3
    del kept, array
    assert stream.leased == 0, "every slot is given back once its arrays are freed"


def test_read_into_copies_the_newest_frame_with_no_allocation() -> None:
    stream = dav2d.FrameStream.open("synthetic:64x32@0?format=bgra8&stride=320")
    target = np.empty((32, 64, 4), np.uint8)
    seq = stream.read_into(target, timeout=10)
    assert seq is not None and pattern_ok(target, seq)
    for _ in range(100):  # warm up
        stream.read_into(target, timeout=10)
    # Python's allocator (tracemalloc) and Rust's (counted per thread by the
    # extension built for tests) both: a Vec per call would show in the second.
    rust = _dav2d._rust_allocations
    need(rust() is not None, "the extension was built without count-allocations (make develop builds it with)")
    tracemalloc.start()
    before, rust_before = tracemalloc.take_snapshot(), rust()
    for _ in range(2000):
        stream.read_into(target, timeout=10)
    rust_after, after = rust(), tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(stat.count_diff for stat in after.compare_to(before, "filename") if stat.count_diff > 0)
    assert grown <= 8, f"{grown} Python blocks allocated over 2000 read_into calls"
    assert rust_after - rust_before == 0, f"{rust_after - rust_before} Rust allocations over 2000 read_into calls"
    with pytest.raises(dav2d.InvalidArgument, match=r"give an array of shape \(32, 64, 4\)"):
        stream.read_into(np.empty((32, 64, 3), np.uint8), timeout=10)
    with pytest.raises(dav2d.InvalidArgument, match="writable"):
        stream.read_into(b"x" * (32 * 64 * 4), timeout=10)
    stream.close()


def y4m(frames: int, width: int = 16, height: int = 8) -> bytes:
    out = [f"YUV4MPEG2 W{width} H{height} F25:1 Ip A1:1 C420jpeg\n".encode()]
    size = width * height * 3 // 2
    for index in range(frames):
        out.append(b"FRAME\n" + bytes([index % 256]) * size)
    return b"".join(out)


def test_y4m_from_a_real_pipe_delivers_every_frame() -> None:
    child = textwrap.dedent(
        """
        import numpy as np, dav2d
        stream = dav2d.FrameStream.open("y4m:-")
        firsts = [int(np.asarray(frame)[0]) for frame in stream]
        print(len(firsts), firsts[:3], firsts[-1])
        """
    )
    process = subprocess.run(
        [sys.executable, "-c", child], input=y4m(300), capture_output=True, timeout=60, check=False
    )
    assert process.returncode == 0, process.stderr.decode()
    assert process.stdout.decode().split("\n")[0] == "300 [0, 1, 2] 43"


def test_a_truncated_or_bad_y4m_ends_cleanly_or_says_why(tmp_path: Path) -> None:
    clip = tmp_path / "cut.y4m"
    clip.write_bytes(y4m(5)[:-10])
    with dav2d.FrameStream.open(f"y4m:{clip}") as stream:
        assert sum(1 for _ in stream) == 4
    bad = tmp_path / "bad.y4m"
    bad.write_bytes(b"YUV4MPEG2 W16 H8 C420p12\n")
    with pytest.raises(dav2d.InvalidArgument, match="C420p12 is not supported"):
        dav2d.FrameStream.open(f"y4m:{bad}")
    with pytest.raises(dav2d.InvalidArgument, match="unknown pixel format"):
        dav2d.FrameStream.open("synthetic:64x48?format=yuyv")
    with pytest.raises(dav2d.InvalidArgument, match="'format' is given twice"):
        dav2d.FrameStream.open("synthetic:64x48?format=gray8&format=rgb8")


def test_a_bad_frame_marker_in_mid_stream_raises_naming_its_offset(tmp_path: Path) -> None:
    good = y4m(3)
    header_end = good.index(b"\n") + 1
    frame = len(b"FRAME\n") + 16 * 8 * 3 // 2
    for name, damage in [("marker", b"FRAMX\n"), ("long", b"FRAME " + b"x" * 5000 + b"\n")]:
        clip = tmp_path / f"{name}.y4m"
        # The third frame's marker is damaged: two frames, then the error.
        third = header_end + 2 * frame
        clip.write_bytes(good[:third] + damage + good[third + len(b"FRAME\n") :])
        seen = 0
        with dav2d.FrameStream.open(f"y4m:{clip}") as stream:
            with pytest.raises(dav2d.Dav2dError, match=f"at byte {third}"):
                for _ in stream:
                    seen += 1
        assert seen == 2


def test_a_timeout_is_zero_or_more_seconds() -> None:
    stream = dav2d.FrameStream.open("synthetic:16x8@0?format=gray8")
    for bad in [-1.0, float("nan")]:
        with pytest.raises(dav2d.InvalidArgument, match="give 0 or more"):
            stream.latest(timeout=bad)
        with pytest.raises(dav2d.InvalidArgument, match="give 0 or more"):
            stream.read_into(np.empty((8, 16), np.uint8), timeout=bad)
    stream.close()


def test_dlpack_tensors_are_read_only_and_pin_their_slot() -> None:
    stream = dav2d.FrameStream.open("synthetic:64x16@0?format=rgba8&stride=320&slots=4")
    with stream.next(timeout=10) as frame:
        assert frame.__dlpack_device__() == (1, 0)
        tensor = np.from_dlpack(frame)
        seq = frame.seq
    assert tensor.shape == (16, 64, 4) and tensor.strides == (320, 4, 1)
    assert not tensor.flags.writeable
    for _ in range(1000):
        stream.next(timeout=10)
    assert pattern_ok(tensor, seq)
    with pytest.raises(dav2d.Dav2dError, match="released"):
        frame.__dlpack__(max_version=(1, 0))
    # A capsule nobody consumes gives its lease back when it is freed.
    with stream.next(timeout=10) as frame:
        capsule = frame.__dlpack__(max_version=(1, 0))
    before = stream.leased
    del capsule
    assert stream.leased == before - 1
    # After the stream is closed the tensor still reads its own frame.
    stream.close()
    assert pattern_ok(tensor, seq)
    assert stream.leased == 1
    del tensor
    assert stream.leased == 0


def test_frames_sent_over_tcp_with_the_documented_header_arrive() -> None:
    import socket
    import struct

    stream = dav2d.FrameStream.open("tcp://127.0.0.1:0?max_bytes=1048576", token="s3cret")
    host, port = stream.address.rsplit(":", 1)
    width, height, pitch = 8, 4, 32  # bgr8: 24-byte rows padded to 32
    pixels = bytes(range(pitch * height))
    header = b"DV2F" + struct.pack("<BBHII3I4xqQ", 1, 2, 0, width, height, pitch, 0, 0, 123, len(pixels))
    assert len(header) == 48
    with socket.create_connection((host, int(port))) as intruder:
        intruder.sendall(header + pixels)
        assert b"AUTH <token>" in intruder.makefile("rb").readline()
    with socket.create_connection((host, int(port))) as producer:
        producer.sendall(b"AUTH s3cret\n" + header + pixels)
        with stream.next(timeout=10) as frame:
            array = np.asarray(frame)
            assert (frame.format, frame.ts, frame.stride) == ("bgr8", 123, 32)
            assert array.shape == (4, 8, 3) and array.strides == (32, 3, 1)
            assert bytes(array[1, 0]) == pixels[32:35]
    stream.close()


def test_on_frame_calls_back_with_a_view_valid_during_the_call(caplog: pytest.LogCaptureFixture) -> None:
    import threading

    stream = dav2d.FrameStream.open("synthetic:32x8@500?format=bgra8")
    seen: list[int] = []
    done = threading.Event()

    @stream.on_frame
    def handle(frame: dav2d.Frame) -> None:
        assert pattern_ok(np.asarray(frame), frame.seq)
        seen.append(frame.seq)
        if len(seen) == 3:
            raise RuntimeError("a bug in the callback")
        if len(seen) >= 20:
            done.set()

    assert done.wait(timeout=30), f"only {len(seen)} frames"
    stream.close()
    assert seen == sorted(seen)
    assert any("a bug in the callback" in record.getMessage() for record in caplog.records)
    assert stream.leased == 0


def test_frame_streams_in_a_graph_feed_frame_nodes_and_python_logic() -> None:
    graph = dav2d.Graph()
    stream = graph.frames("camera", "synthetic:64x32@200?format=bgra8")
    graph.frame_node("luma", "mean_luma", "camera")
    graph.frame_node("moving", "motion", "camera")
    graph.frame_node("gray", "grayscale", "camera")
    graph.frame_node("small", "downscale", "camera", width=16, height=8)
    seen: list[tuple[int, ...]] = []
    dav2d.Node("shape", lambda window: float(np.asarray(window[-1]).shape[1]), "camera", graph=graph).register()
    wait_until(
        "every frame node's first output",
        lambda: all(graph.latest(name) is not None for name in ("luma", "moving", "gray", "small", "shape")),
    )
    stream.close()
    camera = graph.latest("camera")
    assert isinstance(camera, dav2d.Frame)
    pixels = np.asarray(camera).astype(np.float64)
    luma = np.floor((77 * pixels[..., 2] + 150 * pixels[..., 1] + 29 * pixels[..., 0] + 128) / 256)
    # Frame nodes run on the offload workers: they catch up with the last frame.
    wait_until(
        "the frame nodes to catch up with the last frame",
        lambda: graph.latest("luma") == pytest.approx(luma.mean())
        and np.array_equal(np.asarray(graph.latest("gray")), luma),
    )
    stats = graph.stats()["nodes"]
    assert all(stats[name]["offload"] for name in ("luma", "moving", "gray", "small")), stats
    assert graph.latest("luma") == pytest.approx(luma.mean())
    assert graph.latest("moving") > 0  # the pattern moves one step a frame
    gray = graph.latest("gray")
    assert gray.format == "gray8" and np.asarray(gray).shape == (32, 64)
    assert np.array_equal(np.asarray(gray), luma.astype(np.uint8))
    small = graph.latest("small")
    assert (small.width, small.height, small.format) == (16, 8, "bgra8")
    assert np.asarray(small)[0, 0, 1] == pytest.approx(pixels[0:4, 0:4, 1].mean(), abs=1)
    assert graph.latest("shape") == 64.0
    with pytest.raises(dav2d.InvalidArgument, match="unknown frame node"):
        graph.frame_node("x", "sharpen", "camera")
    with pytest.raises(dav2d.InvalidArgument, match="turn auth off"):
        graph.frames("other", "tcp://127.0.0.1:0", token="")


def test_persistence_keeps_frame_metadata_never_pixels(tmp_path: Path) -> None:
    graph = dav2d.Graph()
    graph.declare_stream("camera", type="frame")
    graph.persist(str(tmp_path / "store"), streams=["camera"], flush_interval=0.05)
    stream = graph.frames("camera", "synthetic:320x240@100?format=bgra8")
    wait_until("five frames", lambda: graph.latest("camera") is not None and graph.latest("camera").seq >= 5)
    stream.close()
    graph.close()
    states = graph.history("camera", dir=str(tmp_path / "store")).column("state").to_pylist()
    assert len(states) >= 5
    assert all('format: "bgra8"' in state and "width: 320" in state for state in states), states[0]
    stored = sum(f.stat().st_size for f in (tmp_path / "store").rglob("*") if f.is_file())
    assert stored < 320 * 240 * 4, f"{stored} bytes on disk: the pixels were written"


def test_persistence_keeps_the_pixels_of_the_frames_that_opt_in(tmp_path: Path) -> None:
    store = str(tmp_path / "store")

    def build() -> dav2d.Graph:
        graph = dav2d.Graph()
        graph.declare_stream("camera", type="frame")
        graph.frame_node("small", "downscale", "camera", width=8, height=4)
        return graph

    graph = build()
    graph.persist(store, pixels=["small"], flush_interval=0.05)
    stream = graph.frames("camera", "synthetic:64x32@100?format=bgra8")
    wait_until("three downscaled frames", lambda: (small := graph.latest("small")) is not None and small.seq >= 3)
    stream.close()
    graph.close()
    before = graph.latest("small")
    pixels = np.asarray(before).copy()

    again = build()
    with pytest.raises(dav2d.Dav2dError, match="neither a stream nor a node"):
        again.persist(store, pixels=["smal"])
    again.persist(store, pixels=["small"])
    after = again.latest("small")
    assert isinstance(after, dav2d.Frame), after
    assert (after.seq, after.width, after.height, after.format) == (before.seq, 8, 4, "bgra8")
    assert np.array_equal(np.asarray(after), pixels)
    camera = again.latest("camera")
    assert isinstance(camera, dict) and camera["width"] == 64 and "skipped" in camera, camera
    again.close()


def test_a_reader_that_keeps_arrays_does_not_freeze_the_stream(caplog: pytest.LogCaptureFixture) -> None:
    """Keeping 40 frames' arrays, as a user collecting a clip would: the
    pool grows, so each latest() is a newer frame; past max_pinned_bytes
    the stream skips, counts, and says once what to do."""
    with dav2d.FrameStream.open("synthetic:16x8@0?format=gray8&slots=2") as stream:
        kept = []
        for _ in range(40):
            frame = stream.next(timeout=10)
            assert frame is not None
            kept.append((frame.seq, np.asarray(frame)))
        seqs = [seq for seq, _ in kept]
        assert len(set(seqs)) == 40 and seqs == sorted(seqs), seqs
        assert all(int(array[0, 0]) == seq % 256 for seq, array in kept)
    # 16 x 8 bytes a slot, at most 4 slots held: the fifth kept frame waits.
    with dav2d.FrameStream.open("synthetic:16x8@0?format=gray8&slots=2&max_pinned_bytes=512") as stream:
        kept = [np.asarray(stream.next(timeout=10)) for _ in range(4)]
        wait_until("the stream to skip", lambda: stream.skipped > 0)
        assert any("max_pinned_bytes" in r.getMessage() for r in caplog.records)
        del kept
