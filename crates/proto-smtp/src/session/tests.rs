//! The session driven directly: a fake world answers its actions.

use super::*;
use crate::*;

const ALICE: &str = "alice@example.org";
const ALICE_PW: &[u8] = b"plinth-orbit-cactus-9";
/// An alias of alice's.
const SALES: &str = "sales@example.org";

fn alice() -> Principal {
    Principal { account: 1, address: ALICE.into(), aliases: vec![SALES.into()] }
}

pub(super) fn config(implicit_tls: bool) -> Config {
    Config {
        hostname: "mail.example.org".into(),
        role: Role::Submission,
        implicit_tls,
        max_message_size: 1000,
        max_recipients: 3,
        max_line_length: 512,
        max_commands: 100,
        max_auth_failures: 3,
        max_errors: 10,
    }
}

pub(super) struct Harness {
    pub(super) s: Session,
    pub(super) delivered: Vec<Envelope>,
    pub(super) facts: Vec<Fact>,
    pub(super) handshakes: usize,
    pub(super) closed: bool,
    /// Answer for the next delivery.
    pub(super) delivery: DeliveryOutcome,
    /// Port 25: what the client checks find, and what the client sends while they run.
    pub(super) client: ClientOutcome,
    pub(super) early: Vec<u8>,
    /// Port 25: the answer to the sender checks, and the senders asked about.
    pub(super) sender: SenderOutcome,
    pub(super) senders: Vec<String>,
}

impl Harness {
    pub(super) fn new(implicit_tls: bool) -> Harness {
        Harness::with(config(implicit_tls))
    }

    fn with(config: Config) -> Harness {
        let mut h = Harness::unstarted(config);
        let greeting = h.run();
        assert_eq!(greeting, "220 mail.example.org ESMTP Portcullis\r\n");
        h
    }

    /// A session whose greeting (or, on 25, whose client checks) have not run yet.
    pub(super) fn unstarted(config: Config) -> Harness {
        let peer = Peer {
            ip: "127.0.0.2".parse().unwrap(),
            session_id: "S1".into(),
            tls: None,
            channel_binding: None,
            name: None,
        };
        Harness {
            s: Session::with_clock(config, peer, || 1_764_291_600),
            delivered: vec![],
            facts: vec![],
            handshakes: 0,
            closed: false,
            delivery: DeliveryOutcome::Stored,
            client: ClientOutcome::default(),
            early: vec![],
            sender: SenderOutcome::Accept,
            senders: vec![],
        }
    }

    /// Runs actions until the session wants input or closes; returns what it sent.
    pub(super) fn run(&mut self) -> String {
        let mut out = Vec::new();
        loop {
            match self.s.next_action() {
                Action::Read => break,
                Action::Close => {
                    self.closed = true;
                    break;
                }
                Action::StartTls => {
                    self.handshakes += 1;
                    self.s.tls_established("TLSv1.3 TLS13_AES_128_GCM_SHA256".into(), Some(vec![7; 32]));
                }
                Action::ScramLookup { username } => {
                    let keys = if username == ALICE {
                        sasl::ScramKeys::derive_with_salt(std::str::from_utf8(ALICE_PW).unwrap(), b"salt", 4096)
                            .unwrap()
                    } else {
                        sasl::ScramKeys::decoy(&username, b"secret", 4096)
                    };
                    self.s.scram_keys(keys);
                }
                Action::Authenticate { attempt: sasl::Attempt::Scram { username, proof, .. }, .. } => {
                    if proof == sasl::ScramProof::Valid && username == ALICE {
                        self.s.auth_result(AuthOutcome::Success, Some(alice()));
                    } else {
                        self.s.auth_result(AuthOutcome::InvalidCredentials, None);
                    }
                }
                Action::Authenticate { attempt: sasl::Attempt::Password(credentials), .. } => {
                    let ok = credentials.username.eq_ignore_ascii_case(ALICE) && &credentials.password[..] == ALICE_PW;
                    if credentials.username == "storefail@example.org" {
                        self.s.auth_result(AuthOutcome::TemporaryFailure, None);
                    } else if ok {
                        let p = alice();
                        self.s.auth_result(AuthOutcome::Success, Some(p));
                    } else {
                        self.s.auth_result(AuthOutcome::InvalidCredentials, None);
                    }
                }
                Action::LookupRecipient { address } => {
                    let outcome = match address.to_lowercase().as_str() {
                        "alice@example.org" => RecipientOutcome::Local(1),
                        "bob@example.org" => RecipientOutcome::Local(2),
                        "carol@example.org" => RecipientOutcome::Local(3),
                        "dave@example.org" => RecipientOutcome::Local(4),
                        "full@example.org" => RecipientOutcome::MailboxFull,
                        a if a.ends_with("@example.org") => RecipientOutcome::UnknownUser,
                        a if a.ends_with("@remote.test") => RecipientOutcome::Remote,
                        _ => RecipientOutcome::NotLocal,
                    };
                    self.s.recipient_result(outcome);
                }
                Action::Deliver(envelope) => {
                    self.delivered.push(envelope);
                    self.s.delivery_result(self.delivery.clone());
                }
                Action::Report(fact) => self.facts.push(fact),
                Action::CheckClient => {
                    let early = std::mem::take(&mut self.early);
                    self.s.feed(&early);
                    self.s.client_checked(self.client.clone());
                }
                Action::CheckSender { address } => {
                    self.senders.push(address);
                    self.s.sender_result(self.sender.clone());
                }
            }
            out.extend(self.s.take_output());
        }
        out.extend(self.s.take_output());
        String::from_utf8_lossy(&out).into_owned()
    }

