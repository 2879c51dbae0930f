//! Three Portcullis nodes sharing one PostgreSQL database behind Debian's HAProxy (issue 17):
//! what one node learns, the others act on. Mail submitted through node A is pushed to an IMAP
//! IDLE session on node B within a second; a source banned by node B is refused by node C; a
//! TOTP code used on A is refused on C; any node's admin API lists every node's sessions; a
//! node SIGKILLed under load loses no acknowledged message, is named as missing from that list,
//! and its clients reconnect through HAProxy to the others and find their mailboxes as they
//! left them (UIDVALIDITY, UIDs and MODSEQs unchanged); an account's hourly sending limit and a
//! source's failed logins are counted over all nodes together.
//!
//! HAProxy runs in TCP mode with a PROXY v2 header to each node's IMAPS and submissions (465)
//! listeners, health-checking each node on its admin listener's `/health`. Frontends `imaps`
//! and `submissions` balance over all three nodes; `imaps0`, `submissions1`, ... reach one node
//! each, so that a test can say which node a client talks to. Clients connect from 127.0.0.2
//! and up (the balancer itself is 127.0.0.1, a trusted network the guard never bans).

mod common;

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::haproxy::{Frontend, HaProxy, Node};
use common::outside::{notice, program};
use common::totp::{enable_totp, totp_code};
use common::{plain, Client, Settings, TestServer, ALICE, BOB, PASSWORD};

const NODES: usize = 3;

/// The same config on every node: the proxied listeners, a guard that bans after three
/// failures and answers them at once, sending limits out of a load test's way, and alice as an
/// administrator (the TOTP sign-in).
fn node_settings() -> Settings {
    settings_with_hourly_messages(100_000)
}

/// [`node_settings`] with `messages` an hour per account.
fn settings_with_hourly_messages(messages: u32) -> Settings {
    Settings {
        sections: vec![format!(
            "[proxy]\nlisteners = [\"imaps\", \"submissions\"]\ntrusted_proxies = [\"127.0.0.1/32\"]\n\
             header_timeout = \"2s\"\n\
             [firewall]\ntrusted_networks = [\"127.0.0.1\"]\n\
             [guard]\nban_after_failures = 3\nfailure_delay = \"1ms\"\nmax_failure_delay = \"1ms\"\n\
             escalate_ipv4_after = 0\nunknown_source_attempts = 3\n\
             max_messages_per_hour = {messages}\nmax_recipients_per_hour = 100000\n\
             [admin]\naccounts = [\"{ALICE}\"]\n"
        )],
        ..Settings::default()
    }
}

/// Three nodes on one database and the balancer in front of them.
struct Cluster {
    nodes: Vec<TestServer>,
    balancer: HaProxy,
}

impl Cluster {
    /// `None` after a SKIPPED notice when HAProxy or PostgreSQL is not installed.
    fn start() -> Option<Cluster> {
        Cluster::start_with(node_settings())
    }

    /// [`Cluster::start`] with other settings on every node.
    fn start_with(settings: Settings) -> Option<Cluster> {
        let haproxy = program("haproxy", "apt-get install haproxy")?;
        let nodes = TestServer::start_nodes(settings, NODES)?;
        let backends = |listener: &str| -> Vec<Node> {
            nodes.iter().map(|n| Node { listener: n.addr(listener), admin: n.addr("admin") }).collect()
        };
        let mut frontends = Vec::new();
        for listener in ["imaps", "submissions"] {
            let all = backends(listener);
            for (i, node) in all.iter().enumerate() {
                frontends.push(Frontend::new(&format!("{listener}{i}"), vec![*node]));
            }
            frontends.push(Frontend::new(listener, all));
        }
        let balancer = HaProxy::start(&haproxy, &frontends);
        Some(Cluster { nodes, balancer })
    }

    /// A TLS connection from `source` to frontend `frontend`, greeting not yet read.
    fn connect(&self, frontend: &str, source: &str) -> io::Result<Client> {
        let tcp = tcp_from(source, self.balancer.addr(frontend))?;
        // Every node serves the same certificate: any node's client config trusts them all.
        Client::plain(tcp).handshake(self.nodes[0].client_config(rustls::ALL_VERSIONS))
    }

