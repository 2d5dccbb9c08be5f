// The dav2d dashboard: draws /graph as a DAG with live counters, a node's
// or stream's values per key with server-downsampled sparklines, the
// alerts (constraint states and a timeline of transitions) and the
// components, from the read API and one /events stream. Memory is bounded
// (keys per name, transitions kept), and the page reconnects by itself.
"use strict";

const MAX_KEYS_PER_NAME = 5000;   // values kept per name on the page
const MAX_TRANSITIONS = 500;      // timeline entries kept
const ROWS_SHOWN = 50;            // rows of a values table
const SPARK_ROWS = 20;            // rows that get a sparkline
const GRAPH_REFRESH_MS = 2000;

const page = {
  token: sessionStorage.getItem("dav2d-token"),
  graph: null,
  values: new Map(),       // name -> Map(key -> {value, ts, error, change})
  transitions: [],         // newest first
  history: [],             // recorded transitions, newest first
  sparks: new Map(),       // "name\u0000key" -> points
  events: null,            // the AbortController of the /events read
  eventNames: "",
  retry: 1000,
};

class Unauthorized extends Error {}

async function api(path) {
  const headers = page.token ? { Authorization: "Bearer " + page.token } : {};
  const response = await fetch(path, { headers, cache: "no-store" });
  if (response.status === 401) {
    throw new Unauthorized(page.token ? "the token was refused" : "");
  }
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new Error(body.error || response.statusText);
  }
  return response.json();
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  return node;
}

function setStatus(text, kind) {
  const status = document.getElementById("status");
  status.textContent = text;
  status.className = "status " + (kind || "");
}

function formatValue(value) {
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toFixed(3);
  if (value === undefined || value === null) return "";
  return typeof value === "string" ? value : JSON.stringify(value);
}

function formatTime(ns) {
  return ns ? new Date(ns / 1e6).toISOString().replace("T", " ").replace("Z", "") : "";
}

// ---- the token ----

function askToken(message) {
  const form = document.getElementById("token-form");
  form.hidden = false;
  document.getElementById("token-error").textContent = message || "";
  document.getElementById("token-input").focus();
  setStatus("token needed", "down");
}

document.getElementById("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  page.token = document.getElementById("token-input").value;
  sessionStorage.setItem("dav2d-token", page.token);
  document.getElementById("token-form").hidden = true;
  start();
});

// ---- the /events stream (fetch, so the token goes in a header) ----

function remember(update) {
  let keys = page.values.get(update.name);
  if (!keys) page.values.set(update.name, (keys = new Map()));
  const before = keys.get(update.key);
  if (!before && keys.size >= MAX_KEYS_PER_NAME) keys.delete(keys.keys().next().value);
  const change = before && typeof before.value === "number" && typeof update.value === "number"
    ? update.value - before.value : 0;
  keys.set(update.key, { value: update.value, ts: update.ts, error: update.error, change });
}

async function readEvents(names) {
  const controller = new AbortController();
  page.events = controller;
  const headers = page.token ? { Authorization: "Bearer " + page.token } : {};
  // Conflated: at most four writes a second, the newest value per key and
  // every transition (the page redraws at most four times a second).
  const response = await fetch("/events?conflate=1&names=" + encodeURIComponent(names), {
    headers, signal: controller.signal, cache: "no-store",
  });
  if (response.status === 401) throw new Unauthorized("the token was refused");
  if (!response.ok) throw new Error("events: " + response.status);
  setStatus("live", "live");
  page.retry = 1000;
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let kind = "message";
      let data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) kind = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (!data) continue;
      if (kind === "reload") {
        // The config was reloaded: the graph's spec changed.
        page.version = JSON.parse(data).version;
        refresh().catch(() => {});
        continue;
      }
      const update = JSON.parse(data);
      remember(update);
      if (kind === "transition") {
        page.transitions.unshift(update);
        if (page.transitions.length > MAX_TRANSITIONS) page.transitions.length = MAX_TRANSITIONS;
      }
      page.dirty = true;
    }
  }
  throw new Error("the event stream ended");
}

