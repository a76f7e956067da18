// The EdgeSBC dashboard: polls the admin API (the same JSON sbcctl reads)
// and draws it. No framework: every value goes in with textContent, since
// peers, Call-IDs and trunk names come from the network.
"use strict";

const params = new URLSearchParams(location.search);
// Default poll interval 2 s; ?interval=SECONDS (at least 1) changes it.
const interval = Math.max(1, Number(params.get("interval")) || 2) * 1000;
const maxRows = 200; // the calls table shows the oldest 200
let token = sessionStorage.getItem("sbc-admin-token") || "";
let historyEvery = 10000, historyAt = 0;

async function api(path, opts = {}) {
  opts.headers = Object.assign({}, opts.headers, token ? { Authorization: "Bearer " + token } : {});
  const res = await fetch(path, opts);
  if (res.status === 401) {
    document.getElementById("token-form").hidden = false;
    throw new Error("the admin API wants a token");
  }
  return res;
}

async function json(path) {
  const res = await api(path);
  if (res.status === 404) return null; // e.g. /api/v1/ha without HA
  if (!res.ok) throw new Error(path + ": " + res.status);
  return res.json();
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

// fill replaces a table's rows: cells(row, tr) gives each row's cells,
// as <td> nodes or values; an empty list shows one row saying so.
function fill(id, rows, cells, empty = "none") {
  const table = document.getElementById(id);
  const out = rows.map((r) => {
    const tr = document.createElement("tr");
    cells(r, tr).forEach((c) => tr.append(c instanceof Node ? c : el("td", c)));
    return tr;
  });
  if (!out.length) {
    const td = el("td", empty, "empty");
    td.colSpan = table.tHead.rows[0].cells.length;
    out.push(document.createElement("tr"));
    out[0].append(td);
  }
  table.tBodies[0].replaceChildren(...out);
}

// long is a cell for a value that may be long (Call-IDs, peers): cut
// short on screen, whole in its title.
function long(v) {
  const td = el("td", v, "long");
  td.title = v;
  return td;
}

function num(v) { return el("td", v, "num"); }

function duration(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60, r = s % 60;
  return (h ? h + ":" + String(m).padStart(2, "0") : m) + ":" + String(r).padStart(2, "0");
}

function calls(list) {
  document.getElementById("calls-count").textContent = list.length > maxRows
    ? "(" + list.length + ", the oldest " + maxRows + " shown)" : "(" + list.length + ")";
  const now = Date.now();
  fill("calls", list.slice(0, maxRows), (c, tr) => {
    tr.dataset.callId = c.id;
    const b = c.b || { realm: "-", peer: "-", call_id: "-" };
    return [c.id, c.state, num(duration(now - Date.parse(c.start))), c.route, c.path || "-",
      num(c.mos > 0 ? c.mos.toFixed(2) : "-"), c.a.realm, long(c.a.peer), long(c.a.call_id), b.realm, long(b.peer), long(b.call_id)];
  }, "no calls");
}

function trunks(list) {
  fill("trunks", list, (t) => {
    const targets = el("td");
    (t.targets || []).forEach((x) => targets.append(el("span", x.target + " " + x.state + " ", x.state)));
    if (t.dns_error) targets.append(el("span", "DNS: " + t.dns_error, "down"));
    const reg = t.registration ? t.registration.state + (t.registration.last_code ? " (" + t.registration.last_code + ")" : "") : "-";
    return [t.name, t.realm, el("td", t.up ? "up" : "down", t.up ? "up" : "down"), targets, reg];
  }, "no trunks");
}

function flows(f) {
  document.getElementById("datapath").textContent = "(datapath " + f.datapath + ")";
  const by = {};
  for (const x of f.flows || []) {
    const p = by[x.path] || (by[x.path] = { path: x.path, n: 0, packets: 0, bytes: 0 });
    p.n++; p.packets += x.packets; p.bytes += x.bytes;
  }
  fill("flows", Object.values(by).sort((a, b) => a.path.localeCompare(b.path)),
    (p) => [p.path, num(p.n), num(p.packets), num(p.bytes)], "no flows");
}

function ha(h) {
  const pill = document.getElementById("ha-role");
  if (!h) {
    pill.textContent = "HA off";
    pill.className = "pill";
    fill("ha", [], () => [], "HA off: no ha section or state_dir");
    return;
  }
  pill.textContent = h.node_id + ": " + h.role + " (term " + h.term + ")";
  pill.className = "pill " + h.role;
  fill("ha", h.peers || [], (p) => [p.id + (p.self ? " (this node)" : ""), p.addr, p.suffrage,
    el("td", p.leader ? "leader" : p.unreachable ? "unreachable" : "follower", p.unreachable ? "down" : "up")]);
}

function admission(list) {
  fill("admission", list, (a) => [a.key, num(a.active), num(a.max_calls || "-"), num(a.max_cps || "-")], "no admission limits");
}

function bans(list) {
  document.getElementById("bans-count").textContent = "(" + list.length + ")";
  const now = Date.now();
  fill("bans", list, (b) => {
    const btn = el("button", "unban", "unban");
    btn.addEventListener("click", () => unban(b.addr));
    const td = el("td");
    td.append(btn);
    return [b.addr, b.reason, new Date(b.since).toLocaleTimeString(), num(duration(Date.parse(b.until) - now)), num(b.dropped), td];
  }, "no bans");
}

// unban is a write action: it needs the admin token on any address.
async function unban(addr) {
  if (!token) {
    document.getElementById("token-form").hidden = false;
    setStatus("unban needs the admin token", true);
    return;
  }
  const res = await api("/api/v1/bans/" + encodeURIComponent(addr), { method: "DELETE" }).catch((e) => e);
  setStatus(res.ok ? "unbanned " + addr : "unban " + addr + ": " + (res.status || res.message), !res.ok);
}

// chart draws series (arrays of [time ms, value]) as polylines over the
// last hour, the y axis from 0 to the largest value.
function chart(id, series, fixedMax) {
  const svg = document.getElementById(id);
  const W = 300, H = 90, top = 10, now = Date.now(), span = 3600 * 1000;
  let max = fixedMax || 0;
  for (const s of series) for (const [, v] of s) max = Math.max(max, v);
  if (max === 0) max = 1;
  const ns = "http://www.w3.org/2000/svg";
  const kids = [];
  series.forEach((s, i) => {
    const pl = document.createElementNS(ns, "polyline");
    pl.setAttribute("points", s.map(([t, v]) =>
      ((W * (t - now + span)) / span).toFixed(1) + "," + (H - ((H - top) * v) / max).toFixed(1)).join(" "));
    if (i) pl.setAttribute("class", "second");
    kids.push(pl);
  });
  const text = (x, y, anchor, t) => {
    const e = document.createElementNS(ns, "text");
    e.setAttribute("x", x);
    e.setAttribute("y", y);
    e.setAttribute("text-anchor", anchor);
    e.textContent = t;
    kids.push(e);
  };
  const axis = document.createElementNS(ns, "line");
  [["x1", 0], ["y1", H - 0.5], ["x2", W], ["y2", H - 0.5]].forEach(([k, v]) => axis.setAttribute(k, v));
  kids.push(axis);
  const last = series[0].length ? series[0][series[0].length - 1][1] : 0;
  text(2, 9, "start", "max " + +max.toFixed(2) + ", now " + +last.toFixed(2));
  text(2, H - 3, "start", "-60 min");
  text(W - 2, H - 3, "end", "now");
  svg.dataset.points = series[0].length;
  svg.replaceChildren(...kids);
}

function history(h) {
  historyEvery = Math.max(interval, h.interval_s * 1000);
  const pts = h.points.map((p) => Object.assign(p, { t: Date.parse(p.time) }));
  const s = (f) => pts.map((p) => [p.t, f(p)]);
  chart("chart-cps", [s((p) => p.cps)]);
  chart("chart-active", [s((p) => p.active)]);
  chart("chart-shed", [s((p) => p.shed_ps)]);
  const withMedia = pts.filter((p) => p.mos > 0);
  chart("chart-mos", [withMedia.map((p) => [p.t, p.mos]), withMedia.map((p) => [p.t, p.mos_min])], 4.5);
}

function setStatus(text, bad) {
  const s = document.getElementById("status");
  s.textContent = text;
  s.className = bad ? "error" : "";
}

async function poll() {
  try {
    const want = [json("/api/v1/calls"), json("/api/v1/trunks"), json("/api/v1/flows"),
      json("/api/v1/ha"), json("/api/v1/bans"), json("/api/v1/admission")];
    const fetchHistory = Date.now() - historyAt >= historyEvery;
    if (fetchHistory) want.push(json("/api/v1/history"));
    const [c, t, f, h, b, a, hist] = await Promise.all(want);
    calls(c || []); trunks(t || []); if (f) flows(f); ha(h); bans(b || []); admission(a || []);
    if (hist) { history(hist); historyAt = Date.now(); }
    setStatus("updated " + new Date().toLocaleTimeString() + ", every " + interval / 1000 + " s");
  } catch (e) {
    setStatus(e.message, true);
  }
  setTimeout(poll, interval);
}

document.getElementById("token-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  token = document.getElementById("token").value.trim();
  sessionStorage.setItem("sbc-admin-token", token);
  document.getElementById("token-form").hidden = true;
});
poll();
