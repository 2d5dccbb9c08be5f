"""``dav2d.serve()``: the HTTP and TCP servers inside a Python process feed
its graph. Real sockets on loopback, ephemeral ports."""

from __future__ import annotations

import http.client
import json
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import dav2d


def post(address: str, path: str, body: bytes, content_type: str | None = "application/json", token: str | None = None):
    request = urllib.request.Request(f"http://{address}{path}", data=body, method="POST")
    if content_type:
        request.add_header("Content-Type", content_type)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture
def served():
    graph = dav2d.Graph()
    dav2d.nodes.moving_average("avg", "temp", n=2).register(graph)
    server = graph.serve(http="127.0.0.1:0", tcp="127.0.0.1:0")
    yield graph, server
    server.stop()


def test_http_posts_reach_the_python_graph(served):
    graph, server = served
    status, answer = post(server.http_address, "/ingest/temp", b'[{"key": "a", "value": 10}, {"key": "a", "value": 20}]')
    assert (status, answer["accepted"]) == (200, 2)
    assert graph.latest("avg", "a") == 15.0
    with urllib.request.urlopen(f"http://{server.http_address}/state/avg?key=a", timeout=10) as response:
        assert json.loads(response.read())["value"] == 15.0


def test_the_notes_latency_script_gets_a_clear_400(served):
    _, server = served
    # The notes' test script: requests.post(url, data="x" * 10 MB) sends no
    # Content-Type; http.client does the same (urllib would add a form type).
    host, port = server.http_address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request("POST", "/upload", body=b"x" * (1024 * 1024 * 10))
    response = connection.getresponse()
    status, answer = response.status, json.loads(response.read())
    connection.close()
    assert status == 400
    assert answer["offset"] == 0
    assert "where a JSON object '{' or array '[' of samples was expected" in answer["error"]


def test_tcp_ndjson_reaches_the_python_graph(served):
    graph, server = served
    host, port = server.tcp_address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(b'{"stream": "temp", "key": "t", "value": 1}\n{"stream": "temp", "key": "t", "value": 3}\n')
        connection.shutdown(socket.SHUT_WR)
        assert connection.recv(1000) == b""
    assert graph.latest("avg", "t") == 2.0


def test_settings_come_from_a_config_file_and_keywords(tmp_path):
    config = tmp_path / "dav2d.yaml"
    config.write_text("http:\n  bind: 127.0.0.1:0\n  token: from-file\ntcp:\n  enabled: false\n")
    graph = dav2d.Graph()
    server = graph.serve(str(config))
    try:
        assert server.tcp_address is None
        status, _ = post(server.http_address, "/ingest/temp", b'{"value": 1}')
        assert status == 401
        status, answer = post(server.http_address, "/ingest/temp", b'{"value": 1}', token="from-file")
        assert (status, answer["accepted"]) == (200, 1)
    finally:
        server.stop()
    broken = tmp_path / "broken.yaml"
    broken.write_text("http:\n  bind: localhost-ish\n")
    with pytest.raises(dav2d.ConfigError, match=r"broken.yaml:2:9: http.bind: 'localhost-ish' is not an address"):
        graph.serve(str(broken))
    with pytest.raises(ValueError, match="is not an address"):
        graph.serve(http="nowhere")


def test_serve_runs_a_config_with_its_graph_and_sources(tmp_path):
    config = tmp_path / "fleet.yaml"
    config.write_text(
        "streams:\n  - name: temperature\n"
        "nodes:\n  - name: avg\n    kind: moving_average\n    input: temperature\n    n: 2\n"
        "sources:\n  - kind: synthetic\n    stream: temperature\n    devices: 3\n    rate_hz: 200\n"
        "http:\n  bind: 127.0.0.1:0\ntcp:\n  enabled: false\n"
    )
    graph = dav2d.Graph(auto_create_streams=False)
    server = graph.serve(str(config))
    try:
        updates = graph.subscribe("avg")
        update = updates.get(timeout=10)
        assert update is not None and update.key.startswith("dev-")
        with urllib.request.urlopen(f"http://{server.http_address}/metrics", timeout=10) as response:
            metrics = response.read().decode()
        assert 'dav2d_samples_accepted_total{component="synthetic",kind="synthetic"}' in metrics
    finally:
        server.stop()
    assert not server.running


