//! Whole config files through `Config::parse`: defaults, path resolution, and errors that name the key.
use super::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("/etc/portcullis/portcullis.toml"), text)
}

const MINIMAL: &str = r#"
hostname = "mail.example.org"
[tls]
cert = "fullchain.pem"
key = "privkey.pem"
"#;

#[test]
fn minimal_config_gets_safe_defaults_and_resolves_paths() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.hostname, "mail.example.org");
    assert_eq!(c.data_dir, PathBuf::from("/etc/portcullis/data"));
    assert_eq!(c.tls.cert, PathBuf::from("/etc/portcullis/fullchain.pem"));
    assert_eq!(c.tls.min_version, TlsVersion::V1_2);
    assert_eq!(c.tls.handshake_timeout, Duration::from_secs(10));
    assert_eq!(c.store.backend, Backend::Sqlite(PathBuf::from("/etc/portcullis/data/mail.db")));
    assert_eq!(c.limits.max_message_size, 50 << 20);
    assert_eq!(c.limits.max_recipients, 100);
    assert_eq!(c.limits.smtp_idle_timeout, Duration::from_secs(300));
    assert_eq!(c.limits.pop3_idle_timeout, Duration::from_secs(600));
    assert_eq!(c.limits.imap_idle_timeout, Duration::from_secs(1800));
    assert_eq!(c.limits.max_imap_sessions_per_account, 20);
    assert_eq!(c.limits.max_mailboxes_per_account, 1000);
    assert!(c.listen.addresses(Listener::Submissions).is_empty(), "a missing key means that listener is off");
    assert!(!c.process.allow_root);
}

#[test]
fn full_config_is_read() {
    let c = parse(
        r#"
hostname = "Mail.Example.org"
data_dir = "/var/lib/portcullis"
[tls]
cert = "/etc/ssl/chain.pem"
key = "/etc/ssl/key.pem"
min_version = "1.3"
handshake_timeout = "5s"
[listen]
submissions = ["0.0.0.0:465", "[::]:465"]
submission = ["0.0.0.0:587"]
pop3s = ["127.0.0.1:995"]
[store]
url = "sqlite:/var/lib/portcullis/mail.db"
default_quota = "unlimited"
[limits]
max_message_size = "10MiB"
max_connections_per_ip = 5
[process]
user = "portcullis"
shutdown_grace = "1m"
[log]
format = "text"
"#,
    )
    .unwrap();
    assert_eq!(c.hostname, "mail.example.org");
    assert_eq!(c.tls.min_version, TlsVersion::V1_3);
    assert_eq!(c.listen.addresses(Listener::Submissions).len(), 2);
    assert_eq!(c.store.sqlite_path(), Some(Path::new("/var/lib/portcullis/mail.db")));
    assert_eq!(c.store.default_quota, None);
    assert_eq!(c.limits.max_message_size, 10 << 20);
    assert_eq!(c.process.user.as_deref(), Some("portcullis"));
    assert_eq!(c.log.format, LogFormat::Text);
}

