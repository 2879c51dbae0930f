// The Portcullis dashboard's shell and its overview page. The shell signs in (the admin token,
// or the session token an administrator account's password and TOTP code bought), shows the
// page the address bar names (#overview, #domains, #accounts, #account/ADDRESS, #queue) and reads it
// again every few seconds and after every change. The overview charts the last hour and lists
// the sessions, bans and alerts; the other pages are modules of their own. No dependencies.

import { api, change, oneAtATime, token, Unauthorized } from "./api.js";
import { $, bytes, duration, el, fillTable, svg, when } from "./dom.js";
import { forgetOnce } from "./dialogs.js";
import * as domains from "./domains.js";
import * as domain from "./domain.js";
import * as accounts from "./accounts.js";
import * as account from "./account.js";
import * as queue from "./queue.js";

const REFRESH_MS = 5000;
const HOUR_MS = 3600 * 1000;

let timer = null;

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

// Every node's sessions (GET /api/v1/sessions); a node that did not answer is named below.
function renderSessions(list) {
  const missing = list.nodes_missing.length ? `Not listed: the sessions of ${list.nodes_missing.join(", ")}, which did not answer.` : "";
  $("sessions-missing").textContent = missing;
  const several = list.nodes.length > 1;
  fillTable("sessions", list.sessions.map((s) => el("tr", { "data-session": s.global_id },
    el("td", { title: s.global_id }, several ? s.global_id : s.id), el("td", {}, s.listener), el("td", {}, s.peer), el("td", {}, s.account ?? "–"),
    el("td", {}, s.tls ?? "–"), el("td", {}, duration(s.duration_ms)),
    el("td", {}, `${bytes(s.bytes_in)} / ${bytes(s.bytes_out)}`),
    el("td", {}, el("button", { class: "danger", "data-kill": s.global_id, onclick: () => act("DELETE", `/api/v1/sessions/${encodeURIComponent(s.global_id)}`) }, "Close")),
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

// A button's change on the overview: an error is shown in an alert box.
const act = (method, path) => change(null, method, path);

async function loadOverview() {
  const [series, sessions, bans, alerts] = await Promise.all([
    api("GET", "/api/v1/series"), api("GET", "/api/v1/sessions"), api("GET", "/api/v1/bans"), api("GET", "/api/v1/alerts"),
  ]);
  renderCharts(series);
  renderSessions(sessions);
  renderBans(bans);
  renderAlerts(alerts);
  document.body.dataset.loaded = "true";
}

// The pages: the section each shows, how it reads the API (with the argument after its name
// in the address bar), and the navigation link it belongs under.
const PAGES = {
  overview: { section: "page-overview", load: loadOverview },
  domains: { section: "page-domains", load: domains.load },
  domain: { section: "page-domain", load: domain.load, nav: "domains" },
  accounts: { section: "page-accounts", load: accounts.load },
  account: { section: "page-account", load: account.load, nav: "accounts" },
  queue: { section: "page-queue", load: queue.load },
};

// The page the address bar names: "#account/alice%40example.org" is the account page for
// alice@example.org. Anything else is the overview.
function route() {
  const [name, ...rest] = location.hash.slice(1).split("/");
  let argument = "";
  try {
    argument = decodeURIComponent(rest.join("/"));
  } catch {
    // A malformed escape: no argument.
  }
  if (name === "account" && !argument) return { page: "accounts", argument: "" };
  if (name === "domain" && !argument) return { page: "domains", argument: "" };
  return PAGES[name] ? { page: name, argument } : { page: "overview", argument: "" };
}

function show(page) {
  for (const [name, p] of Object.entries(PAGES)) $(p.section).hidden = name !== page;
  const current = PAGES[page].nav ?? page;
  for (const link of document.querySelectorAll("#pages a")) {
    if (link.dataset.page === current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

// Reads the page shown (and the status, for the header). One reading at a time: a change
// made meanwhile asks for another one right after.
let reading = false;
let again = false;

async function refresh() {
  clearTimeout(timer);
  if (reading) {
    again = true;
    return;
  }
  reading = true;
  try {
    await oneAtATime(async () => {
      const { page, argument } = route();
      show(page);
      const status = await api("GET", "/api/v1/status");
      renderStatus(status);
      renderInbound(status.inbound);
      await PAGES[page].load(argument);
      $(PAGES[page].section).dataset.loaded = "true";
    });
    $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    if (e instanceof Unauthorized) {
      reading = again = false;
      return signOut("That token is not accepted.");
    }
    $("updated").textContent = `update failed: ${e.message}`;
  }
  reading = false;
  if (again) {
    again = false;
    return refresh();
  }
  if (token.get()) timer = setTimeout(refresh, REFRESH_MS);
}

function signOut(message = "") {
  clearTimeout(timer);
  token.clear();
  forgetOnce();
  if ($("confirm").open) $("confirm").close();
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
  token.set($("token").value.trim());
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
    token.set(data.token);
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
  if (await change($("ban-error"), "POST", "/api/v1/bans", body)) form.reset();
});
// The pages' changes: read the page again (after the change's own code has run, which may
// have moved to another page); a refused token signs out.
document.addEventListener("portcullis:changed", () => setTimeout(refresh, 0));
document.addEventListener("portcullis:unauthorized", () => signOut("Signed out: the token is no longer accepted."));
addEventListener("hashchange", () => {
  if (token.get()) refresh();
});

if (token.get()) start();
else signOut();
