"""Logs that fit a file: `dav2d run` writes no colour codes when its stderr
is not a terminal, `--log-format json` writes one JSON object a line, and a
publisher of bad broker messages gets one WARN line a second at most,
saying how many more there were (a real mosquitto on loopback)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from docs_harness import (  # noqa: F401 (models and services are fixtures)
    Services,
    broker_binary,
    dav2d_command,
    environment,
    free_port,
    healthy,
    http_get,
    models,
    services,
    stop_process,
    wait_until,
)

CONFIG = """streams:
  - name: temperature
    min: -50
    max: 200
sources:
  - kind: mqtt
    name: plant
    url: mqtt://127.0.0.1:{mqtt}
    qos: 1
    subscriptions:
      - topic: plant/{{key}}/temperature
        stream: temperature
"""

BAD = 300


def rejected(http: str) -> float:
    _, text = http_get(f"http://{http}/metrics")
    return sum(float(v) for v in re.findall(r'dav2d_samples_rejected_total\{component="plant"[^}]*\} (\S+)', text))


def run_and_reject(services: Services, *flags: str) -> str:
    """Runs the config with `flags`, publishes BAD messages that are not
    numbers, waits until all are rejected, stops; returns the log."""
    config = services.dir / "logs.yaml"
    config.write_text(CONFIG.format(mqtt=services["mqtt"]))
    http = f"127.0.0.1:{free_port()}"
    log = services.dir / f"dav2d{'-'.join(flags)}.log"
    args = [dav2d_command(), *flags, "run", str(config), "--http", http, "--tcp", "off", "--data", "off", "--refresh", "1h"]
    env = {k: v for k, v in environment().items() if k != "NO_COLOR"}
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"))
    try:
        wait_until("dav2d to serve", lambda: process.poll() is not None or healthy(http))
        publish = [broker_binary("mosquitto_pub"), "-h", "127.0.0.1", "-p", services["mqtt"], "-q", "1",
                   "-t", "plant/dev-001/temperature", "-l"]
        lines = "".join(f"not a number {i}\n" for i in range(BAD))

        # QoS 1 messages published before dav2d subscribed are lost: publish
        # the batch again until dav2d has rejected BAD of them.
        def all_rejected() -> bool:
            subprocess.run(publish, input=lines, text=True, check=True, timeout=30)
            return wait_until_within(lambda: rejected(http) >= BAD)

        wait_until("every bad message to be rejected", all_rejected, every=0.2)
        # The lines held back are counted on the next line let through (one
        # a second): publish until it is written.
        def counted() -> bool:
            subprocess.run(publish, input=lines, text=True, check=True, timeout=30)
            return "more not logged in the last second" in log.read_text()

        wait_until("a line that counts the ones held back", counted, every=0.2)
    finally:
        stop_process(process, "dav2d run", log)
    return log.read_text()


def wait_until_within(check, seconds: float = 5.0) -> bool:
    import time

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_a_log_file_gets_no_colour_and_bad_messages_one_line_a_second(services: Services) -> None:
    text = run_and_reject(services)
    assert "\x1b[" not in text, f"colour codes in a log file:\n{text[:2000]}"
    warnings = [line for line in text.splitlines() if "WARN" in line and "rejected" in line]
    assert 2 <= len(warnings) < BAD / 10, f"{len(warnings)} WARN lines for {BAD}+ rejected messages:\n{text[:3000]}"
    assert any("more not logged in the last second" in line for line in warnings), "\n".join(warnings)


def test_log_format_json_writes_one_object_a_line(services: Services) -> None:
    text = run_and_reject(services, "--log-format", "json")
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    warnings = [r for r in records if r.get("level") == "WARN" and "rejected" in r.get("fields", {}).get("message", "")]
    assert warnings, text[:3000]
    assert warnings[0]["fields"]["topic"] == "plant/dev-001/temperature", warnings[0]
