"""The complete configs of examples/ run against real brokers on loopback:
an MQTT fleet with a webhook, HTTP with persistence and history read back,
frames through a processor, a three-instance cluster (the harness, its
placeholders and brokers are in ``docs_harness.py``)."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from docs_harness import (  # noqa: F401 (models and services are fixtures)
    DEADLINE,
    ROOT,
    Services,
    broker_binary,
    dav2d_command,
    environment,
    free_port,
    http_get,
    http_post,
    models,
    needs_module,
    running,
    services,
    wait_until,
)

# --------------------------------------------------------------------------
# The examples


def example(name: str, services: Services) -> Path:
    """examples/NAME with its placeholders filled, in the test's folder."""
    path = services.dir / name
    path.write_text(services.fill((ROOT / "examples" / name).read_text()))
    return path


def dav2d_run(config: Path, services: Services, *extra: str, http: str | None = None) -> tuple[list[str], str]:
    """The `dav2d run` command line of a config, with HTTP on a free port
    (or `http`), TCP off, and its data in the test's folder."""
    http = http or f"127.0.0.1:{free_port()}"
    args = [dav2d_command(), "run", str(config), "--http", http, "--tcp", "off", "--refresh", "1h", *extra]
    if "--data" not in extra:
        args += ["--data", str(services.dir / "data")]
    return args, http


def state(http: str, name: str, key: str) -> dict | None:
    status, body = http_get(f"http://{http}/state/{name}?key={key}")
    return json.loads(body) if status == 200 else None


def value_of(http: str, name: str, key: str) -> object:
    reading = state(http, name, key)
    return None if reading is None else reading.get("value")


# Each example and the test that runs it (a new example needs one).
EXAMPLES = {
    "mqtt-fleet-webhook.yaml": "test_example_mqtt_fleet_with_a_webhook",
    "http-persistence.yaml": "test_example_http_ingest_with_persistence_and_history",
    "frames-processor.yaml": "test_example_frames_through_a_processor",
    "cluster.yaml": "test_example_three_instance_cluster",
}


def test_every_example_passes_check(services: Services) -> None:
    found = sorted(p.name for p in (ROOT / "examples").glob("*.yaml"))
    assert found == sorted(EXAMPLES), f"examples/ holds {found}; EXAMPLES names the test of each"
    assert all(callable(globals().get(test)) for test in EXAMPLES.values())
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        config = example(path.name, services)
        if path.name == "frames-processor.yaml":
            (services.dir / "models").mkdir(exist_ok=True)
            shutil.copy(Path(services["models"]) / "conv_sigmoid.onnx", services.dir / "models")
        done = subprocess.run(
            [dav2d_command(), "check", str(config)], env=environment(), capture_output=True, text=True, timeout=DEADLINE
        )
        assert done.returncode == 0, f"examples/{path.name}: {done.stdout}{done.stderr}"


def mosquitto_pub(services: Services, topic: str, message: str) -> None:
    binary = broker_binary("mosquitto_pub")
    subprocess.run(
        [binary, "-h", "127.0.0.1", "-p", services["mqtt"], "-q", "1", "-t", topic, "-m", message],
        check=True,
        timeout=30,
    )


def test_example_mqtt_fleet_with_a_webhook(services: Services) -> None:
    config = example("mqtt-fleet-webhook.yaml", services)
    args, http = dav2d_run(config, services)
    with running(args, services.dir, services.dir / "dav2d.log", http):
        # QoS 1 messages reach dav2d once its subscription is in place: until
        # then, publish a first reading again on every try.
        def arrived() -> bool:
            mosquitto_pub(services, "plant/dev-017/temperature", "20.5")
            return value_of(http, "overheat", "dev-017") == "ok"

        wait_until("the first MQTT message to be applied", arrived, every=0.2)
        # The last three average 92: overheat trips (from ok, whatever the
        # waves these three are applied in).
        for value in ("90", '{"value": 92}', "94"):
            mosquitto_pub(services, "plant/dev-017/temperature", value)
        assert services.webhook is not None
        webhook = services.webhook

        def posted(state: str) -> list[dict]:
            bodies = [json.loads(b) for b in webhook.bodies]
            return [b for b in bodies if b.get("key") == "dev-017" and b.get("value") == state]

        (tripped,) = wait_until("the webhook POST of dev-017 tripping", lambda: posted("tripped"))
        assert tripped["name"] == "overheat"
        assert tripped["transition"] == {"from": "ok", "to": "tripped"}, tripped
        # The MQTT sink publishes the averages back, the latest retained
        # (transitions never are): once 92 was published, a client that
        # subscribes gets it at once.
        subscribe = [broker_binary("mosquitto_sub"), "-h", "127.0.0.1", "-p", services["mqtt"]]
        subscribe += ["-t", "dav2d/temp_avg/dev-017", "-W", "30"]
        with subprocess.Popen(subscribe, stdout=subprocess.PIPE, text=True) as watcher:
            assert watcher.stdout is not None
            for line in watcher.stdout:  # ends when -W 30 runs out
                if json.loads(line)["value"] == 92.0:
                    break
            else:
                pytest.fail("the MQTT sink never published dav2d/temp_avg/dev-017 = 92")
            watcher.terminate()
        retained = subprocess.run(subscribe[:-2] + ["-C", "1", "-W", "10"], capture_output=True, text=True, timeout=30)
        assert retained.returncode == 0, retained.stderr
        assert json.loads(retained.stdout)["value"] == 92.0, retained.stdout
        # Back to normal: the webhook hears that the alert cleared.
        for value in ("20", "21", "22"):
            mosquitto_pub(services, "plant/dev-017/temperature", value)
        wait_until("the webhook POST of dev-017 clearing", lambda: posted("ok"))


