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

/// The DKIM selectors of the TXT record lines in `text`, in order.
fn dkim_selectors(text: &str, domain: &str) -> Vec<String> {
    let suffix = format!("._domainkey.{domain}. 3600 IN TXT \"v=DKIM1; k=");
    text.lines().filter_map(|l| l.split_once(&suffix).map(|(selector, _)| selector.to_string())).collect()
}

/// (selector, state) per line of `dkim list`.
fn dkim_states(listing: &str) -> Vec<(String, String)> {
    listing
        .lines()
        .skip(1)
        .map(|l| {
            let mut words = l.split_whitespace();
            (words.next().unwrap().to_string(), words.nth(1).unwrap().to_string())
        })
        .collect()
}

#[test]
fn new_domains_get_dkim_keys_and_rotations_move_them_on() {
    let dir = tempfile::tempdir().unwrap();
    let init = run_in(dir.path(), &["init", "--dev", "--dir", "dev"]);
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
    let text = String::from_utf8(init.stdout).unwrap();
    let line = text.lines().find(|l| l.trim_start().starts_with("DKIM keys")).expect("init names the keys");
    assert!(
        line.contains("a-ed, pc") && line.contains("a-rsa") && line.contains("portcullis dns example.test"),
        "{line}"
    );
    let cli = |args: &[&str]| {
        let out = run_in(dir.path(), &[&["--config", "dev/portcullis.toml"], args].concat());
        let (stdout, stderr) = (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap());
        assert!(out.status.success(), "{args:?}: {stderr}");
        stdout
    };

    // `domain add`: a pair named by the day, active at once, its records printed.
    let added = cli(&["domain", "add", "second.test"]);
    let first = dkim_selectors(&added, "second.test");
    assert_eq!(first.len(), 2, "{added}");
    assert!(first[0].starts_with("pc2") && first[0].ends_with("a-ed") && first[1].ends_with("a-rsa"), "{first:?}");
    assert!(added.contains("k=ed25519; p=") && added.contains("k=rsa; p=MII"), "{added}");
    let active = |s: &[String]| s.iter().map(|s| (s.clone(), "active".to_string())).collect::<Vec<_>>();
    assert_eq!(dkim_states(&cli(&["dkim", "list", "second.test"])), active(&first));
    assert_eq!(dkim_selectors(&cli(&["dns", "second.test"]), "second.test"), first);

    // A rotation with time to publish: the new pair is next, the old one keeps signing meanwhile.
    let rotated = cli(&["dkim", "rotate", "second.test", "--grace", "1h"]);
    let second = dkim_selectors(&rotated, "second.test");
    assert!(second.len() == 2 && second[0].ends_with("b-ed") && second[1].ends_with("b-rsa"), "{rotated}");
    assert!(rotated.contains("stop signing then, stay published until"), "{rotated}");
    let listing = cli(&["dkim", "list", "second.test"]);
    let next = second.iter().map(|s| (s.clone(), "next".to_string()));
    assert_eq!(dkim_states(&listing), active(&first).into_iter().chain(next).collect::<Vec<_>>(), "{listing}");
    assert_eq!(dkim_selectors(&cli(&["dns", "second.test"]), "second.test"), [first.clone(), second.clone()].concat());

    // Another with no grace: it signs now, the pending pair is retired unused (no longer
    // printed), the first pair is retiring (still published until its date).
    let third = dkim_selectors(&cli(&["dkim", "rotate", "second.test", "--grace", "0"]), "second.test");
    assert!(third[0].ends_with("c-ed"), "{third:?}");
    let states = dkim_states(&cli(&["dkim", "list", "second.test"]));
    let state_of = |s: &str| states.iter().find(|(sel, _)| sel == s).unwrap().1.clone();
    assert_eq!(state_of(&first[0]), "retiring");
    assert_eq!(state_of(&second[1]), "retired");
    assert_eq!(state_of(&third[1]), "active");
    assert_eq!(dkim_selectors(&cli(&["dns", "second.test"]), "second.test"), [first, third].concat());

    // A domain from a store made before keys existed: said, and mended by a rotation.
    let store = portcullis_store_backends::temporary(&dir.path().join("dev/data"), None).unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        store.add_domain("old.test").await.unwrap();
        store.close();
    });
    let listing = cli(&["dkim", "list", "old.test"]);
    assert!(
        listing.contains("no DKIM key") && listing.contains("portcullis dkim rotate old.test --grace 0"),
        "{listing}"
    );
    let records = cli(&["dns", "old.test"]);
    assert!(records.contains("dkim rotate old.test --grace 0") && dkim_selectors(&records, "old.test").is_empty());
    let mended = dkim_selectors(&cli(&["dkim", "rotate", "old.test", "--grace", "0"]), "old.test");
    assert_eq!(dkim_states(&cli(&["dkim", "list", "old.test"])), active(&mended));

    let out = run_in(dir.path(), &["--config", "dev/portcullis.toml", "dkim", "list", "nowhere.test"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("portcullis domain add nowhere.test"));
    let out = run_in(dir.path(), &["--config", "dev/portcullis.toml", "dkim", "rotate", "old.test", "--grace", "soon"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("48h"));
}
