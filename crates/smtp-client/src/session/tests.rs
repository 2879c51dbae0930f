//! The session against a scripted server: a small fake that answers command lines (and reads
//! DATA and BDAT content) as configured, so each test states what the server says and checks
//! what the client sent and concluded.

use super::*;
use crate::envelope::{Message, MessageParams, Notify, OriginalRecipient, Recipient, Ret};
use crate::outcome::LocalReason;
use crate::reply::ReplyError;
use std::collections::HashMap;
use std::sync::Arc;

struct Fake {
    extensions: Vec<&'static str>,
    extensions_after_tls: Option<Vec<&'static str>>,
    /// Command word (upper case, or a full "RCPT TO:<x>") -> reply; absent: the usual reply.
    replies: HashMap<String, &'static str>,
    /// Commands received, in order (content not included).
    commands: Vec<String>,
    bodies: Vec<Vec<u8>>,
    in_data: Option<Vec<u8>>,
    bdat_left: Option<(usize, Vec<u8>)>,
    buf: Vec<u8>,
    tls: bool,
    /// Most commands outstanding at once (pipelining shows as > 1).
    max_flight: usize,
    /// Close the connection instead of answering this command word.
    close_on: Option<&'static str>,
    closed: bool,
}

impl Fake {
    fn new(extensions: &[&'static str]) -> Fake {
        Fake {
            extensions: extensions.to_vec(),
            extensions_after_tls: None,
            replies: HashMap::new(),
            commands: Vec::new(),
            bodies: Vec::new(),
            in_data: None,
            bdat_left: None,
            buf: Vec::new(),
            tls: false,
            max_flight: 0,
            close_on: None,
            closed: false,
        }
    }

    fn reply(mut self, command: &str, reply: &'static str) -> Fake {
        self.replies.insert(command.to_string(), reply);
        self
    }

    /// Reads what the client sent; returns the replies.
    fn receive(&mut self, data: &[u8]) -> Vec<u8> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        let mut flight = 0;
        loop {
            if let Some((left, mut body)) = self.bdat_left.take() {
                let n = left.min(self.buf.len());
                body.extend(self.buf.drain(..n));
                if n < left {
                    self.bdat_left = Some((left - n, body));
                    break;
                }
                self.bodies.push(body);
                out.extend_from_slice(self.answer("BDAT-END", "250 2.0.0 chunk ok").as_bytes());
                continue;
            }
            let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") else { break };
            let line: Vec<u8> = self.buf.drain(..end + 2).collect();
            let line = String::from_utf8_lossy(&line[..line.len() - 2]).into_owned();
            if let Some(body) = self.in_data.as_mut() {
                if line == "." {
                    let body = self.in_data.take().unwrap_or_default();
                    self.bodies.push(body);
                    if self.close_on == Some(".") {
                        self.closed = true;
                        return out;
                    }
                    out.extend_from_slice(self.answer(".", "250 2.0.0 queued").as_bytes());
                } else {
                    body.extend_from_slice(line.as_bytes());
                    body.extend_from_slice(b"\r\n");
                }
                continue;
            }
            flight += 1;
            self.max_flight = self.max_flight.max(flight);
            self.commands.push(line.clone());
            let word = line.split([' ', ':']).next().unwrap_or("").to_ascii_uppercase();
            if self.close_on == Some(word.as_str()) {
                self.closed = true;
                return out;
            }
            let reply = match word.as_str() {
                "EHLO" => {
                    let list = match (&self.extensions_after_tls, self.tls) {
                        (Some(after), true) => after.clone(),
                        _ => self.extensions.clone(),
                    };
                    let mut text = String::new();
                    let mut lines = vec!["fake.example"];
                    lines.extend(list);
                    for (i, l) in lines.iter().enumerate() {
                        let sep = if i + 1 == lines.len() { ' ' } else { '-' };
                        text.push_str(&format!("250{sep}{l}\r\n"));
                    }
                    self.replies.get("EHLO").map(|r| format!("{r}\r\n")).unwrap_or(text)
                }
                "DATA" => {
                    let reply = self.answer("DATA", "354 go on");
                    if reply.starts_with("354") {
                        self.in_data = Some(Vec::new());
                    }
                    reply
                }
                "BDAT" => {
                    let size: usize = line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
                    self.bdat_left = Some((size, Vec::new()));
                    continue;
                }
                "RCPT" => {
                    let key = line.split(' ').nth(1).unwrap_or("").to_string();
                    match self.replies.get(&key) {
                        Some(r) => format!("{r}\r\n"),
                        None => self.answer("RCPT", "250 2.1.5 ok"),
                    }
                }
                "STARTTLS" => self.answer("STARTTLS", "220 2.0.0 go ahead"),
                "QUIT" => self.answer("QUIT", "221 2.0.0 bye"),
                "HELO" => self.answer("HELO", "250 fake.example"),
                "AUTH" => self.answer("AUTH", "235 2.7.0 ok"),
                _ => self.answer(&word, "250 2.0.0 ok"),
            };
            out.extend_from_slice(reply.as_bytes());
        }
        out
    }