    pub(super) fn send(&mut self, input: &str) -> String {
        self.send_bytes(input.as_bytes())
    }

    pub(super) fn send_bytes(&mut self, input: &[u8]) -> String {
        assert!(!self.closed, "sending to a closed session");
        self.s.feed(input);
        self.run()
    }

    /// Implicit TLS, EHLO, AUTH PLAIN as alice.
    fn authenticated() -> Harness {
        let mut h = Harness::new(true);
        h.send("EHLO client.example\r\n");
        assert!(h.send(&format!("AUTH PLAIN {}\r\n", plain(ALICE, ALICE_PW))).starts_with("235 2.7.0"));
        h
    }
}

pub(super) fn plain(user: &str, password: &[u8]) -> String {
    let mut raw = vec![0];
    raw.extend_from_slice(user.as_bytes());
    raw.push(0);
    raw.extend_from_slice(password);
    sasl::encode(&raw)
}

pub(super) fn codes(replies: &str) -> Vec<&str> {
    replies.lines().map(|l| &l[..l.len().min(3)]).collect()
}

#[test]
fn submission_port_accepts_only_the_starttls_set_before_tls() {
    let mut h = Harness::new(false);
    let ehlo = h.send("EHLO client.example\r\n");
    assert_eq!(ehlo, "250-mail.example.org\r\n250-ENHANCEDSTATUSCODES\r\n250 STARTTLS\r\n");
    assert!(!ehlo.contains("AUTH"));
    assert_eq!(h.send("NOOP\r\n"), "250 2.0.0 OK\r\n");
    assert_eq!(h.send("RSET\r\n"), "250 2.0.0 OK\r\n");
    assert_eq!(h.send("HELO client.example\r\n"), "250 mail.example.org\r\n");
    for refused in [
        "AUTH PLAIN AGFsaWNlQGV4YW1wbGUub3JnAHg=",
        "AUTH LOGIN",
        "MAIL FROM:<alice@example.org>",
        "RCPT TO:<bob@example.org>",
        "DATA",
        "BDAT 5 LAST",
        "VRFY alice",
        "EXPN list",
        "HELP",
        "XYZZY",
    ] {
        assert_eq!(h.send(&format!("{refused}\r\n")), "530 5.7.0 Must issue a STARTTLS command first\r\n", "{refused}");
    }
    assert!(h.facts.iter().all(|f| matches!(f, Fact::CommandBeforeStartTls(_))));
    assert_eq!(h.send("STARTTLS\r\n"), "220 2.0.0 Ready to start TLS\r\n");
    assert_eq!(h.handshakes, 1);
    let ehlo = h.send("EHLO client.example\r\n");
    assert!(ehlo.ends_with("250 AUTH PLAIN LOGIN SCRAM-SHA-256 SCRAM-SHA-256-PLUS\r\n"), "{ehlo}");
    assert!(!ehlo.contains("STARTTLS"));
}

#[test]
fn plaintext_pipelined_after_starttls_is_never_executed() {
    let mut h = Harness::new(false);
    h.send("EHLO client.example\r\n");
    let out =
        h.send(&format!("STARTTLS\r\nAUTH PLAIN {}\r\nMAIL FROM:<alice@example.org>\r\n", plain(ALICE, ALICE_PW)));
    assert_eq!(out, "220 2.0.0 Ready to start TLS\r\n", "nothing after STARTTLS may be answered");
    assert!(h.s.principal().is_none());
    // After the handshake the client starts over.
    assert_eq!(h.send("MAIL FROM:<alice@example.org>\r\n"), "503 5.5.1 Send EHLO first\r\n");
}

#[test]
fn ehlo_under_tls_advertises_the_extensions() {
    let mut h = Harness::new(true);
    let ehlo = h.send("EHLO client.example\r\n");
    assert_eq!(
        ehlo,
        "250-mail.example.org\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n\
         250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250-DSN\r\n250-REQUIRETLS\r\n250 AUTH PLAIN LOGIN SCRAM-SHA-256 SCRAM-SHA-256-PLUS\r\n"
    );
    assert_eq!(h.send("STARTTLS\r\n"), "503 5.5.1 TLS is already active\r\n");
}

