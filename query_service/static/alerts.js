// Active alerts (GET /v1/alerts) on the fleet page and on a ship's page (#ship=<id>), refreshed
// every 15 seconds. Kept apart from dashboard.js; it shares only the token in localStorage.
"use strict";
(() => {
  const TOKEN_KEY = "fleet.token";
  const REFRESH_MS = 15000;
  const style = document.createElement("style");
  style.textContent = ".alerts-card.has-alerts { border-left: 4px solid #c0392b; }\n" +
    "table.alerts .alert-firing .state { color: #c0392b; font-weight: bold; }\n" +
    "table.alerts .alert-pending .state { color: #b9770e; }";
  document.head.append(style);

  function card(mainId) {
    const main = document.getElementById(mainId);
    let section = main.querySelector(".alerts-card");
    if (!section) {
      section = document.createElement("section");
      section.className = "card wide alerts-card";
      section.innerHTML = '<h2>Active alerts <small class="muted"></small></h2>' +
        '<table class="alerts"><thead><tr><th>Ship</th><th>Rule</th><th>State</th>' +
        "<th>Since</th><th>Detail</th></tr></thead><tbody></tbody></table>";
      main.prepend(section);
    }
    return section;
  }

  function cell(text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  }

  async function refresh() {
    const token = localStorage.getItem(TOKEN_KEY);
    if (!token) return;
    const ship = new URLSearchParams(location.hash.replace(/^#/, "")).get("ship");
    const section = card(ship ? "ship" : "overview");
    const url = new URL("/v1/alerts", location.origin);
    if (ship) url.searchParams.set("ship", ship);
    let alerts;
    try {
      const resp = await fetch(url, {headers: {Authorization: "Bearer " + token}});
      if (!resp.ok) throw new Error("HTTP " + resp.status);
      alerts = (await resp.json()).alerts;
    } catch (err) {
      section.querySelector("small").textContent = "unavailable (" + err.message + ")";
      return;
    }
    const body = section.querySelector("tbody");
    body.replaceChildren();
    for (const a of alerts) {
      const tr = document.createElement("tr");
      tr.className = "alert-" + a.state + " severity-" + a.severity;
      const link = document.createElement("a");
      link.href = "#ship=" + encodeURIComponent(a.ship);
      link.textContent = a.ship;
      const shipCell = document.createElement("td");
      shipCell.append(link);
      tr.append(shipCell, cell(a.rule + (a.meter ? " (" + a.meter + ")" : "")),
                cell(a.state, "state"), cell(a.since.replace("T", " ")), cell(a.detail));
      body.append(tr);
    }
    section.querySelector("small").textContent =
      alerts.length ? alerts.length + " active" : "none";
    section.classList.toggle("has-alerts", alerts.length > 0);
  }

  window.addEventListener("hashchange", refresh);
  window.addEventListener("load", refresh);
  setInterval(refresh, REFRESH_MS);
})();
