// The anygate dashboard: reads /ui/api/* (this process's recent requests and deployment health) and,
// when a key-management hook serves them, LiteLLM's admin endpoints (/key/*, /team/*). No build step.
"use strict";

const KEY_STORAGE = "anygate.key";
const REFRESH_MS = 5000;
const $ = (id) => document.getElementById(id);
const state = {
  key: sessionStorage.getItem(KEY_STORAGE), dim: "model", charts: {}, timer: null, summary: null, adminRoutes: [],
};

// --- HTTP ----------------------------------------------------------------------------------------

class HttpError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function call(method, path, body) {
  const headers = { "Authorization": "Bearer " + state.key };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
  if (!response.ok) {
    const message = (data && (data.error?.message || data.detail?.error || data.detail || data.message)) || response.statusText;
    throw new HttpError(response.status, typeof message === "string" ? message : JSON.stringify(message));
  }
  return data;
}

// --- formatting ----------------------------------------------------------------------------------

const fmtInt = (n) => (n ?? 0).toLocaleString("en-US");
const fmtSec = (s) => s == null ? "–" : s < 1 ? (s * 1000).toFixed(0) + " ms" : s.toFixed(2) + " s";
const fmtUsd = (n) => n == null ? "–" : "$" + (n < 0.01 && n > 0 ? n.toPrecision(2) : n.toFixed(2));
const fmtPct = (r) => r == null ? "–" : (r * 100).toFixed(1) + "%";
const fmtTime = (t) => new Date(t * 1000).toLocaleTimeString();

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text == null || text === "" ? "–" : String(text);
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function fillTable(id, items, render) {
  const body = $(id).querySelector("tbody");
  body.replaceChildren();
  for (const item of items) {
    const row = document.createElement("tr");
    render(row, item);
    body.appendChild(row);
  }
  if (!items.length) {
    const row = document.createElement("tr");
    const td = cell(row, "nothing yet");
    td.colSpan = $(id).querySelectorAll("th").length;
    td.className = "note";
    body.appendChild(row);
  }
}

// --- sign in -------------------------------------------------------------------------------------

function showSignIn(message) {
  clearInterval(state.timer);
  $("dashboard").hidden = true;
  $("controls").hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = message || "";
}

async function signIn(key) {
  state.key = key;
  try {
    const who = await call("GET", "/ui/api/whoami");
    state.adminRoutes = who.admin_routes || [];
  } catch (error) {
    sessionStorage.removeItem(KEY_STORAGE);
    state.key = null;
    showSignIn(error.status === 401 || error.status === 403 ? "That key is not an admin key of this gateway." : error.message);
    return;
  }
  sessionStorage.setItem(KEY_STORAGE, key);
  $("signin").hidden = true;
  $("dashboard").hidden = false;
  $("controls").hidden = false;
  await refresh();
  await loadAdmin();
  clearInterval(state.timer);
  state.timer = setInterval(refresh, REFRESH_MS);
}

// --- summary, charts, health, requests ------------------------------------------------------------

const TILES = [
  ["Requests", (t) => fmtInt(t.requests)],
  ["Errors", (t) => fmtInt(t.errors) + (t.requests ? " (" + fmtPct(t.errors / t.requests) + ")" : "")],
  ["Latency p50", (t) => fmtSec(t.latency_p50)],
  ["Latency p95", (t) => fmtSec(t.latency_p95)],
  ["Input tokens", (t) => fmtInt(t.input_tokens + t.cache_read_tokens + t.cache_creation_tokens)],
  ["Output tokens", (t) => fmtInt(t.output_tokens)],
  ["Cache hit rate", (t) => fmtPct(t.cache_hit_rate)],
  ["Spend", (t) => fmtUsd(t.spend)],
];

function renderTiles(totals) {
  const tiles = $("tiles");
  tiles.replaceChildren();
  for (const [label, value] of TILES) {
    const tile = document.createElement("div");
    tile.className = "tile";
    tile.dataset.label = label;
    const name = document.createElement("div");
    name.className = "label";
    name.textContent = label;
    const figure = document.createElement("div");
    figure.className = "value";
    figure.textContent = value(totals);
    tile.append(name, figure);
    tiles.appendChild(tile);
  }
}

const CHARTS = {
  "chart-traffic": [["requests", "Requests", "#3b6fd8"], ["errors", "Errors", "#c0392b"]],
  "chart-latency": [["latency_p50", "p50", "#1e8e5a", "y", true], ["latency_p95", "p95", "#b7791f", "y", true]],
  "chart-tokens": [["input_tokens", "Input", "#3b6fd8"], ["output_tokens", "Output", "#8e44ad"]],
  "chart-spend": [["spend", "Spend $", "#1e8e5a"], ["cache_hit_rate", "Cache hit", "#b7791f", "rate", true]],
};

function chartWidth(element) { return Math.max(240, element.clientWidth || 300); }

