// The cashier screen: renders the agent's state and follows /v1/events.
// No framework and no build step; cards arrive masked from the agent.
"use strict";

const $ = (id) => document.getElementById(id);

function text(id, s) { $(id).textContent = s == null ? "" : String(s); }

function renderSync(s) {
  const pill = $("sync");
  pill.className = "pill " + (s.online ? "online" : "offline");
  pill.textContent = s.online ? "Online" : "Offline";
  const banner = $("offline-banner");
  if (s.online) {
    banner.hidden = true;
    return;
  }
  const n = s.backlog_ops || 0;
  let t = "Points are saved on this till; " + n + (n === 1 ? " operation waits" : " operations wait") + " to reach the loyalty server.";
  if (s.oldest_op) t += " Oldest since " + new Date(s.oldest_op).toLocaleTimeString() + ".";
  text("offline-text", t);
  banner.hidden = false;
}

function renderSession(v) {
  const open = v && v.open;
  $("member").classList.toggle("empty", !open);
  $("member-empty").hidden = !!open;
  $("member-body").hidden = !open;
  if (!open) {
    text("basket-points", "–");
    $("basket-reasons").replaceChildren();
    return;
  }
  text("member-card", v.card);
  text("member-balance", v.known ? v.balance + " pts" : "not known yet");
  text("member-tier", v.tier || "–");
  text("member-next", v.next_tier ? v.to_next_tier + " points to " + v.next_tier : "–");
  const n = $("member-notice");
  n.hidden = !v.notice;
  n.textContent = v.notice || "";
  if (v.quote) renderQuote(v.quote);
}

function renderQuote(q) {
  text("basket-points", q.points);
  const ul = $("basket-reasons");
  ul.replaceChildren(...(q.reasons || []).map((r) => {
    const li = document.createElement("li");
    li.textContent = r.label + ": " + r.points;
    return li;
  }));
}

function renderDevices(list) {
  const ul = $("devices");
  if (!list || list.length === 0) {
    ul.innerHTML = '<li class="muted">No devices configured</li>';
    return;
  }
  ul.replaceChildren(...list.map((d) => {
    const li = document.createElement("li");
    const ok = d.state === "idle" || d.state === "busy";
    li.className = ok ? "ok" : "bad";
    li.dataset.device = d.device;
    li.textContent = d.kind + " " + d.device + ": " + (ok ? "ready" : d.reason || d.state);
    return li;
  }));
}

// renderPeers lists the store's other tills as the gossip sees them: an
// unreachable till may be redeeming offline where nobody hears it.
function renderPeers(list) {
  const ul = $("peers");
  if (!list || list.length === 0) {
    ul.innerHTML = '<li class="muted">No other till</li>';
    return;
  }
  ul.replaceChildren(...list.map((p) => {
    const li = document.createElement("li");
    const reachable = p.status === "alive";
    li.dataset.peer = p.terminal;
    li.className = !reachable ? "bad" : p.online ? "ok" : "warn";
    let state = "unreachable (" + p.status + ")";
    if (reachable) {
      const n = p.backlog || 0;
      state = (p.online ? "online" : "offline") + ", " + n + (n === 1 ? " operation waits" : " operations wait");
    }
    li.textContent = p.terminal + ": " + state;
    return li;
  }));
}

// The tills change without an event of this one: ask /v1/status.
const peersEvery = 2000;
async function pollPeers() {
  try {
    const r = await fetch("/v1/status", { headers: { Accept: "application/json" } });
    if (r.ok) renderPeers((await r.json()).peers);
  } catch (e) {
    // the link banner already says the agent is out of reach
  }
  setTimeout(pollPeers, peersEvery);
}

let devices = new Map();
let receipts = [];

function renderReceipts() {
  const box = $("receipts");
  if (receipts.length === 0) {
    box.innerHTML = '<p class="muted">None yet</p>';
    return;
  }
  box.replaceChildren(...receipts.map((r) => {
    const fig = document.createElement("figure");
    fig.className = "receipt";
    fig.dataset.op = r.op;
    if (r.png) {
      // The loyalty block as the printer prints it, rendered by the agent.
      const img = document.createElement("img");
      img.src = r.png;
      img.alt = "Receipt " + r.kind + " " + r.points + " points";
      img.dataset.testid = "receipt-png";
      img.loading = "lazy";
      fig.append(img);
    }
    const pre = document.createElement("pre");
    pre.textContent = r.text || (r.kind + " " + r.points + " pts " + (r.card || ""));
    fig.append(pre);
    return fig;
  }));
}

function onState(s) {
  text("terminal", (s.store ? s.store + " · " : "") + s.terminal);
  renderSync(s.sync || {});
  renderSession(s.session);
  devices = new Map((s.devices || []).map((d) => [d.device, d]));
  renderDevices([...devices.values()]);
  receipts = s.receipts || [];
  renderReceipts();
}

function onCheckout(r) {
  const last = $("last-op");
  last.hidden = false;
  const sign = r.points > 0 ? "+" : "";
  last.textContent = r.kind + ": " + sign + r.points + " points" + (r.notice ? ". " + r.notice : "");
  receipts.unshift({ op: r.op_id, kind: r.kind, card: r.card, points: r.points, text: r.receipt_text, png: r.png, at: r.at });
  receipts = receipts.slice(0, 5);
  renderReceipts();
}

function connect() {
  const es = new EventSource("/v1/events");
  const on = (type, fn) => es.addEventListener(type, (e) => fn(JSON.parse(e.data)));
  on("state", onState);
  on("session", (v) => renderSession(v));
  on("basket", renderQuote);
  on("checkout", onCheckout);
  on("device", (d) => { devices.set(d.device, d); renderDevices([...devices.values()]); });
  on("sync", renderSync);
  es.onopen = () => { $("link-banner").hidden = true; };
  es.onerror = () => { $("link-banner").hidden = false; };
}

connect();
pollPeers();
