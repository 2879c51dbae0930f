//! The admin listener against real traffic: `/metrics` (read with a Prometheus text parser)
//! and the JSON log agree with what happened; the admin API's token, sessions, bans, alerts,
//! domains and accounts (usage, quota and a new password as delivery and POP3 see them); the outbound queue (list, show, hold, release, retry, remove, summary); `portcullis status` and `portcullis ban` through the API; TLS on the
//! admin listener; the log file and its rotation.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// One sample: its metric name and its labels, sorted.
type Key = (String, BTreeMap<String, String>);

/// A parser for the Prometheus text format (0.0.4), strict about what we emit: `# HELP` and
/// `# TYPE` before a family's samples, `name{label="value",...} number` lines, escapes in
/// label values, histogram buckets that only grow and end in `+Inf` = `_count`.
fn parse_prometheus(text: &str) -> HashMap<Key, f64> {
    let mut samples = HashMap::new();
    let mut types: HashMap<String, String> = HashMap::new();
    let mut helped: Vec<String> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            assert!(!helped.contains(&name.to_string()), "HELP for {name} twice");
            helped.push(name.to_string());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert!(helped.last().map(String::as_str) == Some(name), "TYPE {name} right after its HELP");
            types.insert(name.to_string(), kind.to_string());
            continue;
        }
        assert!(!line.starts_with('#') && !line.is_empty(), "unexpected line {line:?}");
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').unwrap_or_else(|| panic!("unclosed labels in {line:?}"));
                let mut labels = BTreeMap::new();
                let mut chars = body.chars().peekable();
                while chars.peek().is_some() {
                    let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
                    assert_eq!(chars.next(), Some('"'), "{line}");
                    let mut value = String::new();
                    loop {
                        match chars.next().unwrap() {
                            '\\' => match chars.next().unwrap() {
                                'n' => value.push('\n'),
                                c => value.push(c),
                            },
                            '"' => break,
                            c => value.push(c),
                        }
                    }
                    assert!(key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "label {key}");
                    labels.insert(key, value);
                    if chars.peek() == Some(&',') {
                        chars.next();
                    }
                }
                (name.to_string(), labels)
            }
        };
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "name {name}");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| types.get(*f).is_some_and(|t| t == "histogram")))
            .unwrap_or(&name);
        assert!(types.contains_key(family), "{name} has no TYPE line before it");
        assert!(samples.insert((name.clone(), labels), value).is_none(), "duplicate sample {line}");
    }
    // Histograms: cumulative buckets, +Inf equal to _count.
    for ((name, labels), count) in samples.iter().filter(|((n, _), _)| n.ends_with("_count")) {
        let family = name.strip_suffix("_count").unwrap();
        if types.get(family).map(String::as_str) != Some("histogram") {
            continue;
        }
        let mut buckets: Vec<(f64, f64)> = samples
            .iter()
            .filter(|((n, l), _)| {
                n == &format!("{family}_bucket") && l.iter().filter(|(k, _)| *k != "le").eq(labels.iter())
            })
            .map(|((_, l), v)| (l["le"].parse::<f64>().unwrap_or(f64::INFINITY), *v))
            .collect();
        buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
        assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{family} buckets grow");
        assert_eq!(buckets.last().map(|b| (b.0, b.1)), Some((f64::INFINITY, *count)), "{family} +Inf bucket");
    }
    samples
}

fn metric(samples: &HashMap<Key, f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    let labels: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    samples.get(&(name.to_string(), labels)).copied().unwrap_or(0.0)
}

/// Sum over the samples of `name` whose labels include all of `labels`.
fn sum(samples: &HashMap<Key, f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|((n, l), _)| n == name && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
        .map(|(_, v)| v)
        .sum()
}

fn count(events: &[Value], pred: impl Fn(&Value) -> bool) -> f64 {
    events.iter().filter(|e| pred(e)).count() as f64
}

fn quick_guard() -> Settings {
    Settings {
        sections: vec!["[guard]\nfailure_delay = \"1ms\"\nmax_failure_delay = \"2ms\"\n".into()],
        ..Settings::default()
    }
}

fn get_metrics(server: &TestServer) -> HashMap<Key, f64> {
    let r = server.http("GET", "/metrics", Some(&server.admin_token()), None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.headers["content-type"].starts_with("text/plain; version=0.0.4"));
    parse_prometheus(&r.body)
}

