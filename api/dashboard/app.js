// The NAO Service dashboard: one page of plain JavaScript over the service's own JSON API.
// Every view reads the public endpoints; actions (start, cancel, train, download) send the
// token kept in this browser's localStorage. No build step and no external URL: the page,
// this script, its style sheet and Plotly's bundle are all served by the API process.
"use strict";

const REFRESH_MS = 2000;
const TOKEN_KEY = "nao-token";
const PLOT_CONFIG = { displaylogo: false, responsive: true };
const ACTIVE = new Set(["queued", "running", "cancelling"]);
let timer = null;

// --- small helpers ------------------------------------------------------------------------

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function toast(message) {
  const el = document.getElementById("toast");
  el.textContent = message;
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.hidden = true; }, 6000);
}

function when(value) {  // the API may answer naive UTC timestamps (SQLite): read them as UTC
  if (!value) return null;
  return new Date(/[zZ]|[+-]\d\d:?\d\d$/.test(value) ? value : value + "Z");
}

function duration(seconds) {
  if (seconds === null || !isFinite(seconds)) return "";
  seconds = Math.max(0, Math.round(seconds));
  const hours = Math.floor(seconds / 3600), minutes = Math.floor((seconds % 3600) / 60);
  if (hours) return `${hours} h ${minutes} min`;
  if (minutes) return `${minutes} min ${seconds % 60} s`;
  return `${seconds} s`;
}

function fmt(value, digits = 4) {
  if (value === null || value === undefined) return "";
  if (typeof value !== "number") return String(value);
  return Number.isInteger(value) ? value.toLocaleString("en") : value.toFixed(digits);
}

function errorText(body, status) {
  if (body && Array.isArray(body.detail)) {
    return body.detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
  }
  if (body && body.detail) return String(body.detail);
  return `HTTP ${status}`;
}

// Reads carry the saved token too: a server with NAO_PRIVATE_READS=true asks for it.
function readHeaders() { return token() ? { Authorization: `Bearer ${token()}` } : {}; }

async function api(path, options = {}) {
  const headers = { ...readHeaders(), ...(options.headers || {}) };
  const response = await fetch(path, { ...options, headers });
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = text; }
  if (!response.ok) {
    const err = new Error(errorText(body, response.status));
    err.status = response.status;
    throw err;
  }
  return body;
}

function token() { return localStorage.getItem(TOKEN_KEY) || ""; }

