// toxi dashboard: plain JavaScript, no build step, nothing fetched from elsewhere.
// Every API call sends `X-Toxi-Dashboard: 1` (which lifts the server's browser block) and,
// once given, `Authorization: Bearer <token>`. Live updates come from GET /events, read
// with fetch() and a streaming reader, since EventSource cannot send those headers.
"use strict";

const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem("toxi-token") || "";
let proxies = {};
const conns = {};          // proxy name -> connections
const closedBytes = {};    // proxy name -> bytes of connections closed so far
const history = {};        // proxy name -> [{t, total, rate}]
let editing = null;        // {proxy, toxic} while the toxic form edits
let refreshTimer = null;
let wakeFollow = null;     // cuts the event stream's reconnect delay short

// Each toxic type's attributes (with a default), for the labelled inputs of the form.
const ATTRS = {
  latency: { latency: 100, jitter: 0 },
  bandwidth: { rate: 1000 },
  slow_close: { delay: 1000 },
  timeout: { timeout: 1000 },
  reset_peer: { timeout: 0 },
  slicer: { average_size: 64, size_variation: 32, delay: 10 },
  limit_data: { bytes: 1024 },
  noop: {},
};

// Replaces the attribute inputs with those of `type`, filled from `values` or defaults.
function renderAttrInputs(type, values) {
  const box = $("toxic-attrs");
  const attrs = ATTRS[type] || {};
  box.innerHTML = "<legend>Attributes</legend>" + Object.entries(attrs).map(([k, d]) => {
    const v = values && k in values ? values[k] : d;
    return `<label for="attr-${esc(k)}">${esc(k)}</label>
      <input id="attr-${esc(k)}" data-attr="${esc(k)}" type="number" step="any" value="${esc(v)}">`;
  }).join("") + (Object.keys(attrs).length ? "" : `<p class="empty">none</p>`);
}

function readAttrs() {
  const out = {};
  $("toxic-attrs").querySelectorAll("input[data-attr]").forEach((el) => {
    if (el.value !== "") out[el.dataset.attr] = Number(el.value);
  });
  const extra = $("toxic-extra").value.trim();
  if (extra) Object.assign(out, JSON.parse(extra));
  return out;
}

function headers(json) {
  const h = { "X-Toxi-Dashboard": "1" };
  if (token) h["Authorization"] = "Bearer " + token;
  if (json) h["Content-Type"] = "application/json";
  return h;
}

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: headers(body !== undefined),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) {
    let msg = text.trim();
    try { msg = JSON.parse(text).error || msg; } catch (_) { /* plain text */ }
    if (res.status === 401) { $("token").focus(); msg = "unauthorized: enter the API token"; }
    throw new Error(`${method} ${path}: ${msg}`);
  }
  return text ? JSON.parse(text) : null;
}

function showError(e) { $("error").textContent = e ? String(e.message || e) : ""; }