function watchEvents(names) {
  if (page.events && page.eventNames === names) return;
  if (page.events) page.events.abort();
  page.eventNames = names;
  readEvents(names).catch((error) => {
    if (error.name === "AbortError") return;
    page.events = null;
    if (error instanceof Unauthorized) return askToken(error.message);
    // The server went away (a restart): try again, a little slower each time.
    setStatus("reconnecting", "down");
    setTimeout(() => refresh().catch(() => {}), page.retry);
    page.retry = Math.min(page.retry * 2, 5000);
  });
}

// ---- the graph ----

async function refresh() {
  try {
    page.graph = await api("/graph");
    updateRates(page.graph);
    document.getElementById("version").textContent = "spec v" + page.graph.version;
  } catch (error) {
    if (error instanceof Unauthorized) return askToken(error.message);
    setStatus("reconnecting", "down");
    page.events = null;
    setTimeout(() => refresh().catch(() => {}), page.retry);
    page.retry = Math.min(page.retry * 2, 5000);
    return;
  }
  const names = page.graph.streams.map((s) => s.name).concat(page.graph.nodes.map((n) => n.name));
  watchEvents(names.join(","));
  page.dirty = true;
}

// Evaluations per second of each node, from two readings of /graph.
const rates = new Map();   // name -> {evaluations, at, perSecond}

function updateRates(graph) {
  const now = performance.now();
  for (const node of graph.nodes) {
    const before = rates.get(node.name);
    const perSecond = before && node.evaluations >= before.evaluations && now > before.at
      ? ((node.evaluations - before.evaluations) * 1000) / (now - before.at) : 0;
    rates.set(node.name, { evaluations: node.evaluations, at: now, perSecond });
  }
}

function rate(node) {
  const r = (rates.get(node.name) || {}).perSecond || 0;
  return r >= 100 ? Math.round(r).toLocaleString() : r.toFixed(1);
}

function health(node) {
  if (node.errors > 0 || node.failing_keys > 0) return "bad";
  if (node.lag_seconds > 1 || node.conflated > node.evaluations) return "warn";
  return "ok";
}

