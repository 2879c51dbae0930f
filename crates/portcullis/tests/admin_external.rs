//! The admin listener checked by tools nobody here wrote: the OpenAPI description against the
//! live API (openapi-spec-validator, jsonschema) and `/metrics` through the Prometheus
//! client's parser, in the pytest suite in tests/admin; and the dashboard in headless Chromium
//! driven by Playwright (tests/browser), its overview, its domain and account pages and its queue page, whose
//! changes are then checked here against the server (events, IMAP logins, closed sessions). `.ci/run` installs them. A tool that is missing is a
//! skip that says what to install (a failure with PORTCULLIS_REQUIRE_ALL=1, which `.ci/run` sets).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::totp::{enable_totp, totp_code, wrong_code};
use common::*;
use serde_json::json;

const ADMIN: &str = "postmaster@example.test";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_openapi_description_matches_the_live_api() {
    common::pytest::pytest("tests/admin");
}

#[test]
fn the_dashboard_in_headless_chromium() {
    let browser_dir = root().join("tests/browser");
    let Some(node) = outside::program("node", "apt-get install nodejs npm") else { return };
    if !outside::file(&browser_dir.join("node_modules/playwright-core"), "npm ci --prefix tests/browser") {
        return;
    }
    // dashboard.mjs drives the browser at $CHROMIUM, by default Debian's.
    let chromium = std::env::var_os("CHROMIUM").map(PathBuf::from).unwrap_or_else(|| "/usr/bin/chromium".into());
    if !outside::file(&chromium, "apt-get install chromium") {
        return;
    }
    // pyotp plays the administrator's authenticator app.
    let Some(python) = outside::program("python3", "apt-get install python3") else { return };
    if !outside::python_module(&python, "pyotp", "python3 -m pip install pyotp") {
        return;
    }
    let server = TestServer::start_with(Settings {
        sections: vec![
            "[guard]\nfailure_delay = \"1ms\"\nmax_failure_delay = \"2ms\"\n[alerts]\nbucket = \"1s\"\n".into(),
            format!("[admin]\naccounts = [\"{ADMIN}\"]\n"),
            // Outbound mail stays queued for the queue page: the resolver is a port nobody
            // answers on (each attempt is deferred), and a retry waits an hour.
            "[dns]\nservers = [\"127.0.0.1:9\"]\ntimeout = \"200ms\"\nattempts = 1\n[queue]\nretry_first = \"1h\"\n"
                .into(),
        ],
        ..Settings::default()
    });
    // An administrator with TOTP on: the page signs in with its password and a code too.
    server.cli_ok(&["account", "add", ADMIN, "--password-stdin"], Some(PASSWORD));
    let totp = enable_totp(&server, ADMIN);
    // Traffic for the charts: logins that work and fail, a message, a ban.
    for (source, password) in [("127.0.0.2", PASSWORD), ("127.0.0.3", "wrong-1"), ("127.0.0.3", "wrong-2")] {
        server.imap_login(source, ALICE, password);
    }
    assert!(server.submit(BOB, "Subject: chart\r\n\r\nfor the charts").starts_with("250"));
    let (status, _) =
        server.api("POST", "/api/v1/bans", Some(json!({"network": "127.0.0.77", "reason": "browser test"})));
    assert_eq!(status, 201);
    // A session that stays open while the page looks.
    let mut imap = server.connect_from("127.0.0.2", "imaps").upgrade(server.client_config(rustls::ALL_VERSIONS));
    imap.line();
    imap.send(&format!("a LOGIN {ALICE} {PASSWORD}"));
    assert!(imap.line().starts_with("a OK"));
    // For the account pages: an app password of alice's, with a session it opened (the page
    // revokes it); bob with TOTP on and one wrong code counted (the page unlocks it, then turns
    // TOTP off).
    let added = server.cli_ok(&["account", "app-password", "add", ALICE, "--name", "phone"], None);
    let app_password = added.lines().find_map(|l| l.strip_prefix("App password (shown only this once): ")).unwrap();
    let mut phone = server.connect_from("127.0.0.2", "imaps").upgrade(server.client_config(rustls::ALL_VERSIONS));
    phone.line();
    phone.send(&format!("p LOGIN {ALICE} {app_password}"));
    assert!(phone.line().starts_with("p OK"));
    let bob_totp = enable_totp(&server, BOB);
    let out = server.cli(&["account", "totp", "check", BOB], Some(&format!("{PASSWORD}\n{}\n", wrong_code(&bob_totp))));
    assert!(!out.status.success(), "a wrong code is refused");
    // Two messages for other servers, each deferred at its first attempt.
    for to in ["x@far.test", "y@other.test"] {
        assert!(server.submit(to, &format!("From: <{ALICE}>\r\nSubject: to {to}\r\n\r\nqueued")).starts_with("250"));
    }
    server.wait_events(|e| e["event"] == "delivery_attempt" && e["deferred"] == 1, 2);
    // A few 1 s buckets close, so that the detector has a baseline to draw.
    std::thread::sleep(Duration::from_millis(2500));

    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let account_screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-account.png");
    let queue_screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-queue.png");
    for old in [&screenshot, &account_screenshot, &queue_screenshot] {
        let _ = std::fs::remove_file(old);
    }
    let started = Instant::now();
    let out = Command::new(node)
        .arg("dashboard.mjs")
        .current_dir(&browser_dir)
        .env("DASHBOARD_URL", format!("http://{}/", server.addr("admin")))
        .env("ADMIN_TOKEN", server.admin_token())
        .env("BANNED", "127.0.0.77/32")
        .env("ACCOUNT", ADMIN)
        .env("ACCOUNT_PASSWORD", PASSWORD)
        // The next time step's code (accepted for clock skew): the enrollment spent this one's.
        .env("ACCOUNT_CODE", totp_code(&totp, 30))
        .env("SCREENSHOT", &screenshot)
        .env("ACCOUNT_SCREENSHOT", &account_screenshot)
        .env("QUEUE_SCREENSHOT", &queue_screenshot)
        .env("APP_PASSWORD_OWNER", ALICE)
        .env("TOTP_OWNER", BOB)
        .env("QUEUE_DOMAIN", "far.test")
        .output()
        .expect("run node");
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the browser test failed:\n{report}");
    assert!(started.elapsed() < Duration::from_secs(60), "{report}");
    for shot in [&screenshot, &account_screenshot, &queue_screenshot] {
        assert!(std::fs::metadata(shot).map(|m| m.len() > 10_000).unwrap_or(false), "no {}: {report}", shot.display());
    }
    // The server saw the unban the page asked for.
    server.wait_event(|e| e["event"] == "ban_removed" && e["network"] == "127.0.0.77/32");
    server.wait_event(|e| e["event"] == "admin_action" && e["action"] == "ban_remove");
    server.wait_event(|e| e["event"] == "admin_auth_failed" && e["account"] == ADMIN && e["reason"] == "wrong_code");
    server.wait_event(|e| e["event"] == "admin_action" && e["action"] == "sign_in" && e["target"] == ADMIN);

    // What the queue page did, as the server saw it.
    for (action, target) in
        [("queue_hold", "1"), ("queue_release", "1"), ("queue_retry", "domain far.test"), ("queue_remove", "2")]
    {
        server.wait_event(|e| e["event"] == "admin_action" && e["action"] == action && e["target"] == target);
    }
    // What the account pages did, as the server saw it.
    for (action, target) in [
        ("domain_add", "second.test"),
        ("account_add", "carol@second.test"),
        ("account_quota", "carol@second.test"),
        ("account_remove", "carol@second.test"),
        ("domain_remove", "second.test"),
        ("app_password_revoke", "alice@example.test/phone"),
        ("account_password", ALICE),
        ("totp_unlock", BOB),
        ("totp_reset", BOB),
    ] {
        server.wait_event(|e| e["event"] == "admin_action" && e["action"] == action && e["target"] == target);
    }
    // The revoked app password's session and the old password's are closed; the password the
    // page showed once opens IMAP, the old one no longer does, nor the app password.
    // (Each read fails the test if the server stays silent instead of closing.)
    phone.until_closed();
    imap.until_closed();
    server.wait_event(|e| e["event"] == "app_password_session_closed" && e["app_password"] == "phone");
    server.wait_event(|e| {
        e["event"] == "account_session_closed" && e["account"] == ALICE && e["reason"] == "credentials_changed"
    });
    let new_password = report
        .lines()
        .find_map(|l| l.strip_prefix(&format!("new password of {ALICE}: ")))
        .unwrap_or_else(|| panic!("the page showed no new password:\n{report}"));
    assert!(server.imap_login("127.0.0.2", ALICE, new_password).starts_with("a OK"));
    assert!(server.imap_login("127.0.0.2", ALICE, PASSWORD).starts_with("a NO"));
    assert!(server.imap_login("127.0.0.2", ALICE, app_password).starts_with("a NO"));
    // Bob's TOTP is off: his password opens mail clients again.
    assert!(server.imap_login("127.0.0.2", BOB, PASSWORD).starts_with("a OK"));
    let (_, bob) = server.api("GET", "/api/v1/accounts/bob@example.test", None);
    assert_eq!(bob["totp"], json!({"enabled": false, "locked": false, "failures": 0}));
    eprintln!("{report}screenshots: {} {}", screenshot.display(), account_screenshot.display());
}
