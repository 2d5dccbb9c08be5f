"""The hostile corpus: configs and Python calls a careless operator or a
hostile client would try, generated from tables of settings and values.

Nothing here is kept by hand case by case: each table names where a value
goes (a YAML path, a keyword) and the values worth trying there, and the
corpus is their product. ``test_hostile.py`` runs it; ``python
python/tests/hostile.py DIR`` writes the configs to DIR to try by hand.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from pathlib import Path

# -- values ------------------------------------------------------------------------

DURATIONS = ["1e20", "2e19", "-1", "1000000000000 years", ".nan", ".inf", "soon", "18446744073709551616"]
SIZES = ["2TiB", "-1", "1e12", "18446744073709551615", "64 parsecs", "0"]
COUNTS = ["0", "-1", "4611686018427387904", "18446744073709551615", "1.5", "many"]
NUMBERS = [".nan", ".inf", "-.inf", "1e308", "-1e308"]
NAMES = ['""', '" "', "x" * 70_000, '"a\\u0000b"']

# A graph every template can extend: one stream, one node, one constraint.
BASE = """streams:
  - name: temp
nodes:
  - name: avg
    kind: moving_average
    input: temp
    n: 4
constraints:
  - name: hot
    input: avg
    trip: 80
"""

# Where a value goes: a template with `{v}` for the value.
DURATION_FIELDS = {
    "run.tick": "run:\n  tick: {v}\n",
    "http.header_timeout": "http:\n  header_timeout: {v}\n",
    "http.body_timeout": "http:\n  body_timeout: {v}\n",
    "tcp.idle_timeout": "tcp:\n  idle_timeout: {v}\n",
    "tcp.partial_timeout": "tcp:\n  partial_timeout: {v}\n",
    "persistence.flush_interval": "persistence:\n  flush_interval: {v}\n",
    "persistence.checkpoint_interval": "persistence:\n  checkpoint_interval: {v}\n",
    "persistence.retention": "persistence:\n  retention: {v}\n",
    "constraint.for": "constraints:\n  - name: warm\n    input: temp\n    trip: 1\n    for: {v}\n",
    "constraint.stale_after": "constraints:\n  - name: warm\n    input: temp\n    trip: 1\n    stale_after: {v}\n",
    "node.window": "nodes:\n  - name: recent\n    kind: moving_average\n    input: temp\n    window: {v}\n",
    "nats.jetstream.ack_wait": "sources:\n  - kind: nats\n    url: nats://127.0.0.1:4222\n    subjects:\n      - subject: a.{{key}}\n        stream: temp\n    jetstream:\n      stream: S\n      ack_wait: {v}\n",
}
SIZE_FIELDS = {
    "http.max_body": "http:\n  max_body: {v}\n",
    "tcp.max_line": "tcp:\n  max_line: {v}\n",
    "ingest.parallel_threshold": "ingest:\n  parallel_threshold: {v}\n",
    "ingest.body_budget": "ingest:\n  body_budget: {v}\n",
    "limits.value_size": "limits:\n  value_size: {v}\n",
    "limits.retained_values": "limits:\n  retained_values: {v}\n",
    "limits.key_length": "limits:\n  key_length: {v}\n",
    "limits.window_bytes": "limits:\n  window_bytes: {v}\n",
    "mqtt.max_message": "sources:\n  - kind: mqtt\n    url: mqtt://127.0.0.1:1883\n    max_message: {v}\n    subscriptions:\n      - topic: a/{{key}}\n        stream: temp\n",
}
COUNT_FIELDS = {
    "ingest.workers": "ingest:\n  workers: {v}\n",
    "ingest.all_queue": "ingest:\n  all_queue: {v}\n",
    "run.workers": "run:\n  workers: {v}\n",
    "http.max_connections": "http:\n  max_connections: {v}\n",
    "tcp.max_connections": "tcp:\n  max_connections: {v}\n",
    "limits.keys": "limits:\n  keys: {v}\n",
    "limits.streams": "limits:\n  streams: {v}\n",
    "synthetic.devices": "sources:\n  - kind: synthetic\n    stream: temp\n    devices: {v}\n",
    "node.n": "nodes:\n  - name: wide\n    kind: moving_average\n    input: temp\n    n: {v}\n",
    "stream.keep": "streams:\n  - name: kept\n    keep: {v}\n",
    "node.max_samples": "nodes:\n  - name: recent\n    kind: max\n    input: temp\n    window: 30s\n    max_samples: {v}\n",
    "synthetic.steps": "sources:\n  - kind: synthetic\n    stream: temp\n    steps: {v}\n",
}
NUMBER_FIELDS = {
    "synthetic.rate_hz": "sources:\n  - kind: synthetic\n    stream: temp\n    rate_hz: {v}\n",
    "synthetic.noise": "sources:\n  - kind: synthetic\n    stream: temp\n    noise: {v}\n",
    "ewma.alpha": "nodes:\n  - name: smooth\n    kind: ewma\n    input: temp\n    alpha: {v}\n",
    "constraint.trip": "constraints:\n  - name: warm\n    input: temp\n    trip: {v}\n",
    "stream.min": "streams:\n  - name: bounded\n    min: {v}\n    max: 1\n",
}
NAME_FIELDS = {
    "stream.name": "streams:\n  - name: {v}\n",
    "node.name": "nodes:\n  - name: {v}\n    kind: scale\n    input: temp\n",
    "http.token": "http:\n  token: {v}\n",
    "tcp.token": "tcp:\n  token: {v}\n",
}
# Whole documents that are hostile in themselves.
DOCUMENTS = {
    "empty": "",
    "binary": "\x00\x01\x02\xff\xfe",
    "not a map": "- 1\n- 2\n",
    "deep nesting": "a: " + "[" * 10_000 + "]" * 10_000 + "\n",
    "alias bomb": "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8))
    + "streams: *i\n",
    "cycle": "nodes:\n  - name: a\n    kind: scale\n    input: b\n  - name: b\n    kind: scale\n    input: a\n",
    "unknown kind": "sources:\n  - kind: carrier-pigeon\n",
    "kind not first": "sources:\n  - stream: temp\n    kind: synthetic\n",
    "duplicate names": "nodes:\n  - name: avg\n    kind: scale\n    input: temp\n",
    "bad bind": "http:\n  bind: 999.1.1.1:80\n",
    "bad port": "tcp:\n  bind: 127.0.0.1:99999\n",
    "missing tls": "http:\n  tls:\n    cert: /nonexistent/cert.pem\n    key: /nonexistent/key.pem\n",
    "unknown limit": "limits:\n  kyes: 5\n",
    "min above max": "streams:\n  - name: inverted\n    min: 5\n    max: 1\n",
    "huge line": "streams:\n  - name: " + "y" * 2_000_000 + "\n",
    "python logic nobody can import": "nodes:\n  - name: p\n    kind: python\n    logic: no_such_module:f\n    inputs: [temp, avg]\n",
    "python logic without a function": "nodes:\n  - name: p\n    kind: python\n    logic: os\n    input: temp\n",
    "non-ascii token": "http:\n  token: p\u00e4sswort\n",
    "token from an unset variable": "http:\n  token: ${DAV2D_NO_SUCH_VARIABLE}\n",
    "mqtt login twice": "sources:\n  - kind: mqtt\n    url: mqtt://u:p@127.0.0.1:1883\n    username: v\n    subscriptions:\n      - topic: a/{key}\n        stream: temp\n",
    "mqtts with a ca that is not one": "sources:\n  - kind: mqtt\n    url: mqtts://127.0.0.1:8883\n    ca: /nonexistent/ca.pem\n    subscriptions:\n      - topic: a/{key}\n        stream: temp\n",
    "frame pool over max_pinned_bytes": "sources:\n  - kind: frames\n    url: tcp://127.0.0.1:0?max_bytes=268435456&slots=64\n    stream: cam\n",
    "a keep of a million samples": "streams:\n  - name: kept\n    keep: 1048576\n",
    "processor resolution over the memory budget": "model_path: /nonexistent/m.onnx\nprocessing:\n  resolution: [16384, 16384]\n",
}


def configs() -> Iterator[tuple[str, str]]:
    """Every hostile config: (case name, YAML text)."""
    tables = [
        (DURATION_FIELDS, DURATIONS),
        (SIZE_FIELDS, SIZES),
        (COUNT_FIELDS, COUNTS),
        (NUMBER_FIELDS, NUMBERS),
        (NAME_FIELDS, NAMES),
    ]
    for fields, values in tables:
        for (field, template), value in itertools.product(fields.items(), values):
            yield f"{field}={value[:24]}", _merge(BASE, template.format(v=value))
    for name, text in DOCUMENTS.items():
        yield name, text if name in ("empty", "binary", "not a map", "deep nesting", "alias bomb", "huge line") else _merge(BASE, text)


def _merge(base: str, extra: str) -> str:
    """``base`` with ``extra``'s top-level sections added (a list section
    named in both gets ``extra``'s entries appended)."""
    sections: dict[str, list[str]] = {}
    order: list[str] = []
    for text in (base, extra):
        current = None
        for line in text.splitlines():
            if line and not line.startswith(" ") and line.endswith(":"):
                current = line[:-1]
                if current not in sections:
                    sections[current] = []
                    order.append(current)
                continue
            if current is not None:
                sections[current].append(line)
    return "".join(f"{name}:\n" + "".join(line + "\n" for line in sections[name]) for name in order)


