// cuedeck rep panel: subscribes to a call's cards (or plays the demo call) and sends
// feedback. No framework, no build step; all content from the server is rendered as text
// or through the small markdown subset below, never as raw HTML.
"use strict";

// Uncaught errors are kept for the page's own tests (and visible in the console).
window.__cuedeckErrors = [];
window.addEventListener("error", (e) => window.__cuedeckErrors.push(String(e.message)));
window.addEventListener("unhandledrejection", (e) => window.__cuedeckErrors.push(String(e.reason)));

const $ = (id) => document.getElementById(id);
const state = {
  ws: null, mode: null, callId: null, maxVisible: 3, retry: 0, retryTimer: null,
  lastTranscriptAt: 0, segments: new Map(),
};

const params = new URLSearchParams(location.search);
if (params.get("token")) {
  sessionStorage.setItem("cuedeck.token", params.get("token"));
  // Keep the secret out of the address bar and the history.
  const shown = new URLSearchParams(location.search);
  shown.delete("token");
  history.replaceState(null, "", `${location.pathname}${shown.size ? `?${shown}` : ""}`);
}
const token = () => sessionStorage.getItem("cuedeck.token") || "";

function wsUrl(path, extra) {
  const u = new URL(path, location.href);
  u.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  if (token()) u.searchParams.set("token", token());
  for (const [k, v] of Object.entries(extra || {})) u.searchParams.set(k, v);
  return u.toString();
}

function setStatus(text, cls) {
  const s = $("status");
  s.textContent = text;
  s.className = "status" + (cls ? " " + cls : "");
}

// --- markdown subset: **bold**, "- " lists, [text](https://…) links ---------------------
function inline(text, parent) {
  const re = /\*\*(.+?)\*\*|\[([^\]]+)\]\((https?:\/\/[^\s)]+)\)/g;
  let last = 0, m;
  while ((m = re.exec(text)) !== null) {
    if (m.index > last) parent.appendChild(document.createTextNode(text.slice(last, m.index)));
    if (m[1] !== undefined) {
      const b = document.createElement("strong");
      b.textContent = m[1];
      parent.appendChild(b);
    } else {
      parent.appendChild(link(m[2], m[3]));
    }
    last = re.lastIndex;
  }
  if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
}

function link(title, url) {
  const a = document.createElement("a");
  a.textContent = title;
  if (/^https?:\/\//.test(url)) a.href = url;
  a.target = "_blank";
  a.rel = "noopener noreferrer";
  return a;
}

function renderBody(md) {
  const root = document.createElement("div");
  root.className = "body";
  let list = null;
  for (const raw of md.split("\n")) {
    const line = raw.trim();
    if (!line) { list = null; continue; }
    const item = line.match(/^[-*]\s+(.*)$/);
    if (item) {
      if (!list) { list = document.createElement("ul"); root.appendChild(list); }
      const li = document.createElement("li");
      inline(item[1], li);
      list.appendChild(li);
    } else {
      list = null;
      const p = document.createElement("p");
      inline(line, p);
      root.appendChild(p);
    }
  }
  return root;
}

// --- cards --------------------------------------------------------------------------
const ICONS = { objection: "⚠", competitor: "⚔", buying_signal: "★", pricing: "$",
  next_step: "→", compliance: "§", discovery: "?", other: "•" };

function feedback(card, action) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) {
    state.ws.send(JSON.stringify({ type: "feedback", display_id: card.display_id, action }));
  }
}

function showCard(card) {
  $("empty").hidden = true;
  const li = document.createElement("li");
  li.className = "card";
  li.dataset.displayId = card.display_id;
  li.dataset.cardId = card.card_id;
  li.style.setProperty("--cat", `var(--${card.category}, var(--other))`);
  li.tabIndex = -1;

  const head = document.createElement("header");
  const cat = document.createElement("span");
  cat.className = "cat";
  cat.textContent = `${ICONS[card.category] || "•"} ${card.category.replace("_", " ")}`;
  const h = document.createElement("h3");
  h.textContent = card.title;
  const badge = document.createElement("span");
  badge.className = "badge latency";
  const delay = state.mode === "demo" && state.lastTranscriptAt
    ? ` · ${Math.max(0, Math.round(performance.now() - state.lastTranscriptAt))} ms to screen` : "";
  badge.textContent = `engine ${card.engine_us} µs${delay}`;
  head.append(cat, h, badge);
  li.appendChild(head);
  li.appendChild(renderBody(card.body));

  if (card.links && card.links.length) {
    const ul = document.createElement("ul");
    for (const l of card.links) {
      const item = document.createElement("li");
      const a = link(l.title, l.url);
      a.addEventListener("click", () => feedback(card, "clicked"));
      item.appendChild(a);
      ul.appendChild(item);
    }
    li.appendChild(ul);
  }
  const trig = document.createElement("p");
  trig.className = "trigger";
  trig.textContent = `${card.trigger.speaker} said “${card.trigger.phrase}”`;
  li.appendChild(trig);

  const actions = document.createElement("div");
  actions.className = "actions";
  for (const [action, label] of [["useful", "Useful"], ["not_useful", "Not useful"], ["dismissed", "Dismiss"]]) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    b.dataset.action = action;
    b.addEventListener("click", () => {
      feedback(card, action);
      if (action === "dismissed") dismiss(li, card, false);
      else b.setAttribute("aria-pressed", "true");
    });
    actions.appendChild(b);
  }
  li.appendChild(actions);
  li._card = card;

  const list = $("cards");
  list.insertBefore(li, list.firstChild);
  while (list.children.length > state.maxVisible) collapse(list.lastElementChild);
  highlight(card);
}

