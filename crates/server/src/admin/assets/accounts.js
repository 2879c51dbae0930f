// The Accounts page: every account (or one domain's) with its usage against its allowance;
// add one (its generated password shown once). Each account's own page is account.js.

import { api, change, part } from "./api.js";
import { showOnce } from "./dialogs.js";
import { $, bytes, day, el, fillTable } from "./dom.js";

// How an allowance reads: "10.0MiB", "unlimited", with "(default)" when it follows
// store.default_quota.
export function quotaText(a) {
  const amount = a.quota_bytes === null ? "unlimited" : bytes(a.quota_bytes);
  return a.quota_default ? `${amount} (default)` : amount;
}

// Usage as a <meter> against the allowance (none when unlimited), with the numbers as text.
export function usage(a) {
  const text = a.quota_bytes === null ? bytes(a.used_bytes) : `${bytes(a.used_bytes)} of ${bytes(a.quota_bytes)}`;
  if (a.quota_bytes === null || a.quota_bytes === 0) return el("span", {}, text);
  const meter = el("meter", { min: 0, max: a.quota_bytes, value: Math.min(a.used_bytes, a.quota_bytes),
    low: a.quota_bytes * 0.8, high: a.quota_bytes * 0.95, optimum: 0, "aria-label": `${text} used` });
  return el("span", { class: "usage" }, meter, " ", text);
}

// The domain whose accounts are shown ("" for all), from the address bar.
let domain = "";

export async function load(filter = "") {
  domain = filter.startsWith("@") ? filter.slice(1) : "";
  const [domains, accounts] = await Promise.all([api("GET", "/api/v1/domains"), api("GET", "/api/v1/accounts")]);
  const select = $("accounts-domain");
  select.replaceChildren(el("option", { value: "" }, "all domains"),
    ...domains.map((d) => el("option", { value: d, selected: d === domain }, d)));
  const shown = domain ? accounts.filter((a) => a.address.endsWith(`@${domain}`)) : accounts;
  fillTable("accounts", shown.map((a) => el("tr", { "data-account": a.address },
    el("td", {}, el("a", { href: `#account/${part(a.address)}` }, a.address)),
    el("td", {}, usage(a)), el("td", {}, quotaText(a)), el("td", { class: "number" }, a.messages),
    el("td", {}, day(a.created)),
  )), 5, domains.length ? "No accounts." : "No domains yet: add one on the Domains page first.");
}

$("accounts-domain").addEventListener("change", (event) => {
  const value = event.target.value;
  location.hash = value ? `#accounts/${part(`@${value}`)}` : "#accounts";
});

$("account-add-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const body = { address: form.address.value.trim() };
  if (form.quota.value.trim()) body.quota = form.quota.value.trim();
  if (form.password.value) body.password = form.password.value;
  form.password.value = "";
  const made = await change($("account-add-error"), "POST", "/api/v1/accounts", body);
  if (!made) return;
  form.reset();
  if (made.password) showOnce(`The password of ${made.address}`, made.password);
});
