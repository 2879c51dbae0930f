//! The operator interface: errors that say what to do, and the account commands.

mod common;

use std::process::Command;

use common::*;

fn run_in(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN).current_dir(dir).args(args).env_remove("PORTCULLIS_CONFIG").output().unwrap()
}

#[test]
fn serve_without_a_config_points_at_init() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_in(dir.path(), &["serve"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("portcullis init"), "{err}");
}

#[test]
fn config_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("portcullis.toml"),
        "hostname = \"a.example\"\n[tls]\ncert=\"c\"\nkey=\"k\"\n[limits]\nmax_recipients = \"lots\"\n",
    )
    .unwrap();
    let err = String::from_utf8_lossy(&run_in(dir.path(), &["serve"]).stderr).to_string();
    assert!(err.contains("max_recipients"), "{err}");
    std::fs::write(dir.path().join("portcullis.toml"), "hostname = \"a.example\"\nport = 25\n").unwrap();
    let err = String::from_utf8_lossy(&run_in(dir.path(), &["domain", "list"]).stderr).to_string();
    assert!(err.contains("port"), "{err}");
}

#[test]
fn init_writes_an_instance_that_serves() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_in(dir.path(), &["init", "--hostname", "mail.example.org", "--dir", "inst"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("postmaster@example.org"), "{text}");
    let password = text.lines().find_map(|l| l.trim().strip_prefix("password")).unwrap().trim().to_string();
    assert_eq!(password.len(), 20);
    let config = std::fs::read_to_string(dir.path().join("inst/portcullis.toml")).unwrap();
    assert!(config.contains("0.0.0.0:465") && config.contains("user = \"portcullis\""));
    let key_mode = std::fs::metadata(dir.path().join("inst/tls/key.pem")).unwrap().permissions();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&key_mode) & 0o077, 0, "the key is private");
    let listing = run_in(dir.path(), &["--config", "inst/portcullis.toml", "account", "list"]);
    assert!(String::from_utf8_lossy(&listing.stdout).contains("postmaster@example.org"));
    // A second init into the same place refuses to overwrite.
    let again = run_in(dir.path(), &["init", "--hostname", "mail.example.org", "--dir", "inst"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
}

#[test]
fn init_dev_uses_the_dev_ports() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_in(dir.path(), &["init", "--dev", "--dir", "dev"]);
    assert!(out.status.success());
    let config = std::fs::read_to_string(dir.path().join("dev/portcullis.toml")).unwrap();
    for port in ["127.0.0.1:10465", "127.0.0.1:10587", "127.0.0.1:10993", "127.0.0.1:10995"] {
        assert!(config.contains(port), "{config}");
    }
}

#[test]
fn domains_and_accounts() {
    let server = TestServer::start();
    let out = server.cli(&["account", "add", "carol@elsewhere.test", "--password-stdin"], Some(PASSWORD));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("domain add elsewhere.test"), "{err}");

    for weak in ["short", "password1234", "carol@example.test"] {
        let out = server.cli(&["account", "add", "carol@example.test", "--password-stdin"], Some(weak));
        assert!(!out.status.success(), "{weak} was accepted");
        assert!(String::from_utf8_lossy(&out.stderr).contains("password"));
    }
    let out = server.cli_ok(&["account", "add", "Carol@Example.test", "--quota", "10MiB"], None);
    let generated = out.lines().find_map(|l| l.strip_prefix("Password (shown only this once): ")).unwrap().to_string();
    let list = server.cli_ok(&["account", "list"], None);
    assert!(list.contains("carol@example.test") && list.contains("10MiB"), "{list}");

    // The new account works at once on the running server.
    let mut c = server.connect_tls("pop3s");
    c.line();
    assert!(c.cmd(&format!("AUTH PLAIN {}", plain("carol@example.test", &generated))).starts_with("+OK"));
    drop(c);

    let out = server.cli(&["domain", "remove", DOMAIN], None);
    assert!(String::from_utf8_lossy(&out.stderr).contains("still has accounts"));
    server.cli_ok(&["account", "passwd", "carol@example.test", "--password-stdin"], Some("another-long-passphrase-42"));
    let mut c = server.connect_tls("pop3s");
    c.line();
    assert!(c.cmd(&format!("AUTH PLAIN {}", plain("carol@example.test", &generated))).starts_with("-ERR"));
    drop(c);
    server.cli_ok(&["account", "remove", "carol@example.test"], None);
    assert!(!server.cli_ok(&["account", "list"], None).contains("carol"));
    assert!(!server.cli(&["account", "remove", "carol@example.test"], None).status.success());
    server.cli_ok(&["domain", "add", "second.test"], None);
    assert_eq!(server.cli_ok(&["domain", "list"], None), "example.test\nsecond.test\n");
    server.cli_ok(&["domain", "remove", "second.test"], None);
}
