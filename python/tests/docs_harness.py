"""The harness that runs the docs: every fenced block of README.md,
docs/*.md and examples/README.md as written (``test_docs.py``), and every
config in examples/ against real brokers on loopback (``test_examples.py``).

How a block runs, by its language:

- ``yaml``: written to a file in the page's folder; ``dav2d check FILE`` must
  pass, then ``dav2d run FILE --for 2s`` (with HTTP and TCP on free loopback
  ports and ``--data`` in the page's folder) must exit 0 without logging a
  WARN or ERROR line (an unreachable broker, say).
- ``python``, ``py``: executed in one Python interpreter per page, block after
  block, as a reader pasting them in order would. A statement whose line
  carries the comment ``# raises NAME`` must raise ``NAME``; the page goes on.
- ``sh``, ``bash``, ``shell``, ``console``: run with ``bash -e``, ``PATH``
  starting with the folder of the ``dav2d`` command under test (and of the
  Python running the tests, so ``python`` and ``pip`` are the venv's); curl
  fails on an HTTP error status (a ``.curlrc`` with ``--fail-with-body``).
- ``text``: output; never run. Any other language must be marked (below).

Each page runs in a fresh folder of its own holding a copy of ``examples/``
(so ``examples/...`` paths work as in a checkout), and its blocks run in
order, so what one block writes the next can read.

A block is marked by HTML comments (invisible on GitHub) on the lines just
above its fence:

- ``<!-- output -->``: a sample of output or an error message; not run.
- ``<!-- fragment: WHY -->``: a part of a config or program; not run. WHY
  says where the whole one is.
- ``<!-- skip: WHY -->``: complete, but not run here; WHY says why and what
  runs it instead.
- ``<!-- before: COMMAND -->``: COMMAND runs to completion first.
- ``<!-- while: COMMAND -->``: COMMAND (a ``dav2d run`` with ``--http``) is
  started first; the block runs once its ``/healthz`` answers, and COMMAND is
  then stopped with SIGTERM and must exit 0.
- ``<!-- serves: ADDRESS ... -->``: the block starts servers in the
  background (``&``); it passes once every ADDRESS answers ``/healthz``, and
  they are then stopped.

``PLACEHOLDERS`` below is the one place where a block's text is changed
before it runs: each text on the left, wherever a block (or a marker's
command) has it, becomes the value on the right. ``{mqtt}`` and ``{nats}``
are the ports of a mosquitto and a ``nats-server -js`` the harness starts
for the page when a block first names them (and stops after it);
``{webhook}`` is a receiver of its own that answers every POST with 200;
the other ports are free loopback ports, one per name and page; ``{dir}`` is
the page's folder; ``{models}`` holds the ONNX models ``models.py`` writes.
Any other loopback address in a runnable block is an error, so no block ever
reaches a port it does not own. The tests of the examples fill
``examples/*.yaml`` from the same table.

A missing broker, ``onnx``, ``onnxruntime`` or ``pyarrow`` skips a test,
saying so, except under ``make test`` (which sets ``DAV2D_REQUIRE_PEERS``),
where it fails (``conftest.require``).
Waits poll a condition until a deadline; nothing sleeps to synchronise.

``python python/tests/docs_harness.py`` prints every block and what is
done with it.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import conftest
from conftest import require

ROOT = Path(__file__).resolve().parents[2]
PAGES = ["README.md", *sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")), "examples/README.md"]

# The one place where a block's text is changed before it runs (see above).
PLACEHOLDERS = {
    # Brokers, started by the harness when a block names them.
    "127.0.0.1:1883": "127.0.0.1:{mqtt}",
    "127.0.0.1:4222": "127.0.0.1:{nats}",
    # A webhook receiver of the harness's own.
    "127.0.0.1:9093": "127.0.0.1:{webhook}",
    # dav2d's own listeners, on free ports.
    "localhost:8080": "127.0.0.1:{http}",
    "127.0.0.1:8080": "127.0.0.1:{http}",
    "127.0.0.1:7070": "127.0.0.1:{tcp}",
    "127.0.0.1:7071": "127.0.0.1:{tcp_1}",
    "127.0.0.1:7072": "127.0.0.1:{tcp_2}",
    "127.0.0.1:7073": "127.0.0.1:{tcp_3}",
    "127.0.0.1:8081": "127.0.0.1:{http_1}",
    "127.0.0.1:8082": "127.0.0.1:{http_2}",
    "127.0.0.1:8083": "127.0.0.1:{http_3}",
    # Paths outside the page's folder.
    "/absolute/path/to/model.onnx": "{models}/conv_sigmoid.onnx",
    "/models/people.onnx": "{models}/conv_sigmoid.onnx",
    "/mnt/archive/dav2d": "{dir}/archive",
}

LANGUAGES = {
    "yaml": "yaml",
    "yml": "yaml",
    "python": "python",
    "py": "python",
    "sh": "shell",
    "bash": "shell",
    "shell": "shell",
    "console": "shell",
}
MARKERS = {"output", "fragment", "skip", "before", "while", "serves"}
LOOPBACK = re.compile(r"(?:127\.0\.0\.1|localhost):\d+")
DEADLINE = 120.0  # seconds any one step may take (the debug build is slow)
RUN_FOR = "2s"  # how long a yaml block's `dav2d run` runs


# --------------------------------------------------------------------------
# Reading the pages


@dataclass
class Block:
    page: str
    line: int  # of the opening fence, from 1
    language: str
    text: str
    markers: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def kind(self) -> str | None:
        """How it runs (`yaml`, `python`, `shell`), or None when it does not."""
        if {"output", "fragment", "skip"} & self.markers.keys() or self.language == "text":
            return None
        return LANGUAGES.get(self.language)

    def plan(self) -> str:
        """What the harness does with it, in words."""
        for marker in ("output", "fragment", "skip"):
            if marker in self.markers:
                why = self.markers[marker]
                return f"not run ({marker}{': ' + why if why else ''})"
        if self.language == "text":
            return "not run (text: output)"
        if self.kind is None:
            return "ERROR: unmarked, in a language the harness does not run"
        extras = [f"{m}: {v}" for m, v in self.markers.items()]
        how = {"yaml": "check + run --for " + RUN_FOR, "python": "python", "shell": "bash -e"}[self.kind]
        return "run: " + how + ("; " + "; ".join(extras) if extras else "")


FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>```+)(?P<language>[^`\s]*)\s*$")
MARKER = re.compile(r"^\s*<!--\s*(?P<name>[a-z-]+)\s*(?::\s*(?P<value>.*?))?\s*-->\s*$")


def read_blocks(page: str) -> list[Block]:
    path = ROOT / page
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        markers: dict[str, str] = {}
        j = i - 1
        while j >= 0 and (marker := MARKER.match(lines[j])):
            markers[marker["name"]] = marker["value"] or ""
            j -= 1
        indent, fence = opening["indent"], opening["fence"]
        body = []
        k = i + 1
        while k < len(lines) and lines[k].strip() != fence:
            body.append(lines[k][len(indent) :] if lines[k].startswith(indent) else lines[k])
            k += 1
        blocks.append(Block(page, i + 1, opening["language"].lower(), "\n".join(body) + "\n", markers))
        i = k + 1
    return blocks


def all_blocks() -> list[Block]:
    return [block for page in PAGES for block in read_blocks(page)]


def problems_of(block: Block) -> list[str]:
    """Why `block` is marked wrongly, if it is."""
    problems = []
    for name, value in block.markers.items():
        if name not in MARKERS:
            problems.append(f"unknown marker '{name}' (known: {', '.join(sorted(MARKERS))})")
        elif name in ("fragment", "skip") and not value:
            problems.append(f"<!-- {name}: WHY --> needs its reason")
        elif name in ("before", "while", "serves") and not value:
            problems.append(f"<!-- {name}: ... --> needs a value")
    if block.kind is None and not ({"output", "fragment", "skip"} & block.markers.keys()) and block.language != "text":
        problems.append(
            f"a ```{block.language or '(no language)'} block the harness cannot run: mark it "
            "<!-- output -->, <!-- fragment: WHY --> or <!-- skip: WHY -->"
        )
    if block.kind is not None:
        texts = [block.text, *(block.markers.get(m, "") for m in ("before", "while", "serves"))]
        for address in sorted({a for text in texts for a in LOOPBACK.findall(text)}):
            if address not in PLACEHOLDERS:
                problems.append(f"{address} is not in PLACEHOLDERS: add it there so the harness gives it a port")
        if "while" in block.markers and "--http" not in block.markers["while"]:
            problems.append("<!-- while: --> needs a `dav2d run ... --http ADDRESS` command")
    return problems


# --------------------------------------------------------------------------
# What the blocks run against


def brokers_required() -> bool:
    return bool(os.environ.get("DAV2D_REQUIRE_BROKERS") or os.environ.get("DAV2D_REQUIRE_PEERS"))


def needs_module(name: str) -> None:
    """Imports `name`: a missing one skips, or fails under `make test`."""
    require(name)


def broker_binary(name: str) -> str:
    found = shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/local/sbin") / name) if p.is_file()), None
    )
    if found is None:
        why = f"{name} is not installed (bash scripts/test-deps.sh installs it)"
        if brokers_required():
            pytest.fail(f"make test needs the brokers: {why}")
        pytest.skip(why)
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what: str, done: Callable[[], object], deadline: float = DEADLINE, every: float = 0.05) -> object:
    """Polls `done` until it returns something true, or fails after `deadline` s."""
    return conftest.wait_until(what, done, deadline, every)


def listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except (OSError, urllib.error.URLError):
        return 0, ""


def http_post(url: str, body: object) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def healthy(address: str) -> bool:
    return http_get(f"http://{address}/healthz")[0] == 200


def stop_process(process: subprocess.Popen, what: str, log: Path | None = None) -> None:
    """SIGTERM, then the exit status must be 0 (dav2d stops in order)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            pytest.fail(f"{what} did not stop within 60 s of SIGTERM{tail(log)}")
    assert process.returncode == 0, f"{what} exited with {process.returncode}{tail(log)}"