async function act(method, path, body) {  // an action: needs the token
  if (!token()) {
    document.getElementById("token-input").focus();
    throw new Error("enter your API token first (top right)");
  }
  const headers = { Authorization: `Bearer ${token()}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  return api(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
}

async function download(checkpointId) {
  if (!token()) throw new Error("enter your API token first (top right)");
  const response = await fetch(`/checkpoints/${checkpointId}/download`, {
    headers: { Authorization: `Bearer ${token()}` },
  });
  if (!response.ok) throw new Error(`download failed: HTTP ${response.status}`);
  const url = URL.createObjectURL(await response.blob());
  const link = h("a", { href: url, download: `checkpoint-${checkpointId}.pt` });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

function guarded(fn) {  // a click handler whose errors become a toast
  return async (event) => {
    event.preventDefault();
    try { await fn(event); } catch (err) { toast(err.message); }
  };
}

function statusBadge(status) { return h("span", { class: `status ${status}` }, status); }

function method(job) {
  const config = job.config || {};
  if (config.method === "tabular") return config.strategy;
  return config.method || (job.kind === "search" ? "nao-ws" : "");
}

function progressCell(job) {
  const pct = Math.round((job.progress || 0) * 100);
  let text = `${pct}%`;
  if (job.config && job.config.method === "tabular") text = `${job.current}/${job.total} queries`;
  else if (job.kind === "search" && job.rounds) text += ` · round ${job.rounds}`;
  if (job.phase && ACTIVE.has(job.status)) text += ` · ${job.phase}`;
  return h("span", {}, h("span", { class: "bar" }, h("span", { style: `width:${pct}%` })), text);
}

function elapsed(job) {
  const start = when(job.started_at);
  if (!start) return null;
  const end = when(job.finished_at) || new Date();
  return (end - start) / 1000;
}

function eta(job) {
  const seconds = elapsed(job), p = job.progress || 0;
  if (job.status !== "running" || seconds === null || p < 0.02) return null;
  return (seconds * (1 - p)) / p;
}

function jobPath(job) { return job.kind === "search" ? `/ui/searches/${job.id}` : `/ui/jobs/${job.id}`; }

function show(id, visible) {
  const el = document.getElementById(id);
  if (!el || el.hidden === !visible) return;
  el.hidden = !visible;
  // The grid reflows: charts already drawn take their new widths (Plotly listens to resize).
  requestAnimationFrame(() => window.dispatchEvent(new Event("resize")));
}

function stepAxis(title, steps) {  // integer ticks for a few epochs or rounds
  const last = steps && steps.length ? steps[steps.length - 1] : 0;
  return last <= 20 ? { title: { text: title }, dtick: 1 } : { title: { text: title } };
}

function plot(id, traces, layout = {}) {
  const el = document.getElementById(id);
  if (!el) return;
  const base = { margin: { l: 50, r: 20, t: 30, b: 40 }, legend: { orientation: "h" }, ...layout };
  Plotly.react(el, traces, base, PLOT_CONFIG);
}

function every(fn) {  // refresh the current view while the page shows it
  clearInterval(timer);
  timer = setInterval(() => fn().catch((err) => console.warn(err)), REFRESH_MS);
}

async function inlineDrawing(archId, cls) {
  const url = `/architectures/${archId}/drawing.svg?inline=true`;
  const svg = await fetch(url, { headers: readHeaders() }).then((r) => r.text());
  const box = h("div", { class: cls, "data-architecture": archId });
  box.innerHTML = svg;  // our own server's SVG: no scripts, no external references
  return box;
}

// --- searches -----------------------------------------------------------------------------

async function searchesView(main) {
  const catalog = await api("/catalog");
  const form = h("form", { class: "inline", id: "new-search" },
    h("label", {}, "space", h("select", { name: "space" },
      catalog.spaces.map((s) => h("option", { value: s, selected: s === "cnn" }, s)))),
    h("label", {}, "dataset", h("select", { name: "dataset" }, h("option", { value: "" }, "(default)"),
      catalog.datasets.map((d) => h("option", { value: d, selected: d === "digits" }, d)))),
    h("label", {}, "method", h("select", { name: "method" }, h("option", { value: "" }, "(default)"),
      ["nao-ws", "nao", "random", "evolution"].map((m) => h("option", { value: m }, m)))),
    h("label", {}, "preset", h("input", { name: "preset", value: "tiny", size: 10 })),
    h("label", {}, "budget", h("input", { name: "budget", type: "number", min: 1, size: 6 })),
    h("label", {}, "seed", h("input", { name: "seed", type: "number", min: 0, size: 6 })),
    h("button", { class: "primary", type: "submit", id: "start-search" }, "Start search"));
  form.addEventListener("submit", guarded(async () => {
    const data = new FormData(form), body = { space: data.get("space") };
    for (const key of ["dataset", "method", "preset"]) if (data.get(key)) body[key] = data.get(key);
    for (const key of ["budget", "seed"]) if (data.get(key)) body[key] = Number(data.get(key));
    if (body.space === "nb201") { delete body.dataset; if (body.preset === "tiny") delete body.preset; }
    const job = await act("POST", "/searches", body);
    navigate(`/ui/searches/${job.id}`);
  }));
  const searches = h("tbody"), others = h("tbody");
  main.replaceChildren(
    h("h1", {}, "Searches"),
    h("div", { class: "card" }, h("h2", {}, "Start a search"), form),
    h("div", { class: "card" }, h("table", { id: "searches" },
      h("thead", {}, h("tr", {}, ["#", "status", "space", "dataset", "method", "preset", "progress",
        "best", "elapsed", "ETA", ""].map((c) => h("th", { class: ["best", "elapsed", "ETA"].includes(c) ? "num" : "" }, c)))),
      searches)),
    h("h2", {}, "Trainings and evaluations"),
    h("div", { class: "card" }, h("table", { id: "jobs" },
      h("thead", {}, h("tr", {}, ["#", "kind", "status", "space", "dataset", "preset", "progress",
        "result", ""].map((c) => h("th", {}, c)))), others)));

  async function refresh() {
    const [s, j] = await Promise.all([api("/searches?limit=50"), api("/jobs?limit=100")]);
    searches.replaceChildren(...s.data.map((job) => h("tr", { "data-job": job.id },
      h("td", {}, h("a", { href: jobPath(job) }, job.id)), h("td", {}, statusBadge(job.status)),
      h("td", {}, job.space), h("td", {}, job.dataset), h("td", {}, method(job)), h("td", {}, job.preset || ""),
      h("td", {}, progressCell(job)),
      h("td", { class: "num" }, job.best_score === null ? "" : `${fmt(job.best_score)} (${job.best_source})`),
      h("td", { class: "num" }, duration(elapsed(job))), h("td", { class: "num" }, duration(eta(job))),
      h("td", {}, cancelButton(job, refresh)))));
    const rest = j.data.filter((job) => job.kind !== "search");
    others.replaceChildren(...rest.map((job) => h("tr", { "data-job": job.id },
      h("td", {}, h("a", { href: jobPath(job) }, job.id)), h("td", {}, job.kind), h("td", {}, statusBadge(job.status)),
      h("td", {}, job.space), h("td", {}, job.dataset), h("td", {}, job.preset || ""), h("td", {}, progressCell(job)),
      h("td", {}, resultSummary(job)), h("td", {}, cancelButton(job, refresh)))));
  }
  await refresh();
  every(refresh);
}

function resultSummary(job) {
  const r = job.result || {};
  if (r.accuracy !== undefined && r.accuracy !== null) {
    const size = r.flops ? ` · ${fmt(r.params)} params · ${fmt(r.flops)} FLOPs` : "";
    return `accuracy ${fmt(r.accuracy)}${size}`;
  }
  if (r.perplexity) return `perplexity ${fmt(r.perplexity, 2)}`;
  if (job.error_message) return h("span", { class: "error" }, job.error_message.slice(0, 120));
  return "";
}

function cancelButton(job, after) {
  if (!ACTIVE.has(job.status) || job.status === "cancelling") return "";
  const url = job.kind === "sweep" ? `/sweeps/${job.id}/cancel` : `/jobs/${job.id}/cancel`;
  return h("button", { onclick: guarded(async () => { await act("POST", url); await after(); }) }, "Cancel");
}

// --- one search ---------------------------------------------------------------------------

async function searchView(main, id) {
  const head = h("div", { class: "card", id: "search-head" });
  const top = h("tbody");
  const lineageTable = h("tbody");
  const calibrationTable = h("tbody");
  main.replaceChildren(
    h("h1", {}, `Search ${id}`), head,
    h("div", { class: "grid" },
      h("div", { class: "card" }, h("h2", {}, "Best so far"), h("div", { id: "best", class: "chart" })),
      h("div", { class: "card", id: "card-pool", hidden: true }, h("h2", {}, "Pool scores per round"), h("div", { id: "pool", class: "chart" })),
      h("div", { class: "card", id: "card-calibration", hidden: true }, h("h2", {}, "Predictor calibration (predicted before measuring)"),
        h("div", { id: "calibration", class: "chart" }),
        h("table", {}, h("thead", {}, h("tr", {}, ["round", "pairs", "Kendall τ", "pairwise acc."].map((c) => h("th", { class: "num" }, c)))), calibrationTable)),
      h("div", { class: "card", id: "card-lineage", hidden: true }, h("h2", {}, "Lineage: step sizes of proposals and of the top-k"),
        h("div", { id: "lineage", class: "chart" }),
        h("table", {}, h("thead", {}, h("tr", {}, ["seed (pool id)", "proposed", "in top-k"].map((c) => h("th", { class: "num" }, c)))), lineageTable)),
      h("div", { class: "card", id: "card-training", hidden: true }, h("h2", {}, "Supernet training"), h("div", { id: "training", class: "chart" }))),
    h("div", { class: "card" }, h("h2", {}, "Top architectures"),
      h("table", { id: "top" }, h("thead", {}, h("tr", {}, ["rank", "architecture", "cell", "score", "params", "FLOPs", "trainings", ""].map((c) => h("th", {}, c)))), top)));

  let shownTop = "";
  async function refresh() {
    const job = await api(`/searches/${id}`);
    head.replaceChildren(h("dl", { class: "facts" },
      h("dt", {}, "status"), h("dd", {}, statusBadge(job.status), " ", cancelButton(job, refresh)),
      h("dt", {}, "space · dataset"), h("dd", {}, `${job.space} · ${job.dataset}`),
      h("dt", {}, "method · preset"), h("dd", {}, `${method(job)} · ${job.preset || ""}`),
      h("dt", {}, "progress"), h("dd", {}, progressCell(job)),
      h("dt", {}, "best"), h("dd", {}, job.best_score === null ? "" : `${fmt(job.best_score)} (${job.best_source})`),
      h("dt", {}, "elapsed · ETA"), h("dd", {}, `${duration(elapsed(job))} · ${duration(eta(job))}`),
      job.error_message ? [h("dt", {}, "error"), h("dd", { class: "error" }, job.error_message)] : null,
      h("dt", {}, ""), h("dd", {}, h("a", { href: `/ui/compare?ids=${id}` }, "compare with other searches"))));
    const { series } = await api(`/jobs/${id}/series?points=1000`);
    const tabular = job.config && job.config.method === "tabular";
    const best = series[tabular ? "best_signal" : "pool_best"];
    const traces = [];
    if (best) traces.push({ x: best.steps, y: best.values, mode: "lines+markers", name: "best so far" });
    const optimum = job.result && job.result.optimum;
    if (optimum && best) {
      traces.push({ x: [best.steps[0], best.steps[best.steps.length - 1]], y: [optimum.signal, optimum.signal],
        mode: "lines", name: "table optimum", line: { dash: "dash" } });
    }
    plot("best", traces, { xaxis: stepAxis(tabular ? "queries" : "round", best && best.steps), yaxis: { title: { text: "score" } } });
    const curves = Object.entries(series).filter(([name]) => !["pool_best", "best_signal", "lr"].includes(name));
    show("card-training", curves.length > 0);
    plot("training", curves.map(([name, s]) => ({ x: s.steps, y: s.values, mode: "lines", name,
      yaxis: /loss/.test(name) ? "y" : "y2" })), {
      xaxis: stepAxis("epoch", curves.length ? curves[0][1].steps : []), yaxis: { title: { text: "loss" } },
      yaxis2: { title: { text: "accuracy / perplexity" }, overlaying: "y", side: "right" },
      margin: { l: 50, r: 60, t: 30, b: 40 } });
    await roundsAndLineage();
    const key = `${job.status}:${job.best_score}`;
    if (key !== shownTop) { shownTop = key; await topTable(job); }
    if (!ACTIVE.has(job.status)) clearInterval(timer);
  }

  async function roundsAndLineage() {
    let rounds;
    try { rounds = (await api(`/searches/${id}/rounds`)).rounds; } catch { rounds = []; }
    show("card-pool", rounds.length > 0);
    plot("pool", rounds.map((r) => ({ y: r.scores, type: "box", name: `round ${r.round}`, boxpoints: false })),
      { showlegend: false, yaxis: { title: { text: "measured score" } } });
    const calibrated = rounds.filter((r) => r.calibration);
    show("card-calibration", calibrated.length > 0);
    calibrationTable.replaceChildren(...calibrated.map((r) => h("tr", {},
      h("td", { class: "num" }, r.round), h("td", { class: "num" }, r.calibration.count),
      h("td", { class: "num" }, fmt(r.calibration.kendall_tau, 3)),
      h("td", { class: "num" }, fmt(r.calibration.pairwise_accuracy, 3)))));
    plot("calibration", calibrated.map((r) => ({
      x: r.calibration.points.map((p) => p.predicted), y: r.calibration.points.map((p) => p.measured),
      mode: "markers", type: "scattergl", name: `round ${r.round}`, marker: { size: 5, opacity: 0.6 } })),
      { xaxis: { title: { text: "predicted (predictor output)" } }, yaxis: { title: { text: "measured" } } });
    let lineage;
    try { lineage = await api(`/searches/${id}/lineage?top=10`); } catch { return; }
    const steps = lineage.by_step_size || [];
    show("card-lineage", steps.length > 0);
    plot("lineage", [
      { x: steps.map((s) => String(s.step_size)), y: steps.map((s) => s.proposed), type: "bar", name: "proposed" },
      { x: steps.map((s) => String(s.step_size)), y: steps.map((s) => s.in_top), type: "bar", name: "in top-k" },
    ], { barmode: "group", xaxis: { title: { text: "step size" }, type: "category" } });
    const seeds = [...(lineage.by_seed || [])].sort((a, b) => b.in_top - a.in_top || b.proposed - a.proposed).slice(0, 10);
    lineageTable.replaceChildren(...seeds.map((s) => h("tr", {},
      h("td", { class: "num" }, s.parent_architecture_id
        ? h("a", { href: `/ui/architectures/${s.parent_architecture_id}` }, s.parent_pool_id) : s.parent_pool_id),
      h("td", { class: "num" }, s.proposed), h("td", { class: "num" }, s.in_top))));
  }

  async function topTable(job) {
    const order = job.best_source || "supernet";
    const { data } = await api(`/architectures?search=${id}&top=10&order_by=${order}`);
    const rows = await Promise.all(data.map(async (a, i) => {
      const jobs = (await api(`/architectures/${a.id}/jobs`)).data;
      const trained = jobs.find((j) => j.checkpoint_id);
      const measured = (trained && trained.result) || {};  // a training counts params and FLOPs
      return h("tr", { "data-architecture": a.id },
        h("td", { class: "num" }, i + 1),
        h("td", {}, h("a", { href: `/ui/architectures/${a.id}` }, `#${a.id}`)),
        h("td", {}, await inlineDrawing(a.id, "thumb")),
        h("td", { class: "num" }, fmt(a.scores[order])),
        h("td", { class: "num" }, fmt(a.params ?? measured.params)),
        h("td", { class: "num" }, fmt(measured.flops)),
        h("td", {}, jobs.map((j) => h("div", {}, h("a", { href: `/ui/jobs/${j.id}` }, `#${j.id}`), " ", statusBadge(j.status)))),
        h("td", {}, trainButton(a, job.preset), " ",
          trained ? h("button", { onclick: guarded(() => download(trained.checkpoint_id)) }, "Download") : ""));
    }));
    top.replaceChildren(...rows);
  }

  await refresh();
  every(refresh);
}