# -- Python calls ------------------------------------------------------------------

BIG_INTS = ["10**12", "2**63", "2**64", "-1", "0"]
BAD_FLOATS = ["float('inf')", "float('nan')", "1e300", "-1.0", "-float('inf')"]

CALL_TEMPLATES = {
    "Graph(keep=)": "dav2d.Graph(keep={v})",
    "Graph(history=)": "dav2d.Graph(history={v})",
    "Graph(offload_workers=)": "dav2d.Graph(offload_workers={v})",
    "Graph(limits keys)": "dav2d.Graph(limits={{'keys': {v}}})",
    "declare_stream(keep=)": "g.declare_stream('s', keep={v})",
    "Node(window=)": "dav2d.Node('n', lambda w: 0.0, 'temp', window={v}).register(g)",
    "moving_average(n=)": "nodes.moving_average('n', 'temp', {v}).register(g)",
    "window(n=)": "g.window('temp', 'k', n={v})",
    "subscribe(capacity=)": "g.subscribe('temp', capacity={v})",
    "push(ts=)": "g.push('temp', 1.0, key='k', ts={v})",
}
FLOAT_TEMPLATES = {
    "get(timeout=)": "s = g.subscribe('temp'); g.push('temp', 1.0, key='k'); s.get(timeout={v})",
    "advance_clock()": "dav2d.Graph(manual_clock=True).advance_clock({v})",
    "Constraint(for_=)": "dav2d.Constraint('c', 'temp', trip=1.0, for_={v}).register(g)",
    "Constraint(stale_after=)": "dav2d.Constraint('c', 'temp', trip=1.0, stale_after={v}).register(g)",
    "Constraint(trip=)": "dav2d.Constraint('c', 'temp', trip={v}).register(g)",
    "ewma(alpha=)": "nodes.ewma('e', 'temp', {v}).register(g)",
    "persist(flush_interval=)": "g.persist(str(tmp / 'p'), flush_interval={v}).stop()",
}
ONE_OFF_CALLS = {
    "a panic inside the engine": "g._engine._panic_inside_engine()",
    "huge key": "g.push('temp', 1.0, key='k' * 10_000_000)",
    "huge stream name": "g.push('s' * 10_000_000, 1.0, key='k')",
    "huge string value": "g.push('text', 'v' * 50_000_000, key='k')",
    "key flood past the limit": "dav2d.Graph(limits={'keys': 10}).push_many('s', [1.0] * 100, keys=[str(i) for i in range(100)])",
    "keys and values of other lengths": "g.push_many('temp', [1.0, 2.0, 3.0], keys=['a', 'b'])",
    "timestamps of another length": "g.push_many('temp', [1.0, 2.0], ts=[1])",
    "nan on a finite stream": "g.declare_stream('fin', finite_only=True); g.push('fin', float('nan'), key='k')",
    "unknown subscribe mode": "g.subscribe('temp', mode='sometimes')",
    "unknown limit": "dav2d.Graph(limits={'kyes': 1})",
    "limit of the wrong type": "dav2d.Graph(limits={'keys': [1]})",
    "size limit as text": "dav2d.Graph(limits={'value_size': '64 parsecs'})",
    "load a missing config": "g.load_config(str(tmp / 'missing.yaml'))",
    "load a config with a 1e20 duration": "(tmp / 'd.yaml').write_text('run:\\n  tick: 1e20\\n'); g.load_config(str(tmp / 'd.yaml'))",
    "serve on a bad address": "g.serve(http='999.1.1.1:1', tcp='off').stop()",
    "serve on port 99999": "g.serve(http='127.0.0.1:99999', tcp='off').stop()",
    "serve with an empty token": "g.serve(http='127.0.0.1:0', tcp='off', token='').stop()",
    "persist into a file": "(tmp / 'file').write_text('x'); g.persist(str(tmp / 'file')).stop()",
    "history of a missing store": "dav2d.history(str(tmp / 'nothing'))",
    "node logic that raises": "dav2d.Node('boom', lambda w: 1 / 0, 'temp').register(g); g.push('temp', 1.0, key='k')",
    "node logic returning a string for a number": "dav2d.Node('str', lambda w: 'x', 'temp').register(g); g.push('temp', 1.0, key='k')",
    "cycle": "dav2d.Node('a', lambda w: 0.0, 'b').register(g); dav2d.Node('b', lambda w: 0.0, 'a').register(g); g.validate()",
    "iso time that is not one": "g.push('temp', 1.0, key='k', ts='yesterday-ish')",
    "frame timeout that is nan": "dav2d.FrameStream.open('synthetic:8x8@0?format=gray8').latest(timeout=float('nan'))",
    "frame url parameter twice": "dav2d.FrameStream.open('synthetic:8x8@0?format=gray8&format=rgb8')",
    "frame pool over max_pinned_bytes": "dav2d.FrameStream.open('synthetic:8192x8192@0?format=bgra8&slots=64')",
    "window bytes limit as text": "dav2d.Graph(limits={'window_bytes': 'lots'})",
}


def calls() -> Iterator[tuple[str, str]]:
    """Every hostile call: (case name, Python statement). The statement runs
    with ``dav2d``, ``nodes``, a graph ``g`` (stream ``temp`` declared) and
    a scratch folder ``tmp`` in scope."""
    for (name, template), value in itertools.product(CALL_TEMPLATES.items(), BIG_INTS):
        yield f"{name}{value}", template.format(v=value)
    for (name, template), value in itertools.product(FLOAT_TEMPLATES.items(), BAD_FLOATS):
        yield f"{name}{value}", template.format(v=value)
    yield from ONE_OFF_CALLS.items()


def main(folder: str) -> None:
    """Writes every config of the corpus into ``folder``."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for index, (_, text) in enumerate(configs()):
        (out / f"hostile-{index:03d}.yaml").write_text(text, errors="surrogateescape")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "hostile-configs")