#[test]
fn metrics_and_the_json_log_agree_with_the_traffic() {
    let server = TestServer::start_with(quick_guard());
    // Logins that work and logins that fail, on IMAP and POP3.
    assert!(server.imap_login("127.0.0.2", ALICE, PASSWORD).starts_with("a OK"));
    assert!(server.imap_login("127.0.0.3", ALICE, "wrong-password-1").starts_with("a NO"));
    let mut pop = server.connect_tls("pop3s");
    pop.line();
    assert!(pop.cmd(&format!("AUTH PLAIN {}", plain(BOB, "nope-nope-nope"))).starts_with("-ERR"));
    assert!(pop.cmd(&format!("AUTH PLAIN {}", plain(BOB, PASSWORD))).starts_with("+OK"));
    assert!(pop.cmd("QUIT").starts_with("+OK"));
    drop(pop);
    // A message (TLS, AUTH, DATA) and a plain 587 session that leaves.
    assert!(server.submit(BOB, "Subject: counted\r\n\r\nOne message.").starts_with("250"));
    let mut plain587 = server.connect_plain("submission");
    plain587.reply();
    plain587.cmd("QUIT");
    drop(plain587);
    // A handshake that fails, and a connection refused by a ban.
    let mut garbage = server.connect_from("127.0.0.4", "imaps");
    garbage.send("this is not TLS");
    garbage.until_closed();
    let (status, _) = server.api("POST", "/api/v1/bans", Some(json!({"network": "127.0.0.9", "duration": "1h"})));
    assert_eq!(status, 201);
    assert!(server.refused("127.0.0.9", "pop3s"));

    // Everything opened is closed (and logged) before the metrics are read.
    let started = Instant::now();
    loop {
        let events = server.events();
        let opened = count(&events, |e| e["event"] == "connection_opened");
        let closed = count(&events, |e| e["event"] == "connection_closed");
        let refused = count(&events, |e| e["event"] == "connection_refused");
        if opened >= 6.0 && opened == closed && refused >= 1.0 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "sessions did not end: {opened} {closed}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let events = server.events();
    let m = get_metrics(&server);

    for listener in ["submissions", "submission", "imaps", "pop3s"] {
        let of = |e: &Value, name: &str| e["event"] == name && e["listener"] == listener;
        let opened = count(&events, |e| of(e, "connection_opened"));
        assert!(opened > 0.0, "traffic on {listener}");
        assert_eq!(
            metric(&m, "portcullis_connections_total", &[("listener", listener), ("outcome", "accepted")]),
            opened,
            "{listener} accepted"
        );
        assert_eq!(
            metric(&m, "portcullis_connections_total", &[("listener", listener), ("outcome", "banned")]),
            count(&events, |e| of(e, "connection_refused") && e["reason"] == "banned"),
            "{listener} refused"
        );
        let protocol = if listener.starts_with("sub") { "smtp" } else { &listener[..4] };
        assert_eq!(
            metric(&m, "portcullis_sessions_active", &[("listener", listener), ("protocol", protocol)]),
            0.0,
            "{listener} has no session left"
        );
        assert_eq!(
            sum(&m, "portcullis_connections_closed_total", &[("listener", listener)]),
            count(&events, |e| of(e, "connection_closed"))
        );
        for direction in ["in", "out"] {
            let bytes: f64 = events
                .iter()
                .filter(|e| of(e, "connection_closed"))
                .map(|e| e[format!("bytes_{direction}")].as_f64().unwrap())
                .sum();
            assert!(bytes > 0.0);
            assert_eq!(
                metric(&m, "portcullis_session_bytes_total", &[("listener", listener), ("direction", direction)]),
                bytes,
                "{listener} bytes {direction}"
            );
        }
        let tls = count(&events, |e| of(e, "tls_established"));
        assert_eq!(sum(&m, "portcullis_tls_handshakes_total", &[("listener", listener)]), tls);
        assert_eq!(metric(&m, "portcullis_tls_handshake_seconds_count", &[("listener", listener)]), tls);
        assert_eq!(
            metric(&m, "portcullis_tls_failures_total", &[("listener", listener)]),
            count(&events, |e| of(e, "tls_failed"))
        );
        assert!(metric(&m, "portcullis_command_seconds_count", &[("listener", listener)]) > 0.0, "{listener}");
    }
    assert_eq!(metric(&m, "portcullis_tls_failures_total", &[("listener", "imaps")]), 1.0);
    assert_eq!(metric(&m, "portcullis_connections_total", &[("listener", "pop3s"), ("outcome", "banned")]), 1.0);
    // TLS versions and ciphers, as negotiated.
    for e in events.iter().filter(|e| e["event"] == "tls_established") {
        let labels = [
            ("listener", e["listener"].as_str().unwrap()),
            ("version", e["version"].as_str().unwrap()),
            ("cipher", e["cipher"].as_str().unwrap()),
        ];
        let expected = count(&events, |o| {
            o["event"] == "tls_established"
                && o["listener"] == e["listener"]
                && o["version"] == e["version"]
                && o["cipher"] == e["cipher"]
        });
        assert_eq!(metric(&m, "portcullis_tls_handshakes_total", &labels), expected);
    }
    // Logins by mechanism and outcome.
    let mut auths: HashMap<(String, String, String), f64> = HashMap::new();
    for e in &events {
        let outcome = match e["event"].as_str() {
            Some("auth_succeeded") => "success",
            Some("auth_failed") => "failure",
            _ => continue,
        };
        let key =
            (e["listener"].as_str().unwrap().to_string(), e["mechanism"].as_str().unwrap().to_string(), outcome.into());
        *auths.entry(key).or_default() += 1.0;
    }
    assert_eq!(auths.values().sum::<f64>(), 5.0, "{auths:?}");
    assert_eq!(auths.values().sum::<f64>(), sum(&m, "portcullis_auth_total", &[]));
    for ((listener, mechanism, outcome), n) in &auths {
        assert_eq!(
            sum(&m, "portcullis_auth_total", &[("listener", listener), ("mechanism", mechanism), ("outcome", outcome)]),
            *n,
            "{listener} {mechanism} {outcome}"
        );
    }
    // Messages and their bytes.
    let accepted: Vec<&Value> = events.iter().filter(|e| e["event"] == "message_accepted").collect();
    assert_eq!(accepted.len(), 1);
    assert_eq!(metric(&m, "portcullis_messages_total", &[("outcome", "accepted")]), 1.0);
    assert_eq!(
        metric(&m, "portcullis_message_bytes_total", &[("outcome", "accepted")]),
        accepted[0]["size"].as_f64().unwrap()
    );
    assert_eq!(metric(&m, "portcullis_message_recipients_total", &[("outcome", "accepted")]), 1.0);
    // Bans and alerts.
    assert_eq!(metric(&m, "portcullis_bans_active", &[]), 1.0);
    assert_eq!(
        metric(&m, "portcullis_bans_added_total", &[("origin", "admin")]),
        count(&events, |e| e["event"] == "ban_added" && e["origin"] == "admin")
    );
    let alerts = count(&events, |e| e["event"] == "alert_raised");
    assert!(alerts >= 1.0, "a login from a new address raises an alert");
    assert_eq!(sum(&m, "portcullis_alerts_total", &[]), alerts);
    assert_eq!(metric(&m, "portcullis_alerts_unacknowledged", &[]), alerts);
    assert_eq!(metric(&m, "portcullis_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), 1.0);

    // The charts' series count the same connection attempts and failed logins.
    let (status, series) = server.api("GET", "/api/v1/series", None);
    assert_eq!(status, 200);
    for line in series["lines"].as_array().unwrap() {
        let listener = line["listener"].as_str().unwrap();
        let total: f64 = line["counts"].as_array().unwrap().iter().map(|c| c.as_f64().unwrap()).sum();
        let expected = match line["measure"].as_str().unwrap() {
            "connection_attempts" => count(&events, |e| {
                (e["event"] == "connection_opened" || e["event"] == "connection_refused") && e["listener"] == listener
            }),
            _ => count(&events, |e| e["event"] == "auth_failed" && e["listener"] == listener),
        };
        assert_eq!(total, expected, "{line}");
    }
}

#[test]
fn the_admin_api_needs_the_token_and_lists_and_closes_sessions() {
    let server = TestServer::start();
    let token = server.admin_token();
    assert_eq!(token.len(), 43);
    let mode = std::fs::metadata(server.dir.path().join("data/admin.token")).unwrap().permissions();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o077, 0, "the token file is private");
    let announced = server.wait_event(|e| e["event"] == "admin_token");
    assert!(announced["path"].as_str().unwrap().ends_with("data/admin.token"));
    assert_eq!(announced["created"], true);
    assert_eq!(server.wait_event(|e| e["event"] == "listening" && e["listener"] == "admin")["tls"], false);

    for presented in [None, Some("wrong"), Some(&token[..42])] {
        let r = server.http("GET", "/api/v1/status", presented, None);
        assert_eq!(r.status, 401, "{presented:?}");
        assert!(r.headers["www-authenticate"].starts_with("Bearer"));
        assert!(serde_json::from_str::<Value>(&r.body).unwrap()["error"].is_string());
    }
    assert_eq!(server.http("GET", "/metrics", None, None).status, 401);
    server.wait_event(|e| e["event"] == "admin_auth_failed" && e["path"] == "/api/v1/status");
    let page = server.http("GET", "/", None, None);
    assert_eq!(page.status, 200, "the dashboard's page itself is public");
    assert!(page.body.contains("/assets/app.js"));
    assert!(page.headers["content-security-policy"].contains("default-src 'none'"));
    assert_eq!(server.http("GET", "/assets/app.js", None, None).status, 200);
    assert_eq!(server.http("GET", "/nothing-here", None, None).status, 404);

    // A live IMAP session, listed with its account, then closed from the API.
    let mut imap = server.connect_from("127.0.0.5", "imaps").upgrade(server.client_config(rustls::ALL_VERSIONS));
    imap.line();
    imap.send(&format!("a LOGIN {ALICE} {PASSWORD}"));
    assert!(imap.line().starts_with("a OK"));
    let (status, list) = server.api("GET", "/api/v1/sessions", None);
    assert_eq!(status, 200);
    // One node (SQLite): its own sessions are every node's, nothing is missing.
    assert_eq!(list["nodes"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!((&list["nodes_missing"], &list["partial"]), (&json!([]), &json!(false)), "{list}");
    let (status, local) = server.api("GET", "/api/v1/sessions?node=local", None);
    assert_eq!(status, 200);
    assert_eq!(local["nodes"], list["nodes"]);
    assert_eq!(server.api("GET", "/api/v1/sessions?node=elsewhere", None).0, 400);
    let listed =
        list["sessions"].as_array().unwrap().iter().find(|s| s["account"] == ALICE).expect("the session").clone();
    assert_eq!(listed["node"], list["nodes"][0]);
    assert_eq!(listed["listener"], "imaps");
    assert_eq!(listed["protocol"], "imap");
    assert!(listed["peer"].as_str().unwrap().starts_with("127.0.0.5:"));
    assert!(listed["tls"].as_str().unwrap().starts_with("TLSv1."));
    assert!(listed["bytes_in"].as_u64().unwrap() > 0 && listed["bytes_out"].as_u64().unwrap() > 0);
    let (status, s) = server.api("GET", "/api/v1/status", None);
    assert_eq!(status, 200);
    assert_eq!(s["sessions"]["by_listener"]["imaps"], 1);
    assert_eq!(s["listeners"].as_array().unwrap().len(), 5);

    // Closed by the name that reaches it from any node: NODE:ID.
    let id = listed["id"].as_u64().unwrap();
    let node = listed["node"].as_str().unwrap();
    let global_id = listed["global_id"].as_str().unwrap();
    assert_eq!(global_id, format!("{node}:{id}"));
    assert_eq!(sessions::global_session_id(&server, ALICE), global_id);
    assert_eq!(sessions::kill_session_from(&server, global_id).0, 204);
    assert!(imap.closed(), "the session was closed");
    let closed = server.wait_event(|e| e["event"] == "connection_closed" && e["conn"] == id);
    assert_eq!(closed["reason"], "revoked");
    server.wait_event(|e| e["event"] == "admin_action" && e["action"] == "session_kill" && e["target"] == global_id);
    assert_eq!(server.api("DELETE", &format!("/api/v1/sessions/{id}"), None).0, 404);
    assert_eq!(sessions::kill_session_from(&server, global_id).0, 404);
    for bad in ["x", "node:x", "%3A7"] {
        assert_eq!(server.api("DELETE", &format!("/api/v1/sessions/{bad}"), None).0, 400, "{bad}");
    }
    // A session of a node that never answers (none runs): signalled, not confirmed, after the wait.
    let started = Instant::now();
    let (status, body) = server.api("DELETE", "/api/v1/sessions/nowhere:1:1:7", None);
    assert_eq!((status, body), (202, json!({ "status": "signalled", "session": "nowhere:1:1:7" })));
    assert!(started.elapsed() >= Duration::from_secs(2), "it waited for an answer");

    // Never a secret in the log.
    let log = server.events().iter().map(Value::to_string).collect::<Vec<_>>().join("\n");
    assert!(!log.contains(&token) && !log.contains(PASSWORD));
}

#[test]
fn bans_alerts_domains_and_accounts_through_the_api() {
    let server = TestServer::start_with(Settings {
        sections: vec!["[firewall]\ntrusted_networks = [\"127.0.0.60\"]\n".into()],
        ..Settings::default()
    });
    // Bans: added (and in force at once), listed, lifted.
    let (status, ban) =
        server.api("POST", "/api/v1/bans", Some(json!({"network": "127.0.0.30", "duration": "1h", "reason": "test"})));
    assert_eq!(status, 201, "{ban}");
    assert_eq!(
        (ban["network"].as_str(), ban["origin"].as_str(), ban["active"].as_bool()),
        (Some("127.0.0.30/32"), Some("admin"), Some(true))
    );
    assert!(server.refused("127.0.0.30", "imaps"), "refused at once");
    let (_, bans) = server.api("GET", "/api/v1/bans", None);
    assert_eq!(bans.as_array().unwrap().len(), 1);
    assert_eq!(server.api("POST", "/api/v1/bans", Some(json!({"network": "127.0.0.0/24"}))).0, 409, "trusted");
    assert_eq!(server.api("POST", "/api/v1/bans", Some(json!({"network": "nonsense"}))).0, 400);
    assert_eq!(server.api("POST", "/api/v1/bans", Some(json!({"network": "127.0.0.31", "duration": "soon"}))).0, 400);
    assert_eq!(server.api("POST", "/api/v1/bans", Some(json!({"netwerk": "127.0.0.31"}))).0, 400);
    let r = server.http("POST", "/api/v1/bans", Some(&server.admin_token()), Some("{not json"));
    assert_eq!(r.status, 400);
    assert!(r.body.contains("\"error\""));
    assert_eq!(server.api("DELETE", "/api/v1/bans/127.0.0.30%2F32", None).0, 204);
    let mut c = server.connect_from("127.0.0.30", "imaps").upgrade(server.client_config(rustls::ALL_VERSIONS));
    assert!(c.line().starts_with("* OK"), "the ban is lifted at once");
    assert_eq!(server.api("DELETE", "/api/v1/bans/127.0.0.30", None).0, 404);
    server.wait_event(|e| e["event"] == "ban_removed" && e["network"] == "127.0.0.30/32");

    // Alerts: a login from a new address raises one; acknowledge it.
    assert!(server.imap_login("127.0.0.32", BOB, PASSWORD).starts_with("a OK"));
    server.wait_event(|e| e["event"] == "alert_raised" && e["kind"] == "new_login_address");
    let (_, alerts) = server.api("GET", "/api/v1/alerts?unacknowledged=true", None);
    let alert = alerts.as_array().unwrap().iter().find(|a| a["account"] == BOB).unwrap().clone();
    assert_eq!((alert["severity"].as_str(), alert["peer"].as_str()), (Some("info"), Some("127.0.0.32")));
    let id = alert["id"].as_u64().unwrap();
    let (status, acked) = server.api("POST", &format!("/api/v1/alerts/{id}/ack"), None);
    assert_eq!((status, acked["acknowledged"].as_bool()), (200, Some(true)));
    let (_, left) = server.api("GET", "/api/v1/alerts?unacknowledged=true", None);
    assert!(left.as_array().unwrap().iter().all(|a| a["id"] != id));
    assert_eq!(server.api("POST", "/api/v1/alerts/999/ack", None).0, 404);
    assert_eq!(server.api("GET", "/api/v1/alerts?unacknowledged=maybe", None).0, 400);

    // Domains: a new one gets its DKIM pair, whose records its DNS checklist lists.
    let (status, added) = server.api("POST", "/api/v1/domains", Some(json!({"domain": "Second.test"})));
    assert_eq!((status, added["domain"].as_str()), (201, Some("second.test")), "{added}");
    let selectors: Vec<String> =
        added["dkim_selectors"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect();
    assert!(selectors.len() == 2 && selectors[0].ends_with("-ed") && selectors[1].ends_with("-rsa"), "{added}");
    let (_, checklist) = server.api("GET", "/api/v1/domains/second.test/dns", None);
    for (selector, k) in selectors.iter().zip(["k=ed25519; p=", "k=rsa; p=MII"]) {
        let name = format!("{selector}._domainkey.second.test");
        let record = checklist["records"].as_array().unwrap().iter().find(|r| r["name"] == name.as_str());
        let line = record.unwrap_or_else(|| panic!("{name} missing: {checklist}"))["zone_line"].as_str().unwrap();
        assert!(line.contains(k), "{line}");
    }
    // The test server's own domain came from `domain add` too.
    let (_, own) = server.api("GET", "/api/v1/domains/example.test/dns", None);
    assert!(own["notes"].as_array().unwrap().iter().all(|n| !n.as_str().unwrap().contains("DKIM")), "{own}");
    assert_eq!(server.api("POST", "/api/v1/domains", Some(json!({"domain": "second.test"}))).0, 409);
    assert_eq!(server.api("GET", "/api/v1/domains", None).1, json!(["example.test", "second.test"]));
    assert_eq!(server.api("DELETE", "/api/v1/domains/second.test", None).0, 204);
    assert_eq!(server.api("DELETE", "/api/v1/domains/second.test", None).0, 404);
    assert_eq!(server.api("DELETE", "/api/v1/domains/example.test", None).0, 409, "still has accounts");

    // Accounts: a generated password that works at once; a weak one refused.
    let (status, made) =
        server.api("POST", "/api/v1/accounts", Some(json!({"address": "carol@example.test", "quota": "10MiB"})));
    assert_eq!(status, 201, "{made}");
    let password = made["password"].as_str().unwrap().to_string();
    let mut pop = server.connect_tls("pop3s");
    pop.line();
    assert!(pop.cmd(&format!("AUTH PLAIN {}", plain("carol@example.test", &password))).starts_with("+OK"));
    drop(pop);
    let (_, accounts) = server.api("GET", "/api/v1/accounts", None);
    let carol = accounts.as_array().unwrap().iter().find(|a| a["address"] == "carol@example.test").unwrap().clone();
    assert_eq!((carol["quota_bytes"].as_u64(), carol["quota_default"].as_bool()), (Some(10 << 20), Some(false)));
    let (status, refused) = server.api(
        "POST",
        "/api/v1/accounts",
        Some(json!({"address": "dave@example.test", "password": "password1234"})),
    );
    assert_eq!(status, 400);
    assert!(refused["error"].as_str().unwrap().contains("password"));
    assert_eq!(server.api("POST", "/api/v1/accounts", Some(json!({"address": "erin@nowhere.test"}))).0, 404);
    assert_eq!(server.api("POST", "/api/v1/accounts", Some(json!({"address": "carol@example.test"}))).0, 409);
    assert_eq!(server.api("DELETE", "/api/v1/accounts/carol@example.test", None).0, 204);
    assert_eq!(server.api("DELETE", "/api/v1/accounts/carol@example.test", None).0, 404);
    // The audit trail: the log is written apart from the API's answers, so wait for each.
    for action in ["ban_add", "ban_remove", "alert_ack", "domain_add", "domain_remove", "account_add", "account_remove"]
    {
        server.wait_event(|e| e["event"] == "admin_action" && e["action"] == action);
    }
    // The sign-in extension point answers, for now, that account sign-in does not exist yet.
    let r = server.http("POST", "/api/v1/signin", None, Some(r#"{"account":"a@b","password":"x","totp":"123456"}"#));
    assert_eq!(r.status, 501);
}

/// A server whose outbound deliveries all fail for a while: its resolver is a port nobody
/// answers on, so each attempt is deferred, and tried again only after an hour.
fn deferring_everything() -> Settings {
    Settings {
        sections: vec![
            "[dns]\nservers = [\"127.0.0.1:9\"]\ntimeout = \"200ms\"\nattempts = 1\n".into(),
            "[queue]\nretry_first = \"1h\"\n".into(),
        ],
        ..Settings::default()
    }
}

#[test]
fn the_queue_looked_after_through_the_api() {
    let server = TestServer::start_with(deferring_everything());
    for (to, subject) in [("x@far.test", "one"), ("y@far.test", "two"), ("z@other.test", "three")] {
        let reply = server.submit(to, &format!("From: <{ALICE}>\r\nSubject: {subject}\r\n\r\nBody of {subject}."));
        assert!(reply.starts_with("250"), "{reply}");
    }
    let deferred = |e: &Value| e["event"] == "delivery_attempt" && e["deferred"] == 1;
    server.wait_events(deferred, 3);

    let (status, page) = server.api("GET", "/api/v1/queue", None);
    assert_eq!(status, 200);
    assert!(page.get("next_after").is_none(), "one page holds them all: {page}");
    let list = page["messages"].as_array().unwrap().clone();
    assert_eq!(list.len(), 3);
    let first = &list[0];
    assert_eq!(
        (first["sender"].as_str(), first["state"].as_str(), first["attempts"].as_u64()),
        (Some(ALICE), Some("deferred"), Some(1))
    );
    assert_eq!(first["recipients"][0]["state"], "pending");
    assert!(first["recipients"][0]["last_reply"].is_string(), "{first}");
    let ids: Vec<i64> = list.iter().map(|m| m["id"].as_i64().unwrap()).collect();
    let (one, three) = (ids[0], ids[2]);
    // Paged in id order: each page names where the next starts, the last names none.
    let page_ids = |page: &Value| {
        page["messages"].as_array().unwrap().iter().map(|m| m["id"].as_i64().unwrap()).collect::<Vec<_>>()
    };
    let (status, first_page) = server.api("GET", "/api/v1/queue?limit=2", None);
    assert_eq!(status, 200);
    assert_eq!((page_ids(&first_page), first_page["next_after"].as_i64()), (ids[..2].to_vec(), Some(ids[1])));
    let (_, last_page) = server.api("GET", &format!("/api/v1/queue?limit=2&after={}", ids[1]), None);
    assert_eq!(page_ids(&last_page), [ids[2]]);
    assert!(last_page.get("next_after").is_none(), "{last_page}");
    let (_, far_page) = server.api("GET", "/api/v1/queue?domain=far.test&limit=1", None);
    assert_eq!((page_ids(&far_page), far_page["next_after"].as_i64()), (vec![ids[0]], Some(ids[0])));
    let (_, far_page) = server.api("GET", &format!("/api/v1/queue?domain=far.test&limit=1&after={}", ids[0]), None);
    assert_eq!((page_ids(&far_page), far_page.get("next_after")), (vec![ids[1]], None));
    for bad in ["limit=0", "limit=1001", "limit=many", "after=-1", "after=first"] {
        assert_eq!(server.api("GET", &format!("/api/v1/queue?{bad}"), None).0, 400, "{bad}");
    }
    assert_eq!(page_ids(&server.api("GET", "/api/v1/queue?limit=1000", None).1).len(), 3);
    let (_, far) = server.api("GET", "/api/v1/queue?domain=FAR.test", None);
    assert_eq!(far["messages"].as_array().unwrap().len(), 2);
    assert_eq!(server.api("GET", "/api/v1/queue?state=held", None).1, json!({ "messages": [] }));
    assert_eq!(server.api("GET", "/api/v1/queue?state=stuck", None).0, 400);

    // One message: its header, and its body only when asked.
    let (status, shown) = server.api("GET", &format!("/api/v1/queue/{one}"), None);
    assert_eq!(status, 200);
    assert!(shown["headers"].as_str().unwrap().contains("Subject: one"), "{shown}");
    assert!(shown.get("body").is_none());
    let (_, with_body) = server.api("GET", &format!("/api/v1/queue/{one}?body=true"), None);
    assert!(with_body["body"].as_str().unwrap().contains("Body of one"));
    assert_eq!(server.api("GET", "/api/v1/queue/999", None).0, 404);
    assert_eq!(server.api("GET", "/api/v1/queue/first", None).0, 400);

    // Held: never tried, not even by a retry of everything; released, it is tried at once.
    let (status, held) = server.api("POST", &format!("/api/v1/queue/{three}/hold"), None);
    assert_eq!((status, held["state"].as_str(), held["next_attempt"].is_null()), (200, Some("held"), true));
    assert_eq!(server.api("POST", &format!("/api/v1/queue/{three}/retry"), None).0, 409);
    let (_, summary) = server.api("GET", "/api/v1/queue/summary", None);
    assert_eq!((summary["messages"].as_u64(), summary["held"].as_u64()), (Some(3), Some(1)));
    assert!(summary["size"].as_u64().unwrap() > 0 && summary["oldest_age_seconds"].as_i64().unwrap() >= 0);
    let far_backlog = &summary["domains"][0];
    assert_eq!((far_backlog["domain"].as_str(), far_backlog["recipients"].as_u64()), (Some("far.test"), Some(2)));
    assert!(far_backlog["last_error"].is_string(), "{summary}");
    // The same in the metrics, with each attempt's recipients by result and reason (the
    // resolver never answers: no route), and no TLS counted where no exchanger was found.
    let m = get_metrics(&server);
    assert_eq!(metric(&m, "portcullis_queue_messages", &[]), 3.0);
    assert_eq!(metric(&m, "portcullis_queue_held_messages", &[]), 1.0);
    assert!(metric(&m, "portcullis_queue_bytes", &[]) > 0.0);
    assert!(m.contains_key(&("portcullis_queue_oldest_seconds".to_string(), BTreeMap::new())));
    assert_eq!(
        metric(&m, "portcullis_outbound_recipients_total", &[("result", "deferred"), ("reason", "no_route")]),
        3.0
    );
    assert_eq!(sum(&m, "portcullis_outbound_recipients_total", &[]), 3.0);
    assert_eq!(sum(&m, "portcullis_outbound_tls_total", &[]), 0.0);
    let attempt = server.wait_event(deferred);
    assert_eq!(attempt["outcomes"], json!([{"result": "deferred", "reason": "no_route", "count": 1}]));
    assert!(attempt.get("tls_policy").is_none(), "{attempt}");
    let (status, retried) = server.api("POST", "/api/v1/queue/retry", None);
    assert_eq!((status, retried["made_due"].as_u64()), (200, Some(2)), "the held one is left alone");
    server.wait_events(deferred, 5);
    let attempts_on =
        |id: i64| server.events().iter().filter(|e| e["event"] == "delivery_attempt" && e["queue_id"] == id).count();
    assert_eq!(attempts_on(three), 1, "held");
    let (status, _) = server.api("POST", &format!("/api/v1/queue/{three}/release"), None);
    assert_eq!(status, 200);
    // Released: due at its retry time, an hour away; a retry by its domain makes it due now.
    let (_, retried) = server.api("POST", "/api/v1/queue/retry?domain=other.test", None);
    assert_eq!(retried["made_due"], 1);
    server.wait_event(|e| {
        e["event"] == "delivery_attempt" && e["queue_id"] == three && e["deferred"] == 1 && attempts_on(three) == 2
    });
    let (status, _) = server.api("POST", &format!("/api/v1/queue/{one}/retry"), None);
    assert_eq!(status, 200);

    assert_eq!(server.api("DELETE", &format!("/api/v1/queue/{one}"), None).0, 204);
    assert_eq!(server.api("DELETE", &format!("/api/v1/queue/{one}"), None).0, 404);
    assert_eq!(server.api("POST", &format!("/api/v1/queue/{one}/hold"), None).0, 404);
    assert_eq!(server.api("GET", "/api/v1/queue", None).1["messages"].as_array().unwrap().len(), 2);
    // Auth as everywhere else, and an audit trail.
    assert_eq!(server.http("GET", "/api/v1/queue", None, None).status, 401);
    assert_eq!(server.http("DELETE", &format!("/api/v1/queue/{three}"), Some("wrong"), None).status, 401);
    for action in ["queue_hold", "queue_release", "queue_retry", "queue_remove"] {
        server.wait_event(|e| e["event"] == "admin_action" && e["action"] == action);
    }
}

/// `RCPT TO:<to>` in a submission as alice: the reply.
fn rcpt(server: &TestServer, to: &str) -> String {
    let mut c = server.connect_tls("submissions");
    c.reply();
    c.cmd("EHLO test.client");
    assert!(c.cmd(&format!("AUTH PLAIN {}", plain(ALICE, PASSWORD))).starts_with("235"));
    assert!(c.cmd(&format!("MAIL FROM:<{ALICE}>")).starts_with("250"));
    let reply = c.cmd(&format!("RCPT TO:<{to}>"));
    c.cmd("QUIT");
    reply
}

/// POP3 `AUTH PLAIN` as `user`: the reply, and the session (open if it worked).
fn pop3_login(server: &TestServer, user: &str, password: &str) -> (String, Client) {
    let mut pop = server.connect_tls("pop3s");
    pop.line();
    let reply = pop.cmd(&format!("AUTH PLAIN {}", plain(user, password)));
    (reply, pop)
}

/// What the dashboard's account page does, seen from the protocols: its usage is what delivery
/// stored, a quota set through the API refuses the next message at RCPT, and a new password
/// replaces the old one for POP3 and closes the session the old one opened.
#[test]
fn an_account_looked_after_through_the_api() {
    let server = TestServer::start_with(quick_guard());
    assert!(server.submit(BOB, "Subject: usage\r\n\r\nSome bytes to count.").starts_with("250"));
    let (status, bob) = server.api("GET", "/api/v1/accounts/bob@example.test", None);
    assert_eq!(status, 200, "{bob}");
    let inbox = bob["mailboxes"].as_array().unwrap().iter().find(|m| m["name"] == "INBOX").unwrap().clone();
    let used = bob["used_bytes"].as_u64().unwrap();
    assert!(used > 20, "{bob}");
    assert_eq!(
        (inbox["messages"].as_u64(), inbox["bytes"].as_u64(), bob["messages"].as_u64()),
        (Some(1), Some(used), Some(1))
    );

    // Full at exactly what it holds: the next message is refused at RCPT; unlimited takes it.
    let (status, set) =
        server.api("PUT", "/api/v1/accounts/bob@example.test/quota", Some(json!({"quota": used.to_string()})));
    assert_eq!((status, set["quota_bytes"].as_u64(), set["quota_default"].as_bool()), (200, Some(used), Some(false)));
    assert!(rcpt(&server, BOB).starts_with("552 5.2.2"), "the quota set through the API is in force");
    let (status, set) =
        server.api("PUT", "/api/v1/accounts/bob@example.test/quota", Some(json!({"quota": "unlimited"})));
    assert_eq!((status, set["quota_bytes"].is_null()), (200, true));
    assert!(rcpt(&server, BOB).starts_with("250"));

    // A new password: the session the old one opened closes, the old one no longer opens POP3.
    let (reply, mut open) = pop3_login(&server, BOB, PASSWORD);
    assert!(reply.starts_with("+OK"), "{reply}");
    let (status, reset) = server.api("POST", "/api/v1/accounts/bob@example.test/password", Some(json!({})));
    assert_eq!(status, 200, "{reset}");
    open.until_closed();
    let new_password = reset["password"].as_str().unwrap();
    assert!(pop3_login(&server, BOB, new_password).0.starts_with("+OK"));
    assert!(pop3_login(&server, BOB, PASSWORD).0.starts_with("-ERR"));
    server.wait_event(|e| {
        e["event"] == "account_session_closed" && e["account"] == BOB && e["reason"] == "credentials_changed"
    });
    for action in ["account_quota", "account_password"] {
        server.wait_event(|e| e["event"] == "admin_action" && e["action"] == action && e["target"] == BOB);
    }
    // Never a generated password in the log.
    let log = server.events().iter().map(Value::to_string).collect::<Vec<_>>().join("\n");
    assert!(!log.contains(new_password));
}

#[test]
fn status_and_ban_commands_go_through_the_admin_api() {
    let mut server = TestServer::start();
    server.pin_admin_port();
    let mut imap = server.connect_tls("imaps");
    imap.line();
    let status = server.cli_ok(&["status"], None);
    assert!(status.contains(&format!("admin        {}", server.addr("admin"))), "{status}");
    assert!(status.contains(&format!("imaps        {}", server.addr("imaps"))), "{status}");
    assert!(status.contains("Sessions: 1 (") && status.contains("imaps 1"), "{status}");
    assert!(status.contains("Bans in force: 0"), "{status}");
    drop(imap);

    let out = server.cli_ok(&["ban", "add", "127.0.0.40", "--for", "1h", "--reason", "by the cli"], None);
    assert_eq!(out, "Banned 127.0.0.40/32.\n");
    let action = server.wait_event(|e| e["event"] == "admin_action" && e["action"] == "ban_add");
    assert_eq!(action["target"], "127.0.0.40/32");
    assert!(server.refused("127.0.0.40", "pop3s"), "in force at once");
    let list = server.cli_ok(&["ban", "list"], None);
    assert!(list.contains("127.0.0.40/32") && list.contains("admin") && list.contains("by the cli"), "{list}");
    assert!(server.cli_ok(&["status"], None).contains("Bans in force: 1"));
    server.cli_ok(&["ban", "remove", "127.0.0.40"], None);
    server.wait_event(|e| e["event"] == "admin_action" && e["action"] == "ban_remove");
    let out = server.cli(&["ban", "remove", "127.0.0.40"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no ban on exactly 127.0.0.40/32"));

    // With the server stopped, `ban` falls back to the store and `status` says what is wrong.
    server.stop();
    let out = server.cli(&["ban", "add", "127.0.0.41"], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("working on the store directly"));
    let out = server.cli(&["status"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is the server running"));
    server.launch();
    assert!(server.refused("127.0.0.41", "imaps"), "the stored ban holds after the restart");
}

#[test]
fn the_admin_listener_speaks_tls_when_asked() {
    let server =
        TestServer::start_with(Settings { sections: vec!["[admin]\ntls = true\n".into()], ..Settings::default() });
    assert_eq!(server.wait_event(|e| e["event"] == "listening" && e["listener"] == "admin")["tls"], true);
    server.pin_admin_port();
    // Plain HTTP gets nowhere.
    let mut plain = TcpStream::connect(server.addr("admin")).unwrap();
    plain.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    std::io::Write::write_all(&mut plain, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    let _ = std::io::Read::read_to_end(&mut plain, &mut answer);
    assert!(!String::from_utf8_lossy(&answer).contains("200 OK"));
    // HTTPS with the server's certificate works.
    let client = Client::plain(TcpStream::connect(server.addr("admin")).unwrap())
        .upgrade(server.client_config(rustls::ALL_VERSIONS));
    let mut client = client;
    let r = http_exchange(&mut ClientIo(&mut client, None), "GET", "/api/v1/status", Some(&server.admin_token()), None);
    assert_eq!(r.status, 200, "{}", r.body);
    // And the CLI trusts the configured certificate.
    assert!(server.cli_ok(&["status"], None).contains("Portcullis"));
}

/// The harness's line client as a byte stream for [`http_exchange`].
struct ClientIo<'a>(&'a mut Client, Option<Vec<u8>>);

impl std::io::Read for ClientIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let pending = self.1.get_or_insert_with(|| self.0.rest().into_bytes());
        let n = pending.len().min(buf.len());
        buf[..n].copy_from_slice(&pending[..n]);
        pending.drain(..n);
        Ok(n)
    }
}

impl std::io::Write for ClientIo<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.send_raw(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn the_log_goes_to_a_file_rotated_by_size() {
    let dir = tempfile::tempdir().unwrap();
    if is_root() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    write_cert(dir.path());
    let user = if is_root() { "user = \"nobody\"\n" } else { "" };
    let config = dir.path().join("portcullis.toml");
    std::fs::write(
        &config,
        format!(
            "hostname = \"{HOSTNAME}\"\n[tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n\
             [listen]\nsubmission = [\"127.0.0.1:0\"]\n[process]\n{user}shutdown_grace = \"1s\"\n\
             [log]\nfile = \"data/portcullis.log\"\nmax_size = \"2KiB\"\nkeep = 2\n"
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let mut child = std::process::Command::new(BIN)
        .args(["--config", config.to_str().unwrap(), "serve"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let log = dir.path().join("data/portcullis.log");
    let started = Instant::now();
    let addr = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains("\"listening\"")) {
            let e: Value = serde_json::from_str(line).unwrap();
            break e["addr"].as_str().unwrap().to_string();
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no listening line in {}", log.display());
        std::thread::sleep(Duration::from_millis(20));
    };
    for _ in 0..30 {
        let mut c = Client::plain(TcpStream::connect(&addr).unwrap());
        c.reply();
        c.cmd("QUIT");
    }
    std::thread::sleep(Duration::from_millis(300));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    child.wait().unwrap();
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    assert!(stdout.is_empty(), "nothing on stdout: {stdout}");
    let mut lines = 0;
    for name in ["portcullis.log", "portcullis.log.1", "portcullis.log.2"] {
        let text = std::fs::read_to_string(dir.path().join("data").join(name)).unwrap();
        assert!(text.len() <= 2048, "{name} is {} bytes", text.len());
        for line in text.lines() {
            serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{name}: {e}: {line}"));
            lines += 1;
        }
    }
    assert!(!dir.path().join("data/portcullis.log.3").exists(), "only `keep` old files");
    assert!(lines > 10);
    let last = std::fs::read_to_string(&log).unwrap();
    assert!(last.contains("server_stopped"), "the newest file ends with the stop");
}