function trainButton(arch, preset) {
  if (arch.space === "nb201") return "";  // a table's cells are looked up, not trained here
  return h("button", { class: "train", onclick: guarded(async () => {
    const body = { architecture_id: arch.id };
    if (preset) body.preset = preset;
    const job = await act("POST", "/trainings", body);
    navigate(`/ui/jobs/${job.id}`);
  }) }, "Train");
}

// --- one architecture ---------------------------------------------------------------------

async function architectureView(main, id) {
  const a = await api(`/architectures/${id}`);
  let parent = null;
  try {
    const lineage = await api(`/searches/${a.job_id}/lineage?top=1`);
    parent = lineage.proposals.find((p) => p.architecture_id === a.id) || null;
  } catch { parent = null; }
  const jobs = h("tbody");
  main.replaceChildren(
    h("h1", {}, `Architecture ${a.id}`),
    h("div", { class: "card drawing", id: "drawing" }, await inlineDrawing(a.id, "cells")),
    h("div", { class: "grid" },
      h("div", { class: "card" }, h("dl", { class: "facts" },
        h("dt", {}, "search"), h("dd", {}, h("a", { href: `/ui/searches/${a.job_id}` }, `#${a.job_id}`)),
        h("dt", {}, "space · dataset"), h("dd", {}, `${a.space} · ${a.dataset}`),
        h("dt", {}, "text"), h("dd", {}, h("code", {}, a.arch)),
        h("dt", {}, "canonical hash"), h("dd", {}, h("code", {}, a.canonical_hash)),
        h("dt", {}, "params"), h("dd", {}, fmt(a.params)),
        h("dt", {}, "round · pool id"), h("dd", {}, `${a.round} · ${a.pool_id ?? ""}`),
        h("dt", {}, "lineage"), h("dd", {}, parent
          ? ["from seed ", parent.parent_architecture_id
            ? h("a", { href: `/ui/architectures/${parent.parent_architecture_id}` }, `#${parent.parent_architecture_id}`)
            : `pool ${parent.parent_pool_id}`, ` by step size ${fmt(parent.step_size, 2)}`,
            parent.predicted === null ? "" : `, predicted ${fmt(parent.predicted, 3)}`]
          : (a.parent_id === null ? "random (initial pool)" : `from pool id ${a.parent_id}`)))),
      h("div", { class: "card" }, h("h2", {}, "Scores by source"), h("table", {},
        h("tbody", {}, Object.entries(a.scores).map(([source, score]) => h("tr", {},
          h("td", {}, source), h("td", { class: "num" }, score === null ? "—" : fmt(score)))))))),
    h("div", { class: "card" }, h("h2", {}, "Trainings and evaluations ", trainButton(a, null)),
      h("table", {}, h("thead", {}, h("tr", {}, ["job", "kind", "status", "result", "checkpoint"].map((c) => h("th", {}, c)))), jobs)));
  async function refresh() {
    const { data } = await api(`/architectures/${id}/jobs`);
    jobs.replaceChildren(...data.map((j) => h("tr", {},
      h("td", {}, h("a", { href: `/ui/jobs/${j.id}` }, `#${j.id}`)), h("td", {}, j.kind), h("td", {}, statusBadge(j.status)),
      h("td", {}, resultSummary(j)),
      h("td", {}, j.checkpoint_id ? h("button", { onclick: guarded(() => download(j.checkpoint_id)) }, "Download") : ""))));
  }
  await refresh();
  every(refresh);
}