fn error_of(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn unknown_keys_are_named() {
    let e = error_of(&format!("{MINIMAL}\n[limits]\nmax_conections = 5\n"));
    assert!(e.contains("max_conections"), "{e}");
    let e = error_of(&format!("colour = \"blue\"\n{MINIMAL}"));
    assert!(e.contains("colour"), "{e}");
}

#[test]
fn bad_values_name_the_key() {
    for (extra, key) in [
        ("[listen]\nsubmissions = [\"465\"]\n", "listen.submissions"),
        ("[limits]\nmax_message_size = \"lots\"\n", "limits.max_message_size"),
        ("[limits]\nsmtp_idle_timeout = \"soon\"\n", "limits.smtp_idle_timeout"),
        ("[limits]\nmax_recipients = 0\n", "limits.max_recipients"),
        ("[store]\nurl = \"mysql://x\"\n", "store.url"),
        ("[process]\nuser = \"root\"\n", "process.user"),
        ("[log]\nformat = \"xml\"\n", "log.format"),
        ("[passwords]\nmin_length = 4\n", "passwords.min_length"),
    ] {
        let e = error_of(&format!("{MINIMAL}{extra}"));
        assert!(e.contains(key), "{key}: {e}");
    }
    let e = error_of(&MINIMAL.replace("[tls]", "[tls]\nmin_version = \"1.1\""));
    assert!(e.contains("tls.min_version"), "{e}");
}

fn store(extra: &str) -> Result<Store, ConfigError> {
    parse(&format!("{MINIMAL}[store]\n{extra}")).map(|c| c.store)
}

#[test]
fn a_sqlite_url_is_a_path_relative_to_the_file() {
    for url in ["sqlite:data/x.db", "sqlite://data/x.db"] {
        let s = store(&format!("url = \"{url}\"\n")).unwrap();
        assert_eq!(s.backend, Backend::Sqlite(PathBuf::from("/etc/portcullis/data/x.db")), "{url}");
    }
    assert!(store("url = \"sqlite:\"\n").unwrap_err().to_string().contains("store.url"));
}

#[test]
fn a_postgres_url_needs_a_host_and_a_database() {
    for url in ["postgres://mail@db.example.org/mail", "postgresql://db.example.org:5433/mail?sslmode=require"] {
        let s = store(&format!("url = \"{url}\"\n")).unwrap();
        let Backend::Postgres(pg) = &s.backend else { panic!("{url}: {:?}", s.backend) };
        assert_eq!(pg.url(), url);
        assert_eq!(s.sqlite_path(), None);
    }
    for (url, why) in [
        ("postgres:///mail", "no host"),
        ("postgres://db.example.org", "no database"),
        ("postgres://db.example.org/", "no database"),
        ("postgres://db.example.org/a/b", "path segment"),
        ("postgres://db.example.org:99999/mail", "port"),
        ("mysql://root:hunter2@db/mail", "not supported"),
    ] {
        let e = store(&format!("url = \"{url}\"\n")).unwrap_err().to_string();
        assert!(e.contains("store.url") && e.contains(why), "{url}: {e}");
        assert!(!e.contains("hunter2"), "a password is never shown: {e}");
    }
}

#[test]
fn a_postgres_password_is_never_shown_and_may_sit_in_a_file() {
    let s = store("url = \"postgres://mail:hunter2@db.example.org/mail\"\n").unwrap();
    assert_eq!(s.describe(), "postgres://mail@db.example.org/mail");
    assert!(!format!("{s:?}").contains("hunter2"), "{s:?}");
    let Backend::Postgres(pg) = &s.backend else { panic!() };
    assert!(pg.url().contains("hunter2"), "the URL to connect with keeps it");

    let s = store("url = \"postgres://mail@db.example.org/mail\"\npassword_file = \"db.pw\"\n").unwrap();
    let Backend::Postgres(pg) = &s.backend else { panic!() };
    assert_eq!(pg.password_file.as_deref(), Some(Path::new("/etc/portcullis/db.pw")));

    let e = store("url = \"postgres://mail:hunter2@db/mail\"\npassword_file = \"db.pw\"\n").unwrap_err().to_string();
    assert!(e.contains("store.password_file") && !e.contains("hunter2"), "{e}");
    let e = store("password_file = \"db.pw\"\n").unwrap_err().to_string();
    assert!(e.contains("store.password_file"), "not for SQLite: {e}");
}

#[test]
fn wrong_types_point_at_the_line() {
    let e = error_of(&format!("{MINIMAL}[limits]\nmax_recipients = \"many\"\n"));
    assert!(e.contains("max_recipients"), "{e}");
}

#[test]
fn required_keys_are_named() {
    assert!(error_of("[tls]\ncert=\"a\"\nkey=\"b\"\n").contains("hostname"));
    assert!(error_of("hostname = \"a.b\"\n").contains("tls.cert"));
    assert!(error_of("hostname = \"bad host\"\n[tls]\ncert=\"a\"\nkey=\"b\"\n").contains("hostname"));
}

#[test]
fn load_reports_a_missing_file_with_its_path() {
    let e = Config::load(Path::new("/nonexistent/portcullis.toml")).unwrap_err().to_string();
    assert!(e.contains("/nonexistent/portcullis.toml"), "{e}");
}

#[test]
fn relative_config_path_resolves_against_current_dir() {
    let c = Config::parse(Path::new("portcullis.toml"), MINIMAL).unwrap();
    assert_eq!(c.tls.cert, PathBuf::from("./fullchain.pem"));
}

#[test]
fn firewall_guard_and_alerts() {
    let c = parse(&format!(
        "{MINIMAL}[firewall]\ndeny = [\"192.0.2.0/24\"]\ntrusted_networks = [\"198.51.100.7\"]\n\
         [firewall.imaps]\nallow = [\"10.0.0.0/8\", \"2001:db8::/32\"]\n\
         [guard]\nban_after_failures = 5\nban_duration = \"2h\"\n\
         [alerts]\nwebhook = \"http://127.0.0.1:9/hook\"\nbucket = \"1s\"\n"
    ))
    .unwrap();
    assert_eq!(c.firewall.global.deny, vec!["192.0.2.0/24".parse::<IpNet>().unwrap()]);
    assert_eq!(c.firewall.trusted, vec!["198.51.100.7/32".parse::<IpNet>().unwrap()]);
    assert_eq!(c.firewall.listener(Listener::Imaps).unwrap().allow.len(), 2);
    assert!(c.firewall.listener(Listener::Pop3s).is_none());
    assert_eq!(c.guard.ban_after_failures, 5);
    assert_eq!(c.guard.ban_duration, Duration::from_secs(7200));
    assert_eq!(c.guard.ban_window, Duration::from_secs(600), "defaults fill the rest");
    assert_eq!(c.alerts.bucket, Duration::from_secs(1));
    for (extra, key) in [
        ("[firewall]\nallow = [\"10.0.0.0/33\"]\n", "firewall.allow"),
        ("[firewall.pop3s]\ndeny = [\"nonsense\"]\n", "firewall.pop3s.deny"),
        ("[guard]\nban_duration = \"2h\"\nmax_ban_duration = \"1h\"\n", "guard.max_ban_duration"),
        ("[alerts]\nwebhook = \"ftp://x\"\n", "alerts.webhook"),
        ("[alerts]\nmail_to = \"nobody\"\n", "alerts.mail_to"),
        ("[limits]\nmax_mailboxes_per_account = 5\n", "limits.max_mailboxes_per_account"),
    ] {
        let e = error_of(&format!("{MINIMAL}{extra}"));
        assert!(e.contains(key), "{key}: {e}");
    }
    assert!(error_of(&format!("{MINIMAL}[firewall.lmtp]\nallow = []\n")).contains("lmtp"));
}

#[test]
fn connection_limits_per_network_and_for_owners_follow_the_per_address_limit() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!((c.limits.max_connections_per_56, c.limits.max_connections_per_48), (60, 200));
    assert_eq!(c.limits.reserved_for_owners, 200, "a tenth of max_connections");
    assert_eq!(c.limits.login_timeout, Duration::from_secs(60));
    let c = parse(&format!(
        "{MINIMAL}[limits]
max_connections = 50
max_connections_per_ip = 30
"
    ))
    .unwrap();
    assert_eq!((c.limits.max_connections_per_56, c.limits.max_connections_per_48), (90, 300));
    assert_eq!(c.limits.reserved_for_owners, 5);
    assert_eq!((c.guard.escalate_after, c.guard.escalate_ipv4_after), (4, 0));
    for (extra, key) in [
        (
            "[limits]
max_connections_per_56 = 10
",
            "limits.max_connections_per_56",
        ),
        (
            "[limits]
max_connections_per_56 = 100
max_connections_per_48 = 99
",
            "limits.max_connections_per_48",
        ),
        (
            "[limits]
max_connections = 100
reserved_for_owners = 100
",
            "limits.reserved_for_owners",
        ),
        (
            "[limits]
login_timeout = \"0s\"
",
            "limits.login_timeout",
        ),
        (
            "[guard]
escalate_after = 1
",
            "guard.escalate_after",
        ),
        (
            "[guard]
escalate_ipv4_after = 1
",
            "guard.escalate_ipv4_after",
        ),
        (
            "[guard]
ban_after_attempts = 0
",
            "guard.ban_after_attempts",
        ),
        (
            "[guard]
unknown_source_delay = \"3s\"
",
            "unknown_source_delay",
        ),
    ] {
        let e = error_of(&format!("{MINIMAL}{extra}"));
        assert!(e.contains(key), "{key}: {e}");
    }
}