#[test]
fn auth_plain_login_and_failures() {
    let mut h = Harness::new(true);
    assert_eq!(h.send(&format!("AUTH PLAIN {}\r\n", plain(ALICE, ALICE_PW))), "503 5.5.1 Send EHLO first\r\n");
    h.send("EHLO c\r\n");
    assert_eq!(h.send("AUTH CRAM-MD5\r\n"), "504 5.5.4 Unrecognized authentication mechanism\r\n");
    assert_eq!(h.send("AUTH PLAIN\r\n"), "334 \r\n");
    assert_eq!(h.send("*\r\n"), "501 5.0.0 Authentication cancelled\r\n");
    assert_eq!(
        h.send(&format!("AUTH PLAIN {}\r\n", plain(ALICE, b"wrong"))),
        "535 5.7.8 Authentication credentials invalid (accounts with two-factor authentication use an app password)\r\n"
    );
    assert_eq!(h.send("AUTH LOGIN\r\n"), "334 VXNlcm5hbWU6\r\n");
    assert_eq!(h.send(&format!("{}\r\n", sasl::encode(ALICE.as_bytes()))), "334 UGFzc3dvcmQ6\r\n");
    assert_eq!(h.send(&format!("{}\r\n", sasl::encode(ALICE_PW))), "235 2.7.0 Authentication successful\r\n");
    assert_eq!(h.s.principal().map(|p| p.account), Some(1));
    assert_eq!(h.send("AUTH PLAIN\r\n"), "503 5.5.1 Already authenticated\r\n");
    assert!(!h.send("EHLO c\r\n").contains("AUTH"), "AUTH is not offered once authenticated");
}

#[test]
fn auth_scram_sha_256_round_trip_and_a_wrong_proof() {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut h = Harness::new(true);
    h.send("EHLO c\r\n");
    let first = b64.encode("n,,n=alice@example.org,r=clientnonce");
    let out = h.send(&format!("AUTH SCRAM-SHA-256 {first}\r\n"));
    let server_first = String::from_utf8(b64.decode(out.strip_prefix("334 ").unwrap().trim()).unwrap()).unwrap();
    assert!(server_first.starts_with("r=clientnonce"), "{server_first}");
    // A proof computed with the wrong password is refused like a wrong PLAIN password.
    let nonce = server_first.split(',').next().unwrap().strip_prefix("r=").unwrap();
    let bogus = b64.encode(format!("c=biws,r={nonce},p={}", b64.encode([0u8; 32])));
    assert_eq!(h.send(&format!("{bogus}\r\n")), "535 5.7.8 Authentication credentials invalid (accounts with two-factor authentication use an app password)\r\n");
    assert_eq!(h.send("AUTH SCRAM-SHA-256-PLUS\r\n"), "334 \r\n");
    assert_eq!(h.send(&format!("{}\r\n", b64.encode("n,,n=alice@example.org,r=x"))), "535 5.7.8 Authentication credentials invalid (accounts with two-factor authentication use an app password)\r\n", "PLUS needs binding");
}

#[test]
fn auth_plain_without_initial_response_and_temporary_failure() {
    let mut h = Harness::new(true);
    h.send("EHLO c\r\n");
    assert_eq!(h.send("AUTH PLAIN\r\n"), "334 \r\n");
    assert_eq!(h.send(&format!("{}\r\n", plain(ALICE, ALICE_PW))), "235 2.7.0 Authentication successful\r\n");
    let mut h = Harness::new(true);
    h.send("EHLO c\r\n");
    let out = h.send(&format!("AUTH PLAIN {}\r\n", plain("storefail@example.org", b"x")));
    assert_eq!(out, "454 4.7.0 Temporary authentication failure, try again later\r\n");
}

#[test]
fn too_many_auth_failures_close_the_connection() {
    let mut h = Harness::new(true);
    h.send("EHLO c\r\n");
    assert_eq!(codes(&h.send(&format!("AUTH PLAIN {}\r\n", plain(ALICE, b"1")))), ["535"]);
    assert_eq!(codes(&h.send("AUTH PLAIN !!notbase64!!\r\n")), ["535"], "garbage counts as a failure");
    let out = h.send(&format!("AUTH PLAIN {}\r\n", plain(ALICE, b"3")));
    assert_eq!(out, "421 4.7.0 Too many failed authentication attempts, closing connection\r\n");
    assert!(h.closed);
    assert_eq!(h.facts, vec![Fact::TooManyAuthFailures]);
}