function renderCharts(series) {
  for (const [id, lines] of Object.entries(CHARTS)) {
    const data = [series.time, ...lines.map(([name]) => series[name])];
    const chart = state.charts[id];
    if (chart) { chart.setData(data); continue; }
    const element = $(id);
    const scales = { x: { time: true, range: () => [state.summary.now - state.summary.window_seconds, state.summary.now] } };
    const axes = [{}, { size: 60 }];
    if (lines.some((l) => l[3] === "rate")) {
      scales.rate = { range: [0, 1] };
      axes.push({ scale: "rate", side: 1, grid: { show: false }, size: 50 });
    }
    state.charts[id] = new uPlot({
      width: chartWidth(element), height: 200, scales, axes,
      // Latency and cache rates have no value in a quiet minute: their points join across the gap.
      series: [{}, ...lines.map(([, label, stroke, scale, joined]) => ({
        label, stroke, width: 2, scale: scale || "y", spanGaps: Boolean(joined), points: { show: Boolean(joined) },
      }))],
    }, data, element);
  }
}

function renderHealth(deployments) {
  fillTable("health", deployments, (row, d) => {
    cell(row, d.model_name);
    cell(row, d.deployment_id);
    cell(row, d.provider);
    cell(row, d.state === "cooling_down" ? "cooling down" : d.state, "state-" + d.state);
    cell(row, d.cooldown_remaining_seconds ? d.cooldown_remaining_seconds.toFixed(1) + " s" : "");
    cell(row, d.recent_failures);
    cell(row, d.last_error, d.last_error ? "err" : "");
    cell(row, d.in_flight);
    cell(row, d.latency_ms == null ? "" : d.latency_ms.toFixed(0) + " ms");
  });
}

function renderBreakdown() {
  const rows = state.summary ? state.summary.breakdowns[state.dim] : [];
  fillTable("breakdown", rows, (row, r) => {
    cell(row, r.name);
    cell(row, fmtInt(r.requests));
    cell(row, fmtInt(r.errors));
    cell(row, fmtSec(r.latency_p50));
    cell(row, fmtSec(r.latency_p95));
    cell(row, fmtInt(r.input_tokens + r.cache_read_tokens + r.cache_creation_tokens));
    cell(row, fmtInt(r.output_tokens));
    cell(row, fmtPct(r.cache_hit_rate));
    cell(row, fmtUsd(r.spend));
  });
}

function filterQuery() {
  const params = new URLSearchParams();
  for (const [name, value] of new FormData($("filters"))) if (value) params.set(name, value);
  params.set("limit", "200");
  return params.toString();
}

function renderRequests(requests) {
  fillTable("requests", requests, (row, r) => {
    cell(row, fmtTime(r.time));
    cell(row, r.request_id);
    cell(row, r.model);
    cell(row, r.deployment);
    cell(row, r.status, r.outcome === "ok" ? "" : "err");
    cell(row, r.stop_reason);
    cell(row, fmtSec(r.latency));
    cell(row, fmtSec(r.ttft));
    cell(row, fmtInt(r.input_tokens + r.cache_read_tokens + r.cache_creation_tokens) + " / " + fmtInt(r.output_tokens));
    cell(row, r.cost == null ? "" : fmtUsd(r.cost));
    cell(row, r.key);
    cell(row, r.team);
    cell(row, r.outcome === "client_gone" ? "client left" : r.error, r.outcome === "ok" ? "" : "err");
  });
}

async function refresh() {
  try {
    const span = $("window").value;
    const [summary, health, recent] = await Promise.all([
      call("GET", "/ui/api/summary?window=" + span),
      call("GET", "/ui/api/health"),
      call("GET", "/ui/api/requests?" + filterQuery()),
    ]);
    state.summary = summary;
    renderTiles(summary.totals);
    renderCharts(summary.series);
    renderBreakdown();
    renderHealth(health.deployments);
    renderRequests(recent.requests);
  } catch (error) {
    if (error.status === 401 || error.status === 403) showSignIn("Signed out: " + error.message);
  }
}

// --- keys and teams (LiteLLM's admin API, when the gateway serves it) ------------------------------

async function loadAdmin() {
  await Promise.all([loadKeys(), loadTeams()]);
}

