"""The dashboard in a real browser: Debian's headless Chromium driven by
selenium through Debian's chromium-driver (no browser is downloaded),
against `dav2d run` on loopback. Each test waits on what the page shows,
never on time, and saves a screenshot in ``target/test-artifacts/``."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from conftest import need, require
from docs_harness import (  # noqa: F401 (models is a fixture)
    ROOT,
    dav2d_command,
    environment,
    free_port,
    healthy,
    http_get,
    http_post,
    models,
    needs_module,
    stop_process,
    wait_until,
)

ARTIFACTS = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "test-artifacts"

CONFIG = """streams:
  - name: temp
    min: -50
    max: 500
nodes:
  - name: avg
    kind: moving_average
    input: temp
    n: 2
constraints:
  - name: hot
    input: avg
    trip: 100
    reset: 90
"""


@contextlib.contextmanager
def serving(folder: Path, config: str, http: str | None = None, data: str = "off") -> Iterator[str]:
    """`dav2d run` of `config` (its store in `data`, or none) until the
    block ends; yields its address."""
    http = http or f"127.0.0.1:{free_port()}"
    path = folder / "dashboard.yaml"
    path.write_text(config)
    args = [dav2d_command(), "run", str(path), "--http", http, "--tcp", "off", "--data", data, "--refresh", "1h"]
    log = folder / f"run-{http.rsplit(':', 1)[1]}.log"
    process = subprocess.Popen(args, env=environment(), stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        wait_until(f"dav2d to serve {http}", lambda: process.poll() is not None or healthy(http))
        assert process.poll() is None, log.read_text()
        yield http
    finally:
        stop_process(process, "dav2d run", log)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    need(bool(shutil.which("chromium") and shutil.which("chromedriver")),
         "Chromium and chromium-driver are not installed; `make test` installs them (scripts/test-deps.sh)")
    webdriver = require("selenium.webdriver")
    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,900", "--no-first-run", "--disable-extensions"):
        options.add_argument(argument)
    options.binary_location = shutil.which("chromium")
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver"))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()


def shot(driver: object, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"dashboard-{name}.png"))


def find(driver: object, css: str) -> list:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, css)


def text_of(driver: object, css: str) -> str:
    from selenium.common.exceptions import StaleElementReferenceException

    try:
        return " ".join(e.text for e in find(driver, css))
    except StaleElementReferenceException:  # redrawn between find and read: ask again
        return ""


def attributes(driver: object, css: str, name: str) -> list[str] | None:
    from selenium.common.exceptions import StaleElementReferenceException

    try:
        return [e.get_attribute(name) for e in find(driver, css)]
    except StaleElementReferenceException:
        return None


def click(driver: object, css: str) -> None:
    """Clicks the element `css` names, again if the page redrew it first."""
    from selenium.common.exceptions import StaleElementReferenceException

    def clicked() -> bool:
        try:
            find(driver, css)[0].click()
            return True
        except (StaleElementReferenceException, IndexError):
            return False

    wait_until(f"a click on {css}", clicked)


def cells(driver: object, css: str) -> list[str]:
    from selenium.common.exceptions import StaleElementReferenceException

    try:
        return [e.text for e in find(driver, css)]
    except StaleElementReferenceException:
        return []


def test_root_answers_a_browser_with_the_page_and_others_with_an_index(tmp_path: Path) -> None:
    with serving(tmp_path, CONFIG) as http:
        status, body = http_get(f"http://{http}/")
        assert status == 200
        index = json.loads(body)
        assert "GET /graph" in index["endpoints"] and "GET /window/{name}?key=K" in index["endpoints"]
        out = subprocess.run(["curl", "-s", "-D", "-", "-H", "Accept: text/html", f"http://{http}/"],
                             capture_output=True, text=True, check=True).stdout
        assert "<title>dav2d</title>" in out
        assert "content-security-policy: default-src 'none'; script-src 'self'" in out.lower()
        assert "<script>" not in out, "no inline script"


def test_the_demo_graph_a_pushed_value_and_an_alert_show_in_the_browser(tmp_path: Path, browser: object) -> None:
    with serving(tmp_path, CONFIG) as http:
        browser.get(f"http://{http}/#graph")
        for name in ("temp", "avg", "hot"):
            wait_until(f"node {name} drawn", lambda name=name: find(browser, f'svg.dag g.node[data-name="{name}"]'))
        wait_until("the events stream live", lambda: text_of(browser, "#status") == "live")
        shot(browser, "graph")
        # A value pushed over HTTP appears in the stream's view.
        for value in (41.0, 42.5):
            assert http_post(f"http://{http}/ingest/temp", [{"key": "probe-1", "value": value}])[0] == 200
        click(browser, 'svg.dag g.node[data-name="temp"]')
        wait_until("the pushed value on the page",
                   lambda: "42.5" in text_of(browser, '#values tr[data-key="probe-1"] td.value'))
        # Its window (41, 42.5), downsampled by the server, as a sparkline.
        wait_until("its sparkline", lambda: find(browser, '#values tr[data-key="probe-1"] svg.spark polyline'))
        shot(browser, "stream")
        # An alert transition appears in the alerts view.
        browser.get(f"http://{http}/#alerts")
        wait_until("the events stream live again", lambda: text_of(browser, "#status") == "live")
        assert http_post(f"http://{http}/ingest/temp", [{"key": "probe-2", "value": 300.0}])[0] == 200
        wait_until("the transition in the timeline",
                   lambda: "tripped" in text_of(browser, '#transitions li[data-name="hot"][data-key="probe-2"]'))
        wait_until("the tripped key listed", lambda: find(browser, 'table.alerts tr.tripped[data-key="probe-2"]'))
        shot(browser, "alerts")
        # The components view lists the HTTP door with its counts.
        browser.get(f"http://{http}/#components")
        def received() -> int:
            row = cells(browser, '#components tr[data-name="http"] td')
            return int(row[5]) if len(row) > 5 and row[5].isdigit() else 0

        wait_until("the http source with the samples it received", lambda: received() >= 3)


def test_a_frame_preview_updates(tmp_path: Path, browser: object) -> None:
    config = """sources:
  - kind: frames
    url: synthetic:320x240@30?format=bgra8
    stream: camera