#[test]
fn sender_must_be_the_authenticated_account() {
    let mut h = Harness::new(true);
    h.send("EHLO c\r\n");
    assert_eq!(h.send("MAIL FROM:<alice@example.org>\r\n"), "530 5.7.0 Authentication required\r\n");
    let mut h = Harness::authenticated();
    assert_eq!(
        h.send("MAIL FROM:<bob@example.org>\r\n"),
        "553 5.7.1 <bob@example.org>: Sender address is not yours (authenticated as alice@example.org)\r\n"
    );
    assert_eq!(codes(&h.send("MAIL FROM:<>\r\n")), ["553"]);
    assert_eq!(h.send("MAIL FROM:<Alice@EXAMPLE.org>\r\n"), "250 2.1.0 Sender ok\r\n");
    assert_eq!(h.send("MAIL FROM:<alice@example.org>\r\n"), "503 5.5.1 Sender already specified\r\n");
    // One of the account's aliases is the account's too.
    h.send("RSET\r\n");
    assert_eq!(h.send("MAIL FROM:<Sales@example.org>\r\n"), "250 2.1.0 Sender ok\r\n");
}

#[test]
fn sender_parameters_are_checked() {
    let mut h = Harness::authenticated();
    assert_eq!(
        h.send("MAIL FROM:<alice@example.org> SIZE=1001\r\n"),
        "552 5.3.4 Message size exceeds the maximum of 1000 bytes\r\n"
    );
    assert_eq!(codes(&h.send("MAIL FROM:<alice@example.org> BODY=BINARYMIME\r\n")), ["555"]);
    assert_eq!(codes(&h.send("MAIL FROM:<jörg@example.org>\r\n")), ["553"]);
    assert!(h.send("MAIL FROM:<jörg@example.org>\r\n").contains("5.6.7"));
    assert_eq!(h.send("MAIL FROM:<alice@example.org> SIZE=1000 BODY=8BITMIME SMTPUTF8\r\n"), "250 2.1.0 Sender ok\r\n");
}

#[test]
fn recipients_local_unknown_remote_and_too_many() {
    let mut h = Harness::authenticated();
    assert_eq!(h.send("RCPT TO:<bob@example.org>\r\n"), "503 5.5.1 Need MAIL command first\r\n");
    h.send("MAIL FROM:<alice@example.org>\r\n");
    assert_eq!(h.send("RCPT TO:<bob@example.org>\r\n"), "250 2.1.5 Recipient ok\r\n");
    assert_eq!(
        h.send("RCPT TO:<nobody@example.org>\r\n"),
        "550 5.1.1 <nobody@example.org>: Recipient address rejected: no such user here\r\n"
    );
    assert_eq!(
        h.send("RCPT TO:<someone@elsewhere.net>\r\n"),
        "550 5.7.1 <someone@elsewhere.net>: Relaying is not enabled on this server; only local recipients are accepted\r\n"
    );
    assert_eq!(h.send("RCPT TO:<full@example.org>\r\n"), "552 5.2.2 <full@example.org>: Mailbox full\r\n");
    assert_eq!(codes(&h.send("RCPT TO:<carol@example.org>\r\nRCPT TO:<dave@example.org>\r\n")), ["250", "250"]);
    assert_eq!(h.send("RCPT TO:<alice@example.org>\r\n"), "452 4.5.3 Too many recipients\r\n");
    assert_eq!(codes(&h.send("RCPT TO:<bad address>\r\n")), ["553"]);
}

#[test]
fn an_authenticated_submitter_may_send_to_other_domains() {
    let mut h = Harness::authenticated();
    h.send("MAIL FROM:<alice@example.org>\r\n");
    assert_eq!(h.send("RCPT TO:<x@remote.test>\r\n"), "250 2.1.5 Recipient ok\r\n");
    assert_eq!(
        h.send("RCPT TO:<X@remote.test>\r\nRCPT TO:<x@remote.test>\r\n"),
        "250 2.1.5 Recipient ok\r\n".repeat(2)
    );
    h.send("RCPT TO:<bob@example.org>\r\n");
    h.send("DATA\r\n");
    assert_eq!(
        h.send("Bcc: x@remote.test\r\nSubject: out\r\n\r\nbody\r\n.\r\n"),
        "250 2.0.0 Message stored as S1.1\r\n"
    );
    let m = &h.delivered[0];
    assert_eq!(m.recipients, vec![("bob@example.org".to_string(), 2)]);
    let remote: Vec<&str> = m.remote_recipients.iter().map(|r| r.address.as_str()).collect();
    assert_eq!(remote, ["x@remote.test", "X@remote.test"], "once each, as given");
    let text = String::from_utf8(m.data.clone()).unwrap();
    assert!(!text.contains("\r\nfor <"), "several recipients: none is named");
    assert!(!text.contains("Bcc:"), "{text}");

    // Only remote recipients is a transaction too.
    h.send("MAIL FROM:<alice@example.org>\r\nRCPT TO:<y@remote.test>\r\n");
    assert_eq!(h.send("DATA\r\n"), "354 End data with <CR><LF>.<CR><LF>\r\n");
}

