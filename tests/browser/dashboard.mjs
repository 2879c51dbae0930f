// The dashboard in headless Chromium against a live server (started and fed with traffic by
// crates/portcullis/tests/admin_external.rs): a wrong token is refused, the right one signs
// in, the charts show the traffic, a session is listed, unban works; a screenshot is saved.
//
// Environment: DASHBOARD_URL, ADMIN_TOKEN, BANNED (a network banned before the page loads),
// SCREENSHOT (where to save the PNG), CHROMIUM (default /usr/bin/chromium).
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