function collapse(li) {
  const item = document.createElement("li");
  item.textContent = `${li._card.title} (${li._card.trigger.phrase})`;
  $("history").insertBefore(item, $("history").firstChild);
  $("history-box").hidden = false;
  $("history-count").textContent = $("history").children.length;
  li.remove();
}

function dismiss(li, card, sendFeedback) {
  if (sendFeedback) feedback(card, "dismissed");
  collapse(li);
}

document.addEventListener("keydown", (e) => {
  if (e.key !== "Escape") return;
  const top = $("cards").firstElementChild;
  if (top) dismiss(top, top._card, true);
});

// --- transcript (demo) ----------------------------------------------------------------
function transcriptLine(msg) {
  let li = state.segments.get(msg.segment_id);
  if (!li) {
    li = document.createElement("li");
    const who = document.createElement("span");
    who.className = `who ${msg.speaker}`;
    who.textContent = msg.speaker;
    const text = document.createElement("span");
    text.className = "text";
    li.append(who, text);
    $("transcript").appendChild(li);
    state.segments.set(msg.segment_id, li);
  }
  const text = li.querySelector(".text");
  text.textContent = msg.text;
  text.classList.toggle("partial", !msg.is_final);
  if (li._phrases) for (const p of li._phrases) mark(text, p);
  li.scrollIntoView({ block: "nearest" });
  state.lastTranscriptAt = performance.now();
}

function phraseRegex(phrase) {
  const word = (w) => [...w].map((c) => c.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("['’]?");
  return new RegExp(`(^|[^\\p{L}\\p{N}])(${phrase.split(" ").map(word).join("[^\\p{L}\\p{N}]+")})(?=$|[^\\p{L}\\p{N}])`, "iu");
}

function mark(textEl, phrase) {
  const plain = textEl.textContent;
  const m = phraseRegex(phrase).exec(plain);
  if (!m) return;
  const start = m.index + m[1].length;
  const end = start + m[2].length;
  const mk = document.createElement("mark");
  mk.textContent = plain.slice(start, end);
  textEl.textContent = "";
  textEl.append(document.createTextNode(plain.slice(0, start)), mk, document.createTextNode(plain.slice(end)));
}

function highlight(card) {
  const li = state.segments.get(card.trigger.segment_id);
  if (!li) return;
  (li._phrases = li._phrases || []).push(card.trigger.phrase);
  mark(li.querySelector(".text"), card.trigger.phrase);
}

// --- connections ----------------------------------------------------------------------
function reset() {
  $("cards").textContent = "";
  $("history").textContent = "";
  $("history-box").hidden = true;
  $("transcript").textContent = "";
  state.segments.clear();
  $("empty").hidden = false;
}

function close() {
  clearTimeout(state.retryTimer);
  if (state.ws) {
    state.ws.onclose = null;
    state.ws.close();
    state.ws = null;
  }
}

function onMessage(ev) {
  let msg;
  try { msg = JSON.parse(ev.data); } catch { return; }
  if (msg.type === "ready") {
    state.maxVisible = msg.max_visible || 3;
    state.retry = 0;
    setStatus(state.mode === "demo" ? "demo call playing" : `live · ${msg.call_id}`, "live");
  } else if (msg.type === "card") {
    showCard(msg);
  } else if (msg.type === "transcript") {
    transcriptLine(msg);
  } else if (msg.type === "error") {
    setStatus(`error: ${msg.message}`, "retry");
  }
}

function join(callId) {
  close();
  reset();
  state.mode = "live";
  state.callId = callId;
  $("transcript-pane").hidden = true;
  document.querySelector(".layout").classList.remove("with-transcript");
  connect();
}

function connect() {
  setStatus("connecting…");
  const ws = new WebSocket(wsUrl(`/v1/calls/${encodeURIComponent(state.callId)}/cards`));
  state.ws = ws;
  ws.onmessage = onMessage;
  ws.onclose = () => {
    // Reconnect with backoff: the server may be restarting.
    const delay = Math.min(10000, 500 * 2 ** state.retry++);
    setStatus(`disconnected · retrying in ${Math.round(delay / 1000)} s`, "retry");
    state.retryTimer = setTimeout(connect, delay);
  };
}

function demo() {
  close();
  reset();
  state.mode = "demo";
  $("transcript-pane").hidden = false;
  document.querySelector(".layout").classList.add("with-transcript");
  setStatus("starting demo…");
  const ws = new WebSocket(wsUrl("/v1/demo", { speed: params.get("speed") || $("speed").value }));
  state.ws = ws;
  ws.onmessage = onMessage;
  ws.onclose = () => setStatus("demo finished");
}

$("join").addEventListener("submit", (e) => {
  e.preventDefault();
  const t = $("token").value.trim();
  if (t) sessionStorage.setItem("cuedeck.token", t);
  const id = $("call-id").value.trim();
  if (id) join(id);
});
$("demo").addEventListener("click", demo);

if (params.get("call")) {
  $("call-id").value = params.get("call");
  join(params.get("call"));
} else if (params.get("demo") !== null) {
  demo();
}