#[test]
fn data_is_unstuffed_stamped_and_delivered() {
    let mut h = Harness::authenticated();
    assert_eq!(h.send("DATA\r\n"), "503 5.5.1 Need MAIL command first\r\n");
    h.send("MAIL FROM:<alice@example.org>\r\n");
    assert_eq!(h.send("DATA\r\n"), "554 5.5.1 No valid recipients\r\n");
    h.send("RCPT TO:<bob@example.org>\r\n");
    assert_eq!(h.send("DATA\r\n"), "354 End data with <CR><LF>.<CR><LF>\r\n");
    assert_eq!(h.send("Subject: hi\r\n\r\n..leading dot\r\n"), "");
    assert_eq!(h.send("end\r\n.\r\n"), "250 2.0.0 Message stored as S1.1\r\n");
    let m = &h.delivered[0];
    assert_eq!(m.from, "alice@example.org");
    assert_eq!(m.recipients, vec![("bob@example.org".to_string(), 2)]);
    let text = String::from_utf8(m.data.clone()).unwrap();
    assert!(text.starts_with("Received: from client.example ([127.0.0.2])\r\n\tby mail.example.org (Portcullis) with ESMTPSA id S1.1\r\n\t(authenticated as alice@example.org)\r\n\tfor <bob@example.org>;"), "{text}");
    assert!(text.contains("\r\nMessage-ID: <S1.1@mail.example.org>\r\n"));
    assert!(text.ends_with("Subject: hi\r\n\r\n.leading dot\r\nend\r\n"), "{text}");
    // The transaction is over; a new one starts clean.
    assert_eq!(h.send("DATA\r\n"), "503 5.5.1 Need MAIL command first\r\n");
}

#[test]
fn a_body_starting_with_a_dot_and_an_empty_body() {
    let mut h = Harness::authenticated();
    let out = h.send("MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n..x\r\n.\r\n");
    assert_eq!(codes(&out), ["250", "250", "354", "250"], "{out}");
    assert!(h.delivered[0].data.ends_with(b"\r\n.x\r\n"));
    let out = h.send("MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n.\r\n");
    assert_eq!(codes(&out), ["250", "250", "354", "250"], "{out}");
    assert_eq!(h.delivered.len(), 2);
}

#[test]
fn pipelined_transaction_in_one_packet_answers_in_order() {
    let mut h = Harness::authenticated();
    let out = h.send(
        "MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\nRCPT TO:<nobody@example.org>\r\n\
         DATA\r\nSubject: x\r\n\r\nhello\r\n.\r\nNOOP\r\nQUIT\r\n",
    );
    assert_eq!(codes(&out), ["250", "250", "550", "354", "250", "250", "221"], "{out}");
    assert!(h.closed);
    assert_eq!(h.delivered[0].recipients.len(), 1);
}

#[test]
fn an_oversize_message_is_refused_without_buffering_it() {
    let mut h = Harness::authenticated();
    h.send("MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n");
    let line = format!("{}\r\n", "x".repeat(98));
    for _ in 0..100 {
        assert_eq!(h.send(&line), "");
    }
    assert!(h.s.tx.body.len() <= 1000 + line.len(), "kept {} bytes", h.s.tx.body.len());
    assert_eq!(h.send(".\r\n"), "552 5.3.4 Message exceeds the maximum size of 1000 bytes\r\n");
    assert!(h.delivered.is_empty());
    assert_eq!(h.facts, vec![Fact::MessageTooBig]);
    assert_eq!(h.send("NOOP\r\n"), "250 2.0.0 OK\r\n");
}

#[test]
fn bdat_chunks() {
    let mut h = Harness::authenticated();
    assert_eq!(h.send("BDAT 5\r\nhello"), "503 5.5.1 Need MAIL command first\r\n", "the chunk is read, then refused");
    assert_eq!(h.send("NOOP\r\n"), "250 2.0.0 OK\r\n");
    h.send("MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\n");
    assert_eq!(h.send("BDAT 14\r\nSubject: x\r\n\r"), "");
    assert_eq!(h.send("\n"), "250 2.0.0 14 octets received\r\n");
    assert_eq!(h.send("DATA\r\n"), "503 5.5.1 DATA cannot follow BDAT\r\n");
    assert_eq!(h.send("BDAT 7 LAST\r\n.body\r\n"), "250 2.0.0 Message stored as S1.1\r\n");
    assert!(h.delivered[0].data.ends_with(b"Subject: x\r\n\r\n.body\r\n"), "no unstuffing in BDAT");

    h.send("MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\n");
    let out = h.send(&format!("BDAT 1001 LAST\r\n{}", "y".repeat(1001)));
    assert_eq!(out, "552 5.3.4 Message exceeds the maximum size of 1000 bytes\r\n");
    assert_eq!(h.send("BDAT 0 LAST\r\n"), "503 5.5.1 Need MAIL command first\r\n");
}