function drawGraph(view) {
  const graph = page.graph;
  view.append(el("h2", { text: "Graph" }));
  if (!graph) return view.append(el("p", { text: "loading", class: "muted" }));
  // Layers: sources, then input streams, then each node one past its
  // deepest input, then sinks.
  const layer = new Map();
  const boxes = [];
  for (const source of graph.sources || []) { layer.set("source:" + source.name, 0); boxes.push({ id: "source:" + source.name, kind: "component", title: source.name, lines: [source.kind + " " + (source.address || "")], target: "#components" }); }
  for (const stream of graph.streams) { layer.set(stream.name, 1); boxes.push({ id: stream.name, kind: "stream", title: stream.name, lines: [stream.type + ", " + stream.keys + " keys", stream.accepted + " in, " + stream.rejected + " rejected"], target: "#node/" + encodeURIComponent(stream.name) }); }
  const byName = new Map(graph.nodes.map((n) => [n.name, n]));
  const depth = (name, seen = new Set()) => {
    if (layer.has(name)) return layer.get(name);
    const node = byName.get(name);
    if (!node || seen.has(name)) return 1;
    seen.add(name);
    const d = 1 + Math.max(1, ...node.inputs.map((i) => depth(i.name, seen)));
    layer.set(name, d);
    return d;
  };
  for (const node of graph.nodes) {
    depth(node.name);
    boxes.push({ id: node.name, kind: health(node), title: node.name, node,
      lines: [node.logic, rate(node) + " evals/s, " + node.conflated + " conflated", "lag " + node.lag_seconds.toFixed(3) + " s, " + node.errors + " errors" + (node.offload ? ", queue " + node.offload_waiting : "")],
      target: "#node/" + encodeURIComponent(node.name) });
  }
  const last = Math.max(1, ...layer.values()) + 1;
  for (const sink of graph.sinks || []) { layer.set("sink:" + sink.name, last); boxes.push({ id: "sink:" + sink.name, kind: "component", title: sink.name, lines: [sink.kind + " " + (sink.address || "")], target: "#components" }); }
  const rows = new Map();
  const at = new Map();
  const W = 210, H = 62, GX = 60, GY = 18;
  for (const box of boxes) {
    const l = layer.get(box.id);
    const row = rows.get(l) || 0;
    rows.set(l, row + 1);
    at.set(box.id, { x: 10 + l * (W + GX), y: 10 + row * (H + GY) });
  }
  const width = 20 + (last + 1) * (W + GX);
  const height = 20 + Math.max(...rows.values()) * (H + GY);
  const picture = svg("svg", { class: "dag", width, height, viewBox: `0 0 ${width} ${height}` });
  const edge = (from, to, policy) => {
    const a = at.get(from), b = at.get(to);
    if (!a || !b) return;
    picture.append(svg("line", { x1: a.x + W, y1: a.y + H / 2, x2: b.x, y2: b.y + H / 2, class: policy }));
  };
  // A source that names no streams (HTTP, TCP) may feed any input stream.
  for (const source of graph.sources || []) {
    const names = source.names && source.names.length ? source.names : graph.streams.map((s) => s.name);
    for (const name of names) edge("source:" + source.name, name, source.names && source.names.length ? "latest" : "any");
  }
  for (const node of graph.nodes) for (const input of node.inputs) edge(input.name, node.name, input.policy);
  for (const sink of graph.sinks || []) for (const name of sink.names || []) edge(name, "sink:" + sink.name, "latest");
  for (const box of boxes) {
    const p = at.get(box.id);
    const g = svg("g", { class: "node " + box.kind, "data-name": box.id, transform: `translate(${p.x},${p.y})` });
    g.append(svg("rect", { width: W, height: H, rx: 6 }));
    const title = svg("text", { x: 8, y: 15, class: "name" });
    title.textContent = box.title;
    g.append(title);
    box.lines.forEach((line, i) => {
      const text = svg("text", { x: 8, y: 30 + i * 13 });
      text.textContent = line.length > 34 ? line.slice(0, 33) + "…" : line;
      g.append(text);
    });
    g.addEventListener("click", () => { location.hash = box.target; });
    picture.append(g);
  }
  view.append(picture);
}

// ---- one name's values ----

function sparkline(points) {
  const picture = svg("svg", { class: "spark", width: 120, height: 24 });
  if (!points || points.length < 2) return picture;
  const lo = Math.min(...points.map((p) => p.min)), hi = Math.max(...points.map((p) => p.max));
  const y = (v) => 22 - (hi > lo ? ((v - lo) / (hi - lo)) * 20 : 10);
  const x = (i) => (i / (points.length - 1)) * 118 + 1;
  const band = points.map((p, i) => `${x(i)},${y(p.max)}`).concat(points.map((p, i) => `${x(i)},${y(p.min)}`).reverse());
  picture.append(svg("polygon", { points: band.join(" ") }));
  picture.append(svg("polyline", { points: points.map((p, i) => `${x(i)},${y(p.last)}`).join(" ") }));
  return picture;
}

async function loadName(name) {
  const page_ = await api("/state/" + encodeURIComponent(name) + "?limit=1000");
  for (const [key, reading] of Object.entries(page_.keys)) {
    const keys = page.values.get(name);
    if (!keys || !keys.has(key)) remember({ name, key, value: reading.value, ts: reading.ts, error: reading.error });
  }
  page.dirty = true;
}

async function loadSparks(name, keys) {
  for (const key of keys) {
    try {
      const window = await api("/window/" + encodeURIComponent(name) + "?points=60&key=" + encodeURIComponent(key));
      page.sparks.set(name + "\u0000" + key, window);
    } catch (error) { /* the key may be gone; its row shows no line */ }
  }
  page.dirty = true;
}

