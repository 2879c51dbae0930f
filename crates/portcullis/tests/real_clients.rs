//! Clients nobody here wrote (swaks, curl, openssl s_client, fetchmail, Python's smtplib and
//! poplib, mbsync, neomutt in tmux, scramp, gsasl, pyotp) against the server, through the pytest suite in
//! tests/clients. `.ci/run` installs them; a missing client fails the test rather than skipping
//! it.

use std::path::Path;
use std::process::Command;

fn pytest(file: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new("python3")
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", &format!("tests/clients/{file}")])
        .current_dir(&root)
        .env("PORTCULLIS_BIN", env!("CARGO_BIN_EXE_portcullis"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("python3 must be installed (see .ci/run)");
    assert!(
        out.status.success(),
        "pytest {file} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn python_smtplib_and_poplib() {
    pytest("test_python_clients.py");
}

#[test]
fn swaks_and_curl() {
    pytest("test_swaks_curl.py");
}

#[test]
fn openssl_s_client_and_fetchmail() {
    pytest("test_openssl_fetchmail.py");
}

#[test]
fn python_imaplib_and_curl_imaps() {
    pytest("test_imap_clients.py");
}

#[test]
fn strong_authentication() {
    pytest("test_strong_auth.py");
}

#[test]
fn mbsync_and_neomutt() {
    pytest("test_mbsync_neomutt.py");
}