def tail(log: Path | None, size: int = 4000) -> str:
    if log is None or not log.exists():
        return ""
    return f"\n--- {log.name} ---\n" + log.read_text(errors="replace")[-size:]


ANSI = re.compile(r"\x1b\[[0-9;]*m")
LOGGED = re.compile(r"^\d{4}-\d\d-\d\dT\S+\s+(?:WARN|ERROR)\s.*$", re.M)


def warnings_in(log: Path) -> str:
    """The WARN and ERROR lines `dav2d` logged: a config that runs as
    written logs none (an unreachable broker, a refused sample ...)."""
    found = LOGGED.findall(ANSI.sub("", log.read_text(errors="replace")))
    return "\n".join(found[:10])


def dav2d_command() -> str:
    """The `dav2d` command under test: the package's console script beside
    the Python running the tests, else the Rust binary of target/."""
    script = Path(sys.executable).parent / "dav2d"
    if script.exists():
        return str(script)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    for binary in (target / "release" / "dav2d", target / "debug" / "dav2d"):
        if binary.exists():
            return str(binary)
    pytest.fail("no dav2d command: run `make develop` (or cargo build -p dav2d-cli)")


_CURL_HOME: list[str] = []


def environment() -> dict[str, str]:
    """The environment of every command a block runs: `dav2d`, `python` and
    `pip` first on PATH, and a `.curlrc` that makes curl fail on an HTTP
    error status (`--fail-with-body`), so a refused request fails its block."""
    if not _CURL_HOME:
        _CURL_HOME.append(tempfile.mkdtemp(prefix="dav2d-docs-curl-"))
        (Path(_CURL_HOME[0]) / ".curlrc").write_text("--fail-with-body\n")
    dirs = [str(Path(dav2d_command()).parent), str(Path(sys.executable).parent)]
    path = os.pathsep.join([*dict.fromkeys(dirs), os.environ.get("PATH", "")])
    return {**os.environ, "PATH": path, "CURL_HOME": _CURL_HOME[0]}