const esc = (s) => String(s).replace(/[&<>"']/g, (c) =>
  ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const seg = encodeURIComponent;

function fmtBytes(n) {
  if (n < 1024) return n + " B";
  if (n < 1 << 20) return (n / 1024).toFixed(1) + " KiB";
  if (n < 1 << 30) return (n / (1 << 20)).toFixed(1) + " MiB";
  return (n / (1 << 30)).toFixed(2) + " GiB";
}

async function refresh() {
  try {
    proxies = await api("GET", "/proxies");
    await pollConnections();
    render();
    showError(null);
  } catch (e) { showError(e); }
}

function scheduleRefresh() {
  if (refreshTimer) return;
  refreshTimer = setTimeout(() => { refreshTimer = null; refresh(); }, 50);
}

async function pollConnections() {
  const now = performance.now();
  await Promise.all(Object.keys(proxies).map(async (name) => {
    try { conns[name] = await api("GET", `/proxies/${seg(name)}/connections`); }
    catch (_) { conns[name] = []; }
    const open = conns[name].reduce((s, c) => s + c.bytes.upstream + c.bytes.downstream, 0);
    const total = open + (closedBytes[name] || 0);
    const h = history[name] || (history[name] = []);
    const last = h[h.length - 1];
    const rate = last ? Math.max(0, (total - last.total) / ((now - last.t) / 1000)) : 0;
    h.push({ t: now, total, rate });
    if (h.length > 60) h.shift();
  }));
}

function toxicRow(p, t) {
  const attrs = Object.entries(t.attributes || {}).map(([k, v]) => `${esc(k)}=${esc(v)}`).join(" ");
  const sched = t.schedule ? esc(JSON.stringify(t.schedule)) : "";
  const state = t.active === undefined ? "" :
    `<span class="badge ${t.active ? "" : "inactive"}">${t.active ? "active" : "inactive"}</span>`;
  return `<tr><td>${esc(t.name)}</td><td>${esc(t.type)}</td><td>${esc(t.stream)}</td>
    <td class="num">${esc(t.toxicity)}</td><td>${attrs}</td><td>${sched} ${state}</td>
    <td><button class="secondary" data-action="edit-toxic" data-proxy="${esc(p.name)}" data-toxic="${esc(t.name)}">Edit</button>
    <button class="danger" data-action="remove-toxic" data-proxy="${esc(p.name)}" data-toxic="${esc(t.name)}">Remove</button></td></tr>`;
}

function connRow(p, c) {
  const applied = Object.entries(c.toxics || {}).filter(([, v]) => v).map(([k]) => esc(k)).join(", ");
  return `<tr><td class="num">${c.id}</td><td>${esc(c.client)}</td><td>${esc(c.opened_at)}</td>
    <td class="num">${fmtBytes(c.bytes.upstream)}</td><td class="num">${fmtBytes(c.bytes.downstream)}</td>
    <td>${applied || "none"}</td>
    <td><button class="danger" data-action="kill" data-proxy="${esc(p.name)}" data-id="${c.id}">Close</button>
    <button class="danger" data-action="reset" data-proxy="${esc(p.name)}" data-id="${c.id}">Reset</button></td></tr>`;
}

function render() {
  const names = Object.keys(proxies).sort();
  const root = $("proxies");
  if (!names.length) {
    root.innerHTML = `<p class="empty">No proxies yet. Create one with the form.</p>`;
  } else {
    root.innerHTML = names.map((name) => {
      const p = proxies[name];
      const cs = conns[name] || [];
      const h = history[name] || [];
      const rate = h.length ? h[h.length - 1].rate : 0;
      return `<article class="proxy" data-name="${esc(name)}" aria-label="Proxy ${esc(name)}">
        <div class="proxy-head"><h2>${esc(name)}</h2>
          <span class="addr">${esc(p.listen)} → ${esc(p.upstream)}</span>
          <span class="badge ${p.enabled ? "" : "off"}">${p.enabled ? "enabled" : "disabled"}</span>
          <span class="spacer"></span><span class="rate">${fmtBytes(Math.round(rate))}/s</span>
          <button class="secondary" data-action="toggle" data-proxy="${esc(name)}">${p.enabled ? "Disable" : "Enable"}</button>
          <button class="danger" data-action="delete" data-proxy="${esc(name)}">Delete</button></div>
        <canvas class="chart" width="800" height="70" aria-label="Throughput of ${esc(name)}"></canvas>
        <h3>Toxics</h3>
        ${p.toxics.length ? `<table><thead><tr><th>Name</th><th>Type</th><th>Stream</th><th>Toxicity</th>
          <th>Attributes</th><th>Schedule</th><th></th></tr></thead><tbody>
          ${p.toxics.map((t) => toxicRow(p, t)).join("")}</tbody></table>` : `<p class="empty">No toxics.</p>`}
        <h3>Connections (${cs.length})</h3>
        ${cs.length ? `<table><thead><tr><th>Id</th><th>Client</th><th>Opened</th><th>Up</th><th>Down</th>
          <th>Toxics applied</th><th></th></tr></thead><tbody>${cs.map((c) => connRow(p, c)).join("")}
          </tbody></table>` : `<p class="empty">No open connections.</p>`}
      </article>`;
    }).join("");
    root.querySelectorAll("article.proxy").forEach((el) => draw(el.querySelector("canvas"), history[el.dataset.name] || []));
  }
  const sel = $("toxic-proxy");
  const current = sel.value;
  sel.innerHTML = names.map((n) => `<option>${esc(n)}</option>`).join("");
  if (names.includes(current)) sel.value = current;
}

// A small line chart of bytes per second over the last minute.
function draw(canvas, h) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, ht = canvas.height;
  ctx.clearRect(0, 0, w, ht);
  const max = Math.max(1024, ...h.map((s) => s.rate));
  ctx.strokeStyle = "#d9dee7";
  ctx.beginPath(); ctx.moveTo(0, ht - 0.5); ctx.lineTo(w, ht - 0.5); ctx.stroke();
  ctx.fillStyle = "#667085"; ctx.font = "11px sans-serif";
  ctx.fillText(`${fmtBytes(Math.round(max))}/s`, 4, 12);
  if (h.length < 2) return;
  const x = (i) => (i + 60 - h.length) * (w / 59);
  const y = (r) => ht - 2 - (r / max) * (ht - 18);
  ctx.beginPath();
  h.forEach((s, i) => (i ? ctx.lineTo(x(i), y(s.rate)) : ctx.moveTo(x(i), y(s.rate))));
  ctx.strokeStyle = "#2f6fde"; ctx.lineWidth = 2; ctx.stroke();
  ctx.lineTo(x(h.length - 1), ht); ctx.lineTo(x(0), ht); ctx.closePath();
  ctx.fillStyle = "rgba(47,111,222,0.12)"; ctx.fill();
}

async function onAction(ev) {
  const b = ev.target.closest("button[data-action]");
  if (!b) return;
  const p = b.dataset.proxy, path = `/proxies/${seg(p)}`;
  try {
    switch (b.dataset.action) {
      case "toggle": await api("PATCH", path, { enabled: !proxies[p].enabled }); break;
      case "delete": await api("DELETE", path); break;
      case "remove-toxic": await api("DELETE", `${path}/toxics/${seg(b.dataset.toxic)}`); break;
      case "kill": await api("DELETE", `${path}/connections/${b.dataset.id}`); break;
      case "reset": await api("DELETE", `${path}/connections/${b.dataset.id}?reset=true`); break;
      case "edit-toxic": startEdit(p, b.dataset.toxic); return;
    }
    showError(null);
    scheduleRefresh();
  } catch (e) { showError(e); }
}

function startEdit(proxy, name) {
  const t = proxies[proxy].toxics.find((x) => x.name === name);
  if (!t) return;
  editing = { proxy, toxic: name };
  $("toxic-proxy").value = proxy;
  $("toxic-type").value = t.type;
  $("toxic-name").value = t.name;
  $("toxic-stream").value = t.stream;
  $("toxic-toxicity").value = t.toxicity;
  const known = ATTRS[t.type] || {};
  renderAttrInputs(t.type, t.attributes || {});
  const other = Object.fromEntries(Object.entries(t.attributes || {}).filter(([k]) => !(k in known)));
  $("toxic-extra").value = Object.keys(other).length ? JSON.stringify(other) : "";
  for (const id of ["toxic-proxy", "toxic-type", "toxic-name", "toxic-stream"]) $(id).disabled = true;
  $("toxic-form-title").textContent = `Edit toxic ${name}`;
  $("toxic-submit").textContent = "Save toxic";
  $("toxic-cancel").hidden = false;
}

function endEdit() {
  editing = null;
  for (const id of ["toxic-proxy", "toxic-type", "toxic-name", "toxic-stream"]) $(id).disabled = false;
  $("toxic-form-title").textContent = "New toxic";
  $("toxic-submit").textContent = "Add toxic";
  $("toxic-cancel").hidden = true;
  $("toxic-extra").value = "";
  renderAttrInputs($("toxic-type").value);
}

async function onToxicSubmit(ev) {
  ev.preventDefault();
  let attributes;
  try { attributes = readAttrs(); }
  catch (_) { showError(new Error("Other attributes must be a JSON object, e.g. {\"latency\": 100}")); return; }
  const toxicity = parseFloat($("toxic-toxicity").value);
  try {
    if (editing) {
      await api("PATCH", `/proxies/${seg(editing.proxy)}/toxics/${seg(editing.toxic)}`, { attributes, toxicity });
      endEdit();
    } else {
      const body = { type: $("toxic-type").value, stream: $("toxic-stream").value, toxicity, attributes };
      if ($("toxic-name").value) body.name = $("toxic-name").value;
      await api("POST", `/proxies/${seg($("toxic-proxy").value)}/toxics`, body);
      $("toxic-name").value = "";
    }
    showError(null);
    scheduleRefresh();
  } catch (e) { showError(e); }
}

async function onProxySubmit(ev) {
  ev.preventDefault();
  try {
    await api("POST", "/proxies", {
      name: $("proxy-name").value, listen: $("proxy-listen").value, upstream: $("proxy-upstream").value,
    });
    $("proxy-name").value = "";
    showError(null);
    scheduleRefresh();
  } catch (e) { showError(e); }
}

// Follows GET /events; reconnects with a growing delay after errors.
async function follow() {
  let delay = 500;
  for (;;) {
    try {
      const res = await fetch("/events", { headers: headers(false), cache: "no-store" });
      if (!res.ok) throw new Error(res.status === 401 ? "unauthorized: enter the API token" : "events: HTTP " + res.status);
      $("status").textContent = "live";
      delay = 500;
      scheduleRefresh();
      const reader = res.body.getReader();
      const dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let end;
        while ((end = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
          if (data) onEvent(JSON.parse(data));
        }
      }
      throw new Error("event stream ended");
    } catch (e) {
      $("status").textContent = `offline (${e.message}); retrying`;
    }
    // Waits, unless a new token wakes the loop sooner.
    await new Promise((r) => { wakeFollow = r; setTimeout(r, delay); });
    wakeFollow = null;
    delay = Math.min(delay * 2, 10000);
  }
}

function onEvent(ev) {
  if (ev.type === "connection.closed" && ev.proxy && ev.bytes) {
    closedBytes[ev.proxy] = (closedBytes[ev.proxy] || 0) + ev.bytes.upstream + ev.bytes.downstream;
  }
  scheduleRefresh();
}

document.addEventListener("DOMContentLoaded", () => {
  $("token").value = token;
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    token = $("token").value.trim();
    sessionStorage.setItem("toxi-token", token);
    refresh();
    if (wakeFollow) wakeFollow();
  });
  $("proxy-form").addEventListener("submit", onProxySubmit);
  $("toxic-form").addEventListener("submit", onToxicSubmit);
  $("toxic-cancel").addEventListener("click", endEdit);
  $("toxic-type").addEventListener("change", () => renderAttrInputs($("toxic-type").value));
  renderAttrInputs($("toxic-type").value);
  $("proxies").addEventListener("click", onAction);
  refresh();
  follow();
  setInterval(refresh, 1000);
});