    fn answer(&self, key: &str, default: &str) -> String {
        format!("{}\r\n", self.replies.get(key).copied().unwrap_or(default))
    }
}

fn config(tls: TlsMode) -> ClientConfig {
    ClientConfig {
        helo_name: "out.example.org".into(),
        tls,
        credentials: None,
        chunking: false,
        limits: ReplyLimits::default(),
    }
}

fn message(recipients: &[&str]) -> Message {
    Message {
        sender: "alice@example.org".into(),
        recipients: recipients
            .iter()
            .map(|r| Recipient { address: r.to_string(), notify: None, original: None })
            .collect(),
        params: MessageParams::default(),
        content: Arc::from(&b"Subject: hi\r\n\r\n.leading dot\r\nbody\r\n"[..]),
    }
}

#[derive(Debug)]
struct Run {
    results: Vec<MessageResult>,
    ending: Ending,
}

/// Drives the client against the fake until it closes, sending `messages` in turn; the
/// handshake "succeeds" with `verified`.
fn run(mut client: Client, fake: &mut Fake, messages: &[Message], verified: bool) -> Run {
    let mut results = Vec::new();
    let mut queue: std::collections::VecDeque<&Message> = messages.iter().collect();
    fake.buf.clear();
    let mut greeting =
        fake.replies.get("GREETING").map(|g| format!("{g}\r\n")).unwrap_or("220 fake.example ESMTP\r\n".into());
    for step in 0.. {
        assert!(step < 1000, "the client loops");
        match client.next_action() {
            Action::Read => {
                let out = client.take_output();
                let mut reply = std::mem::take(&mut greeting).into_bytes();
                reply.extend(fake.receive(&out));
                if fake.closed && reply.is_empty() {
                    client.peer_closed();
                } else {
                    assert!(!reply.is_empty(), "the client waits for a reply the fake does not send");
                    client.feed(&reply);
                }
            }
            Action::StartTls => {
                assert!(client.take_output().is_empty());
                fake.tls = true;
                client.tls_established(verified);
            }
            Action::Ready => match queue.pop_front() {
                Some(m) => client.send_message(m).unwrap(),
                None => client.quit().unwrap(),
            },
            Action::MessageDone(result) => results.push(result),
            Action::Close(ending) => {
                let out = client.take_output();
                fake.receive(&out);
                return Run { results, ending };
            }
        }
    }
    unreachable!()
}

fn dispositions(result: &MessageResult) -> Vec<(String, Disposition)> {
    result.recipients.iter().map(|r| (r.address.clone(), r.disposition)).collect()
}