#[test]
fn admin_and_log_file() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.admin.token, AdminToken::File(PathBuf::from("/etc/portcullis/data/admin.token")));
    assert!(!c.admin.tls);
    assert!(c.admin.accounts.is_empty());
    assert_eq!(c.log.file, None);
    assert_eq!((c.log.max_size, c.log.keep), (100 << 20, 5));

    let c = parse(&format!(
        "{MINIMAL}[listen]\nadmin = [\"127.0.0.1:8080\", \"[::1]:8080\"]\n[admin]\ntoken_file = \"secret/admin\"\n\
         [log]\nfile = \"log/portcullis.log\"\nmax_size = \"10MiB\"\nkeep = 3\n"
    ))
    .unwrap();
    assert_eq!(c.listen.admin().len(), 2);
    assert_eq!(c.admin.token, AdminToken::File(PathBuf::from("/etc/portcullis/secret/admin")));
    assert_eq!(c.log.file, Some(PathBuf::from("/etc/portcullis/log/portcullis.log")));
    assert_eq!((c.log.max_size, c.log.keep), (10 << 20, 3));

    let c = parse(&format!(
        "{MINIMAL}[listen]\nadmin = [\"0.0.0.0:8443\"]\n[admin]\ntls = true\ntoken = \"0123456789abcdefghijKLMN\"\n"
    ))
    .unwrap();
    assert!(c.admin.tls);
    assert_eq!(c.admin.token, AdminToken::Inline("0123456789abcdefghijKLMN".into()));
    let c = parse(&format!("{MINIMAL}[admin]\naccounts = [\"PostMaster@Example.org\"]\n")).unwrap();
    assert_eq!(c.admin.accounts, vec!["postmaster@example.org"]);

    for (extra, key) in [
        ("[listen]\nadmin = [\"0.0.0.0:8080\"]\n", "admin.tls"),
        ("[listen]\nadmin = [\"192.0.2.1:8080\"]\n[admin]\ntls = false\n", "admin.tls"),
        ("[admin]\ntoken = \"short\"\n", "admin.token"),
        ("[admin]\ntoken = \"0123456789 abcdefghijKLMN\"\n", "admin.token"),
        ("[admin]\ntoken = \"0123456789abcdefghijKLMN\"\ntoken_file = \"t\"\n", "admin.token"),
        ("[admin]\ntoken_file = \"\"\n", "admin.token_file"),
        ("[admin]\nport = 1\n", "port"),
        ("[admin]\naccounts = [\"postmaster\"]\n", "admin.accounts"),
        ("[log]\nmax_size = \"12\"\n", "log.max_size"),
        ("[log]\nmax_size = \"huge\"\n", "log.max_size"),
        ("[log]\nkeep = 5000\n", "log.keep"),
        ("[log]\nfile = \"\"\n", "log.file"),
    ] {
        let e = error_of(&format!("{MINIMAL}{extra}"));
        assert!(e.contains(key), "{key}: {e}");
    }
}

