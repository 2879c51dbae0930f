// One domain's page: its DNS checklist. Every record the domain needs, as `portcullis dns`
// prints it (ready to paste into the zone), and after "Check now" what the DNS says of each,
// as `portcullis dns check` judges it. The lookups take seconds, so they run only on request;
// the page's periodic reading keeps the last check's verdicts.

import { api, oneAtATime, part, Unauthorized, announce } from "./api.js";
import { $, el, fillTable } from "./dom.js";

// The domain shown, and the last check of it (null until "Check now").
let domain = "";
let checked = null;

const path = () => `/api/v1/domains/${part(domain)}/dns`;

// What each verdict says, for people.
const VERDICT = { ok: "ok", missing: "missing", wrong: "wrong", unknown: "not checked" };

function render(list) {
  $("dns-title").textContent = `DNS records of ${list.domain}`;
  $("dns-notes").replaceChildren(...list.notes.map((note) => el("li", {}, note)));
  fillTable("dns-records", list.records.map((r) => el("tr", { "data-record": `${r.name} ${r.type}` },
    el("td", { class: r.status ? `verdict-${r.status}` : "muted" }, r.status ? VERDICT[r.status] : "—"),
    el("td", {}, r.name), el("td", {}, r.type),
    el("td", {}, el("code", {}, r.zone_line)),
    el("td", {}, r.detail ?? ""),
  )), 5, "No records.");
  const attention = list.records.filter((r) => r.status && r.status !== "ok").length;
  $("dns-summary").textContent = !list.checked ? ""
    : attention ? `${attention} of ${list.records.length} records need attention.`
    : `All ${list.records.length} records are in place.`;
}

export async function load(which) {
  if (which !== domain) {
    domain = which;
    checked = null;
    $("dns-error").textContent = "";
  }
  if (checked) return render(checked);
  try {
    render(await api("GET", path()));
    $("dns-body").hidden = false;
  } catch (e) {
    $("dns-body").hidden = true;
    $("dns-error").textContent = e.message;
    throw e;
  }
}

$("dns-check").addEventListener("click", async () => {
  const button = $("dns-check");
  button.disabled = true;
  $("dns-summary").textContent = "Looking the records up…";
  try {
    checked = await oneAtATime(() => api("GET", `${path()}?check=true`));
    $("dns-error").textContent = "";
    render(checked);
  } catch (e) {
    if (e instanceof Unauthorized) announce.unauthorized();
    else $("dns-error").textContent = e.message;
  } finally {
    button.disabled = false;
  }
});