function drawName(view, name) {
  const graph = page.graph;
  const node = graph && graph.nodes.find((n) => n.name === name);
  const stream = graph && graph.streams.find((s) => s.name === name);
  view.append(el("h2", { text: name }));
  if (node) {
    const inputs = node.inputs.map((i) => `${i.name} [${i.span_seconds ? "last " + i.span_seconds + " s, at most " + i.window : "window " + i.window}, ${i.policy}]`).join(", ");
    view.append(el("p", { text: `${node.kind}: ${node.logic} over ${inputs}; priority ${node.priority}` + (node.deadband ? `, deadband ${node.deadband}` : "") + (node.offload ? ", offloaded" : "") }));
    view.append(el("p", { class: "muted", text: `${node.keys} keys, ${node.evaluations} evaluations, ${node.conflated} conflated, ${node.errors} errors, lag ${node.lag_seconds.toFixed(3)} s` }));
  } else if (stream) {
    view.append(el("p", { text: `input stream of ${stream.type}; keeps ${stream.keep}; ${stream.keys} keys, ${stream.accepted} accepted, ${stream.rejected} rejected` }));
  }
  const search = el("input", { id: "search", placeholder: "search keys", value: page.search || "" });
  search.addEventListener("input", () => { page.search = search.value; page.dirty = true; });
  const order = el("select", { id: "order" },
    el("option", { value: "key", text: "by key" }), el("option", { value: "value", text: "top by value" }), el("option", { value: "change", text: "top by change" }));
  order.value = page.order || "key";
  order.addEventListener("change", () => { page.order = order.value; page.dirty = true; });
  view.append(el("div", { class: "controls" }, search, order));
  const keys = page.values.get(name) || new Map();
  let rows = [...keys.entries()].filter(([key]) => !page.search || key.includes(page.search));
  if (page.order === "value") rows.sort((a, b) => (Number(b[1].value) || 0) - (Number(a[1].value) || 0));
  else if (page.order === "change") rows.sort((a, b) => Math.abs(b[1].change) - Math.abs(a[1].change));
  else rows.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const shown = rows.slice(0, ROWS_SHOWN);
  const table = el("table", { id: "values" }, el("tr", {}, el("th", { text: "key" }), el("th", { text: "value" }), el("th", { text: "recent" }), el("th", { text: "window" }), el("th", { text: "time" })));
  for (const [key, entry] of shown) {
    const spark = page.sparks.get(name + "\u0000" + key);
    const row = el("tr", { "data-key": key, class: typeof entry.value === "string" ? entry.value : "" },
      el("td", { text: key }), el("td", { class: "value", text: formatValue(entry.value) }),
      el("td", {}, sparkline((spark || {}).points)), el("td", { class: "value muted", text: spark ? String(spark.samples) : "" }),
      el("td", { class: "muted", text: formatTime(entry.ts) }));
    table.append(row);
    if (entry.error) table.append(el("tr", {}, el("td", { colspan: 5 }, el("pre", { class: "error", text: entry.error }))));
  }
  view.append(table);
  view.append(el("p", { class: "muted", text: `${shown.length} of ${rows.length} keys shown` }));
  page.sparkKeys = shown.slice(0, SPARK_ROWS).map(([key]) => key);
}

// ---- alerts ----