FAILING_DISK = r'''
import json, resource, signal, sys, time, urllib.error, urllib.request
import dav2d

# The kernel refuses to let any file grow past 64 KiB: the store's log write
# fails as it would on a full disk (SIGXFSZ ignored, so write() gets EFBIG).
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
graph = dav2d.Graph()
dav2d.nodes.scale("twice", "temp", a=2.0).register(graph)
graph.persist(sys.argv[1], flush_interval=0.01)
server = graph.serve(http="127.0.0.1:0", tcp="off")
resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, resource.RLIM_INFINITY))
status = None
for attempt in range(500):
    graph.push_many("temp", [float(i) for i in range(2000)], [f"k{attempt}-{i}" for i in range(2000)])
    try:
        with urllib.request.urlopen(f"http://{server.http_address}/healthz", timeout=10) as response:
            status = (response.status, json.loads(response.read()))
    except urllib.error.HTTPError as error:
        status = (error.code, json.loads(error.read()))
        break
    time.sleep(0.02)
print(json.dumps(status))
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
server.stop()
graph.close()
'''


def test_serve_reports_a_failing_store_of_persist_on_healthz(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "failing.py"
    script.write_text(FAILING_DISK)
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "data")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    status, body = json.loads(done.stdout.strip().splitlines()[-1])
    assert status == 503, body
    assert body["status"] == "degraded"
    assert body["problems"][0].startswith("persistence: "), body


SIGNALLED = r'''
import sys
import dav2d

graph = dav2d.Graph()
dav2d.nodes.scale("twice", "temp", a=2.0).register(graph)
# A long flush interval: nothing is durable before the signal unless the stop is orderly.
graph.persist(sys.argv[1], flush_interval=3600, checkpoint_interval=3600)
server = graph.serve(http="127.0.0.1:0", tcp="off")
print(server.http_address, flush=True)
signalled = server.wait()
graph.close()
print("stopped", signalled, flush=True)
'''


def _until_sigterm_is_caught(pid: int) -> bool:
    """Whether process `pid` catches SIGTERM (its SigCgt mask in
    /proc/<pid>/status) within a bounded number of looks."""
    import re
    import signal
    import time

    for _ in range(1000):
        status = Path(f"/proc/{pid}/status").read_text()
        caught = int(re.search(r"SigCgt:\s*([0-9a-f]+)", status).group(1), 16)
        if caught & (1 << (signal.SIGTERM - 1)):
            return True
        time.sleep(0.01)
    return False


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_a_served_script_stops_in_order_on_a_signal(tmp_path, signal_name):
    import signal
    import subprocess
    import sys

    script = tmp_path / "serve.py"
    script.write_text(SIGNALLED)
    data = tmp_path / "data"
    child = subprocess.Popen([sys.executable, str(script), str(data)], stdout=subprocess.PIPE, text=True)
    try:
        address = child.stdout.readline().strip()
        body = json.dumps([{"key": f"k{i}", "value": i} for i in range(100)]).encode()
        status, answer = post(address, "/ingest/temp", body)
        assert (status, answer["accepted"]) == (200, 100)
        # wait() is the documented place a signal stops the script in order:
        # one sent between serve() returning and wait() starting gets
        # Python's own handling (SIGTERM kills, SIGINT raises where the
        # script is), so send it once the script is in wait(), which shows
        # as the handler it sets for SIGTERM on entry.
        assert _until_sigterm_is_caught(child.pid), "the script never reached wait()"
        child.send_signal(getattr(signal, signal_name))
        out, _ = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, out
    assert "stopped True" in out
    assert (data / "checkpoint.bin").exists()
    assert list((data / "history").glob("*.parquet")), "the log is rolled into Parquet"
    table = dav2d.read_history(str(data), "twice")
    assert table.num_rows == 100


def test_values_a_user_types_raise_clear_errors_never_a_panic():
    graph = dav2d.Graph()
    with pytest.raises(ValueError, match="would turn auth off"):
        graph.serve(http="127.0.0.1:0", tcp="off", token="")
    graph.declare_stream("temp")  # subscribing to an unknown name raises
    updates = graph.subscribe("temp")
    # An update is waiting before each get, so none of these waits long.
    for value, timeout in enumerate([float("inf"), 1e300, float("nan"), -1.0]):
        graph.push("temp", float(value), key="k")
        update = updates.get(timeout=timeout)
        assert update is not None and update.value == float(value)
    # With nothing waiting, NaN and negative timeouts return at once.
    assert updates.get(timeout=float("nan")) is None
    assert updates.get(timeout=-1.0) is None