async function loadKeys() {
  if (!state.adminRoutes.includes("/key/list")) { $("keys-panel").hidden = true; return; }
  let answer;
  try {
    answer = await call("GET", "/key/list?return_full_object=true&size=100");
  } catch (error) {
    $("keys-panel").hidden = error.status === 404;
    $("keys-error").textContent = error.status === 404 ? "" : error.message;
    return;
  }
  $("keys-panel").hidden = false;
  $("keys-error").textContent = "";
  const keys = (answer && answer.keys ? answer.keys : []).filter((k) => typeof k === "object" && k);
  fillTable("keys", keys, (row, k) => {
    cell(row, k.key_alias);
    cell(row, k.key_name || (k.token ? k.token.slice(0, 10) + "…" : ""));
    cell(row, k.team_id);
    cell(row, k.user_id);
    cell(row, fmtUsd(k.spend || 0));
    cell(row, k.max_budget == null ? "" : fmtUsd(k.max_budget));
    cell(row, k.blocked ? "blocked" : "active", k.blocked ? "state-blocked" : "state-healthy");
    const actions = cell(row, "");
    actions.textContent = "";
    const toggle = document.createElement("button");
    toggle.type = "button";
    toggle.textContent = k.blocked ? "Unblock" : "Block";
    toggle.dataset.action = k.blocked ? "unblock" : "block";
    toggle.addEventListener("click", () => keyAction(k.blocked ? "/key/unblock" : "/key/block", { key: k.token }));
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "danger";
    remove.textContent = "Delete";
    remove.dataset.action = "delete";
    remove.addEventListener("click", () => {
      if (confirm("Delete key " + (k.key_alias || k.key_name || "") + "?")) keyAction("/key/delete", { keys: [k.token] });
    });
    actions.append(toggle, " ", remove);
  });
}

async function keyAction(path, body) {
  try {
    await call("POST", path, body);
    $("keys-error").textContent = "";
  } catch (error) {
    $("keys-error").textContent = error.message;
  }
  await loadKeys();
}

async function createKey(event) {
  event.preventDefault();
  const form = new FormData($("key-form"));
  const body = {};
  if (form.get("key_alias")) body.key_alias = form.get("key_alias");
  if (form.get("team_id")) body.team_id = form.get("team_id");
  if (form.get("max_budget")) body.max_budget = Number(form.get("max_budget"));
  if (form.get("models")) body.models = String(form.get("models")).split(",").map((m) => m.trim()).filter(Boolean);
  try {
    const created = await call("POST", "/key/generate", body);
    $("new-key-value").textContent = created.key;
    $("new-key").hidden = false;
    $("key-form").reset();
    $("keys-error").textContent = "";
  } catch (error) {
    $("keys-error").textContent = error.message;
  }
  await loadKeys();
}

async function loadTeams() {
  if (!state.adminRoutes.includes("/team/list")) { $("teams-panel").hidden = true; return; }
  let answer;
  try {
    answer = await call("GET", "/team/list");
  } catch (error) {
    $("teams-panel").hidden = error.status === 404;
    $("teams-error").textContent = error.status === 404 ? "" : error.message;
    return;
  }
  $("teams-panel").hidden = false;
  const teams = Array.isArray(answer) ? answer : (answer && answer.teams) || [];
  fillTable("teams", teams, (row, t) => {
    cell(row, t.team_alias);
    cell(row, t.team_id);
    cell(row, fmtUsd(t.spend || 0));
    cell(row, t.max_budget == null ? "" : fmtUsd(t.max_budget));
    cell(row, t.blocked ? "blocked" : "active", t.blocked ? "state-blocked" : "state-healthy");
    const actions = cell(row, "");
    actions.textContent = "";
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "danger";
    remove.textContent = "Delete";
    remove.addEventListener("click", async () => {
      if (!confirm("Delete team " + (t.team_alias || t.team_id) + "?")) return;
      try { await call("POST", "/team/delete", { team_ids: [t.team_id] }); } catch (error) { $("teams-error").textContent = error.message; }
      await loadTeams();
    });
    actions.append(remove);
  });
}

async function createTeam(event) {
  event.preventDefault();
  const form = new FormData($("team-form"));
  const body = { team_alias: form.get("team_alias") };
  if (form.get("max_budget")) body.max_budget = Number(form.get("max_budget"));
  try {
    await call("POST", "/team/new", body);
    $("team-form").reset();
    $("teams-error").textContent = "";
  } catch (error) {
    $("teams-error").textContent = error.message;
  }
  await loadTeams();
}

// --- wiring --------------------------------------------------------------------------------------

$("signin-form").addEventListener("submit", (event) => {
  event.preventDefault();
  signIn($("signin-key").value.trim());
});
$("signout").addEventListener("click", () => {
  sessionStorage.removeItem(KEY_STORAGE);
  state.key = null;
  showSignIn("");
});
$("refresh").addEventListener("click", () => { refresh(); loadAdmin(); });
$("window").addEventListener("change", refresh);
$("filters").addEventListener("submit", (event) => { event.preventDefault(); refresh(); });
$("breakdown-tabs").addEventListener("click", (event) => {
  const dim = event.target.dataset && event.target.dataset.dim;
  if (!dim) return;
  state.dim = dim;
  for (const button of $("breakdown-tabs").querySelectorAll("button")) button.classList.toggle("active", button.dataset.dim === dim);
  renderBreakdown();
});
$("key-form").addEventListener("submit", createKey);
$("new-key-done").addEventListener("click", () => { $("new-key").hidden = true; $("new-key-value").textContent = ""; });
$("team-form").addEventListener("submit", createTeam);
window.addEventListener("resize", () => {
  for (const [id, chart] of Object.entries(state.charts)) chart.setSize({ width: chartWidth($(id)), height: 200 });
});

if (state.key) signIn(state.key); else showSignIn("");
