// One account's page: its usage (per mailbox) against its allowance, and what an operator
// does for its owner: a new allowance, a new password, app passwords revoked, TOTP turned off
// or unlocked, and the account removed (after typing its address).

import { api, change, part } from "./api.js";
import { confirmAction, showOnce } from "./dialogs.js";
import { $, bytes, day, el, fillTable } from "./dom.js";
import { quotaText, usage } from "./accounts.js";

// The account shown, and what the last reading said of it (for the confirmations' wording);
// the account this page removed, which the address bar may name until it moves on.
let address = "";
let shown = null;
let removed = "";

const path = (rest = "") => `/api/v1/accounts/${part(address)}${rest}`;

export async function load(which) {
  if (which === removed) return;
  if (which !== address) {
    address = which;
    shown = null;
    for (const form of ["quota-form", "password-form"]) $(form).reset();
    for (const problem of ["quota-error", "password-error", "totp-error", "app-passwords-error"]) {
      $(problem).textContent = "";
    }
  }
  $("acct-title").textContent = address;
  $("password-username").value = address; // for password managers: whose password this is
  let account, appPasswords;
  try {
    [account, appPasswords] = await Promise.all([api("GET", path()), api("GET", path("/app-passwords"))]);
  } catch (e) {
    $("acct-body").hidden = true;
    $("acct-missing").textContent = e.message;
    throw e;
  }
  shown = account;
  $("acct-body").hidden = false;
  $("acct-missing").textContent = "";
  renderSummary(account);
  renderTotp(account.totp);
  // INBOX first, then the others as the server sorts them.
  const mailboxes = [...account.mailboxes].sort((a, b) => (b.name === "INBOX") - (a.name === "INBOX"));
  fillTable("acct-mailboxes", mailboxes.map((m) => el("tr", { "data-mailbox": m.name },
    el("td", {}, m.name), el("td", { class: "number" }, m.messages), el("td", { class: "number" }, bytes(m.bytes)),
  )), 3, "No mailboxes.");
  renderAppPasswords(appPasswords);
}

function renderSummary(a) {
  $("acct-usage").replaceChildren(usage(a));
  $("acct-quota").textContent = quotaText(a);
  $("acct-messages").textContent = a.messages;
  $("acct-sessions").textContent = a.sessions;
  $("acct-created").textContent = day(a.created);
}

function renderTotp(totp) {
  const state = $("totp-state");
  const lock = totp.locked
    ? `locked after ${totp.failures} wrong codes given with the right password: consider a new password too`
    : totp.failures ? `${totp.failures} wrong codes since the last right one` : "";
  if (totp.enabled) state.replaceChildren(`On: mail clients need app passwords${lock ? `; ${lock}` : ""}.`);
  else state.replaceChildren("Off: the password opens mail clients. The owner turns it on with ",
    el("code", {}, `portcullis account totp enable ${address}`), ".");
  state.dataset.totp = totp.enabled ? (totp.locked ? "locked" : "on") : "off";
  $("totp-unlock").hidden = !(totp.enabled && (totp.locked || totp.failures > 0));
  $("totp-reset").hidden = !totp.enabled;
}

function renderAppPasswords(list) {
  const when = (seconds) => (seconds === null ? "never" : day(seconds));
  fillTable("app-passwords", list.map((p) => el("tr", { "data-app-password": p.name, class: p.state === "active" ? "" : "inactive" },
    el("td", {}, p.name), el("td", {}, p.scopes.join(", ")), el("td", {}, p.state),
    el("td", {}, day(p.created)), el("td", {}, when(p.expires)),
    el("td", {}, p.last_used === null ? "never" : `${day(p.last_used)} from ${p.last_ip ?? "?"}`),
    el("td", {}, p.state === "active"
      ? el("button", { class: "danger", type: "button", "data-revoke": p.name, onclick: () => revoke(p.name) }, "Revoke")
      : ""),
  )), 7, el("span", {}, "No app passwords. ", el("code", {}, `portcullis account app-password add ${address} --name LABEL`),
    " makes one per mail client."));
}

async function revoke(name) {
  const sure = await confirmAction({
    title: `Revoke "${name}"?`,
    text: `The mail client that uses the app password "${name}" of ${address} is signed out at once and cannot sign in with it again.`,
    action: "Revoke",
  });
  if (sure) await change($("app-passwords-error"), "DELETE", path(`/app-passwords/${part(name)}`));
}

$("quota-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  if (await change($("quota-error"), "PUT", path("/quota"), { quota: form.quota.value.trim() })) form.reset();
});

$("password-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const sessions = shown ? shown.sessions : 0;
  const sure = await confirmAction({
    title: `A new password for ${address}?`,
    text: `The old password stops working at once, and the account's ${sessions} open session(s) are closed; `
      + "its app passwords keep working.",
    action: form.password.value ? "Set this password" : "Generate a password",
  });
  if (!sure) return;
  const body = form.password.value ? { password: form.password.value } : {};
  form.password.value = "";
  const done = await change($("password-error"), "POST", path("/password"), body);
  if (done && done.password) showOnce(`The new password of ${address}`, done.password);
});

$("totp-unlock").addEventListener("click", () => change($("totp-error"), "POST", path("/totp/unlock")));

$("totp-reset").addEventListener("click", async () => {
  const sure = await confirmAction({
    title: `Turn TOTP off for ${address}?`,
    text: "Its password alone opens mail clients again and its recovery codes are void. Do this for an owner "
      + "who lost their authenticator; they turn it on again with portcullis account totp enable.",
    action: "Turn TOTP off",
  });
  if (sure) await change($("totp-error"), "DELETE", path("/totp"));
});

$("acct-remove").addEventListener("click", async () => {
  const held = shown ? `${shown.messages} message(s), ${bytes(shown.used_bytes)}` : "its mail";
  const sure = await confirmAction({
    title: `Remove ${address}?`,
    text: `This deletes the account and all of its mail (${held}) and closes its sessions. It cannot be undone.`,
    action: "Remove account",
    typed: address,
  });
  if (!sure) return;
  // Marked before it goes: a reading queued behind the removal must not look for it.
  removed = address;
  if (await change($("acct-remove-error"), "DELETE", path())) location.hash = "#accounts";
  else removed = "";
});
// Once the address bar has moved on, an account of that name (made again) is an account again.
addEventListener("hashchange", () => { removed = ""; });
