// The dashboard in headless Chromium against a live server (started and fed with traffic by
// crates/portcullis/tests/admin_external.rs): a wrong token is refused, the right one signs
// in, the charts show the traffic, a session is listed, unban works; a screenshot is saved.
// Then the domain and account pages: a domain and an account in it added (its generated
// password shown once), its quota set, the account removed after typing its address and the
// domain removed; an app password revoked, a new password generated (printed for the Rust
// side to log in with), a TOTP lock lifted and TOTP turned off; a screenshot of an account.
// Then the queue page: its cards and backlog; a message held, released, its domain retried,
// another removed. Last, an administrator account signs in with its password and a TOTP code.
//
// Environment: DASHBOARD_URL, ADMIN_TOKEN, BANNED (a network banned before the page loads),
// SCREENSHOT, ACCOUNT_SCREENSHOT and QUEUE_SCREENSHOT (where to save the PNGs), APP_PASSWORD_OWNER (an account
// with an app password "phone"), TOTP_OWNER (an account with TOTP on and a wrong code
// counted), QUEUE_DOMAIN (the destination of one of two queued messages), ACCOUNT,
// ACCOUNT_PASSWORD and ACCOUNT_CODE (the administrator's sign-in),
// CHROMIUM (default /usr/bin/chromium).
import { chromium } from "playwright-core";

const url = process.env.DASHBOARD_URL;
const token = process.env.ADMIN_TOKEN;
const banned = process.env.BANNED;
const screenshot = process.env.SCREENSHOT;

