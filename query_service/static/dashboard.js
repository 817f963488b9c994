// Fleet energy dashboard: plain JS, no build step. Talks to the query service's own API with a
// bearer token kept in localStorage (or given once in the URL fragment: #token=...).
"use strict";

const TOKEN_KEY = "fleet.token";
const REFRESH_MS = 15000;
const HOUR = 3600;
let timer = null;
let charts = {};

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

// The range shown: the 24 hours up to now (or up to #end=... when given), in whole 15 minutes.
function range() {
  const p = params();
  const endParam = p.get("end");
  let end = endParam ? secs(endParam) : Date.now() / 1000;
  end = Math.ceil(end / 900) * 900;
  const hours = Number(p.get("hours") || 24);
  return {start: iso(end - hours * HOUR), end: iso(end)};
}

function chart(id, title, series, data, plugins = [], axes = [{}, {label: "kWh"}]) {
  const host = document.getElementById(id);
  if (charts[id]) { charts[id].destroy(); }
  host.textContent = "";
  const width = Math.max(300, host.clientWidth || 1200);
  charts[id] = new uPlot({width, height: 300, title, series, plugins,
                          axes, scales: {x: {time: true}}}, data, host);
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
  const r = range();
  document.getElementById("crumb").textContent = "";
  const [ships, fleet, top] = await Promise.all([
    api("/v1/ships", r),
    api("/v1/fleet/energy", {...r, every: "15m", fill: "null"}),
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
        [{}, {label: "kWh"}, {scale: "ships", side: 1, label: "ships", grid: {show: false}}]);
}

async function showShip(ship) {
  const r = range();
  document.getElementById("crumb").textContent = "› " + ship;
  document.getElementById("ship-title").textContent = `Ship ${ship}, 15-minute energy`;
  const [energy, gaps, anomalies] = await Promise.all([
    api(`/v1/ships/${encodeURIComponent(ship)}/energy`, {...r, every: "15m", fill: "null"}),
    api(`/v1/ships/${encodeURIComponent(ship)}/gaps`, {...r, every: "15m"}),
    api(`/v1/ships/${encodeURIComponent(ship)}/anomalies`, {...r, every: "15m"}),
  ]);
  const xs = energy.windows.map(w => secs(w.time));
  const marked = new Map(anomalies.anomalies.map(a => [secs(a.time), a.kwh]));
  chart("ship-chart", "", [
    {},
    {label: "kWh", stroke: "#2f7ed8", fill: "rgba(47,126,216,.10)"},
    {label: "anomaly", stroke: "#d62728", paths: () => null,
     points: {show: true, size: 11, stroke: "#d62728", fill: "#d62728"}},
  ], [xs, energy.windows.map(w => w.kwh), xs.map(x => marked.has(x) ? marked.get(x) : null)],
  [shadeGaps(gaps.gaps)]);
  document.querySelector("#gaps tbody").replaceChildren(...gaps.gaps.map(g => el("tr", {},
    el("td", {}, short(g.start)), el("td", {}, short(g.end)),
    el("td", {class: "num"}, String(g.windows)), el("td", {class: "num"}, fmt(100 * g.coverage, 0) + " %"))));
  document.querySelector("#anomalies tbody").replaceChildren(...anomalies.anomalies.map(a => el("tr", {},
    el("td", {}, short(a.time)), el("td", {class: "num"}, fmt(a.kwh)),
    el("td", {class: "num"}, fmt(a.median)), el("td", {class: "num"}, fmt(a.score, 1)))));
}

function showLogin(message) {
  for (const id of ["overview", "ship"]) document.getElementById(id).hidden = true;
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
takeTokenFromUrl();
render();
