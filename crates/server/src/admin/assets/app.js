// The Portcullis dashboard: reads the admin API every few seconds with the admin token the
// operator signed in with, or the session token an administrator account's password and TOTP
// code bought (kept in sessionStorage: it goes with the tab). No dependencies.

const REFRESH_MS = 5000;
const HOUR_MS = 3600 * 1000;
const SVG = "http://www.w3.org/2000/svg";
const TOKEN_KEY = "portcullis.admin.token";

const $ = (id) => document.getElementById(id);
let timer = null;

class Unauthorized extends Error {}

async function api(method, path, body) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const response = await fetch(path, {
    method,
    headers: { "Authorization": `Bearer ${token}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
    cache: "no-store",
  });
  if (response.status === 401) throw new Unauthorized();
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new Error((data && data.error) || `HTTP ${response.status}`);
  return data;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else if (k === "onclick") node.addEventListener("click", v);
    else node[k] = v;
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return node;
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

const when = (ms) => new Date(ms).toLocaleString();
function duration(ms) {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}
function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return i ? `${n.toFixed(1)}${units[i]}` : `${n}B`;
}

function fillTable(id, rows, columns, empty) {
  const body = $(id).tBodies[0];
  body.replaceChildren();
  if (!rows.length) {
    body.append(el("tr", {}, el("td", { class: "empty", colSpan: columns }, empty)));
    return;
  }
  for (const row of rows) body.append(row);
}

// One chart: counts per bucket over the last hour, with the detector's band (mean ± k·sd).
function chart(title, line, series) {
  const W = 600, H = 170, L = 40, B = 22, T = 8, R = 8;
  const { bucket_ms, start_ms, deviations: k } = series;
  const end = start_ms + line.counts.length * bucket_ms;
  const x = (i) => L + ((start_ms + i * bucket_ms + bucket_ms / 2 - (end - HOUR_MS)) / HOUR_MS) * (W - L - R);
  let max = 1;
  line.counts.forEach((c, i) => {
    max = Math.max(max, c);
    if (line.mean[i] !== null) max = Math.max(max, line.mean[i] + k * line.sd[i]);
  });
  max = Math.ceil(max * 1.1);
  const y = (v) => T + (1 - v / max) * (H - T - B);

  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title });
  root.append(svg("line", { class: "axis", x1: L, y1: y(0), x2: W - R, y2: y(0) }));
  for (const v of [0, max]) {
    const t = svg("text", { class: "tick", x: L - 6, y: y(v) + 4, "text-anchor": "end" });
    t.textContent = v;
    root.append(t);
  }
  for (const minutes of [60, 45, 30, 15, 0]) {
    const t = svg("text", { class: "tick", x: L + (1 - minutes / 60) * (W - L - R), y: H - 5, "text-anchor": minutes === 60 ? "start" : minutes ? "middle" : "end" });
    t.textContent = minutes ? `−${minutes} min` : "now";
    root.append(t);
  }
  // The band, in runs of buckets that have a baseline.
  let run = [];
  const flush = () => {
    if (run.length) {
      const upper = run.map((i) => `${x(i)},${y(line.mean[i] + k * line.sd[i])}`);
      const lower = run.slice().reverse().map((i) => `${x(i)},${y(Math.max(0, line.mean[i] - k * line.sd[i]))}`);
      root.append(svg("polygon", { class: "band", points: upper.concat(lower).join(" ") }));
      root.append(svg("polyline", { class: "mean", points: run.map((i) => `${x(i)},${y(line.mean[i])}`).join(" ") }));
    }
    run = [];
  };
  line.mean.forEach((m, i) => (m === null ? flush() : run.push(i)));
  flush();
  const points = line.counts.map((c, i) => `${x(i)},${y(c)}`).join(" ");
  root.append(svg("polyline", { class: "count", points: line.counts.length === 1 ? `${points} ${points}` : points }));

  const total = line.counts.reduce((a, b) => a + b, 0);
  return el("div", { class: "chart", "data-listener": line.listener, "data-measure": line.measure, "data-total": total },
    el("h3", {}, `${title} `, el("span", { class: "muted" }, `${total} in the last hour`)), root);
}

function renderCharts(series) {
  $("bucket").textContent = `(buckets of ${duration(series.bucket_ms)}, band ±${series.deviations}·sd)`;
  const names = { connection_attempts: "connection attempts", auth_failures: "failed logins" };
  $("charts").replaceChildren(...series.lines.map((line) => chart(`${line.listener}: ${names[line.measure]}`, line, series)));
}

function renderStatus(status) {
  $("hostname").textContent = status.hostname;
  $("version").textContent = `v${status.version}`;
  $("card-sessions").textContent = status.sessions.total;
  $("card-sessions-detail").textContent = Object.entries(status.sessions.by_listener).map(([l, n]) => `${l} ${n}`).join(" · ");
  $("card-bans").textContent = status.bans.active;
  $("card-alerts").textContent = status.alerts.unacknowledged;
  $("card-uptime").textContent = duration(status.uptime_seconds * 1000);
  $("card-listeners").textContent = status.listeners.map((l) => `${l.name} ${l.addr}`).join("\n");
}

// Mail from other servers by verdict: decisions on the card, each check's results in a table.
const METHODS = { spf: "SPF (MAIL FROM)", spf_helo: "SPF (HELO)", dkim: "DKIM", dmarc: "DMARC", arc: "ARC", iprev: "Reverse DNS" };
function renderInbound(inbound) {
  const decisions = Object.entries(inbound.messages);
  $("card-inbound").textContent = decisions.reduce((sum, [, n]) => sum + n, 0);
  $("card-inbound-detail").textContent = decisions.map(([d, n]) => `${d} ${n}`).join(" · ");
  const rows = Object.entries(METHODS).filter(([method]) => inbound.results[method]).map(([method, name]) =>
    el("tr", { "data-method": method }, el("td", {}, name),
      el("td", {}, Object.entries(inbound.results[method]).map(([result, n]) => `${result} ${n}`).join(" · "))));
  fillTable("inbound", rows, 2, "No mail from other servers yet.");
}

function renderSessions(sessions) {
  fillTable("sessions", sessions.map((s) => el("tr", { "data-session": s.id },
    el("td", {}, s.id), el("td", {}, s.listener), el("td", {}, s.peer), el("td", {}, s.account ?? "–"),
    el("td", {}, s.tls ?? "–"), el("td", {}, duration(s.duration_ms)),
    el("td", {}, `${bytes(s.bytes_in)} / ${bytes(s.bytes_out)}`),
    el("td", {}, el("button", { class: "danger", "data-kill": s.id, onclick: () => act("DELETE", `/api/v1/sessions/${s.id}`) }, "Close")),
  )), 8, "No sessions.");
}

function renderBans(bans) {
  fillTable("bans", bans.map((b) => el("tr", { "data-network": b.network },
    el("td", {}, b.network), el("td", {}, b.until === null ? "permanent" : when(b.until * 1000)),
    el("td", {}, b.origin), el("td", {}, b.reason),
    el("td", {}, el("button", { class: "quiet", "data-unban": b.network,
      onclick: () => act("DELETE", `/api/v1/bans/${encodeURIComponent(b.network)}`) }, "Unban")),
  )), 5, "No bans in force.");
}

function renderAlerts(alerts) {
  fillTable("alerts", alerts.slice(0, 50).map((a) => el("tr", { "data-alert": a.id, class: a.acknowledged ? "acknowledged" : "" },
    el("td", {}, when(a.ts_ms)), el("td", { class: `severity-${a.severity}` }, a.severity), el("td", {}, a.kind),
    el("td", {}, a.message),
    el("td", {}, a.acknowledged ? "seen" : el("button", { class: "quiet", "data-ack": a.id,
      onclick: () => act("POST", `/api/v1/alerts/${a.id}/ack`) }, "Acknowledge")),
  )), 5, "No alerts.");
}

async function act(method, path, body) {
  try {
    await api(method, path, body);
  } catch (e) {
    if (e instanceof Unauthorized) return signOut("Signed out: the token is no longer accepted.");
    alert(e.message);
  }
  refresh();
}

async function refresh() {
  clearTimeout(timer);
  try {
    const [status, series, sessions, bans, alerts] = await Promise.all([
      api("GET", "/api/v1/status"), api("GET", "/api/v1/series"), api("GET", "/api/v1/sessions"),
      api("GET", "/api/v1/bans"), api("GET", "/api/v1/alerts"),
    ]);
    renderStatus(status);
    renderInbound(status.inbound);
    renderCharts(series);
    renderSessions(sessions);
    renderBans(bans);
    renderAlerts(alerts);
    $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
    document.body.dataset.loaded = "true";
  } catch (e) {
    if (e instanceof Unauthorized) return signOut("That token is not accepted.");
    $("updated").textContent = `update failed: ${e.message}`;
  }
  timer = setTimeout(refresh, REFRESH_MS);
}

function signOut(message = "") {
  clearTimeout(timer);
  sessionStorage.removeItem(TOKEN_KEY);
  $("app").hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = message;
  $("token").focus();
}

function start() {
  $("signin").hidden = true;
  $("app").hidden = false;
  refresh();
}

$("signin-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
  $("token").value = "";
  start();
});
$("account-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const body = { account: form.account.value.trim(), password: form.password.value, totp: form.code.value.trim() };
  form.password.value = "";
  form.code.value = "";
  try {
    const response = await fetch("/api/v1/signin", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body), cache: "no-store",
    });
    const data = await response.json().catch(() => null);
    if (!response.ok) throw new Error((data && data.error) || `HTTP ${response.status}`);
    sessionStorage.setItem(TOKEN_KEY, data.token);
    $("account-error").textContent = "";
    start();
  } catch (e) {
    $("account-error").textContent = e.message;
  }
});
$("signout").addEventListener("click", () => signOut());
$("ban-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const body = { network: form.network.value.trim() };
  if (form.duration.value.trim()) body.duration = form.duration.value.trim();
  if (form.reason.value.trim()) body.reason = form.reason.value.trim();
  try {
    await api("POST", "/api/v1/bans", body);
    form.reset();
    $("ban-error").textContent = "";
  } catch (e) {
    $("ban-error").textContent = e.message;
  }
  refresh();
});

if (sessionStorage.getItem(TOKEN_KEY)) start();
else signOut();
