// cuedeck manager dashboard: reads the JSON API with the manager's token and renders the
// library status, live activity and experiment reports. Everything from the server is
// inserted as text, never as HTML.
"use strict";

window.__cuedeckErrors = [];
window.addEventListener("error", (e) => window.__cuedeckErrors.push(String(e.message)));
window.addEventListener("unhandledrejection", (e) => window.__cuedeckErrors.push(String(e.reason)));

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
if (params.get("token")) {
  sessionStorage.setItem("cuedeck.token", params.get("token"));
  // Keep the secret out of the address bar and the history.
  params.delete("token");
  history.replaceState(null, "", `${location.pathname}${params.size ? `?${params}` : ""}`);
}
const token = () => sessionStorage.getItem("cuedeck.token") || "";
const authHeaders = () => (token() ? { Authorization: `Bearer ${token()}` } : {});

async function api(path) {
  const r = await fetch(path, { headers: authHeaders() });
  if (!r.ok) {
    let msg = `${r.status}`;
    try { msg += `: ${(await r.json()).error}`; } catch { /* not JSON */ }
    throw new Error(`${path} → ${msg}`);
  }
  return r.json();
}

// Reports take the token in the header only (query-string tokens are for WebSocket
// upgrades), so charts and the CSV are fetched and shown or saved from blobs.
async function fetchBlob(path) {
  const r = await fetch(path, { headers: authHeaders() });
  if (!r.ok) throw new Error(`${path} → ${r.status}`);
  return r.blob();
}

function chart(attrs, path) {
  const img = el("img", attrs);
  fetchBlob(path).then((b) => {
    img.addEventListener("load", () => URL.revokeObjectURL(img.src), { once: true });
    img.src = URL.createObjectURL(b);
  }).catch((err) => img.replaceWith(el("p", { class: "banner bad" }, String(err.message || err))));
  return img;
}