def test_python_pushes_enter_by_the_one_door_and_show_in_metrics(served):
    """push and push_many go through the engine's intake: counted as
    component ``python`` in the served ``/metrics``, beside HTTP's."""
    graph, server = served
    graph.push("temp", 1.0, key="p")
    report = graph.push_many("temp", [2.0, 3.0, float("nan")], keys="p")
    assert (report["accepted"], report["rejected"]) == (3, 0)
    graph.declare_stream("bounded", max=10.0)
    with pytest.raises(dav2d.RejectedError, match="accepts values <= 10, got 99"):
        graph.push("bounded", 99.0, key="p")
    with urllib.request.urlopen(f"http://{server.http_address}/metrics", timeout=10) as response:
        metrics = response.read().decode()
    assert 'dav2d_samples_received_total{component="python",kind="python"} 5' in metrics, metrics
    assert 'dav2d_samples_accepted_total{component="python",kind="python"} 4' in metrics, metrics
    assert 'dav2d_samples_rejected_total{component="python",kind="python",reason="above_max",stage="engine"} 1' in metrics



def test_python_logic_under_pushes_from_threads_and_http_loses_nothing_and_never_hangs():
    """A push keeps the GIL when the engine is free (a node's Python logic
    would take it back every wave) and lets go when it is not: two Python
    threads pushing, HTTP posts whose waves run the same Python logic on
    the server's threads, all at once; every sample is evaluated once, and
    nothing waits forever (each thread is joined with a deadline)."""
    import threading

    graph = dav2d.Graph()
    seen = []

    def last(data):
        seen.append(1)
        return data[-1]

    dav2d.Node("copy", input_source="temp", window=2, policy="all", logic=last).register(graph)
    server = graph.serve(http="127.0.0.1:0", tcp="off")
    try:
        def pushes(name: str) -> None:
            for i in range(200):
                graph.push_many("temp", [float(i)] * 10, keys=f"{name}-{i % 7}")

        def posts() -> None:
            for i in range(100):
                body = json.dumps([{"key": f"h-{i % 5}", "value": float(i)} for _ in range(10)]).encode()
                assert post(server.http_address, "/ingest/temp", body)[0] == 200

        threads = [threading.Thread(target=pushes, args=(n,)) for n in ("a", "b")]
        threads.append(threading.Thread(target=posts))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
            assert not thread.is_alive(), "a push never returned"
        expected = 2 * 200 * 10 + 100 * 10
        assert graph.stats()["nodes"]["copy"]["evaluations"] == expected
        assert len(seen) == expected
    finally:
        server.stop()

ONE_TIMER = """
import time, urllib.request
from pathlib import Path
import dav2d

def timers():
    count = 0
    for task in Path("/proc/self/task").iterdir():
        try:
            count += (task / "comm").read_text().strip() == "dav2d-timers"
        except OSError:  # a thread that ended while we looked
            pass
    return count

def wait(what, check):
    end = time.monotonic() + 30
    while not check():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.005)

graph = dav2d.Graph()
graph.register(dav2d.Constraint("hot", "temp", trip=80, stale_after=1.0))
graph.push("temp", 20.0, key="k")  # runs the graph: its timer starts
wait("the graph's timer thread", lambda: timers() == 1)  # a thread names itself once it runs
server = graph.serve(http="127.0.0.1:0", tcp="off")
# Once the server answers, whatever it started is running.
urllib.request.urlopen(f"http://{server.http_address}/healthz", timeout=10).close()
print("timers while served:", timers())
server.stop()
print("timers after:", timers(), graph.latest("hot", "k"))
"""


def test_a_served_graph_keeps_one_timer_and_one_set_of_workers():
    # In a process of its own, so no other test's graph has a timer thread.
    import subprocess
    import sys

    answer = subprocess.run([sys.executable, "-c", ONE_TIMER], capture_output=True, text=True, timeout=120)
    assert answer.returncode == 0, answer.stderr[-3000:]
    # The runtime runs on the graph's engine: no second timer, and stopping
    # the server leaves the graph's own.
    assert answer.stdout.splitlines() == ["timers while served: 1", "timers after: 1 ok"], answer.stdout