const FULL: &[&str] = &["PIPELINING", "SIZE 100000", "8BITMIME", "SMTPUTF8", "DSN", "ENHANCEDSTATUSCODES", "STARTTLS"];

#[test]
fn a_pipelined_delivery_with_per_recipient_outcomes() {
    let mut fake = Fake::new(FULL)
        .reply("TO:<gone@b.example>", "550 5.1.1 no such user")
        .reply("TO:<later@b.example>", "450 4.2.0 greylisted");
    let mut m = message(&["ok@b.example", "gone@b.example", "later@b.example"]);
    m.recipients[0].notify = Some(Notify { success: true, failure: true, delay: false });
    m.recipients[0].original = Some(OriginalRecipient::rfc822("OK@b.example"));
    m.params.ret = Some(Ret::Headers);
    m.params.envid = Some("id 42".into());
    let run = run(Client::new(config(TlsMode::Opportunistic)), &mut fake, &[m], true);
    assert_eq!(run.ending, Ending::Quit);
    assert_eq!(
        dispositions(&run.results[0]),
        [
            ("ok@b.example".to_string(), Disposition::Delivered),
            ("gone@b.example".to_string(), Disposition::Permanent),
            ("later@b.example".to_string(), Disposition::Temporary)
        ]
    );
    let gone = &run.results[0].recipients[1];
    assert_eq!(gone.reason.reply().unwrap().one_line(), "550 5.1.1 no such user");
    assert!(matches!(gone.reason, Reason::Reply { stage: Stage::RcptTo, .. }));
    assert!(run.results[0].peer_offers_dsn);
    // STARTTLS came first, then EHLO again; MAIL, the RCPTs and DATA went in one flight.
    let c = &fake.commands;
    assert_eq!(&c[..3], ["EHLO out.example.org", "STARTTLS", "EHLO out.example.org"]);
    assert_eq!(c[3], "MAIL FROM:<alice@example.org> SIZE=35 RET=HDRS ENVID=id+2042");
    assert_eq!(c[4], "RCPT TO:<ok@b.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;OK@b.example");
    assert_eq!(c[5..], ["RCPT TO:<gone@b.example>", "RCPT TO:<later@b.example>", "DATA", "QUIT"]);
    assert_eq!(fake.max_flight, 5, "MAIL + 3 RCPT + DATA pipelined");
    assert_eq!(fake.bodies, [b"Subject: hi\r\n\r\n..leading dot\r\nbody\r\n".to_vec()]);
}

#[test]
fn without_pipelining_one_command_at_a_time_and_no_dsn_parameters() {
    let mut fake = Fake::new(&["8BITMIME"]);
    let mut m = message(&["a@b.example", "c@b.example"]);
    m.recipients[0].notify = Some(Notify::NEVER);
    let run = run(Client::new(config(TlsMode::Opportunistic)), &mut fake, &[m], false);
    assert_eq!(fake.max_flight, 1);
    assert_eq!(fake.commands[1], "MAIL FROM:<alice@example.org>");
    assert_eq!(fake.commands[2], "RCPT TO:<a@b.example>");
    assert!(!run.results[0].peer_offers_dsn);
    assert!(run.results[0].recipients.iter().all(|r| r.disposition == Disposition::Delivered));
}

#[test]
fn the_end_of_data_reply_decides_for_every_accepted_recipient() {
    let mut fake = Fake::new(FULL).reply(".", "554 5.7.1 spam");
    let run = run(Client::new(config(TlsMode::Never)), &mut fake, &[message(&["a@b.example", "c@b.example"])], false);
    for r in &run.results[0].recipients {
        assert_eq!(r.disposition, Disposition::Permanent);
        assert!(matches!(&r.reason, Reason::Reply { stage: Stage::DataEnd, reply } if reply.code == 554));
    }
    assert!(!fake.commands.contains(&"STARTTLS".to_string()), "TlsMode::Never");
}