#[test]
fn the_admin_listener_has_a_firewall_section() {
    let c = parse(&format!("{MINIMAL}[firewall.admin]\nallow = [\"127.0.0.0/8\"]\ndeny = [\"127.0.0.9\"]\n")).unwrap();
    let admin = c.firewall.listener(Listener::Admin).unwrap();
    assert_eq!(admin.allow, vec!["127.0.0.0/8".parse::<IpNet>().unwrap()]);
    assert_eq!(admin.deny, vec!["127.0.0.9/32".parse::<IpNet>().unwrap()]);
    assert!(error_of(&format!("{MINIMAL}[firewall.admin]\ndeny = [\"x\"]\n")).contains("firewall.admin.deny"));
}

#[test]
fn the_mx_listener_dns_and_sender_auth_sections() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!((c.smtp.max_connections, c.smtp.max_connections_per_ip), (500, 10), "a quarter of 2000");
    assert_eq!(c.smtp.greeting_delay, Duration::ZERO, "no greeting delay by default");
    assert_eq!(c.dns.servers, DnsServers::System);
    assert_eq!((c.dns.timeout, c.dns.attempts), (Duration::from_secs(5), 2));
    assert_eq!(c.sender_auth.dmarc_reject, AuthAction::Reject);
    assert_eq!(c.sender_auth.dmarc_quarantine, AuthAction::Junk);
    assert!(c.sender_auth.dnsbl.is_empty(), "DNSBL is off by default");
    assert_eq!(c.sender_auth.temp_errors, TempErrorAction::TempFail);

    let c = parse(&format!(
        "{MINIMAL}[limits]\nmax_connections = 40\n[listen]\nsmtp = [\"127.0.0.1:2525\"]\n\
         [smtp]\ngreeting_delay = \"3s\"\n[dns]\nservers = [\"127.0.0.1:5353\", \"::1\"]\n\
         [sender_auth]\ndmarc_reject = \"junk\"\ndnsbl = [\"Zen.Spamhaus.org.\"]\ntemp_errors = \"accept\"\n"
    ))
    .unwrap();
    assert_eq!(c.listen.addresses(Listener::Smtp), &["127.0.0.1:2525".parse().unwrap()]);
    assert_eq!((c.smtp.max_connections, c.smtp.max_connections_per_ip), (10, 10), "defaults follow the total");
    assert_eq!(c.smtp.greeting_delay, Duration::from_secs(3));
    assert_eq!(c.dns.servers, DnsServers::Listed(vec!["127.0.0.1:5353".parse().unwrap(), "[::1]:53".parse().unwrap()]));
    assert_eq!(c.sender_auth.dmarc_reject, AuthAction::Junk);
    assert_eq!(c.sender_auth.dnsbl, vec!["zen.spamhaus.org".to_string()]);
    assert_eq!(c.sender_auth.temp_errors, TempErrorAction::Accept);

    for (extra, key) in [
        ("[smtp]\nmax_connections = 5000\n", "smtp.max_connections"),
        ("[smtp]\nmax_connections = 5\nmax_connections_per_ip = 6\n", "smtp.max_connections_per_ip"),
        ("[smtp]\ngreeting_delay = \"5m\"\n", "smtp.greeting_delay"),
        ("[smtp]\ngreeting_delay = \"soon\"\n", "smtp.greeting_delay"),
        ("[dns]\nservers = [\"system\", \"127.0.0.1\"]\n", "dns.servers"),
        ("[dns]\nservers = [\"resolver.example\"]\n", "dns.servers"),
        ("[dns]\nattempts = 0\n", "dns.attempts"),
        ("[sender_auth]\ndmarc_reject = \"quarantine\"\n", "sender_auth.dmarc_reject"),
        ("[sender_auth]\ntemp_errors = \"reject\"\n", "sender_auth.temp_errors"),
        ("[sender_auth]\ndnsbl = [\"not a zone\"]\n", "sender_auth.dnsbl"),
        ("[guard]\nban_after_unknown_recipients = 0\n", "guard.ban_after_unknown_recipients"),
    ] {
        let e = error_of(&format!("{MINIMAL}{extra}"));
        assert!(e.contains(key), "{key}: {e}");
    }
    let e = error_of(&format!("{MINIMAL}[sender_auth]\ndmarc_reject = \"quarantine\"\n"));
    assert!(e.contains("reject, junk, accept"), "the error names the words allowed: {e}");
}

