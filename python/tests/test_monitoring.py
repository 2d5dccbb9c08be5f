"""examples/monitoring: the Grafana dashboard parses and refers only to
metrics a running dav2d exports, and so do the Prometheus alert rules, which
`promtool check rules` passes (promtool out of Debian's prometheus package,
unpacked into target/tools by scripts/test-deps.sh)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from conftest import need
from docs_harness import (
    ROOT,
    dav2d_command,
    environment,
    free_port,
    healthy,
    http_get,
    http_post,
    stop_process,
    wait_until,
)

FOLDER = ROOT / "examples" / "monitoring"

CONFIG = """streams:
  - name: temperature
    min: -50
    max: 200
nodes:
  - name: temp_avg
    kind: moving_average
    input: temperature
    n: 3
  - name: slow_avg
    kind: moving_average
    input: temperature
    n: 3
    offload: true
constraints:
  - name: overheat
    input: temp_avg
    trip: 80
sources:
  - kind: synthetic
    stream: temperature
    devices: 5
    rate_hz: 10
metrics:
  values: [overheat]
"""


def exported(tmp_path: Path) -> set[str]:
    """The metric families a dav2d with every part on exports (a rejection
    sent first, so the labelled families are there)."""
    config = tmp_path / "monitoring.yaml"
    config.write_text(CONFIG)
    http = f"127.0.0.1:{free_port()}"
    log = tmp_path / "dav2d.log"
    args = [dav2d_command(), "run", str(config), "--http", http, "--tcp", "off", "--data", str(tmp_path / "data"),
            "--refresh", "1h"]
    process = subprocess.Popen(args, env=environment(), stdout=subprocess.DEVNULL, stderr=log.open("w"))
    try:
        wait_until("dav2d to serve", lambda: process.poll() is not None or healthy(http))
        assert http_post(f"http://{http}/ingest/temperature", [{"key": "x", "value": 999}])[0] == 422
        text = wait_until("the exported states", lambda: (lambda t: t if "dav2d_constraint_state{" in t else None)(
            http_get(f"http://{http}/metrics")[1]))
    finally:
        stop_process(process, "dav2d run", log)
    families = set(re.findall(r"^# TYPE (\w+) ", text, re.M))
    # Counters are written `name_total`, histograms `name_bucket` etc.
    return families | {f"{f}_total" for f in families} | {f"{f}_{s}" for f in families for s in ("bucket", "sum", "count")}


def referenced(text: str) -> set[str]:
    return set(re.findall(r"\b(dav2d_\w+)", text))


def test_the_grafana_dashboard_and_the_rules_use_only_exported_metrics(tmp_path: Path) -> None:
    dashboard = json.loads((FOLDER / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 10, exprs
    rules = (FOLDER / "dav2d-alerts.rules.yaml").read_text()
    names = exported(tmp_path)
    used = referenced("\n".join(exprs)) | referenced(rules)
    assert used, "no dav2d metric named"
    unknown = sorted(used - names)
    assert not unknown, f"not exported by dav2d: {unknown}; exported: {sorted(names)}"


def test_promtool_passes_the_alert_rules() -> None:
    tools = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "tools" / "usr" / "bin" / "promtool"
    promtool = shutil.which("promtool") or (str(tools) if tools.exists() else None)
    need(promtool is not None, "promtool is not here; `make test` unpacks it from Debian's prometheus package")
    checked = subprocess.run([promtool, "check", "rules", str(FOLDER / "dav2d-alerts.rules.yaml")],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 6 rules found" in checked.stdout, checked.stdout