#[test]
fn delivery_failures_are_reported_with_their_codes() {
    let mut h = Harness::authenticated();
    h.delivery = DeliveryOutcome::MailboxFull("bob@example.org".into());
    let out = h.send("MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\nx\r\n.\r\n");
    assert!(out.ends_with("552 5.2.2 <bob@example.org>: Mailbox full, message not stored\r\n"), "{out}");
    h.delivery = DeliveryOutcome::SendingLimit;
    let out = h.send("MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\nx\r\n.\r\n");
    assert!(out.ends_with("451 4.7.1 Sending limit reached for this account; try again later\r\n"), "{out}");
    h.delivery = DeliveryOutcome::TemporaryFailure;
    let out = h.send("MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\nx\r\n.\r\n");
    assert!(out.ends_with("451 4.3.0 Temporary storage failure, message not stored; try again later\r\n"), "{out}");
}

#[test]
fn long_lines_garbage_and_limits() {
    let mut h = Harness::authenticated();
    assert_eq!(h.send(&format!("NOOP {}\r\n", "a".repeat(600))), "500 5.5.2 Line too long\r\n");
    assert_eq!(h.send("NOOP\r\n"), "250 2.0.0 OK\r\n");
    assert_eq!(codes(&h.send_bytes(b"\x00\xff\xfe garbage\r\n")), ["500"]);
    assert_eq!(codes(&h.send_bytes(b"MAIL FROM:<\xff\xfe@example.org>\r\n")), ["553"]);
    assert_eq!(codes(&h.send("\r\n")), ["500"]);
    let mut h = Harness::authenticated();
    let mut out = String::new();
    for _ in 0..11 {
        out = h.send("BOGUS\r\n");
    }
    assert_eq!(out, "500 5.5.2 Command unrecognized\r\n421 4.7.0 Too many errors, closing connection\r\n");
    assert!(h.closed);
    assert_eq!(h.facts, vec![Fact::TooManyErrors]);
}

#[test]
fn transactions_do_not_use_up_the_command_budget() {
    let mut h = Harness::authenticated();
    // max_commands is 100: 60 messages take 240 transaction commands.
    for _ in 0..60 {
        let out = h.send("MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\nx\r\n.\r\n");
        assert_eq!(codes(&out), ["250", "250", "354", "250"], "{out}");
    }
    assert_eq!(h.delivered.len(), 60);
    assert!(!h.closed);
}

#[test]
fn command_count_is_bounded() {
    let mut h = Harness::new(true);
    let out = h.send(&"NOOP\r\n".repeat(101));
    assert!(out.ends_with("250 2.0.0 OK\r\n421 4.7.0 Too many commands, closing connection\r\n"));
    assert_eq!(codes(&out).len(), 101);
    assert!(h.closed);
}

#[test]
fn rcpt_repeated_without_end_uses_up_the_command_budget() {
    let mut h = Harness::authenticated();
    h.send("MAIL FROM:<alice@example.org>\r\n");
    // max_recipients 3 RCPTs are free, as for any message; the next 100 (max_commands, of
    // which EHLO and AUTH took 2) are counted, then the connection goes.
    let out = h.send(&"RCPT TO:<bob@example.org>\r\n".repeat(200));
    assert!(out.ends_with("421 4.7.0 Too many commands, closing connection\r\n"), "{out}");
    assert_eq!(codes(&out).len(), 3 + 98 + 1);
    assert!(h.closed);
    assert_eq!(h.facts, vec![Fact::TooManyCommands]);
}

#[test]
fn mid_command_only_inside_a_command_line() {
    let mut h = Harness::authenticated();
    assert!(!h.s.mid_command());
    h.send("NO");
    assert!(h.s.mid_command());
    h.send("OP\r\nMAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n");
    assert!(!h.s.mid_command());
    h.send("Subject: a message is not a command line");
    assert!(!h.s.mid_command(), "message data is bounded between reads only");
    h.send("\r\n.\r\nAUTH PLAIN\r\n");
    h.send("AGFs");
    assert!(h.s.mid_command(), "a SASL response line is");
}

#[test]
fn data_far_past_the_size_limit_is_not_read_to_its_end() {
    // max_message_size is 1000: DATA is read (and skipped) up to 1000 + 1 MiB, then cut.
    let mut h = Harness::authenticated();
    h.send("MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n");
    assert_eq!(h.send(&"y".repeat(1000 + (1 << 20) - 100)), "");
    assert!(!h.closed);
    let out = h.send(&"y".repeat(200));
    assert!(out.starts_with("552 5.3.4") && out.ends_with("421 4.7.0 Too much data, closing connection\r\n"), "{out}");
    assert!(h.closed);
    assert_eq!(h.facts, vec![Fact::MessageTooBig]);

    // A huge BDAT chunk: cut after 17 pieces of 64 KiB.
    let chunk = "z".repeat(64 * 1024);
    let mut h = Harness::authenticated();
    h.send("MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\nBDAT 1000000000\r\n");
    let mut pieces = 0;
    let mut out = String::new();
    while !h.closed && pieces < 40 {
        out += &h.send(&chunk);
        pieces += 1;
    }
    assert!(out.ends_with("421 4.7.0 Too much data, closing connection\r\n"), "{out}");
    assert_eq!(pieces, 17);

    // BDAT chunks without end: the message is too big after the chunk that crosses the limit,
    // and every chunk after it is refused (no transaction) and counted as an error.
    let mut h = Harness::authenticated();
    h.send("MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\n");
    let mut pieces = 0;
    let mut out = String::new();
    while !h.closed && pieces < 40 {
        out += &h.send(&format!("BDAT {}\r\n{chunk}", chunk.len()));
        pieces += 1;
    }
    assert!(out.contains("552 5.3.4") && out.ends_with("421 4.7.0 Too many errors, closing connection\r\n"), "{out}");
}

