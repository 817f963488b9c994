// Fleet energy dashboard: plain JS, no build step. Talks to the query service's own API with a
// bearer token kept in localStorage (or given once in the URL fragment: #token=...).
"use strict";

const TOKEN_KEY = "fleet.token";
const REFRESH_MS = 15000;
const HOUR = 3600;
const EVERY = {"15m": "15 minutes", "1h": "hour", "1d": "day", "1w": "week", "1mo": "month", "1y": "year"};
// How far back each period looks by default (hours); #hours=... overrides.
const SPAN_HOURS = {"15m": 24, "1h": 7 * 24, "1d": 90 * 24, "1w": 365 * 24, "1mo": 730 * 24, "1y": 3652 * 24};
const SPAN_TEXT = {"15m": "last 24 hours", "1h": "last 7 days", "1d": "last 90 days", "1w": "last year",
                   "1mo": "last 2 years", "1y": "last 10 years"};
const ZONES = ["UTC", "Europe/Oslo", "Europe/London", "Europe/Berlin", "America/New_York",
               "America/Los_Angeles", "Asia/Singapore", "Asia/Tokyo", "Asia/Kolkata", "Australia/Sydney"];
const COLORS = ["#2f7ed8", "#f28f43", "#4caf50", "#8e44ad", "#c0392b", "#16a085", "#7f8c8d"];
let timer = null;
let charts = {};

// The fleet's zone ([query] timezone), rendered into the page by the server.
function fleetZone() { return document.body.dataset.fleetTz || "UTC"; }

// The pickers' state lives in the URL fragment (#every=1d&tz=Europe/Oslo), so views can be shared.
function choice() {
  const p = params();
  const every = EVERY[p.get("every")] ? p.get("every") : "15m";
  return {every, tz: p.get("tz") || fleetZone()};
}

function setupPickers() {
  const tzSelect = document.getElementById("tz");
  const browser = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const zones = [...new Set([fleetZone(), browser, ...ZONES].filter(Boolean))];
  tzSelect.replaceChildren(...zones.map(z => el("option", {value: z},
    z + (z === fleetZone() ? " (fleet)" : z === browser ? " (browser)" : ""))));
  for (const id of ["every", "tz"]) {
    document.getElementById(id).addEventListener("change", () => {
      const p = params();
      p.set(id, document.getElementById(id).value);
      location.hash = p.toString();  // hashchange renders
    });
  }
}

function showPickers(c) {
  const tzSelect = document.getElementById("tz");
  if (![...tzSelect.options].some(o => o.value === c.tz)) tzSelect.append(el("option", {value: c.tz}, c.tz));
  tzSelect.value = c.tz;
  document.getElementById("every").value = c.every;
  document.getElementById("pickers").hidden = false;
  document.body.dataset.every = c.every;
  document.body.dataset.tz = c.tz;
}