#[test]
fn a_refused_mail_from_fails_every_recipient_and_resets() {
    for (pipelining, expected_flight) in [(true, 4), (false, 1)] {
        let mut extensions = vec!["DSN"];
        if pipelining {
            extensions.push("PIPELINING");
        }
        let mut fake = Fake::new(&extensions).reply("MAIL", "451 4.3.0 try later").reply("RCPT", "503 5.5.1 no MAIL");
        fake.replies.insert("DATA".into(), "503 5.5.1 no valid recipients");
        let two = [message(&["a@b.example", "c@b.example"]), message(&["d@b.example"])];
        let run = run(Client::new(config(TlsMode::Never)), &mut fake, &two, false);
        for r in &run.results[0].recipients {
            assert_eq!(r.disposition, Disposition::Temporary, "pipelining {pipelining}");
            assert!(matches!(&r.reason, Reason::Reply { stage: Stage::MailFrom, reply } if reply.code == 451));
        }
        assert!(fake.commands.contains(&"RSET".to_string()));
        assert_eq!(run.results.len(), 2, "the connection is reused after RSET");
        assert_eq!(fake.max_flight, expected_flight);
    }
}

#[test]
fn when_every_recipient_is_refused_no_content_is_sent() {
    let mut fake =
        Fake::new(&["PIPELINING"]).reply("RCPT", "550 5.1.1 unknown").reply("DATA", "554 5.5.1 no recipients");
    let run = run(Client::new(config(TlsMode::Never)), &mut fake, &[message(&["a@b.example"])], false);
    assert_eq!(run.results[0].recipients[0].disposition, Disposition::Permanent);
    assert!(fake.bodies.is_empty());
    assert!(fake.commands.contains(&"RSET".to_string()));
    // Pipelined DATA answered 354 anyway: the client ends it empty at once.
    let mut fake = Fake::new(&["PIPELINING"]).reply("RCPT", "550 5.1.1 unknown");
    let run = super::tests::run(Client::new(config(TlsMode::Never)), &mut fake, &[message(&["a@b.example"])], false);
    assert_eq!(run.results[0].recipients[0].disposition, Disposition::Permanent);
    assert_eq!(fake.bodies, [Vec::<u8>::new()]);
    assert_eq!(run.ending, Ending::Quit);
}

#[test]
fn ehlo_not_understood_falls_back_to_helo_other_refusals_do_not() {
    let mut fake = Fake::new(&[]).reply("EHLO", "502 5.5.2 command not recognized");
    let run = run(Client::new(config(TlsMode::Opportunistic)), &mut fake, &[message(&["a@b.example"])], false);
    assert_eq!(fake.commands[1], "HELO out.example.org");
    assert_eq!(run.results[0].recipients[0].disposition, Disposition::Delivered);
    let mut fake = Fake::new(&[]).reply("EHLO", "550 5.7.1 go away");
    let run = super::tests::run(Client::new(config(TlsMode::Opportunistic)), &mut fake, &[], false);
    assert!(
        matches!(&run.ending, Ending::Failed(SessionFailure { stage: Stage::Ehlo, cause: Cause::Reply(r) }) if r.code == 550)
    );
    assert!(!fake.commands.iter().any(|c| c.starts_with("HELO")));
}

#[test]
fn required_tls_without_starttls_or_refused_ends_the_session_in_plaintext_nothing_sent() {
    let mut fake = Fake::new(&["PIPELINING"]);
    let run = run(Client::new(config(TlsMode::Required)), &mut fake, &[message(&["a@b.example"])], false);
    assert!(matches!(run.ending, Ending::Failed(SessionFailure { cause: Cause::StartTlsUnavailable, .. })));
    assert!(run.results.is_empty());
    assert!(!fake.commands.iter().any(|c| c.starts_with("MAIL")));
    let mut fake = Fake::new(&["STARTTLS"]).reply("STARTTLS", "454 4.7.0 TLS not available");
    let run = super::tests::run(Client::new(config(TlsMode::Required)), &mut fake, &[message(&["a@b.example"])], false);
    assert!(matches!(run.ending, Ending::Failed(SessionFailure { cause: Cause::StartTlsRefused(_), .. })));
    assert!(!fake.commands.iter().any(|c| c.starts_with("MAIL")));
    // Opportunistic goes on in plaintext after a refusal.
    let mut fake = Fake::new(&["STARTTLS"]).reply("STARTTLS", "454 4.7.0 TLS not available");
    let run =
        super::tests::run(Client::new(config(TlsMode::Opportunistic)), &mut fake, &[message(&["a@b.example"])], false);
    assert_eq!(run.results[0].recipients[0].disposition, Disposition::Delivered);
}