// --- one training or evaluation job -------------------------------------------------------

async function jobView(main, id) {
  const head = h("div", { class: "card" }), result = h("tbody"), checkpoint = h("div");
  main.replaceChildren(h("h1", {}, `Job ${id}`), head,
    h("div", { class: "grid" },
      h("div", { class: "card" }, h("h2", {}, "Loss"), h("div", { id: "loss", class: "chart" })),
      h("div", { class: "card" }, h("h2", {}, "Accuracy / perplexity"), h("div", { id: "quality", class: "chart" }))),
    h("div", { class: "grid" },
      h("div", { class: "card" }, h("h2", {}, "Result"), h("table", { id: "result" }, result)),
      h("div", { class: "card" }, h("h2", {}, "Checkpoint"), checkpoint)));
  async function refresh() {
    const job = await api(`/jobs/${id}`);
    head.replaceChildren(h("dl", { class: "facts" },
      h("dt", {}, "kind"), h("dd", {}, job.kind),
      h("dt", {}, "status"), h("dd", {}, statusBadge(job.status), " ", cancelButton(job, refresh)),
      h("dt", {}, "architecture"), h("dd", {}, job.architecture_id ? h("a", { href: `/ui/architectures/${job.architecture_id}` }, `#${job.architecture_id}`) : ""),
      h("dt", {}, "space · dataset · preset"), h("dd", {}, `${job.space || ""} · ${job.dataset || ""} · ${job.preset || ""}`),
      h("dt", {}, "progress"), h("dd", {}, progressCell(job)),
      h("dt", {}, "elapsed · ETA"), h("dd", {}, `${duration(elapsed(job))} · ${duration(eta(job))}`),
      job.error_message ? [h("dt", {}, "error"), h("dd", { class: "error" }, job.error_message)] : null));
    const { series } = await api(`/jobs/${id}/series?points=1000`);
    const lines = (test) => Object.entries(series).filter(([name]) => test(name))
      .map(([name, s]) => ({ x: s.steps, y: s.values, mode: "lines+markers", name }));
    const epochs = Object.values(series).length ? Object.values(series)[0].steps : [];
    plot("loss", lines((n) => /loss/.test(n)), { xaxis: stepAxis("epoch", epochs) });
    plot("quality", lines((n) => /acc|ppl|perplexity/.test(n)), { xaxis: stepAxis("epoch", epochs) });
    const flat = Object.entries(job.result || {}).filter(([, v]) => v === null || typeof v !== "object");
    result.replaceChildren(...flat.map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", { class: "num" }, fmt(v)))));
    if (job.checkpoint_id) {
      const c = await api(`/checkpoints/${job.checkpoint_id}`);
      checkpoint.replaceChildren(h("dl", { class: "facts" },
        h("dt", {}, "id"), h("dd", {}, c.id), h("dt", {}, "size"), h("dd", {}, `${fmt(c.size)} bytes`),
        h("dt", {}, "sha256"), h("dd", {}, h("code", {}, c.sha256))),
        h("p", {}, h("button", { id: "download", onclick: guarded(() => download(c.id)) }, "Download"), " ",
          h("button", { onclick: guarded(async () => {
            const e = await act("POST", "/evaluations", { checkpoint_id: c.id });
            navigate(`/ui/jobs/${e.id}`);
          }) }, "Evaluate")));
    } else {
      checkpoint.replaceChildren(h("p", { class: "muted" }, "none yet"));
    }
    if (!ACTIVE.has(job.status)) clearInterval(timer);
  }
  await refresh();
  every(refresh);
}

// --- compare ------------------------------------------------------------------------------

async function compareView(main) {
  const chosen = new Set((new URLSearchParams(location.search).get("ids") || "").split(",").filter(Boolean).map(Number));
  const { data } = await api("/searches?limit=200");
  const boxes = data.map((job) => h("label", { style: "margin-right:14px" },
    h("input", { type: "checkbox", value: job.id, checked: chosen.has(job.id) }),
    ` #${job.id} ${job.space} ${method(job)} ${job.status}`));
  const form = h("form", { id: "compare-form" }, boxes, " ", h("button", { class: "primary", type: "submit" }, "Compare"));
  form.addEventListener("submit", guarded(async () => {
    const ids = [...form.querySelectorAll("input:checked")].map((i) => i.value);
    history.replaceState(null, "", `/ui/compare?ids=${ids.join(",")}`);
    await draw(ids.map(Number));
  }));
  main.replaceChildren(h("h1", {}, "Compare searches"), h("div", { class: "card" }, form),
    h("div", { class: "card" }, h("h2", {}, "Best so far"), h("div", { id: "compare", class: "chart", style: "height:420px" })));
  async function draw(ids) {
    const jobs = data.filter((j) => ids.includes(j.id));
    const traces = await Promise.all(jobs.map(async (job) => {
      const { series } = await api(`/jobs/${job.id}/series?points=1000`);
      const s = series.best_signal || series.pool_best || { steps: [], values: [] };
      return { x: s.steps, y: s.values, mode: "lines", name: `#${job.id} ${method(job)}` };
    }));
    plot("compare", traces, { xaxis: { title: { text: "queries or rounds" } }, yaxis: { title: { text: "best so far" } } });
  }
  await draw([...chosen]);
}

// --- routing and the token ----------------------------------------------------------------

const ROUTES = [
  [/^\/(ui\/?)?(searches\/?)?$/, searchesView],
  [/^\/ui\/searches\/(\d+)$/, searchView],
  [/^\/ui\/architectures\/(\d+)$/, architectureView],
  [/^\/ui\/jobs\/(\d+)$/, jobView],
  [/^\/ui\/compare$/, compareView],
];

async function render() {
  clearInterval(timer);
  const main = document.getElementById("main");
  for (const [pattern, view] of ROUTES) {
    const match = location.pathname.match(pattern);
    if (!match) continue;
    try {
      await view(main, ...match.slice(1).filter((m) => /^\d+$/.test(m || "")).map(Number));
    } catch (err) {
      main.replaceChildren(h("h1", {}, "Not available"), h("p", { class: "error" }, err.message));
    }
    return;
  }
  main.replaceChildren(h("h1", {}, "Not found"), h("p", {}, h("a", { href: "/" }, "Back to the searches")));
}

function navigate(path) {
  history.pushState(null, "", path);
  render();
}

function showToken() {
  const set = Boolean(token());
  document.getElementById("token-state").textContent = set ? "token saved" : "";
  document.getElementById("token-input").hidden = set;
  document.getElementById("token-save").hidden = set;
  document.getElementById("token-forget").hidden = !set;
}

document.getElementById("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.getElementById("token-input");
  if (input.value.trim()) localStorage.setItem(TOKEN_KEY, input.value.trim());
  input.value = "";
  showToken();
});
document.getElementById("token-forget").addEventListener("click", () => {
  localStorage.removeItem(TOKEN_KEY);
  showToken();
});
document.addEventListener("click", (event) => {  // in-page links keep the page (no reload)
  const link = event.target.closest("a[href^='/']");
  if (!link || link.target || event.ctrlKey || event.metaKey || link.hasAttribute("download")) return;
  if (!ROUTES.some(([pattern]) => pattern.test(new URL(link.href).pathname))) return;
  event.preventDefault();
  navigate(link.getAttribute("href"));
});
window.addEventListener("popstate", render);
showToken();
render();