    /// Which node logged a successful login from `peer` (the client's own address). The log
    /// is read from each node's stdout by a thread of its own, so the line may come a moment
    /// after the client heard its answer: up to 5 s are given.
    fn node_of(&self, peer: SocketAddr) -> Option<usize> {
        let peer = peer.to_string();
        let started = Instant::now();
        loop {
            let found = self
                .nodes
                .iter()
                .position(|n| n.events().iter().any(|e| e["event"] == "auth_succeeded" && e["peer"] == peer.as_str()));
            if found.is_some() || started.elapsed() > Duration::from_secs(5) {
                return found;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn tcp_from(source: &str, to: SocketAddr) -> io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&format!("{source}:0").parse::<SocketAddr>().unwrap().into())?;
    socket.connect(&to.into())?;
    Ok(socket.into())
}

/// An IMAP session that reports a dead connection as an error rather than a panic.
struct Imap {
    client: Client,
    tag: usize,
}

impl Imap {
    /// Logs `user` in through `frontend` from `source`.
    fn login(cluster: &Cluster, frontend: &str, source: &str, user: &str) -> io::Result<Imap> {
        let mut client = cluster.connect(frontend, source)?;
        let greeting = client.try_line()?;
        if !greeting.starts_with("* OK") {
            return Err(io::Error::other(format!("greeting: {greeting:?}")));
        }
        let mut imap = Imap { client, tag: 0 };
        let (_, done) = imap.run(&format!("LOGIN {user} {PASSWORD}"))?;
        if !done.contains(" OK") {
            return Err(io::Error::other(format!("LOGIN: {done}")));
        }
        Ok(imap)
    }

    /// Sends `command` under a new tag; the untagged lines (literals' lines included) and the
    /// tagged answer.
    fn run(&mut self, command: &str) -> io::Result<(Vec<String>, String)> {
        self.tag += 1;
        let tag = format!("t{}", self.tag);
        self.client.try_send_raw(format!("{tag} {command}\r\n").as_bytes())?;
        let mut lines = Vec::new();
        loop {
            let line = self.client.try_line()?;
            if line.is_empty() && lines.last().is_some_and(|l: &String| l.is_empty()) {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            if line.starts_with(&format!("{tag} ")) {
                return Ok((lines, line));
            }
            lines.push(line);
        }
    }

    /// `SELECT INBOX (CONDSTORE)` and then every message's UID and MODSEQ: what a client that
    /// resynchronises compares (RFC 7162 §3.1).
    fn inbox_state(&mut self) -> io::Result<MailboxState> {
        let (lines, done) = self.run("SELECT INBOX (CONDSTORE)")?;
        assert!(done.contains(" OK"), "SELECT: {done}");
        let code = |name: &str| -> u64 {
            let prefix = format!("[{name} ");
            let line = lines.iter().find(|l| l.contains(&prefix)).unwrap_or_else(|| panic!("no {name} in {lines:?}"));
            number_after(line, &prefix)
        };
        let (uid_validity, highest_modseq) = (code("UIDVALIDITY"), code("HIGHESTMODSEQ"));
        let (lines, done) = self.run("UID FETCH 1:* (MODSEQ)")?;
        assert!(done.contains(" OK"), "FETCH: {done}");
        let messages = lines
            .iter()
            .filter(|l| l.contains(" FETCH "))
            .map(|l| (number_after(l, "UID "), number_after(l, "MODSEQ (")))
            .collect();
        Ok(MailboxState { uid_validity, highest_modseq, messages })
    }

    /// The Subject of every message in INBOX (selects it).
    fn subjects(&mut self) -> Vec<String> {
        let (_, done) = self.run("SELECT INBOX").unwrap();
        assert!(done.contains(" OK"), "SELECT: {done}");
        let (lines, done) = self.run("UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])").unwrap();
        assert!(done.contains(" OK"), "FETCH: {done}");
        lines.iter().filter_map(|l| l.strip_prefix("Subject: ")).map(str::to_string).collect()
    }
}

/// The decimal number right after `prefix` in `line`.
fn number_after(line: &str, prefix: &str) -> u64 {
    let at = line.find(prefix).unwrap_or_else(|| panic!("no {prefix:?} in {line:?}")) + prefix.len();
    let digits: String = line[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap_or_else(|_| panic!("no number after {prefix:?} in {line:?}"))
}

#[derive(Debug, PartialEq)]
struct MailboxState {
    uid_validity: u64,
    highest_modseq: u64,
    /// (UID, MODSEQ) of each message, in UID order.
    messages: Vec<(u64, u64)>,
}

/// One SMTP reply, all its lines; an error when the connection ends first.
fn smtp_reply(c: &mut Client) -> io::Result<String> {
    let mut lines = Vec::new();
    loop {
        let line = c.try_line()?;
        if line.is_empty() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let last = line.len() < 4 || line.as_bytes()[3] != b'-';
        lines.push(line);
        if last {
            return Ok(lines.join("\n"));
        }
    }
}

fn smtp(c: &mut Client, line: &str) -> io::Result<String> {
    c.try_send_raw(format!("{line}\r\n").as_bytes())?;
    smtp_reply(c)
}

/// An authenticated submission session as alice through `frontend`.
fn submission(cluster: &Cluster, frontend: &str, source: &str) -> io::Result<Client> {
    let mut c = cluster.connect(frontend, source)?;
    smtp_reply(&mut c)?;
    smtp(&mut c, "EHLO load.client")?;
    let auth = smtp(&mut c, &format!("AUTH PLAIN {}", plain(ALICE, PASSWORD)))?;
    if !auth.starts_with("235") {
        return Err(io::Error::other(format!("AUTH: {auth}")));
    }
    Ok(c)
}

/// Sends one message to `to` with `subject` on a logged-in session; the reply to its data.
fn send_message(c: &mut Client, to: &str, subject: &str) -> io::Result<String> {
    let mail = smtp(c, &format!("MAIL FROM:<{ALICE}>"))?;
    let rcpt = smtp(c, &format!("RCPT TO:<{to}>"))?;
    let data = smtp(c, "DATA")?;
    if !(mail.starts_with("250") && rcpt.starts_with("250") && data.starts_with("354")) {
        return Err(io::Error::other(format!("refused: {mail} / {rcpt} / {data}")));
    }
    c.try_send_raw(format!("Subject: {subject}\r\n\r\n{subject}, through the balancer.\r\n.\r\n").as_bytes())?;
    smtp_reply(c)
}

#[test]
fn mail_submitted_through_node_a_reaches_an_idle_session_on_node_b_within_a_second() {
    let Some(cluster) = Cluster::start() else { return };
    let mut idle = Imap::login(&cluster, "imaps1", "127.0.0.3", BOB).unwrap();
    assert_eq!(cluster.node_of(idle.client.local_addr()), Some(1), "the IDLE session is on node B");
    let (_, done) = idle.run("SELECT INBOX").unwrap();
    assert!(done.contains(" OK"), "{done}");
    idle.client.send("i IDLE");
    assert!(idle.client.line().starts_with("+ "), "IDLE accepted");

    let mut sender = submission(&cluster, "submissions0", "127.0.0.2").unwrap();
    assert_eq!(cluster.node_of(sender.local_addr()), Some(0), "the submission is on node A");
    let reply = send_message(&mut sender, BOB, "across nodes").unwrap();
    let acknowledged = Instant::now();
    assert!(reply.starts_with("250"), "{reply}");

    // RFC 9051 §6.3.13: the server pushes the new message count while the client idles.
    idle.client.set_read_timeout(Some(Duration::from_secs(5)));
    loop {
        let line = idle.client.try_line().expect("no EXISTS from node B within 5 s");
        if line == "* 1 EXISTS" {
            break;
        }
        assert!(!line.is_empty(), "node B closed the IDLE session");
    }
    let delay = acknowledged.elapsed();
    notice(&format!("nodes: IDLE on node B heard of the message from node A {delay:?} after its 250"));
    assert!(delay < Duration::from_secs(1), "node B pushed the message after {delay:?}");
    idle.client.send("DONE");
    let _ = smtp(&mut sender, "QUIT");
}

#[test]
fn a_source_banned_by_node_b_is_refused_by_node_c() {
    let Some(cluster) = Cluster::start() else { return };
    // Node C admits 127.0.0.2 before the ban.
    assert!(Imap::login(&cluster, "imaps2", "127.0.0.2", BOB).is_ok());

    for attempt in 0..3 {
        let mut c = cluster.connect("imaps1", "127.0.0.2").unwrap();
        let _greeting = c.try_line();
        c.send(&format!("a LOGIN {ALICE} wrong-password-{attempt}"));
        let _ = c.try_line();
    }
    cluster.nodes[1].wait_event(|e| e["event"] == "ban_added" && e["network"] == "127.0.0.2/32");
    let banned = Instant::now();

    // Node C learns of the ban from the store (follow_store, once a second); until then it
    // still admits the source, after that it closes the connection at accept.
    let refused = |c: &Cluster| -> bool {
        match c.connect("imaps2", "127.0.0.2") {
            Err(e) => common::is_closed(&e),
            Ok(mut client) => client.try_line().map_or_else(|e| common::is_closed(&e), |l| l.is_empty()),
        }
    };
    common::wait_for("node C refusing the banned source", Duration::from_secs(5), || refused(&cluster));
    let took = banned.elapsed();
    notice(&format!("nodes: node C refused the source node B banned {took:?} after the ban"));
    assert!(took < Duration::from_secs(2), "node C took {took:?} to follow node B's ban");
    // The connection that saw the ban arrive may have been admitted just before it and then
    // closed by it (`revoked`); a new one is refused at accept.
    assert!(refused(&cluster), "node C admitted the banned source again");
    cluster.nodes[2].wait_event(|e| {
        e["event"] == "connection_refused"
            && e["reason"] == "banned"
            && e["peer"].as_str().is_some_and(|p| p.starts_with("127.0.0.2:"))
    });
    // Others still get in through node C.
    assert!(Imap::login(&cluster, "imaps2", "127.0.0.3", BOB).is_ok());
}

#[test]
fn a_totp_code_used_on_node_a_is_refused_on_node_c() {
    let Some(cluster) = Cluster::start() else { return };
    let uri = enable_totp(&cluster.nodes[0], ALICE);
    // A code not yet used: enabling TOTP spent the one the app showed then.
    let code = totp_code(&uri, 30);
    let sign_in = |node: &TestServer| {
        let body = serde_json::json!({"account": ALICE, "password": PASSWORD, "totp": code}).to_string();
        node.http("POST", "/api/v1/signin", None, Some(&body)).status
    };
    assert_eq!(sign_in(&cluster.nodes[0]), 200, "node A takes the code");
    assert_eq!(sign_in(&cluster.nodes[2]), 401, "node C refuses it again");
    cluster.nodes[2].wait_event(|e| e["event"] == "admin_auth_failed" && e["reason"] == "replayed_code");
}

#[test]
fn sending_limits_failed_logins_and_login_attempts_are_counted_over_all_nodes_together() {
    let Some(cluster) = Cluster::start_with(settings_with_hourly_messages(2)) else { return };
    // Alice's hour: two messages through node A; node B refuses the third, and says so once.
    let mut on_a = submission(&cluster, "submissions0", "127.0.0.2").unwrap();
    for n in 0..2 {
        let reply = send_message(&mut on_a, BOB, &format!("hour-{n}")).unwrap();
        assert!(reply.starts_with("250"), "{reply}");
    }
    let mut on_b = submission(&cluster, "submissions1", "127.0.0.2").unwrap();
    let third = send_message(&mut on_b, BOB, "one too many").unwrap();
    assert!(third.starts_with("451 4.7.1"), "node B refuses what node A used up: {third}");
    let alert = cluster.nodes[1].wait_event(|e| e["event"] == "alert_raised" && e["kind"] == "sending_limit");
    assert_eq!(alert["account"], ALICE);
    let _ = smtp(&mut on_a, "QUIT");
    let _ = smtp(&mut on_b, "QUIT");

    // One wrong password from 127.0.0.4 on each node: three in all, as `ban_after_failures`
    // says, ban the source (the node with the third failure bans it).
    for node in 0..NODES {
        let mut c = cluster.connect(&format!("imaps{node}"), "127.0.0.4").unwrap();
        assert!(c.try_line().unwrap().starts_with("* OK"));
        c.send(&format!("a LOGIN {ALICE} wrong-password-{node}"));
        let answer = c.try_line();
        if node + 1 < NODES {
            let answer = answer.unwrap();
            assert!(answer.starts_with("a NO"), "{answer}");
        }
        // The third: its ban closes the connection (revoked), perhaps before its answer.
    }
    cluster.nodes[NODES - 1].wait_event(|e| e["event"] == "ban_added" && e["network"] == "127.0.0.4/32");

    // Credential stuffing against bob: one guess from a new address on each node, three in
    // all, as `unknown_source_attempts` allows; the fourth, on the first node again (which saw
    // only one), is refused unchecked. Counted per node, it would have been checked.
    for node in 0..NODES {
        let mut c = cluster.connect(&format!("imaps{node}"), &format!("127.0.0.{}", 20 + node)).unwrap();
        assert!(c.try_line().unwrap().starts_with("* OK"));
        c.send(&format!("a LOGIN {BOB} stuffed-{node}"));
        let answer = c.try_line().unwrap();
        assert!(answer.starts_with("a NO") && !answer.contains("[UNAVAILABLE]"), "checked: {answer}");
    }
    let mut c = cluster.connect("imaps0", "127.0.0.23").unwrap();
    assert!(c.try_line().unwrap().starts_with("* OK"));
    c.send(&format!("a LOGIN {BOB} stuffed-again"));
    let answer = c.try_line().unwrap();
    assert!(answer.contains("[UNAVAILABLE]"), "the nodes' attempts on bob add up: answered {answer:?}");
    let refused = cluster.nodes[0]
        .wait_event(|e| e["event"] == "auth_failed" && e["peer"].as_str().is_some_and(|p| p.starts_with("127.0.0.23")));
    assert_eq!(refused["reason"], "account_limited");
}

/// What a load client saw: subjects acknowledged with 250, and those whose data was sent but
/// whose answer never came (the node died): these may or may not have been stored.
#[derive(Default)]
struct Sent {
    acknowledged: Vec<String>,
    unanswered: Vec<String>,
}

/// Submits messages to bob through the balancer until `stop`, three per connection, starting a
/// new connection whenever one fails.
fn load(cluster: &Cluster, client: usize, stop: &AtomicBool, acked: &AtomicUsize) -> Sent {
    let source = format!("127.0.0.{}", 10 + client);
    let mut sent = Sent::default();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut c) = submission(cluster, "submissions", &source) else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        for _ in 0..3 {
            let subject = format!("load-{client}-{n}");
            n += 1;
            match send_message(&mut c, BOB, &subject) {
                Ok(reply) if reply.starts_with("250") => {
                    sent.acknowledged.push(subject);
                    acked.fetch_add(1, Ordering::Relaxed);
                }
                Ok(reply) => panic!("{subject}: {reply}"),
                Err(_) => {
                    sent.unanswered.push(subject);
                    break;
                }
            }
        }
        let _ = smtp(&mut c, "QUIT");
    }
    sent
}

#[test]
fn a_node_killed_under_load_loses_no_acknowledged_message_and_its_clients_carry_on_elsewhere() {
    let Some(mut cluster) = Cluster::start() else { return };
    // Alice's INBOX, as her client last saw it: three messages, one flagged (a MODSEQ above
    // its UID's).
    let mut c = submission(&cluster, "submissions", "127.0.0.5").unwrap();
    for n in 0..3 {
        assert!(send_message(&mut c, ALICE, &format!("kept-{n}")).unwrap().starts_with("250"));
    }
    let mut imap = Imap::login(&cluster, "imaps", "127.0.0.6", ALICE).unwrap();
    imap.run("SELECT INBOX").unwrap();
    let (_, done) = imap.run("STORE 2 +FLAGS (\\Flagged)").unwrap();
    assert!(done.contains(" OK"), "{done}");
    let before = imap.inbox_state().unwrap();
    assert_eq!(before.messages.len(), 3, "{before:?}");
    let victim = cluster.node_of(imap.client.local_addr()).expect("the IMAP session's node");
    let asker = (victim + 1) % NODES;

    // Any node's admin API lists every node's sessions: alice's IMAP session on the victim is
    // listed by another node, under the victim's node id.
    let node_id = |n: usize| {
        let (status, local) = cluster.nodes[n].api("GET", "/api/v1/sessions?node=local", None);
        assert_eq!(status, 200, "{local}");
        local["nodes"][0].as_str().unwrap().to_string()
    };
    let victim_id = node_id(victim);
    let (status, list) = cluster.nodes[asker].api("GET", "/api/v1/sessions", None);
    assert_eq!(status, 200, "{list}");
    assert_eq!((&list["partial"], &list["nodes_missing"]), (&serde_json::json!(false), &serde_json::json!([])));
    let mut listed: Vec<String> =
        list["nodes"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_string()).collect();
    let mut every: Vec<String> = (0..NODES).map(node_id).collect();
    listed.sort();
    every.sort();
    assert_eq!(listed, every, "every node answered");
    let alices: Vec<&serde_json::Value> = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["account"] == ALICE && s["listener"] == "imaps")
        .collect();
    assert_eq!(alices.len(), 1, "{list}");
    assert_eq!(alices[0]["node"], victim_id.as_str());
    assert!(alices[0]["global_id"].as_str().unwrap().starts_with(&format!("{victim_id}:")));

    // Four clients submit through the balancer; the IMAP client's node dies in the middle.
    let (stop, acked) = (AtomicBool::new(false), AtomicUsize::new(0));
    let sent: Vec<Sent> = std::thread::scope(|s| {
        let (cluster, stop, acked) = (&cluster, &stop, &acked);
        let clients: Vec<_> = (0..4).map(|i| s.spawn(move || load(cluster, i, stop, acked))).collect();
        common::wait_for("30 acknowledged messages", Duration::from_secs(60), || acked.load(Ordering::Relaxed) >= 30);
        let accepted_by_victim =
            cluster.nodes[victim].events().iter().filter(|e| e["event"] == "message_accepted").count();
        assert!(accepted_by_victim > 0, "the node to be killed took part in the load");
        cluster.nodes[victim].signal(nix::sys::signal::Signal::SIGKILL);
        let at_kill = acked.load(Ordering::Relaxed);
        common::wait_for("30 more acknowledged messages after the kill", Duration::from_secs(60), || {
            acked.load(Ordering::Relaxed) >= at_kill + 30
        });
        stop.store(true, Ordering::Relaxed);
        clients.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let (status, _) = cluster.nodes[victim].wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), None, "killed by a signal");
    // The dead node cannot answer for its sessions: the list says so, after its wait.
    let asked = Instant::now();
    let (status, list) = cluster.nodes[asker].api("GET", "/api/v1/sessions", None);
    assert_eq!(status, 200, "{list}");
    assert!(asked.elapsed() >= Duration::from_millis(900), "it waited for the dead node");
    assert_eq!(list["partial"], true, "{list}");
    assert_eq!(list["nodes_missing"], serde_json::json!([victim_id]), "{list}");
    assert_eq!(list["nodes"].as_array().unwrap().len(), NODES - 1, "{list}");
    let acknowledged: Vec<&String> = sent.iter().flat_map(|s| &s.acknowledged).collect();
    let unanswered: Vec<&String> = sent.iter().flat_map(|s| &s.unanswered).collect();
    notice(&format!(
        "nodes: {} messages acknowledged, {} unanswered when node {victim} was killed",
        acknowledged.len(),
        unanswered.len()
    ));

    // Every acknowledged message is in bob's INBOX exactly once, read through a live node.
    let survivor = (0..NODES).find(|&n| n != victim).unwrap();
    let mut reader = Imap::login(&cluster, &format!("imaps{survivor}"), "127.0.0.7", BOB).unwrap();
    let mut stored: HashMap<String, usize> = HashMap::new();
    for subject in reader.subjects() {
        *stored.entry(subject).or_default() += 1;
    }
    for subject in &acknowledged {
        assert_eq!(stored.get(*subject), Some(&1), "{subject} was acknowledged");
    }
    for (subject, count) in &stored {
        assert_eq!(*count, 1, "{subject} stored {count} times");
        assert!(acknowledged.contains(&subject) || unanswered.contains(&subject), "{subject} was never sent");
    }

    // The IMAP client on the dead node lost its connection, reconnects through the balancer
    // to a live node, and finds its mailbox as it left it.
    assert!(imap.run("NOOP").is_err(), "the session on the killed node is gone");
    let mut again = Imap::login(&cluster, "imaps", "127.0.0.6", ALICE).unwrap();
    let elsewhere = cluster.node_of(again.client.local_addr()).expect("the new session's node");
    assert_ne!(elsewhere, victim);
    assert_eq!(again.inbox_state().unwrap(), before, "UIDVALIDITY, UIDs and MODSEQs after the failover");
}