def test_example_http_ingest_with_persistence_and_history(services: Services) -> None:
    needs_module("pyarrow")
    import dav2d

    config = example("http-persistence.yaml", services)
    data = services.dir / "data"
    args, http = dav2d_run(config, services, "--data", str(data))
    t0 = 1_796_000_000_000_000_000
    samples = [
        {"key": key, "value": value, "ts": t0 + i * 1_000_000_000}
        for i, (key, value) in enumerate(
            [("dev-017", 20.0), ("dev-017", 22.0), ("dev-018", 30.0), ("dev-017", 24.0), ("dev-018", 999.0)]
        )
    ]
    with running(args, services.dir, services.dir / "dav2d.log", http):
        status, answer = http_post(f"http://{http}/ingest/temperature?ack=durable", samples)
        assert status == 200, answer
        assert answer["accepted"] == 4 and answer["rejected"] == 1, answer
        assert answer.get("durable") is True, answer
    # Stopped in order: checkpointed, the log rolled into Parquet.
    table = dav2d.history("temp_avg", key="dev-017", dir=str(data))
    assert table.column("value").to_pylist()[-1] == pytest.approx(22.0), table
    raw = dav2d.history("temperature", key="dev-017", dir=str(data))
    assert raw.column("value").to_pylist() == [20.0, 22.0, 24.0]
    exported = subprocess.run(
        [dav2d_command(), "export", str(data), "--name", "temp_avg", "--key", "dev-018", "--format", "ndjson"],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert exported.returncode == 0, exported.stderr
    rows = [json.loads(line) for line in exported.stdout.splitlines() if line.strip()]
    assert [row["value"] for row in rows] == [30.0], rows


def test_example_frames_through_a_processor(services: Services) -> None:
    needs_module("onnxruntime")
    config = example("frames-processor.yaml", services)
    (services.dir / "models").mkdir()
    shutil.copy(Path(services["models"]) / "conv_sigmoid.onnx", services.dir / "models")
    args, http = dav2d_run(config, services)
    with running(args, services.dir, services.dir / "dav2d.log", http):
        fraction = wait_until(
            "the processor's first mask and its coverage",
            lambda: isinstance(value_of(http, "covered", ""), float) and [value_of(http, "covered", "")],
        )
        assert 0.0 <= fraction[0] <= 1.0, fraction
        assert value_of(http, "crowded", "") in ("ok", "tripped")
        # The luma node runs on a worker of its own pace: wait for its first.
        wait_until("the luma node's first value", lambda: isinstance(value_of(http, "luma", ""), float))
        mask = state(http, "mask", "")
        assert mask is not None and "set" in json.dumps(mask), mask


def test_example_three_instance_cluster(services: Services) -> None:
    config = example("cluster.yaml", services)
    nats = f"nats://127.0.0.1:{services['nats']}"
    keys = [f"dev-{i:03}" for i in range(24)]
    with contextlib.ExitStack() as stack:
        members = []
        for name in "abc":
            args, http = dav2d_run(config, services, "--cluster", nats, "--data", str(services.dir / f"data-{name}"))
            stack.enter_context(running(args, services.dir, services.dir / f"{name}.log", http))
            members.append(http)
        samples = [{"key": key, "value": float(v + i)} for i, key in enumerate(keys) for v in (10, 20, 30)]
        status, answer = http_post(f"http://{members[0]}/ingest/temperature", samples)
        assert status == 200 and answer["accepted"] == len(samples), answer
        expected = {key: 20.0 + i for i, key in enumerate(keys)}  # the average of the three
        for http in members:
            wait_until(
                f"every key's average on {http}",
                lambda h=http: all(value_of(h, "temp_avg", k) == pytest.approx(v) for k, v in expected.items()),
                every=0.2,
            )
