//! The admin listener checked by tools nobody here wrote: the OpenAPI description against the
//! live API (openapi-spec-validator, jsonschema) and `/metrics` through the Prometheus
//! client's parser, in the pytest suite in tests/admin; and the dashboard in headless Chromium
//! driven by Playwright (tests/browser). `.ci/run` installs them. A tool that is missing is a
//! skip that says what to install (a failure with PORTCULLIS_REQUIRE_ALL=1, which `.ci/run` sets).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::totp::{enable_totp, totp_code};
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
    // A few 1 s buckets close, so that the detector has a baseline to draw.
    std::thread::sleep(Duration::from_millis(2500));

    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let _ = std::fs::remove_file(&screenshot);
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
        .output()
        .expect("run node");
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the browser test failed:\n{report}");
    assert!(started.elapsed() < Duration::from_secs(60), "{report}");
    assert!(std::fs::metadata(&screenshot).map(|m| m.len() > 10_000).unwrap_or(false), "no screenshot: {report}");
    // The server saw the unban the page asked for.
    server.wait_event(|e| e["event"] == "ban_removed" && e["network"] == "127.0.0.77/32");
    server.wait_event(|e| e["event"] == "admin_action" && e["action"] == "ban_remove");
    server.wait_event(|e| e["event"] == "admin_auth_failed" && e["account"] == ADMIN && e["reason"] == "wrong_code");
    server.wait_event(|e| e["event"] == "admin_action" && e["action"] == "sign_in" && e["target"] == ADMIN);
    eprintln!("{report}screenshot: {}", screenshot.display());
}