function check(condition, message) {
  if (!condition) throw new Error(message);
  console.log(`ok - ${message}`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  // As root in CI, and on a machine with no network but loopback.
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
const problems = [];
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    // A wrong token's 401 is expected once; anything else (a CSP violation, a script error) is not.
    if (m.type() === "error" && !m.text().includes("401")) problems.push(`console: ${m.text()}`);
  });
  page.on("requestfailed", (r) => problems.push(`request failed: ${r.url()}`));

  await page.goto(url);
  await page.waitForSelector("#signin-form", { state: "visible" });
  check(true, "the sign-in form shows");

  await page.fill("#token", "not-the-token");
  await page.click("#signin-form button[type=submit]");
  await page.waitForFunction(() => document.getElementById("signin-error").textContent.includes("not accepted"));
  check(true, "a wrong token is refused");

  await page.fill("#token", token);
  await page.click("#signin-form button[type=submit]");
  await page.waitForSelector("body[data-loaded=true]", { timeout: 15000 });
  check(await page.isVisible("#app"), "the right token signs in");

  // The charts show data from the live server.
  const totals = await page.$$eval(".chart", (charts) =>
    charts.map((c) => ({ listener: c.dataset.listener, measure: c.dataset.measure, total: Number(c.dataset.total),
      points: c.querySelector("polyline.count").getAttribute("points").split(" ").length })));
  check(totals.length === 8, `eight charts (four listeners, two measures): ${JSON.stringify(totals)}`);
  const of = (listener, measure) => totals.find((t) => t.listener === listener && t.measure === measure);
  check(of("imaps", "connection_attempts").total >= 3, "connection attempts on imaps are charted");
  check(of("imaps", "auth_failures").total >= 2, "failed logins on imaps are charted");
  check(of("imaps", "connection_attempts").points >= 2, "the chart has a line");
  check(await page.$$eval("polygon.band", (b) => b.length) > 0, "the baseline band is drawn");

  // The open IMAP session, with its account.
  const sessions = await page.$$eval("#sessions tbody tr[data-session]", (rows) => rows.map((r) => r.textContent));
  check(sessions.some((s) => s.includes("alice@example.test") && s.includes("imaps")), "the live session is listed");
  check((await page.textContent("#card-bans")).trim() === "1", "one ban in force");

  // Unban.
  const row = `#bans tr[data-network="${banned}"]`;
  await page.waitForSelector(row);
  await page.click(`button[data-unban="${banned}"]`);
  await page.waitForSelector(row, { state: "detached", timeout: 10000 });
  check(true, `the unban button lifted the ban on ${banned}`);
  const left = await page.evaluate(async (t) => {
    const r = await fetch("/api/v1/bans", { headers: { Authorization: `Bearer ${t}` } });
    return r.json();
  }, token);
  check(left.length === 0, "the API agrees: no ban left");
  await page.waitForFunction(() => document.getElementById("card-bans").textContent.trim() === "0");

  await page.screenshot({ path: screenshot, fullPage: true });
  check(true, `screenshot saved to ${screenshot}`);

  // What the API says, with the token the page holds: the pages' changes are checked there too.
  const read = (path) => page.evaluate(async (p) => {
    const r = await fetch(p, { headers: { Authorization: `Bearer ${sessionStorage.getItem("portcullis.admin.token")}` } });
    return r.json();
  }, path);
  // Confirms the dialog a button opened, typing `typed` first when it asks for it.
  const confirmWith = async (typed) => {
    await page.waitForSelector("#confirm[open]");
    if (typed) {
      check(await page.isDisabled("#confirm-ok"), "the confirmation waits for the name to be typed");
      await page.fill("#confirm-input", typed);
    }
    await page.click("#confirm-ok");
    await page.waitForSelector("#confirm", { state: "hidden" });
  };
  const textOf = async (selector) => (await page.textContent(selector)).trim();

  // Domains: add one.
  await page.click("#pages a[data-page=domains]");
  await page.waitForSelector("#domains tr[data-domain]");
  check(await page.getAttribute("#pages a[data-page=domains]", "aria-current") === "page", "the Domains page shows");
  await page.fill("#domain-name", "second.test");
  await page.click("#domain-form button[type=submit]");
  await page.waitForSelector('#domains tr[data-domain="second.test"]');
  check((await read("/api/v1/domains")).includes("second.test"), "a domain is added from its page");

  // Its DNS checklist: the records to publish, then (after "Check now") a verdict for each.
  await page.click('#domains a[data-dns="second.test"]');
  await page.waitForSelector('#dns-records tr[data-record="second.test MX"]');
  check((await textOf("#dns-title")).includes("second.test"), "a domain's DNS page names it");
  check((await textOf('#dns-records tr[data-record="second.test MX"]')).includes("MX 10"), "the MX record is listed, ready to paste");
  await page.click("#dns-check");
  await page.waitForSelector("#dns-records td[class^=verdict-]", { timeout: 60000 });
  check(/records|place/.test(await textOf("#dns-summary")), "the check gives a verdict per record");

  // Accounts: add one in it, with a quota; its generated password is shown once.
  await page.click("#pages a[data-page=accounts]");
  await page.fill("#new-address", "carol@second.test");
  await page.fill("#new-quota", "10MiB");
  await page.click("#account-add-form button[type=submit]");
  await page.waitForSelector("#once", { state: "visible" });
  const generated = await textOf("#once-secret");
  check(generated.length >= 12 && (await textOf("#once-what")).includes("carol@second.test"),
    "the new account's generated password is shown once");
  await page.click("#once-done");
  check(!(await page.isVisible("#once")) && (await textOf("#once-secret")) === "", "and forgotten when done");
  await page.waitForSelector('#accounts tr[data-account="carol@second.test"]');
  // The domain filter.
  await page.selectOption("#accounts-domain", "second.test");
  await page.waitForFunction(() => location.hash === "#accounts/%40second.test");
  await page.waitForFunction(() => document.querySelectorAll("#accounts tr[data-account]").length === 1);
  check(true, "the accounts of one domain are listed on their own");

  // Its page: set the quota, then remove it after typing its address.
  await page.click('#accounts a[href="#account/carol%40second.test"]');
  await page.waitForFunction(() => document.getElementById("acct-title").textContent === "carol@second.test"
    && document.getElementById("acct-quota").textContent === "10.0MiB");
  await page.fill("#quota-value", "20MiB");
  await page.click("#quota-form button[type=submit]");
  await page.waitForFunction(() => document.getElementById("acct-quota").textContent === "20.0MiB");
  const carol = await read("/api/v1/accounts/carol%40second.test");
  check(carol.quota_bytes === 20 * 1024 * 1024 && !carol.quota_default, "the quota is set from the account's page");
  await page.click("#acct-remove");
  await confirmWith("carol@second.test");
  await page.waitForFunction(() => location.hash === "#accounts");
  await page.waitForSelector('#accounts tr[data-account="carol@second.test"]', { state: "detached" });
  check(!(await read("/api/v1/accounts")).some((a) => a.address === "carol@second.test"), "the account is removed");

  // The domain, now empty, goes too.
  await page.click("#pages a[data-page=domains]");
  await page.waitForSelector('#domains tr[data-domain="second.test"] button:not([disabled])');
  check(await page.isDisabled('#domains button[data-remove-domain="example.test"]'), "a domain with accounts cannot be removed");
  await page.click('#domains button[data-remove-domain="second.test"]');
  await confirmWith(null);
  await page.waitForSelector('#domains tr[data-domain="second.test"]', { state: "detached" });
  check(!(await read("/api/v1/domains")).includes("second.test"), "the empty domain is removed");

  // An account with an app password and a live session: revoke it, give it a new password.
  const owner = process.env.APP_PASSWORD_OWNER;
  await page.click("#pages a[data-page=accounts]");
  await page.click(`#accounts a[href="#account/${encodeURIComponent(owner)}"]`);
  await page.waitForSelector('#app-passwords tr[data-app-password="phone"] button[data-revoke="phone"]');
  check(Number(await textOf("#acct-sessions")) >= 2, "the account's live sessions are counted");
  await page.click('button[data-revoke="phone"]');
  await confirmWith(null);
  await page.waitForFunction(() =>
    document.querySelector('#app-passwords tr[data-app-password="phone"] td:nth-child(3)').textContent === "revoked");
  check(true, "the app password is revoked from the account's page");
  await page.click("#password-form button[type=submit]");
  await confirmWith(null);
  await page.waitForSelector("#once", { state: "visible" });
  const fresh = await textOf("#once-secret");
  check(fresh.length >= 12, "a new password is generated and shown once");
  console.log(`new password of ${owner}: ${fresh}`);
  await page.waitForFunction(() => document.getElementById("acct-sessions").textContent === "0");
  check(true, "the account's sessions are closed");
  await page.screenshot({ path: process.env.ACCOUNT_SCREENSHOT, fullPage: true });
  check(true, `screenshot of an account saved to ${process.env.ACCOUNT_SCREENSHOT}`);
  await page.click("#once-done");

  // An account with TOTP on and a wrong code counted: unlock, then turn TOTP off.
  const totpOwner = process.env.TOTP_OWNER;
  await page.evaluate((a) => { location.hash = `#account/${encodeURIComponent(a)}`; }, totpOwner);
  await page.waitForSelector('#totp-state[data-totp="on"]');
  await page.waitForSelector("#totp-unlock", { state: "visible" });
  await page.click("#totp-unlock");
  await page.waitForSelector("#totp-unlock", { state: "hidden" });
  check((await read(`/api/v1/accounts/${encodeURIComponent(totpOwner)}`)).totp.failures === 0, "the wrong codes are forgotten");
  await page.click("#totp-reset");
  await confirmWith(null);
  await page.waitForSelector('#totp-state[data-totp="off"]');
  check(!(await read(`/api/v1/accounts/${encodeURIComponent(totpOwner)}`)).totp.enabled, "TOTP is turned off");

  // The queue: two messages waiting (every attempt deferred), one held and released, its
  // domain retried, the other removed after confirmation.
  await page.click("#pages a[data-page=queue]");
  await page.waitForFunction(() => document.querySelectorAll("#queue-list tr[data-queued]").length === 2);
  check((await textOf("#queue-messages")) === "2" && (await textOf("#queue-held")) === "0", "the queue's size is on its card");
  check((await textOf("#queue-oldest")) !== "–", "and the age of its oldest entry");
  const far = process.env.QUEUE_DOMAIN;
  const backlog = await textOf(`#queue-domains tr[data-backlog="${far}"]`);
  check(!backlog.endsWith("–Retry now") && backlog.includes(far), `the backlog for ${far} with its last answer: ${backlog}`);
  await page.screenshot({ path: process.env.QUEUE_SCREENSHOT, fullPage: true });
  check(true, `screenshot of the queue saved to ${process.env.QUEUE_SCREENSHOT}`);
  const [first, second] = await page.$$eval("#queue-list tr[data-queued]", (rows) => rows.map((r) => r.dataset.queued));
  await page.click(`button[data-hold="${first}"]`);
  await page.waitForSelector(`#queue-list tr[data-queued="${first}"][data-state=held]`);
  check(await page.isDisabled(`button[data-retry="${first}"]`), "a held message cannot be retried");
  await page.waitForFunction(() => document.getElementById("queue-held").textContent === "1");
  check((await read(`/api/v1/queue/${first}`)).held, "the API agrees: it is held");
  await page.click(`button[data-release="${first}"]`);
  await page.waitForSelector(`#queue-list tr[data-queued="${first}"]:not([data-state=held])`);
  check(!(await read(`/api/v1/queue/${first}`)).held, "and released");
  await page.click(`button[data-retry-domain="${far}"]`);
  await page.click(`button[data-remove-queued="${second}"]`);
  await confirmWith(null);
  await page.waitForSelector(`#queue-list tr[data-queued="${second}"]`, { state: "detached" });
  check((await read("/api/v1/queue")).messages.length === 1, "a message is removed after confirmation");
  check((await textOf("#queue-error")) === "", "no error on the queue page");

  // Signed out, an administrator account signs in with its password and a TOTP code.
  await page.click("#signout");
  await page.waitForSelector("#account-form", { state: "visible" });
  const signInWith = async (code) => {
    await page.fill("#account", process.env.ACCOUNT);
    await page.fill("#password", process.env.ACCOUNT_PASSWORD);
    await page.fill("#code", code);
    await page.click("#account-form button[type=submit]");
  };
  await signInWith(process.env.ACCOUNT_CODE === "000000" ? "111111" : "000000");
  await page.waitForFunction(() => document.getElementById("account-error").textContent.length > 0);
  check(!(await page.isVisible("#app")), "a wrong code is refused");
  await signInWith(process.env.ACCOUNT_CODE);
  await page.waitForSelector("#app", { state: "visible", timeout: 15000 });
  const status = await page.evaluate(async () => {
    const session = sessionStorage.getItem("portcullis.admin.token");
    const r = await fetch("/api/v1/status", { headers: { Authorization: `Bearer ${session}` } });
    return r.status;
  });
  check(status === 200, "the account, its password and a TOTP code sign in: the session token opens the API");
  check(problems.length === 0, `no script errors, CSP violations or failed requests ${JSON.stringify(problems)}`);
} finally {
  await browser.close();
}