function params() { return new URLSearchParams(location.hash.replace(/^#/, "")); }

function takeTokenFromUrl() {
  const p = params();
  const token = p.get("token");
  if (token) {
    localStorage.setItem(TOKEN_KEY, token);
    p.delete("token");
    history.replaceState(null, "", location.pathname + (p.toString() ? "#" + p : ""));
  }
}

class Unauthorized extends Error {}

async function api(path, query) {
  const url = path + (query ? "?" + new URLSearchParams(query) : "");
  const resp = await fetch(url, {headers: {Authorization: "Bearer " + localStorage.getItem(TOKEN_KEY)}});
  if (resp.status === 401) throw new Unauthorized("token refused");
  const body = await resp.json();
  if (!resp.ok) throw new Error(body.error || resp.statusText);
  return body;
}

function iso(sec) { return new Date(sec * 1000).toISOString().replace(/\.\d+Z$/, "Z"); }
function secs(text) { return Date.parse(text) / 1000; }
function fmt(n, digits = 2) { return n == null ? "–" : Number(n).toFixed(digits); }
function short(text) { return text ? text.replace("T", " ").replace(/:00Z$/, "Z") : "–"; }
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) node.append(c);
  return node;
}

// The range shown: the span of the period picked up to now (or up to #end=... when given), in
// whole 15 minutes.
function range(every = "15m") {
  const p = params();
  const endParam = p.get("end");
  let end = endParam ? secs(endParam) : Date.now() / 1000;
  end = Math.ceil(end / 900) * 900;
  const hours = Number(p.get("hours") || SPAN_HOURS[every] || 24);
  return {start: iso(end - hours * HOUR), end: iso(end)};
}

function spanText(every) { return params().get("hours") ? `last ${params().get("hours")} hours` : SPAN_TEXT[every]; }

function chart(id, title, series, data, plugins = [], axes = [{}, {label: "kWh"}], tz = "UTC", extra = {}) {
  const host = document.getElementById(id);
  if (charts[id]) { charts[id].destroy(); }
  host.textContent = "";
  const width = Math.max(300, host.clientWidth || 1200);
  // The time axis in the zone picked (uPlot draws in the browser's zone otherwise).
  const tzDate = ts => uPlot.tzDate(new Date(ts * 1e3), tz);
  charts[id] = new uPlot({width, height: 300, title, series, plugins, tzDate,
                          axes, scales: {x: {time: true}}, ...extra}, data, host);
}

// One series per meter, stacked: each line is the sum of the meters up to it and the band below
// it is filled in the meter's colour, so the top line is the ship's total. The legend shows each
// meter's own kWh.
function stacked(meters, xs) {
  const names = Object.keys(meters).sort((a, b) => (a === "main" ? -1 : b === "main" ? 1 : a.localeCompare(b)));
  const own = names.map(m => new Map(meters[m].map(w => [secs(w.time), w.kwh])));
  const data = [];
  let below = xs.map(() => null);
  for (const values of own) {
    const row = xs.map((x, i) => (values.get(x) == null ? below[i] : (below[i] ?? 0) + values.get(x)));
    data.push(row);
    below = row;
  }
  const color = i => COLORS[i % COLORS.length];
  const series = names.map((m, i) => ({label: m, stroke: color(i), width: 1.5,
    value: (u, v, si, idx) => fmt(idx == null ? v : own[i].get(xs[idx]))}));
  if (series.length) series[0].fill = color(0) + "44";
  // uPlot bands: fill between series i + 1 (upper) and i (lower); series 0 is the x axis.
  const bands = names.slice(1).map((_, i) => ({series: [i + 2, i + 1], fill: color(i + 1) + "44"}));
  return {names, series, bands, data};
}

function shadeGaps(gaps) {
  return {hooks: {drawClear: [u => {
    const ctx = u.ctx;
    ctx.save();
    ctx.fillStyle = "rgba(220, 80, 60, 0.18)";
    for (const g of gaps) {
      const x0 = u.valToPos(secs(g.start), "x", true);
      const x1 = u.valToPos(secs(g.end), "x", true);
      ctx.fillRect(x0, u.bbox.top, Math.max(1, x1 - x0), u.bbox.height);
    }
    ctx.restore();
  }]}};
}

async function showOverview() {
  const c = choice();
  const r = range(c.every);
  document.getElementById("crumb").textContent = "";
  document.getElementById("fleet-title").textContent = "Fleet, " + spanText(c.every);
  document.getElementById("fleet-sub").textContent = `kWh per ${EVERY[c.every]} (${c.tz}), all ships`;
  document.getElementById("ships-kwh").textContent = "kWh, " + spanText(c.every);
  document.getElementById("top-title").textContent = "Top users, " + spanText(c.every);
  const [ships, fleet, top] = await Promise.all([
    api("/v1/ships", r),
    api("/v1/fleet/energy", {...r, every: c.every, tz: c.tz, fill: "null"}),
    api("/v1/fleet/top", {...r, count: 5}),
  ]);
  const tbody = document.querySelector("#ships tbody");
  tbody.replaceChildren(...ships.ships.map(s => el("tr", {},
    el("td", {}, el("a", {href: "#ship=" + encodeURIComponent(s.ship)}, s.ship)),
    el("td", {}, el("span", {class: "pill " + s.presence}, s.presence)),
    el("td", {}, short(s.last_reading)),
    el("td", {class: "num"}, fmt(s.kwh)))));
  const max = Math.max(1e-9, ...top.ships.map(s => s.kwh));
  document.getElementById("top").replaceChildren(...top.ships.map(s => el("li", {},
    el("a", {href: "#ship=" + encodeURIComponent(s.ship)}, s.ship), " " + fmt(s.kwh) + " kWh",
    el("span", {class: "bar", style: `width:${Math.round(200 * s.kwh / max)}px`}))));
  const xs = fleet.windows.map(w => secs(w.time));
  chart("fleet-chart", "", [{}, {label: "fleet kWh", stroke: "#2f7ed8", fill: "rgba(47,126,216,.12)"},
                            {label: "ships reporting", stroke: "#999", scale: "ships"}],
        [xs, fleet.windows.map(w => w.kwh), fleet.windows.map(w => w.ships)], [],
        [{}, {label: "kWh"}, {scale: "ships", side: 1, label: "ships", grid: {show: false}}], c.tz);
}

async function showShip(ship) {
  const c = choice();
  const r = range(c.every);
  // Gaps and anomalies are UTC windows of 15m, 1h or 1d: the closest to the period picked.
  const fine = ["15m", "1h", "1d"].includes(c.every) ? c.every : "1d";
  document.getElementById("crumb").textContent = "› " + ship;
  document.getElementById("ship-title").textContent = `Ship ${ship}, energy per ${EVERY[c.every]}, ${spanText(c.every)} (${c.tz})`;
  document.getElementById("ship-unit").textContent = `kWh per ${EVERY[c.every]}`;
  const path = `/v1/ships/${encodeURIComponent(ship)}`;
  const [energy, gaps, anomalies] = await Promise.all([
    api(path + "/energy", {...r, every: c.every, tz: c.tz, fill: "null", by: "meter"}),
    api(path + "/gaps", {...r, every: fine}),
    api(path + "/anomalies", {...r, every: fine}),
  ]);
  const times = new Set();
  for (const ws of Object.values(energy.meters)) for (const w of ws) times.add(secs(w.time));
  const xs = [...times].sort((a, b) => a - b);
  const stack = stacked(energy.meters, xs);
  document.body.dataset.meters = stack.names.join(",");
  const marked = new Map(fine === c.every ? anomalies.anomalies.map(a => [secs(a.time), a.kwh]) : []);
  const top = stack.data.length ? stack.data[stack.data.length - 1] : xs.map(() => null);
  const chartSeries = [{}, ...stack.series,
    {label: "anomaly", stroke: "#d62728", paths: () => null,
     points: {show: true, size: 11, stroke: "#d62728", fill: "#d62728"}}];
  chart("ship-chart", "", chartSeries,
        [xs, ...stack.data, xs.map((x, i) => marked.has(x) ? top[i] : null)],
        [shadeGaps(gaps.gaps)], undefined, c.tz, {bands: stack.bands});
  document.querySelector("#gaps tbody").replaceChildren(...gaps.gaps.map(g => el("tr", {},
    el("td", {}, short(g.start)), el("td", {}, short(g.end)),
    el("td", {class: "num"}, String(g.windows)), el("td", {class: "num"}, fmt(100 * g.coverage, 0) + " %"))));
  document.querySelector("#anomalies tbody").replaceChildren(...anomalies.anomalies.map(a => el("tr", {},
    el("td", {}, short(a.time)), el("td", {class: "num"}, fmt(a.kwh)),
    el("td", {class: "num"}, fmt(a.median)), el("td", {class: "num"}, fmt(a.score, 1)))));
}

function showLogin(message) {
  for (const id of ["overview", "ship", "pickers"]) document.getElementById(id).hidden = true;
  document.getElementById("login").hidden = false;
  document.getElementById("logout").hidden = true;
  document.getElementById("login-error").textContent = message || "";
}

async function render() {
  clearTimeout(timer);
  if (!localStorage.getItem(TOKEN_KEY)) { showLogin(); return; }
  const ship = params().get("ship");
  document.getElementById("login").hidden = true;
  document.getElementById("logout").hidden = false;
  showPickers(choice());
  document.getElementById("overview").hidden = Boolean(ship);
  document.getElementById("ship").hidden = !ship;
  try {
    if (ship) await showShip(ship); else await showOverview();
    document.getElementById("status").textContent = "updated " + new Date().toLocaleTimeString();
    document.body.dataset.loaded = ship ? "ship" : "overview";
  } catch (err) {
    if (err instanceof Unauthorized) {
      localStorage.removeItem(TOKEN_KEY);
      showLogin("The token was refused (unknown or revoked).");
      return;
    }
    document.getElementById("status").textContent = "error: " + err.message;
  }
  timer = setTimeout(render, REFRESH_MS);  // live: poll the API
}

document.getElementById("login").addEventListener("submit", ev => {
  ev.preventDefault();
  localStorage.setItem(TOKEN_KEY, document.getElementById("token").value.trim());
  render();
});
document.getElementById("logout").addEventListener("click", () => {
  localStorage.removeItem(TOKEN_KEY);
  showLogin();
});
window.addEventListener("hashchange", () => { takeTokenFromUrl(); render(); });
setupPickers();
takeTokenFromUrl();
render();