#[test]
fn a_refused_bdat_chunk_is_part_of_its_command() {
    // Not logged in: no transaction, the chunk is only skipped, within a command's time.
    let mut h = Harness::new(true);
    h.send("EHLO client.example\r\nBDAT 100\r\n");
    assert!(h.s.mid_command() && !h.s.uploading());
    let out = h.send(&"x".repeat(100));
    assert!(out.starts_with("503 "), "{out}");
    assert!(!h.s.mid_command() && !h.s.uploading());
}

#[test]
fn uploading_covers_the_message_data_and_a_bdat_transaction() {
    let mut h = Harness::authenticated();
    h.send("MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\n");
    assert!(!h.s.uploading());
    h.send("DATA\r\nSubject: x\r\n");
    assert!(h.s.uploading() && !h.s.mid_command());
    // Past max_message_size (1000): still reading, to the end of the data.
    h.send(&"y".repeat(1200));
    assert!(h.s.uploading());
    assert!(h.send("\r\n.\r\n").starts_with("552 "));
    assert!(!h.s.uploading());

    h.send("MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\nBDAT 10\r\nhello");
    assert!(h.s.uploading() && !h.s.mid_command());
    assert!(h.send(" you\r\n").starts_with("250 "));
    assert!(h.s.uploading(), "between the chunks of one message");
    h.send("BDAT 3 LAST\r\nabc");
    assert!(!h.s.uploading());
}

#[test]
fn http_on_the_mail_port_is_dropped() {
    let mut h = Harness::new(true);
    assert_eq!(h.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), "");
    assert!(h.closed);
    assert_eq!(h.facts, vec![Fact::HttpRequest]);
}

#[test]
fn truncated_input_timeout_and_shutdown() {
    let mut h = Harness::authenticated();
    assert_eq!(h.send("MAIL FROM:<alice@exa"), "");
    h.s.peer_closed();
    assert_eq!(h.run(), "");
    assert!(h.closed);

    let mut h = Harness::authenticated();
    h.s.timed_out();
    assert_eq!(h.run(), "421 4.4.2 mail.example.org Error: timeout exceeded\r\n");
    assert!(h.closed);

    let mut h = Harness::new(false);
    h.s.shutting_down();
    assert!(h.run().starts_with("421 4.3.2"));
}

#[test]
fn input_split_at_every_byte_gives_the_same_answers() {
    let script = format!(
        "EHLO c\r\nAUTH PLAIN {}\r\nMAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\nSubject: s\r\n\r\n..x\r\n.\r\nBDAT 3\r\nabcQUIT\r\n",
        plain(ALICE, ALICE_PW)
    );
    let mut whole = Harness::new(true);
    let expected = whole.send(&script);
    let mut bytewise = Harness::new(true);
    let mut got = String::new();
    for b in script.as_bytes() {
        if bytewise.closed {
            break;
        }
        got.push_str(&bytewise.send_bytes(&[*b]));
    }
    assert_eq!(got, expected);
    assert_eq!(bytewise.delivered[0].data, whole.delivered[0].data);
}

#[test]
fn random_input_never_panics_or_grows_without_bound() {
    // A deterministic xorshift stream of SMTP-ish tokens and noise.
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let tokens: &[&[u8]] = &[
        b"EHLO x\r\n",
        b"STARTTLS\r\n",
        b"AUTH PLAIN\r\n",
        b"AUTH LOGIN\r\n",
        b"*\r\n",
        b"MAIL FROM:<alice@example.org>\r\n",
        b"RCPT TO:<bob@example.org>\r\n",
        b"DATA\r\n",
        b".\r\n",
        b"BDAT 4\r\n",
        b"BDAT 2 LAST\r\n",
        b"\r\n",
        b"\x00",
        b"\xff",
        b"RSET\r\n",
        b"..",
        b"\n",
        b"\r",
    ];
    for round in 0..300 {
        let mut h = Harness::new(round % 2 == 0);
        for _ in 0..200 {
            if h.closed {
                break;
            }
            let mut chunk = Vec::new();
            for _ in 0..(next() % 6) {
                if next() % 4 == 0 {
                    chunk.extend((0..next() % 40).map(|_| next() as u8));
                } else {
                    chunk.extend_from_slice(tokens[(next() % tokens.len() as u64) as usize]);
                }
            }
            h.send_bytes(&chunk);
            assert!(h.s.input.buffered().len() <= 512 + chunk.len());
            assert!(h.s.tx.body.len() <= 1000 + chunk.len());
        }
    }
}