nodes:
  - name: luma
    kind: mean_luma
    input: camera
"""
    with serving(tmp_path, config) as http:
        browser.get(f"http://{http}/#frames")
        image = 'figure.preview[data-name="camera"] img'
        first = wait_until("a preview", lambda: attributes(browser, image, "data-seq"))
        wait_until("the preview to move on", lambda: attributes(browser, image, "data-seq") not in (None, [], first))
        shot(browser, "frames")
        # The preview is a real JPEG.
        status, _ = http_get(f"http://{http}/state/camera")
        assert status == 200


def test_a_wrong_token_is_refused_and_the_right_one_opens_the_page(tmp_path: Path, browser: object) -> None:
    config = CONFIG + 'http:\n  token: "s3cret-token"\n'
    with serving(tmp_path, config) as http:
        browser.get(f"http://{http}/")
        browser.execute_script("sessionStorage.clear()")
        browser.get(f"http://{http}/#graph")
        wait_until("the token form", lambda: find(browser, "#token-form:not([hidden])"))
        find(browser, "#token-input")[0].send_keys("wrong")
        click(browser, "#token-submit")
        wait_until("the wrong token refused", lambda: "refused" in text_of(browser, "#token-error"))
        assert not find(browser, "svg.dag")
        field = find(browser, "#token-input")[0]
        field.clear()
        field.send_keys("s3cret-token")
        click(browser, "#token-submit")
        wait_until("the graph with the token", lambda: find(browser, 'svg.dag g.node[data-name="avg"]'))
        shot(browser, "token")
        browser.execute_script("sessionStorage.clear()")


def test_the_page_keeps_working_across_a_server_restart(tmp_path: Path, browser: object) -> None:
    http = f"127.0.0.1:{free_port()}"
    with serving(tmp_path, CONFIG, http):
        browser.get(f"http://{http}/#node/temp")
        wait_until("the events stream live", lambda: text_of(browser, "#status") == "live")
    wait_until("the page to see the server gone", lambda: text_of(browser, "#status") == "reconnecting")
    with serving(tmp_path, CONFIG, http):
        wait_until("the page live again", lambda: text_of(browser, "#status") == "live", deadline=30)
        assert http_post(f"http://{http}/ingest/temp", [{"key": "after-restart", "value": 7.25}])[0] == 200
        wait_until("a value pushed after the restart",
                   lambda: "7.25" in text_of(browser, '#values tr[data-key="after-restart"] td.value'))
        shot(browser, "restart")


def test_the_alerts_view_reads_the_recorded_transitions_from_the_store(tmp_path: Path, browser: object) -> None:
    config = CONFIG + "persistence:\n  flush_interval: 100ms\n"
    with serving(tmp_path, config, data=str(tmp_path / "data")) as http:
        for value in (300.0, 10.0, 10.0):
            assert http_post(f"http://{http}/ingest/temp", [{"key": "recorded", "value": value}])[0] == 200

        def recorded() -> list:
            status, body = http_get(f"http://{http}/history/hot?since=1h&key=recorded")
            return [r["value"] for r in json.loads(body)["rows"]] if status == 200 else []

        wait_until("the store to hold the trip and the reset", lambda: recorded()[-2:] == ["tripped", "ok"])
        # A page opened afterwards saw none of it live: it reads the store.
        browser.get(f"http://{http}/#alerts")
        wait_until("the recorded transitions",
                   lambda: "tripped → ok" in text_of(browser, '#history li[data-name="hot"][data-key="recorded"]'))
        shot(browser, "history")
    # Without persistence, /history says so.
    with serving(tmp_path, CONFIG) as http:
        status, body = http_get(f"http://{http}/history/hot")
        assert status == 404 and "persistence is off" in body, body


def test_a_processor_mask_is_drawn_over_its_frame(tmp_path: Path, browser: object, models: object) -> None:
    needs_module("onnxruntime")
    model = Path(models()) / "conv_sigmoid.onnx"
    config = f"""streams:
  - name: camera
    type: frame
sources:
  - kind: frames
    url: synthetic:160x120@15?format=rgb8
    stream: camera
nodes:
  - name: mask
    input: camera
    processor:
      model_path: {model}
      processing:
        resolution: [32, 32]
        threshold: 0.5
        threads: 1
"""
    with serving(tmp_path, config) as http:
        browser.get(f"http://{http}/#frames")
        wait_until("the mask over the camera's preview",
                   lambda: find(browser, 'figure.preview[data-name="camera"] img.mask'), deadline=60)
        wait_until("the mask's own preview", lambda: find(browser, 'figure.preview[data-name="mask"] img'))
        shot(browser, "mask")