function drawAlerts(view) {
  view.append(el("h2", { text: "Alerts" }));
  const constraints = page.graph ? page.graph.nodes.filter((n) => n.kind === "constraint") : [];
  if (!constraints.length) view.append(el("p", { class: "muted", text: "no constraints in this graph" }));
  for (const constraint of constraints) {
    const keys = page.values.get(constraint.name) || new Map();
    const bad = [...keys.entries()].filter(([, e]) => e.value === "tripped" || e.value === "stale");
    view.append(el("h3", { text: `${constraint.name}: ${constraint.logic} (${bad.length} of ${keys.size} keys not ok)` }));
    const table = el("table", { class: "alerts", "data-constraint": constraint.name });
    for (const [key, entry] of bad.slice(0, ROWS_SHOWN)) table.append(el("tr", { class: entry.value, "data-key": key }, el("td", { text: key }), el("td", { text: entry.value }), el("td", { class: "muted", text: formatTime(entry.ts) })));
    view.append(table);
  }
  view.append(el("h3", { text: "Transitions, newest first" }));
  const list = el("ul", { id: "transitions" });
  for (const t of page.transitions.slice(0, 200)) {
    list.append(el("li", { "data-name": t.name, "data-key": t.key },
      el("span", { class: "muted", text: formatTime(t.ts) + " " }), `${t.name} ${t.key}: ${t.transition.from} → `,
      el("span", { class: "to-" + t.transition.to, text: t.transition.to })));
  }
  view.append(list);
  if (page.graph && page.graph.persistence) {
    view.append(el("h3", { text: "Recorded in the store, the last hour" }));
    const recorded = el("ul", { id: "history" });
    for (const t of (page.history || []).slice(0, 200)) {
      recorded.append(el("li", { "data-name": t.name, "data-key": t.key },
        el("span", { class: "muted", text: formatTime(t.ts) + " " }), `${t.name} ${t.key}: ${t.from} → `,
        el("span", { class: "to-" + t.to, text: t.to })));
    }
    view.append(recorded);
  }
}

// The constraints' transitions the store recorded in the last hour, newest
// first (each key's first row has no known "from").
async function loadHistory() {
  if (!page.graph || !page.graph.persistence) return;
  const found = [];
  for (const c of page.graph.nodes.filter((n) => n.kind === "constraint")) {
    const answer = await api(`/history/${encodeURIComponent(c.name)}?since=1h&limit=500`);
    const before = new Map();
    for (const row of answer.rows) {
      const from = before.has(row.key) ? before.get(row.key) : "?";
      if (from !== row.value) found.push({ name: c.name, key: row.key, ts: row.ts, from, to: row.value });
      before.set(row.key, row.value);
    }
  }
  found.sort((a, b) => b.ts - a.ts);
  page.history = found.slice(0, MAX_TRANSITIONS);
  page.dirty = true;
}

// ---- components ----

async function drawComponents(view) {
  view.append(el("h2", { text: "Components" }));
  const graph = page.graph || {};
  const counts = page.metrics || {};
  const table = el("table", { id: "components" }, el("tr", {}, ...["name", "kind", "where", "token", "names", "received", "accepted", "rejected", "up"].map((t) => el("th", { text: t }))));
  for (const [side, items] of [["source", graph.sources || []], ["sink", graph.sinks || []]]) {
    for (const c of items) {
      const m = counts[c.name] || {};
      table.append(el("tr", { "data-name": c.name }, el("td", { text: c.name }), el("td", { text: `${c.kind} (${side})` }), el("td", { text: c.address || "" }),
        el("td", { text: c.token === true ? "required" : c.token === false ? "none" : "" }), el("td", { text: (c.names || []).join(", ") }),
        el("td", { text: m.received ?? "" }), el("td", { text: m.accepted ?? "" }), el("td", { text: m.rejected ?? "" }), el("td", { text: m.up === undefined ? "" : m.up ? "up" : "degraded" })));
    }
  }
  view.append(table);
  if (graph.persistence) {
    view.append(el("p", { id: "persistence", class: counts._persistence_degraded ? "bad-text" : "",
      text: `persistence: ${graph.persistence.dir}; ${counts._persistence_degraded ? "DEGRADED (failing and retrying)" : "writing"}; `
        + `${counts._persisted_records ?? "?"} records, ${counts._checkpoints ?? "?"} checkpoints, ${counts._persistence_merged_updates ?? 0} updates merged while behind; `
        + `file actions today ${counts._file_actions_used_today ?? "?"} of ${counts._file_actions_budget ?? "?"}` }));
  }
  if (graph.cluster) view.append(el("p", { id: "cluster", text: `cluster: ${graph.cluster.instance} of ${graph.cluster.url}; `
    + `owns ${counts._cluster_partitions_owned ?? "?"} of ${graph.cluster.partitions} partitions (their leases), `
    + `${counts._cluster_messages_applied ?? "?"} messages applied, ${counts._cluster_checkpoints_loaded ?? 0} takeovers from a checkpoint` }));
  if (page.problems && page.problems.length) view.append(el("p", { class: "bad-text", text: "degraded: " + page.problems.join("; ") }));
}