class Webhook:
    """An HTTP receiver that answers every POST with 200 and keeps the bodies."""

    def __init__(self) -> None:
        self.bodies: list[str] = []
        received = self.bodies

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the standard library's name
                length = int(self.headers.get("Content-Length") or 0)
                received.append(self.rfile.read(length).decode())
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Services:
    """The brokers, receivers, ports and folders of one page or test, made
    when first asked for and stopped by `close`."""

    def __init__(self, dir: Path, models: Callable[[], Path]) -> None:  # noqa: A002
        self.dir = dir
        self._models = models
        self.values: dict[str, str] = {"dir": str(dir)}
        self.stack = contextlib.ExitStack()
        self.webhook: Webhook | None = None

    def __getitem__(self, name: str) -> str:
        if name not in self.values:
            if name == "mqtt":
                self.values[name] = str(self._mosquitto())
            elif name == "nats":
                self.values[name] = str(self._nats())
            elif name == "webhook":
                self.webhook = Webhook()
                self.stack.callback(self.webhook.close)
                self.values[name] = str(self.webhook.port)
            elif name == "models":
                self.values[name] = str(self._models())
            else:
                self.values[name] = str(free_port())
        return self.values[name]

    def fill(self, text: str) -> str:
        """`text` with every PLACEHOLDERS text replaced."""
        for written in sorted(PLACEHOLDERS, key=len, reverse=True):
            if written in text:
                text = text.replace(written, PLACEHOLDERS[written].format_map(self))
        return text

    def _spawn(self, what: str, command: list[str], port: int, log: Path) -> int:
        out = log.open("w")
        self.stack.callback(out.close)
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)

        def stop() -> None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

        self.stack.callback(stop)
        wait_until(f"{what} to listen on {port}", lambda: process.poll() is not None or listening(port), 20)
        assert process.poll() is None, f"{what} exited with {process.returncode}{tail(log)}"
        return port

    def _mosquitto(self) -> int:
        binary = broker_binary("mosquitto")
        port = free_port()
        folder = self.dir / f"mosquitto-{port}"
        folder.mkdir(parents=True)
        folder.chmod(0o777)  # started as root, mosquitto drops to its own user
        (folder / "mosquitto.conf").write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
        return self._spawn("mosquitto", [binary, "-c", str(folder / "mosquitto.conf")], port, folder / "log")

    def _nats(self) -> int:
        binary = broker_binary("nats-server")
        port = free_port()
        folder = self.dir / f"nats-{port}"
        folder.mkdir(parents=True)
        command = [binary, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(folder / "store")]
        return self._spawn("nats-server", command, port, folder / "log")

    def close(self) -> None:
        self.stack.close()


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Callable[[], Path]:
    """Writes models.py's ONNX models once, when first asked for."""
    made: list[Path] = []

    def make() -> Path:
        if not made:
            needs_module("onnx")
            sys.path.insert(0, str(Path(__file__).parent))
            import models as builder

            out = tmp_path_factory.mktemp("models")
            builder.write_models(out)
            made.append(out)
        return made[0]

    return make