#[test]
fn capabilities_are_forgotten_after_starttls() {
    let mut fake = Fake::new(&["STARTTLS", "PIPELINING", "DSN"]);
    fake.extensions_after_tls = Some(vec!["SIZE 10"]);
    let run = run(Client::new(config(TlsMode::Opportunistic)), &mut fake, &[message(&["a@b.example"])], true);
    // Only what the second EHLO said counts: no DSN, and a SIZE the message exceeds.
    let r = &run.results[0].recipients[0];
    assert_eq!(r.reason, Reason::Local(LocalReason::TooBig { limit: 10 }));
    assert!(!run.results[0].peer_offers_dsn);
    assert!(!fake.commands.iter().any(|c| c.starts_with("MAIL")));
}

#[test]
fn replies_sent_before_the_handshake_are_discarded() {
    // RFC 3207 §4.2 (STARTTLS injection, client side): the server pipelines a fake EHLO
    // reply behind its 220; nothing of it may count inside TLS.
    let mut client = Client::new(config(TlsMode::Required));
    client.feed(b"220 hi\r\n");
    assert!(matches!(client.next_action(), Action::Read));
    client.feed(b"250-x\r\n250 STARTTLS\r\n");
    assert!(matches!(client.next_action(), Action::Read));
    client.feed(b"220 go\r\n250-x\r\n250 AUTH PLAIN\r\n");
    assert!(matches!(client.next_action(), Action::StartTls));
    client.tls_established(true);
    assert!(matches!(client.next_action(), Action::Read));
    assert_eq!(client.take_output(), b"EHLO out.example.org\r\nSTARTTLS\r\nEHLO out.example.org\r\n");
    assert_eq!(client.waiting_for(), Some(Stage::Ehlo));
    assert!(client.capabilities().auth.is_empty());
}

#[test]
fn what_the_server_lacks_is_found_before_sending() {
    type Case = (&'static [&'static str], fn(&mut Message), LocalReason);
    let cases: [Case; 4] = [
        (&["8BITMIME"], |m| m.recipients[0].address = "jöran@b.example".into(), LocalReason::NeedsSmtpUtf8),
        (&[], |m| m.content = Arc::from(&b"Subject: caf\xc3\xa9\r\n\r\n"[..]), LocalReason::NeedsEightBitMime),
        (&["SIZE 5"], |_| {}, LocalReason::TooBig { limit: 5 }),
        (&["REQUIRETLS", "STARTTLS"], |m| m.params.requiretls = true, LocalReason::RequireTlsUnmet),
    ];
    for (extensions, change, expected) in cases {
        let mut fake = Fake::new(extensions);
        let mut m = message(&["a@b.example"]);
        change(&mut m);
        // verified = false: the TLS is up but not validated, so REQUIRETLS is unmet.
        let run = run(Client::new(config(TlsMode::Opportunistic)), &mut fake, &[m], false);
        let r = &run.results[0].recipients[0];
        assert_eq!((r.disposition, &r.reason), (Disposition::Permanent, &Reason::Local(expected)));
        assert!(!fake.commands.iter().any(|c| c.starts_with("MAIL")), "{expected:?}: {:?}", fake.commands);
        assert_eq!(run.ending, Ending::Quit);
    }
}