async function loadComponents() {
  const headers = page.token ? { Authorization: "Bearer " + page.token } : {};
  const text = await (await fetch("/metrics", { headers, cache: "no-store" })).text();
  const counts = {};
  for (const line of text.split("\n")) {
    const m = line.match(/^dav2d_(samples_(received|accepted|rejected)_total|component_up)\{([^}]*)\} (\S+)/);
    if (m) {
      const component = (m[3].match(/component="([^"]*)"/) || [])[1];
      if (!component) continue;
      const entry = (counts[component] = counts[component] || {});
      const what = m[2] || "up";
      entry[what] = (entry[what] || 0) + Number(m[4]);
    }
    const single = line.match(/^dav2d_(persistence_degraded|persistence_merged_updates|file_actions_used_today|file_actions_budget|persisted_records|checkpoints|cluster_partitions_owned|cluster_messages_applied|cluster_checkpoints_loaded)(?:\{[^}]*\})? (\S+)/);
    if (single) counts["_" + single[1]] = Number(single[2]);
  }
  page.metrics = counts;
  const health = await fetch("/healthz", { cache: "no-store" }).then((r) => r.json()).catch(() => ({}));
  page.problems = health.problems || [];
  page.dirty = true;
}

// ---- frames ----

const previews = new Map();   // name -> {url, seq, ts, skipped, size, fps, busy}

function frameNames() {
  const graph = page.graph;
  if (!graph) return [];
  const streams = graph.streams.filter((s) => s.type === "frame").map((s) => s.name);
  const framed = new Set(streams);
  const nodes = graph.nodes.filter((n) => n.kind !== "constraint" && n.inputs.some((i) => framed.has(i.name))).map((n) => n.name);
  return streams.concat(nodes);
}

async function loadPreview(name) {
  const state = previews.get(name) || {};
  previews.set(name, state);
  if (state.busy) return;   // one request at a time per preview
  state.busy = true;
  try {
    // A frame source's key may be "" (one camera): test for none, not for falsy.
    let key = state.key;
    if (key === undefined) {
      const keys = page.values.get(name);
      const first = keys && keys.size ? [...keys.keys()]
        : Object.keys((await api("/state/" + encodeURIComponent(name) + "?limit=1")).keys);
      if (!first.length) return;
      key = state.key = first[0];
    }
    const headers = page.token ? { Authorization: "Bearer " + page.token } : {};
    const response = await fetch(`/frame/${encodeURIComponent(name)}?width=${page.previewWidth || 320}&key=${encodeURIComponent(key)}`, { headers, cache: "no-store" });
    if (response.status === 422) { state.notFrames = true; return; }
    if (!response.ok) return;
    const seq = Number(response.headers.get("x-frame-seq"));
    const ts = Number(response.headers.get("x-frame-ts"));
    if (state.seq !== undefined && ts > state.ts) state.fps = ((seq - state.seq) / ((ts - state.ts) / 1e9)).toFixed(1);
    state.seq = seq; state.ts = ts;
    state.skipped = response.headers.get("x-frame-skipped");
    state.size = response.headers.get("x-frame-size");
    const blob = await response.blob();
    if (state.url) URL.revokeObjectURL(state.url);   // bounded: one image per preview
    state.url = URL.createObjectURL(blob);
    page.dirty = true;
  } catch (error) {
    if (error instanceof Unauthorized) askToken(error.message);
  } finally {
    state.busy = false;
  }
}