function downloadLink(path, filename) {
  const link = el("a", { href: "#", class: "download-csv" }, "Download CSV");
  link.addEventListener("click", async (ev) => {
    ev.preventDefault();
    try {
      const b = await fetchBlob(path);
      const url = URL.createObjectURL(b);
      const a = el("a", { href: url, download: filename });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
      link.dataset.downloaded = String(b.size);
    } catch (err) {
      link.after(el("span", { class: "banner bad" }, String(err.message || err)));
    }
  });
  return link;
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

const pct = (x) => (x === null || x === undefined ? "–" : `${(100 * x).toFixed(1)}%`);
const num = (x, d = 3) => (x === null || x === undefined ? "–" : Number(x).toFixed(d));
const ci = (pair, f = pct) => (pair ? `[${f(pair[0])}, ${f(pair[1])}]` : "–");

function rows(tbody, data, cols) {
  tbody.textContent = "";
  for (const d of data) {
    tbody.append(el("tr", {}, ...cols.map(([get, cls]) => el("td", cls ? { class: cls } : {}, get(d)))));
  }
}

async function library() {
  const [status, cards] = await Promise.all([api("/v1/cards/status"), api("/v1/cards")]);
  $("lib-version").textContent = status.version;
  $("lib-cards").textContent = cards.cards.length;
  $("lib-reload").textContent = `${status.ok ? "ok" : "failed"} · ${status.loaded_at}`;
  const list = $("lib-errors");
  list.textContent = "";
  for (const e of status.errors) list.append(el("li", {}, `${e.file}:${e.line}:${e.column}: ${e.message}`));
}

function perMinuteChart(svg, series) {
  svg.textContent = "";
  const ns = "http://www.w3.org/2000/svg";
  const max = Math.max(1, ...series.map((s) => s[1]));
  const w = 600 / 60;
  const now = Date.now();
  for (const [minute, n] of series) {
    const ago = Math.floor((now - Date.parse(`${minute}:00Z`)) / 60000);
    if (ago < 0 || ago >= 60) continue;
    const h = (100 * n) / max;
    const r = document.createElementNS(ns, "rect");
    r.setAttribute("x", String(600 - (ago + 1) * w));
    r.setAttribute("y", String(105 - h));
    r.setAttribute("width", String(w - 1));
    r.setAttribute("height", String(h));
    const t = document.createElementNS(ns, "title");
    t.textContent = `${minute}: ${n}`;
    r.append(t);
    svg.append(r);
  }
  const label = document.createElementNS(ns, "text");
  label.setAttribute("x", "2"); label.setAttribute("y", "118");
  label.textContent = `max ${max}/min · −60 min → now`;
  svg.append(label);
}

async function live() {
  const l = await api("/v1/live");
  $("live-calls").textContent = l.calls_active;
  $("live-calls-hour").textContent = l.calls;
  $("live-shown").textContent = l.shown_per_minute.reduce((a, s) => a + s[1], 0);
  perMinuteChart($("per-minute"), l.shown_per_minute);
  rows(document.querySelector("#top-cards tbody"), l.top_cards, [[(d) => d[0]], [(d) => d[1], "num"]]);
  rows(document.querySelector("#reasons tbody"), l.by_reason, [[(d) => d[0]], [(d) => d[1], "num"]]);
}

function variantTable(report) {
  const head = ["Variant", "Units", "Closed", "Won", "Win rate", "95% CI", "Revenue/unit",
    "Lift", "Lift CI", "p", "p (Holm)", "Chance to beat control"];
  const table = el("table", { class: "report" },
    el("thead", {}, el("tr", {}, ...head.map((h, i) => el("th", { scope: "col", class: i ? "num" : "" }, h)))));
  const body = el("tbody");
  for (const v of report.variants) {
    const vs = v.vs_control || {};
    const lift = vs.rel_lift;
    body.append(el("tr", { "data-variant": v.id },
      el("th", { scope: "row" }, v.control ? `${v.id} (control)` : v.id),
      el("td", { class: "num" }, v.units),
      el("td", { class: "num" }, v.closed),
      el("td", { class: "num" }, v.won),
      el("td", { class: "num win-rate" }, pct(v.win_rate)),
      el("td", { class: "num" }, ci(v.win_rate_ci)),
      el("td", { class: "num" }, num(v.revenue_per_unit, 2)),
      el("td", { class: `num ${lift > 0 ? "pos" : lift < 0 ? "neg" : ""}` }, v.vs_control ? pct(lift) : "–"),
      el("td", { class: "num" }, v.vs_control ? ci(vs.rel_ci) : "–"),
      el("td", { class: "num" }, v.vs_control ? num(vs.p_value) : "–"),
      el("td", { class: "num" }, v.vs_control ? num(vs.p_adjusted) : "–"),
      el("td", { class: "num" }, v.vs_control ? pct(vs.chance_to_win) : "–")));
  }
  table.append(body);
  return table;
}

async function experiments() {
  const list = await api("/v1/experiments");
  const box = $("experiments");
  box.textContent = "";
  $("exp-empty").hidden = list.experiments.length > 0;
  for (const e of list.experiments) {
    const section = el("article", { class: "experiment", "data-key": e.key });
    section.append(el("h3", {}, `${e.key} · card ${e.card_id} · unit ${e.unit} · ${e.status}`));
    try {
      const report = await api(`/v1/experiments/${encodeURIComponent(e.key)}/report`);
      if (report.srm_p !== null && report.srm_p < 0.001) {
        section.append(el("p", { class: "banner bad srm" },
          `Sample ratio mismatch (p = ${report.srm_p.toExponential(2)}): arms are not exposed in the planned proportions; do not trust the results until the cause is found.`));
      }
      const gated = report.variants.some((v) => v.vs_control && v.vs_control.enough_data === false);
      if (gated) {
        const needed = report.variants.map((v) => v.vs_control && v.vs_control.needed_units_per_arm).filter((x) => x);
        section.append(el("p", { class: "banner warn not-enough" },
          `Not enough data: fewer than 100 closed units per arm. No verdict yet${needed.length ? ` — about ${Math.max(...needed)} units per arm are needed for a 10% relative effect` : ""}.`));
      }
      section.append(variantTable(report));
      const base = `/v1/experiments/${encodeURIComponent(e.key)}/report`;
      section.append(chart({ class: "forest", alt: "Relative lift of each variant against control with 95% intervals" },
        `${base}?format=svg`));
      section.append(chart({ class: "timeline", alt: "Cumulative units exposed and closed per arm by day" },
        `${base}?format=timeline`));
      section.append(el("p", {}, downloadLink(`${base}?format=csv`, `${e.key}.csv`)));
      section.append(el("p", { class: "muted" },
        `Metric ${report.metric} · window ${report.window_days} days · as of ${report.as_of} · SRM p ${num(report.srm_p)} · units exposed to more than one variant: ${report.multiple_exposure_units}`));
    } catch (err) {
      section.append(el("p", { class: "banner bad" }, String(err.message || err)));
    }
    box.append(section);
  }
}

async function refresh() {
  try {
    await Promise.all([library(), live(), experiments()]);
    $("status").textContent = `updated ${new Date().toLocaleTimeString()}`;
    $("status").className = "status ok";
  } catch (err) {
    $("status").textContent = String(err.message || err);
    $("status").className = "status err";
  }
}

$("auth").addEventListener("submit", (e) => {
  e.preventDefault();
  const t = $("token").value.trim();
  if (t) sessionStorage.setItem("cuedeck.token", t);
  refresh();
});

refresh();
setInterval(refresh, 15000);
