//! TOTP as a person with an authenticator app does it (pyotp, which nobody here wrote): turn
//! it on with `account totp enable`, and read the code for a moment.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use super::{TestServer, BIN};

/// `account totp enable`, answered with the code the app shows; the otpauth:// URI.
pub fn enable_totp(server: &TestServer, user: &str) -> String {
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&server.config_path)
        .args(["account", "totp", "enable", user])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let uri = loop {
        let mut line = String::new();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "no otpauth:// URI printed");
        if line.starts_with("otpauth://") {
            break line.trim().to_string();
        }
    };
    writeln!(child.stdin.take().unwrap(), "{}", totp_code(&uri, 0)).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    uri
}

/// The code an authenticator app shows `offset` seconds from now.
pub fn totp_code(uri: &str, offset: i64) -> String {
    let script = "import pyotp, sys, time; print(pyotp.parse_uri(sys.argv[1]).at(int(time.time()) + int(sys.argv[2])))";
    let out = Command::new("python3").args(["-c", script, uri, &offset.to_string()]).output().unwrap();
    assert!(out.status.success(), "pyotp must be installed (see .ci/run): {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A code the app does not show now, nor one step before or after (the codes accepted).
pub fn wrong_code(uri: &str) -> String {
    let valid: Vec<String> = [-30, 0, 30].iter().map(|&o| totp_code(uri, o)).collect();
    (0..).map(|n| format!("{n:06}")).find(|c| !valid.contains(c)).unwrap()
}