#[test]
fn requiretls_smtputf8_and_8bitmime_are_sent_when_met() {
    let mut fake = Fake::new(&["REQUIRETLS", "STARTTLS", "8BITMIME", "SMTPUTF8"]);
    let mut m = message(&["jöran@b.example"]);
    m.params.requiretls = true;
    m.content = Arc::from(&b"Subject: caf\xc3\xa9\r\n\r\n"[..]);
    let run = run(Client::new(config(TlsMode::Required)), &mut fake, &[m], true);
    assert_eq!(run.results[0].recipients[0].disposition, Disposition::Delivered);
    assert!(fake.commands.contains(&"MAIL FROM:<alice@example.org> BODY=8BITMIME SMTPUTF8 REQUIRETLS".to_string()));
}

#[test]
fn an_address_that_would_break_the_command_line_is_never_sent() {
    let mut fake = Fake::new(&[]);
    let run = run(
        Client::new(config(TlsMode::Never)),
        &mut fake,
        &[message(&["a@b.example\r\nRCPT TO:<evil@x>", "ok@b.example"])],
        false,
    );
    assert_eq!(run.results[0].recipients[0].reason, Reason::Local(LocalReason::BadAddress));
    assert_eq!(run.results[0].recipients[1].disposition, Disposition::Delivered);
    assert!(!fake.commands.iter().any(|c| c.contains("evil")));
}

#[test]
fn bdat_sends_the_content_unstuffed_with_its_size() {
    let mut fake = Fake::new(&["CHUNKING", "PIPELINING"]);
    let mut cfg = config(TlsMode::Never);
    cfg.chunking = true;
    let run = run(Client::new(cfg), &mut fake, &[message(&["a@b.example"])], false);
    assert_eq!(run.results[0].recipients[0].disposition, Disposition::Delivered);
    assert!(fake.commands.contains(&"BDAT 35 LAST".to_string()));
    assert_eq!(fake.bodies, [b"Subject: hi\r\n\r\n.leading dot\r\nbody\r\n".to_vec()]);
    assert!(!fake.commands.contains(&"DATA".to_string()));
}

#[test]
fn a_connection_closed_mid_data_leaves_the_recipients_temporary() {
    let mut fake = Fake::new(&["PIPELINING"]);
    fake.close_on = Some(".");
    let run = run(Client::new(config(TlsMode::Never)), &mut fake, &[message(&["a@b.example"])], false);
    let r = &run.results[0].recipients[0];
    assert_eq!(r.disposition, Disposition::Temporary);
    assert!(matches!(&r.reason, Reason::Session(SessionFailure { stage: Stage::DataEnd, cause: Cause::Closed })));
    assert!(matches!(run.ending, Ending::Failed(_)));
}

#[test]
fn a_421_ends_the_session_and_defers_what_is_open() {
    let mut fake = Fake::new(&[]).reply("TO:<c@b.example>", "421 4.3.2 shutting down");
    let run = run(Client::new(config(TlsMode::Never)), &mut fake, &[message(&["a@b.example", "c@b.example"])], false);
    assert!(run.results[0].recipients.iter().all(|r| r.disposition == Disposition::Temporary));
    assert!(!fake.commands.contains(&"QUIT".to_string()), "no QUIT after 421");
}

#[test]
fn a_refusing_greeting_is_answered_with_quit() {
    let mut fake = Fake::new(&[]).reply("GREETING", "554 5.7.1 no service");
    let run = run(Client::new(config(TlsMode::Opportunistic)), &mut fake, &[], false);
    assert!(matches!(&run.ending, Ending::Failed(SessionFailure { stage: Stage::Greeting, .. })));
    assert_eq!(fake.commands, ["QUIT"]);
}

fn credentials() -> Credentials {
    Credentials { username: "relay-user".into(), password: Zeroizing::new("s3cret".into()) }
}