function drawFrames(view) {
  view.append(el("h2", { text: "Frames" }));
  const rate = el("select", { id: "preview-rate" }, ...[1, 2, 5, 10].map((n) => el("option", { value: String(n), text: n + " previews/s" })));
  rate.value = String(page.previewRate || 2);
  rate.addEventListener("change", () => { page.previewRate = Number(rate.value); schedulePreviews(); });
  view.append(el("div", { class: "controls" }, rate));
  const names = frameNames();
  if (!names.length) view.append(el("p", { class: "muted", text: "no frame streams in this graph" }));
  const byName = new Map((page.graph ? page.graph.nodes : []).map((n) => [n.name, n]));
  for (const name of names) {
    const state = previews.get(name) || {};
    if (state.notFrames) continue;
    const box = el("figure", { class: "preview", "data-name": name });
    const stack = el("div", { class: "stack" });
    if (state.url) stack.append(el("img", { src: state.url, alt: name, "data-seq": String(state.seq) }));
    // A node over this frame stream whose output is a frame (a processor's
    // mask) is drawn over it.
    for (const node of byName.values()) {
      const mask = previews.get(node.name);
      if (mask && mask.url && !mask.notFrames && node.inputs.some((i) => i.name === name)) stack.append(el("img", { src: mask.url, class: "mask", alt: node.name + " over " + name }));
    }
    box.append(stack, el("figcaption", { text: `${name} ${state.key ? "(" + state.key + ")" : ""} ${state.size || ""} seq ${state.seq ?? "-"}, ${state.fps ?? "-"} frames/s, ${state.skipped ?? 0} skipped` }));
    view.append(box);
  }
}

function schedulePreviews() {
  if (page.previewTimer) clearInterval(page.previewTimer);
  page.previewTimer = setInterval(() => {
    if (document.hidden || !location.hash.startsWith("#frames")) return;
    for (const name of frameNames()) loadPreview(name);
  }, 1000 / (page.previewRate || 2));
}
schedulePreviews();

// ---- the views ----

function render() {
  page.dirty = false;
  const typing = document.activeElement && document.activeElement.id === "search";
  const view = document.getElementById("view");
  const [route, arg] = (location.hash.slice(1) || "graph").split("/");
  for (const link of document.querySelectorAll("header nav a")) link.classList.toggle("active", link.id === "nav-" + route);
  view.replaceChildren();
  if (route === "node") drawName(view, decodeURIComponent(arg || ""));
  else if (route === "alerts") drawAlerts(view);
  else if (route === "components") drawComponents(view);
  else if (route === "frames") drawFrames(view);
  else drawGraph(view);
  if (typing) {
    const search = document.getElementById("search");
    if (search) { search.focus(); search.setSelectionRange(search.value.length, search.value.length); }
  }
}

window.addEventListener("hashchange", () => {
  const [route, arg] = location.hash.slice(1).split("/");
  if (route === "node" && arg) loadName(decodeURIComponent(arg)).catch(() => {});
  if (route === "alerts" && page.graph) for (const n of page.graph.nodes) if (n.kind === "constraint") loadName(n.name).catch(() => {});
  if (route === "alerts") loadHistory().catch(() => {});
  if (route === "components") loadComponents().catch(() => {});
  render();
});

async function start() {
  await refresh();
  const [route, arg] = location.hash.slice(1).split("/");
  if (route === "node" && arg) await loadName(decodeURIComponent(arg)).catch(() => {});
  if (route === "alerts" && page.graph) for (const n of page.graph.nodes) if (n.kind === "constraint") await loadName(n.name).catch(() => {});
  if (route === "alerts") await loadHistory().catch(() => {});
  if (route === "components") await loadComponents().catch(() => {});
  render();
}

// Redraw at most 4 times a second, only when something changed; the graph's
// counters, the sparklines and the components every 2 s.
setInterval(() => { if (page.dirty) render(); }, 250);
setInterval(() => {
  if (document.hidden || !page.graph) return;
  refresh().catch(() => {});
  const [route, arg] = location.hash.slice(1).split("/");
  if (route === "node" && page.sparkKeys) loadSparks(decodeURIComponent(arg), page.sparkKeys);
  if (route === "components") loadComponents().catch(() => {});
  // The recorded timeline every 10 s (a scan of the store).
  if (route === "alerts" && (page.historyTick = (page.historyTick || 0) + 1) % 5 === 0) loadHistory().catch(() => {});
}, GRAPH_REFRESH_MS);
start();
