// The Domains page: the domains this server receives mail for, each with its accounts, the
// mail they hold and a link to its DNS checklist (domain.js); add one, remove one that has no
// accounts left.

import { api, change, part } from "./api.js";
import { confirmAction } from "./dialogs.js";
import { $, bytes, el, fillTable } from "./dom.js";

// The columns of a domain's row, from its name and its accounts. A column is one entry here.
const COLUMNS = [
  { heading: "Domain", cell: (d) => d.name },
  { heading: "DNS", cell: (d) => el("a", { href: `#domain/${part(d.name)}`, "data-dns": d.name }, "records") },
  { heading: "Accounts", cell: (d) => el("a", { href: `#accounts/${part(`@${d.name}`)}` }, String(d.accounts.length)) },
  { heading: "Stored", cell: (d) => bytes(d.accounts.reduce((sum, a) => sum + a.used_bytes, 0)) },
  { heading: "", cell: removeButton },
];

function removeButton(d) {
  const inUse = d.accounts.length > 0;
  return el("button", {
    class: "danger", type: "button", "data-remove-domain": d.name, disabled: inUse,
    title: inUse ? "Remove its accounts first" : "", onclick: () => remove(d.name),
  }, "Remove");
}

async function remove(name) {
  const sure = await confirmAction({
    title: `Remove ${name}?`,
    text: `Mail to ${name} will be refused from now on.`,
    action: "Remove domain",
  });
  if (sure) await change($("domain-error"), "DELETE", `/api/v1/domains/${part(name)}`);
}

export async function load() {
  const [names, accounts] = await Promise.all([api("GET", "/api/v1/domains"), api("GET", "/api/v1/accounts")]);
  const domains = names.map((name) => ({ name, accounts: accounts.filter((a) => a.address.endsWith(`@${name}`)) }));
  const head = $("domains").tHead.rows[0];
  head.replaceChildren(...COLUMNS.map((c) => el("th", { scope: "col" }, c.heading)));
  fillTable("domains", domains.map((d) => el("tr", { "data-domain": d.name },
    ...COLUMNS.map((c) => el("td", {}, c.cell(d))))), COLUMNS.length, "No domains yet: add the first one above.");
}

$("domain-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  if (await change($("domain-error"), "POST", "/api/v1/domains", { domain: form.domain.value.trim() })) form.reset();
});