#[test]
fn auth_plain_and_login_only_under_tls() {
    let mut cfg = config(TlsMode::Required);
    cfg.credentials = Some(credentials());
    let mut fake = Fake::new(&["STARTTLS", "AUTH PLAIN LOGIN"]);
    let run = run(Client::new(cfg.clone()), &mut fake, &[message(&["a@b.example"])], true);
    assert_eq!(run.results[0].recipients[0].disposition, Disposition::Delivered);
    assert!(fake.commands.contains(&"AUTH PLAIN AHJlbGF5LXVzZXIAczNjcmV0".to_string()), "{:?}", fake.commands);

    let mut fake = Fake::new(&["STARTTLS", "AUTH LOGIN"]).reply("AUTH", "334 VXNlcm5hbWU6");
    fake.replies.insert("CMVSYXKTDXNLCG==".into(), "334 UGFzc3dvcmQ6"); // base64 user line, upper-cased word
    fake.replies.insert("CZNJCMV0".into(), "235 2.7.0 ok");
    let run = super::tests::run(Client::new(cfg.clone()), &mut fake, &[message(&["a@b.example"])], true);
    assert_eq!(run.results[0].recipients[0].disposition, Disposition::Delivered, "{:?}", fake.commands);
    assert!(fake.commands.contains(&"cmVsYXktdXNlcg==".to_string()));

    // Plaintext: the credentials never leave.
    let mut plain = cfg.clone();
    plain.tls = TlsMode::Opportunistic;
    let mut fake = Fake::new(&["AUTH PLAIN"]);
    let run = super::tests::run(Client::new(plain), &mut fake, &[message(&["a@b.example"])], false);
    assert!(matches!(run.ending, Ending::Failed(SessionFailure { cause: Cause::AuthWithoutTls, .. })));
    assert!(!fake.commands.iter().any(|c| c.starts_with("AUTH")));

    let mut fake = Fake::new(&["STARTTLS", "AUTH PLAIN"]).reply("AUTH", "535 5.7.8 bad credentials");
    let run = super::tests::run(Client::new(cfg), &mut fake, &[message(&["a@b.example"])], true);
    assert!(matches!(run.ending, Ending::Failed(SessionFailure { cause: Cause::AuthRejected(_), .. })));
}

#[test]
fn an_endless_reply_ends_the_session_bounded() {
    let mut client = Client::new(config(TlsMode::Never));
    client.feed(b"220 hi\r\n");
    assert!(matches!(client.next_action(), Action::Read));
    for _ in 0..1000 {
        client.feed(b"250-more and more\r\n");
        match client.next_action() {
            Action::Read => continue,
            Action::Close(Ending::Failed(SessionFailure {
                cause: Cause::BadReply(ReplyError::TooManyLines), ..
            })) => return,
            other => panic!("{other:?}"),
        }
    }
    panic!("never bounded");
}

#[test]
fn two_messages_share_one_connection() {
    let mut fake = Fake::new(&["PIPELINING"]);
    let run = run(
        Client::new(config(TlsMode::Never)),
        &mut fake,
        &[message(&["a@b.example"]), message(&["c@b.example"])],
        false,
    );
    assert_eq!(run.results.len(), 2);
    assert_eq!(fake.bodies.len(), 2);
    assert_eq!(fake.commands.iter().filter(|c| c.starts_with("EHLO")).count(), 1);
    assert!(!fake.commands.contains(&"RSET".to_string()), "no RSET after a completed DATA");
}

#[test]
fn calls_out_of_turn_are_refused_not_panics() {
    let mut client = Client::new(config(TlsMode::Never));
    assert_eq!(client.send_message(&message(&["a@b.example"])), Err(NotReady));
    assert_eq!(client.quit(), Err(NotReady));
    client.tls_established(true); // not awaiting TLS: ignored
    assert_eq!(client.tls(), None);
}
