//! Test support shared by the sender-auth and dkim-sign tests (the latter include this file
//! by path): dkimpy, an independent DKIM/ARC implementation, driven through `dkimpy.py`, so
//! signatures are checked against a signer and a verifier nobody here wrote.
#![allow(dead_code)] // each test binary uses a different part

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sender-auth/tests/support/dkimpy.py");

/// Runs `dkimpy.py COMMAND ARGS` with `stdin`; panics with what to install when it cannot.
fn run(args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let mut child = Command::new("python3")
        .arg(SCRIPT)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}): install Python 3 with `pip install dkimpy pynacl`"));
    child.stdin.take().expect("stdin piped").write_all(stdin).expect("write to dkimpy.py");
    let output = child.wait_with_output().expect("dkimpy.py ran");
    assert!(
        output.status.success(),
        "dkimpy.py {args:?} failed (needs `pip install dkimpy pynacl` and openssl): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// A key pair made by dkimpy/openssl: the private key's file and the DNS `p=` value.
pub struct Key {
    pub file: PathBuf,
    pub public: String,
}

/// `kind`: "rsa" (2048 bits) or "ed25519".
pub fn keygen(kind: &str, dir: &Path) -> Key {
    let file = dir.join(format!("{kind}.key"));
    let public = run(&["keygen", kind, file.to_str().expect("utf-8 path")], b"");
    Key { file, public: String::from_utf8(public).expect("base64").trim().to_string() }
}

/// The message with dkimpy's DKIM-Signature prepended (headers signed: From, To, Subject,
/// Date, Message-ID; relaxed/simple).
pub fn sign(key: &Key, domain: &str, selector: &str, algorithm: &str, message: &[u8]) -> Vec<u8> {
    run(&["sign", key.file.to_str().expect("utf-8 path"), domain, selector, algorithm], message)
}

/// The message with dkimpy's ARC set prepended; it must carry an Authentication-Results of
/// `srv_id` (what the sealing hop found).
pub fn arc_sign(key: &Key, domain: &str, selector: &str, srv_id: &str, message: &[u8]) -> Vec<u8> {
    run(&["arcsign", key.file.to_str().expect("utf-8 path"), domain, selector, srv_id], message)
}

/// dkimpy's verdict on the message's first DKIM-Signature, keys read from the test DNS
/// server listening on 127.0.0.1:`dns_port`.
pub fn verify(dns_port: u16, message: &[u8]) -> bool {
    let out = run(&["verify", &dns_port.to_string()], message);
    match String::from_utf8_lossy(&out).trim() {
        "pass" => true,
        "fail" => false,
        other => panic!("dkimpy.py verify printed {other:?}"),
    }
}