#[test]
fn the_header_from_must_be_the_account_or_an_alias() {
    let mut h = Harness::authenticated();
    h.send("MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n");
    assert_eq!(
        h.send("From: Bob <bob@example.org>\r\nSubject: x\r\n\r\nbody\r\n.\r\n"),
        "550 5.7.1 From: <bob@example.org> is not an address of the account alice@example.org; send as the account or one of its aliases\r\n"
    );
    assert!(h.delivered.is_empty(), "stored for nobody");
    assert!(
        matches!(&h.facts[..], [Fact::ForeignAuthor { field: "From", address, recipients: 1, .. }] if address == "bob@example.org")
    );
    // The transaction is over; BDAT carries the same check, Sender: too.
    assert_eq!(h.send("DATA\r\n"), "503 5.5.1 Need MAIL command first\r\n");
    h.send("MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\n");
    let message = "From: alice@example.org\r\nSender: x@remote.test\r\n\r\nhi\r\n";
    let reply = h.send(&format!("BDAT {} LAST\r\n{message}", message.len()));
    assert!(reply.starts_with("550 5.7.1 Sender: <x@remote.test> is not an address"), "{reply}");
    // The account's own address and its alias pass.
    h.send("MAIL FROM:<sales@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n");
    assert_eq!(
        h.send("From: Sales <SALES@example.org>\r\nSender: alice@example.org\r\n\r\nhi\r\n.\r\n"),
        "250 2.0.0 Message stored as S1.3\r\n"
    );
    assert_eq!(h.delivered.len(), 1);
}

#[test]
fn port_25_does_not_bind_the_header_from() {
    let mut h = Harness::unstarted(Config { role: Role::Mx, ..config(false) });
    h.run();
    h.send("EHLO mx.remote.test\r\n");
    h.send("MAIL FROM:<x@remote.test>\r\n");
    h.send("RCPT TO:<bob@example.org>\r\n");
    h.send("DATA\r\n");
    assert!(h.send("From: someone@else.test\r\n\r\nhi\r\n.\r\n").starts_with("250 "));
}

#[test]
fn dsn_is_offered_on_submission_and_its_parameters_reach_the_envelope() {
    let mut h = Harness::authenticated();
    assert!(h.send("EHLO again\r\n").ends_with("250-DSN\r\n250 REQUIRETLS\r\n"), "logged in: no AUTH after it");
    assert_eq!(
        h.send("MAIL FROM:<alice@example.org> RET=FULL RET=HDRS\r\n"),
        "501 5.5.4 RET must be FULL or HDRS, not both\r\n"
    );
    assert_eq!(h.send("MAIL FROM:<alice@example.org> RET=SOME\r\n"), "501 5.5.4 Invalid value for parameter RET\r\n");
    assert_eq!(h.send("MAIL FROM:<alice@example.org> RET=HDRS ENVID=id+2B1\r\n"), "250 2.1.0 Sender ok\r\n");
    assert_eq!(
        h.send("RCPT TO:<x@remote.test> NOTIFY=NEVER,SUCCESS\r\n"),
        "501 5.5.4 NOTIFY=NEVER cannot be combined with SUCCESS, FAILURE or DELAY\r\n"
    );
    assert_eq!(
        h.send("RCPT TO:<x@remote.test> NOTIFY=SUCCESS ORCPT=rfc822;first+2Bx@remote.test\r\n"),
        "250 2.1.5 Recipient ok\r\n"
    );
    assert_eq!(h.send("RCPT TO:<y@remote.test> NOTIFY=NEVER\r\n"), "250 2.1.5 Recipient ok\r\n");
    assert_eq!(
        codes(&h.send("RCPT TO:<bob@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bobby@example.org\r\n")),
        ["250"]
    );
    h.send("DATA\r\nSubject: dsn\r\n\r\nhi\r\n.\r\n");
    let m = &h.delivered[0];
    assert_eq!((m.ret, m.envid.as_deref()), (Some("HDRS"), Some("id+1")));
    assert_eq!(m.notify_delivered, [("bob@example.org".to_string(), Some("bobby@example.org".to_string()))]);
    let dsn: Vec<_> =
        m.remote_recipients.iter().map(|r| (r.address.as_str(), r.notify.as_deref(), r.orcpt.as_deref())).collect();
    assert_eq!(
        dsn,
        [("x@remote.test", Some("SUCCESS"), Some("first+x@remote.test")), ("y@remote.test", Some("NEVER"), None)]
    );
}