@pytest.fixture
def services(tmp_path: Path, models: Callable[[], Path]) -> Iterator[Services]:
    made = Services(tmp_path, models)
    yield made
    made.close()


@contextlib.contextmanager
def running(args: list[str], cwd: Path, log: Path, http: str) -> Iterator[subprocess.Popen]:
    """`dav2d ARGS` serving until the block is done: started, waited for
    until `http` answers /healthz, then stopped with SIGTERM (exit 0)."""
    out = log.open("w")
    process = subprocess.Popen(args, cwd=cwd, env=environment(), stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(
            f"`{shlex.join(args)}` to answer http://{http}/healthz",
            lambda: process.poll() is not None or healthy(http),
        )
        assert process.poll() is None, f"`{shlex.join(args)}` exited with {process.returncode}{tail(log)}"
        yield process
        stop_process(process, shlex.join(args), log)
        assert not warnings_in(log), f"`{shlex.join(args)}` logged:\n{warnings_in(log)}"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        out.close()


# --------------------------------------------------------------------------
# Running a page

DRIVER = r"""
import ast, json, os, re, sys, traceback
results = os.fdopen(int(sys.argv[1]), "w")
namespace = {"__name__": "__main__"}
for request in sys.stdin:
    where, line, source = json.loads(request)
    try:
        tree = ast.parse(source, filename=where)
        ast.increment_lineno(tree, line)
        lines = source.splitlines()
        for statement in tree.body:
            code = compile(ast.Module([statement], []), where, "exec")
            text = "\n".join(lines[statement.lineno - line - 1 : statement.end_lineno - line])
            raises = re.search(r"#\s*raises\s+([\w.]+)", text)
            if raises is None:
                exec(code, namespace)
                continue
            expected = eval(raises.group(1), namespace)
            try:
                exec(code, namespace)
            except expected:
                traceback.print_exc()
            else:
                raise AssertionError(f"{where}:{statement.lineno}: did not raise {raises.group(1)}")
        answer = {"ok": True}
    except BaseException:
        answer = {"ok": False, "error": traceback.format_exc()}
    sys.stdout.flush()
    sys.stderr.flush()
    results.write(json.dumps(answer) + "\n")
    results.flush()
"""


class Interpreter:
    """One Python for a page's blocks, in order, sharing one namespace."""

    def __init__(self, cwd: Path, log: Path) -> None:
        self.log = log
        self.out = log.open("w")
        read, write = os.pipe()
        self.results = os.fdopen(read)
        self.process = subprocess.Popen(
            [sys.executable, "-u", "-c", DRIVER, str(write)],
            cwd=cwd,
            env=environment(),
            stdin=subprocess.PIPE,
            stdout=self.out,
            stderr=subprocess.STDOUT,
            pass_fds=[write],
            text=True,
        )
        os.close(write)

    def run(self, block: Block, source: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps([block.page, block.line, source]) + "\n")
        self.process.stdin.flush()
        ready, _, _ = select.select([self.results], [], [], DEADLINE)
        if not ready:
            self.close()
            pytest.fail(f"{block.where}: the python block did not finish within {DEADLINE:.0f} s{tail(self.log)}")
        line = self.results.readline()
        if not line:
            pytest.fail(f"{block.where}: the interpreter died running this block{tail(self.log)}")
        answer = json.loads(line)
        if not answer["ok"]:
            pytest.fail(f"{block.where}: the python block failed:\n{answer['error']}{tail(self.log)}")

    def close(self) -> None:
        if self.process.stdin:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.results.close()
        self.out.close()


class Page:
    def __init__(self, name: str, services: Services) -> None:
        self.name = name
        self.services = services
        self.dir = services.dir
        shutil.copytree(ROOT / "examples", self.dir / "examples")
        self.python: Interpreter | None = None

    def close(self) -> None:
        if self.python:
            self.python.close()

    def command(self, text: str) -> list[str]:
        """A marker's command, filled, with `dav2d` the command under test."""
        args = shlex.split(self.services.fill(text))
        if args and args[0] == "dav2d":
            args[0] = dav2d_command()
        return args

    def run_block(self, block: Block) -> None:
        fill = self.services.fill
        if "before" in block.markers:
            args = self.command(block.markers["before"])
            log = self.dir / f"before-{block.line}.log"
            with log.open("w") as out:
                done = subprocess.run(
                    args, cwd=self.dir, env=environment(), stdout=out, stderr=subprocess.STDOUT, timeout=DEADLINE
                )
            assert done.returncode == 0, f"{block.where}: before: `{shlex.join(args)}` failed{tail(log)}"
        with contextlib.ExitStack() as stack:
            if "while" in block.markers:
                args = self.command(block.markers["while"])
                http = args[args.index("--http") + 1]
                stack.enter_context(running(args, self.dir, self.dir / f"while-{block.line}.log", http))
            text = fill(block.text)
            if block.kind == "yaml":
                self.run_yaml(block, text)
            elif block.kind == "python":
                if self.python is None:
                    self.python = Interpreter(self.dir, self.dir / "python.log")
                self.python.run(block, text)
            elif "serves" in block.markers:
                self.run_serving(block, text, fill(block.markers["serves"]).split())
            else:
                self.run_shell(block, text)

    def run_yaml(self, block: Block, text: str) -> None:
        path = self.dir / f"block-{block.line}.yaml"
        path.write_text(text)
        dav2d = dav2d_command()
        log = self.dir / f"block-{block.line}.log"
        with log.open("w") as out:
            checked = subprocess.run(
                [dav2d, "check", str(path)], cwd=self.dir, env=environment(), stdout=out, stderr=out, timeout=DEADLINE
            )
        assert checked.returncode == 0, f"{block.where}: `dav2d check` failed{tail(log)}{shown(text)}"
        args = [
            dav2d, "run", str(path), "--for", RUN_FOR, "--refresh", "1h",
            "--http", f"127.0.0.1:{free_port()}", "--tcp", f"127.0.0.1:{free_port()}",
            "--data", str(self.dir / f"data-{block.line}"),
        ]  # fmt: skip
        with log.open("a") as out:
            ran = subprocess.run(args, cwd=self.dir, env=environment(), stdout=out, stderr=out, timeout=DEADLINE)
        assert ran.returncode == 0, f"{block.where}: `dav2d run --for {RUN_FOR}` failed{tail(log)}{shown(text)}"
        assert not warnings_in(log), f"{block.where}: `dav2d run` logged:\n{warnings_in(log)}{shown(text)}"

    def start_shell(self, block: Block, text: str, out: object) -> subprocess.Popen:
        """Starts the block as a `bash -e` script in a process group of its
        own (what it starts in the background shares it), output to `out`."""
        script = self.dir / f"block-{block.line}.sh"
        script.write_text(text)
        return subprocess.Popen(
            ["bash", "-e", str(script)],
            cwd=self.dir,
            env=environment(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def run_shell(self, block: Block, text: str) -> None:
        log = self.dir / f"block-{block.line}.log"
        with log.open("w") as out:
            shell = self.start_shell(block, text, out)
            try:
                try:
                    shell.wait(timeout=DEADLINE)
                except subprocess.TimeoutExpired:
                    pytest.fail(f"{block.where}: the shell block did not end within {DEADLINE:.0f} s{tail(log)}")
                exited = f"{block.where}: the shell block exited with {shell.returncode}"
                assert shell.returncode == 0, f"{exited}{tail(log)}{shown(text)}"
            finally:
                stop_group(shell)

    def run_serving(self, block: Block, text: str, addresses: list[str]) -> None:
        log = self.dir / f"block-{block.line}.log"
        with log.open("w") as out:
            shell = self.start_shell(block, text, out)  # its background servers share its group
            try:
                failed = lambda: shell.poll() not in (None, 0)  # noqa: E731
                for address in addresses:
                    wait_until(f"{address} to answer /healthz", lambda a=address: failed() or healthy(a))
                    assert not failed(), f"{block.where}: the block exited with {shell.returncode}{tail(log)}"
            finally:
                stop_group(shell)
        assert not warnings_in(log), f"{block.where}: what the block started logged:\n{warnings_in(log)}"


def stop_group(shell: subprocess.Popen) -> None:
    """Stops what a shell block left running in its process group: SIGTERM,
    up to 60 s to exit, then SIGKILL."""
    group = shell.pid
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGTERM)
    end = time.monotonic() + 60
    while _group_alive(group) and time.monotonic() < end:
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)
    shell.wait()


def shown(text: str) -> str:
    return f"\n--- the block, as run ---\n{text}"


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    # Members that exited but are not yet reaped count as gone.
    for status in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = status.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == group and fields[0] != "Z":
                return True
    return False


# --------------------------------------------------------------------------


def main() -> None:
    """Prints every block and what the harness does with it."""
    for block in all_blocks():
        problems = problems_of(block)
        print(f"{block.where:28} {block.language or '-':8} {block.plan()}" + (f"  !! {problems}" if problems else ""))


if __name__ == "__main__":
    main()