#[test]
fn acme_is_read_and_needs_the_https_listener() {
    let with = |acme: &str, https: bool| {
        let listen = if https { "[listen]\nhttps = [\"0.0.0.0:443\"]\n" } else { "" };
        parse(&format!("{MINIMAL}acme = {{ {acme} }}\n{listen}"))
    };
    let c = with(
        r#"directory = "https://ca.example:14000/dir", contact = "mailto:ops@example.org", directory_ca = "ca.pem""#,
        true,
    )
    .unwrap();
    let acme = c.tls.acme.unwrap();
    assert_eq!(acme.directory, "https://ca.example:14000/dir");
    assert_eq!(acme.directory_host().as_deref(), Some("ca.example"));
    assert_eq!(acme.caa_issuer().as_deref(), Some("ca.example"));
    let lets_encrypt =
        r#"directory = "https://acme-v02.api.letsencrypt.org/directory", contact = "mailto:a@example.org""#;
    assert_eq!(with(lets_encrypt, true).unwrap().tls.acme.unwrap().caa_issuer().as_deref(), Some("letsencrypt.org"));
    let local = r#"directory = "https://127.0.0.1:14000/dir", contact = "mailto:a@example.org""#;
    assert_eq!(with(local, true).unwrap().tls.acme.unwrap().caa_issuer(), None);
    let named =
        r#"directory = "https://acme.zerossl.com/v2/DV90", contact = "mailto:a@example.org", caa = "Sectigo.com""#;
    assert_eq!(with(named, true).unwrap().tls.acme.unwrap().caa_issuer().as_deref(), Some("sectigo.com"));
    assert_eq!(acme.contact, "mailto:ops@example.org");
    assert_eq!(acme.directory_ca, Some(PathBuf::from("/etc/portcullis/ca.pem")));
    assert_eq!(c.listen.addresses(Listener::Https), &["0.0.0.0:443".parse().unwrap()]);
    assert!(parse(MINIMAL).unwrap().tls.acme.is_none());

    let ok = r#"directory = "https://ca.example/dir", contact = "mailto:ops@example.org""#;
    let err = with(ok, false).unwrap_err().to_string();
    assert!(err.contains("tls.acme") && err.contains("listen.https"), "{err}");
    let err = with(r#"directory = "http://ca.example/dir", contact = "mailto:ops@example.org""#, true)
        .unwrap_err()
        .to_string();
    assert!(err.contains("tls.acme.directory") && err.contains("https://"), "{err}");
    let err =
        with(r#"directory = "https://ca.example/dir", contact = "ops@example.org""#, true).unwrap_err().to_string();
    assert!(err.contains("tls.acme.contact"), "{err}");
    let err = with(r#"contact = "mailto:ops@example.org""#, true).unwrap_err().to_string();
    assert!(err.contains("tls.acme.directory"), "{err}");
    assert_eq!(with(ok, true).unwrap().tls.acme.unwrap().challenge, AcmeChallenge::TlsAlpn01);
    let err = with(&format!("{ok}, challenge = \"dns-01\""), true).unwrap_err().to_string();
    assert!(err.contains("tls.acme.challenge") && err.contains("http-01"), "{err}");
    let err = with(&format!("{ok}, challenge = \"http-01\""), true).unwrap_err().to_string();
    assert!(err.contains("listen.http"), "HTTP-01 needs port 80: {err}");
    let http01 =
        parse(&format!("{MINIMAL}acme = {{ {ok}, challenge = \"http-01\" }}\n[listen]\nhttp = [\"0.0.0.0:80\"]\n"));
    assert_eq!(http01.unwrap().tls.acme.unwrap().challenge, AcmeChallenge::Http01, "and not the HTTPS listener");
    let err = with(&format!("{ok}, renew = \"30d\""), true).unwrap_err().to_string();
    assert!(err.contains("renew"), "unknown keys are refused: {err}");
}

#[test]
fn the_https_listener_has_its_firewall_rules() {
    let c = parse(&format!(
        "{MINIMAL}[listen]\nhttps = [\"127.0.0.1:10443\"]\n[firewall.https]\ndeny = [\"10.0.0.0/8\"]\n"
    ))
    .unwrap();
    assert!(c.listen.is_on(Listener::Https));
    assert!(c.listen.mail().all(|(l, _)| l != Listener::Https), "not a mail listener");
    assert!(c.firewall.listener(Listener::Https).is_some());
}
