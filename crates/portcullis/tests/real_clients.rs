//! Clients nobody here wrote (swaks, curl, openssl s_client, fetchmail, Python's smtplib and
//! poplib, mbsync, neomutt in tmux, scramp, gsasl, pyotp) against the server, through the pytest
//! suite in tests/clients. `.ci/run` installs them. A client that is missing is a skip that
//! says what to install (a failure with PORTCULLIS_REQUIRE_ALL=1, which `.ci/run` sets).

mod common;

use common::pytest::pytest;

fn clients(file: &str) {
    pytest(&format!("tests/clients/{file}"));
}

#[test]
fn python_smtplib_and_poplib() {
    clients("test_python_clients.py");
}

#[test]
fn swaks_and_curl() {
    clients("test_swaks_curl.py");
}

#[test]
fn openssl_s_client_and_fetchmail() {
    clients("test_openssl_fetchmail.py");
}

#[test]
fn python_imaplib_and_curl_imaps() {
    clients("test_imap_clients.py");
}

#[test]
fn strong_authentication() {
    clients("test_strong_auth.py");
}

#[test]
fn mbsync_and_neomutt() {
    clients("test_mbsync_neomutt.py");
}
