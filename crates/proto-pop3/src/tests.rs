use super::*;

const PASSWORD: &[u8] = b"plinth-orbit-cactus-9";

struct Harness {
    s: Session,
    messages: Vec<(u32, Vec<u8>)>,
    updates: Vec<Vec<u32>>,
    facts: Vec<Fact>,
    closed: bool,
    locked: bool,
}

impl Harness {
    fn new() -> Harness {
        let config = Config {
            hostname: "mail.example.org".into(),
            max_line_length: 512,
            max_commands: 50,
            max_auth_failures: 3,
            max_errors: 10,
        };
        let mut h = Harness {
            s: Session::new(config, None),
            messages: vec![
                (3, b"Subject: one\r\n\r\nfirst\r\n.dot line\r\n".to_vec()),
                (7, b"Subject: two\r\nX: y\r\n\r\nl1\r\nl2\r\nl3\r\n".to_vec()),
                (9, b"Subject: no final newline\r\n\r\nend".to_vec()),
            ],
            updates: vec![],
            facts: vec![],
            closed: false,
            locked: false,
        };
        assert_eq!(h.run(), "+OK mail.example.org POP3 server ready\r\n");
        h
    }

    fn run(&mut self) -> String {
        let mut out = Vec::new();
        loop {
            match self.s.next_action() {
                Action::Read => break,
                Action::Close => {
                    self.closed = true;
                    break;
                }
                Action::ScramLookup { username } => self.s.scram_keys(sasl::ScramKeys::decoy(&username, b"x", 4096)),
                Action::Authenticate { attempt: sasl::Attempt::Scram { .. }, .. } => {
                    self.s.auth_result(AuthOutcome::InvalidCredentials)
                }
                Action::Authenticate { attempt: sasl::Attempt::Password(credentials), .. } => {
                    let outcome =
                        if credentials.username == "alice@example.org" && &credentials.password[..] == PASSWORD {
                            AuthOutcome::Success(1)
                        } else if credentials.username == "tempfail@example.org" {
                            AuthOutcome::TemporaryFailure
                        } else {
                            AuthOutcome::InvalidCredentials
                        };
                    self.s.auth_result(outcome);
                }
                Action::OpenMaildrop { account } => {
                    assert_eq!(account, 1);
                    let result = if self.locked {
                        Err(OpenError::InUse)
                    } else {
                        Ok(Maildrop {
                            uidvalidity: 1700,
                            messages: self
                                .messages
                                .iter()
                                .map(|(uid, m)| Entry { uid: *uid, size: m.len() as u64 })
                                .collect(),
                        })
                    };
                    self.s.maildrop_opened(result);
                }
                Action::Fetch { uid } => {
                    let raw = self.messages.iter().find(|(u, _)| *u == uid).map(|(_, m)| m.clone());
                    self.s.message_fetched(raw);
                }
                Action::Update { delete } => {
                    self.updates.push(delete);
                    self.s.update_result(true);
                }
                Action::Report(f) => self.facts.push(f),
            }
            out.extend(self.s.take_output());
        }
        out.extend(self.s.take_output());
        String::from_utf8_lossy(&out).into_owned()
    }

    fn send(&mut self, input: &str) -> String {
        assert!(!self.closed);
        self.s.feed(input.as_bytes());
        self.run()
    }

    fn logged_in() -> Harness {
        let mut h = Harness::new();
        h.send("USER alice@example.org\r\n");
        let out = h.send(&format!("PASS {}\r\n", String::from_utf8_lossy(PASSWORD)));
        assert!(out.starts_with("+OK Logged in, 3 messages"), "{out}");
        h
    }
}

fn plain(user: &str, password: &[u8]) -> String {
    let mut raw = format!("\0{user}\0").into_bytes();
    raw.extend_from_slice(password);
    sasl::encode(&raw)
}

#[test]
fn capa_before_and_after_login() {
    let mut h = Harness::new();
    let capa = h.send("CAPA\r\n");
    assert_eq!(
        capa,
        "+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nIMPLEMENTATION Portcullis\r\nUSER\r\nSASL PLAIN SCRAM-SHA-256 SCRAM-SHA-256-PLUS\r\n.\r\n"
    );
    let mut h = Harness::logged_in();
    assert!(!h.send("CAPA\r\n").contains("SASL"));
}

#[test]
fn user_pass_and_failures() {
    let mut h = Harness::new();
    assert_eq!(h.send("STAT\r\n"), "-ERR Authenticate first\r\n");
    assert_eq!(h.send("PASS x\r\n"), "-ERR Send USER first\r\n");
    h.send("USER alice@example.org\r\n");
    assert_eq!(
        h.send("PASS wrong\r\n"),
        "-ERR [AUTH] Authentication failed (accounts with two-factor authentication use an app password)\r\n"
    );
    h.send("USER tempfail@example.org\r\n");
    assert_eq!(h.send("PASS x\r\n"), "-ERR [SYS/TEMP] Temporary authentication failure, try again later\r\n");
    h.send("USER alice@example.org\r\n");
    assert_eq!(
        h.send("PASS wrong again\r\n"),
        "-ERR [AUTH] Authentication failed (accounts with two-factor authentication use an app password)\r\n"
    );
    h.send("USER alice@example.org\r\n");
    assert_eq!(h.send("PASS third\r\n"), "-ERR [AUTH] Too many authentication failures, closing connection\r\n");
    assert!(h.closed);
    assert_eq!(h.facts, vec![Fact::TooManyAuthFailures]);
}

#[test]
fn auth_plain_with_and_without_initial_response() {
    let mut h = Harness::new();
    assert_eq!(h.send("AUTH\r\n"), "+OK Mechanisms follow\r\nPLAIN\r\nSCRAM-SHA-256\r\nSCRAM-SHA-256-PLUS\r\n.\r\n");
    assert_eq!(h.send("AUTH LOGIN\r\n"), "-ERR Unsupported authentication mechanism\r\n");
    let first = sasl::encode(b"n,,n=alice@example.org,r=abc");
    assert!(h.send(&format!("AUTH SCRAM-SHA-256 {first}\r\n")).starts_with("+ "), "server-first");
    assert_eq!(h.send("*\r\n"), "-ERR Authentication cancelled\r\n");
    assert!(h.send(&format!("AUTH PLAIN {}\r\n", plain("alice@example.org", PASSWORD))).starts_with("+OK Logged in"));

    let mut h = Harness::new();
    assert_eq!(h.send("AUTH PLAIN\r\n"), "+ \r\n");
    assert_eq!(h.send("*\r\n"), "-ERR Authentication cancelled\r\n");
    assert_eq!(h.send("AUTH PLAIN\r\n"), "+ \r\n");
    assert!(h.send(&format!("{}\r\n", plain("alice@example.org", PASSWORD))).starts_with("+OK Logged in"));
    assert_eq!(h.send("AUTH PLAIN\r\n"), "-ERR Already authenticated\r\n");
}

#[test]
fn a_locked_maildrop_is_in_use() {
    let mut h = Harness::new();
    h.locked = true;
    h.send("USER alice@example.org\r\n");
    let out = h.send(&format!("PASS {}\r\n", String::from_utf8_lossy(PASSWORD)));
    assert_eq!(out, "-ERR [IN-USE] The maildrop is open in another session\r\n");
    assert_eq!(h.send("STAT\r\n"), "-ERR Authenticate first\r\n");
}

#[test]
fn stat_list_uidl() {
    let mut h = Harness::logged_in();
    let sizes: Vec<usize> = h.messages.iter().map(|(_, m)| m.len()).collect();
    let total: usize = sizes.iter().sum();
    assert_eq!(h.send("STAT\r\n"), format!("+OK 3 {total}\r\n"));
    assert_eq!(
        h.send("LIST\r\n"),
        format!("+OK Listing follows\r\n1 {}\r\n2 {}\r\n3 {}\r\n.\r\n", sizes[0], sizes[1], sizes[2])
    );
    assert_eq!(h.send("LIST 2\r\n"), format!("+OK 2 {}\r\n", sizes[1]));
    assert_eq!(h.send("UIDL\r\n"), "+OK Listing follows\r\n1 1700.3\r\n2 1700.7\r\n3 1700.9\r\n.\r\n");
    assert_eq!(h.send("UIDL 3\r\n"), "+OK 3 1700.9\r\n");
    for bad in ["LIST 0", "LIST 4", "LIST x", "LIST 1 2", "UIDL -1"] {
        assert!(h.send(&format!("{bad}\r\n")).starts_with("-ERR"), "{bad}");
    }
}

#[test]
fn retr_dot_stuffs_and_terminates() {
    let mut h = Harness::logged_in();
    let (one, three) = (h.messages[0].1.len(), h.messages[2].1.len());
    assert_eq!(h.send("RETR 1\r\n"), format!("+OK {one} octets\r\nSubject: one\r\n\r\nfirst\r\n..dot line\r\n.\r\n"));
    assert_eq!(h.send("RETR 3\r\n"), format!("+OK {three} octets\r\nSubject: no final newline\r\n\r\nend\r\n.\r\n"));
    assert_eq!(h.send("RETR 9\r\n"), "-ERR No such message\r\n");
}

#[test]
fn top_sends_headers_and_n_lines() {
    let mut h = Harness::logged_in();
    assert_eq!(h.send("TOP 2 0\r\n"), "+OK Top of message follows\r\nSubject: two\r\nX: y\r\n\r\n.\r\n");
    assert_eq!(h.send("TOP 2 2\r\n"), "+OK Top of message follows\r\nSubject: two\r\nX: y\r\n\r\nl1\r\nl2\r\n.\r\n");
    assert_eq!(
        h.send("TOP 2 99\r\n"),
        "+OK Top of message follows\r\nSubject: two\r\nX: y\r\n\r\nl1\r\nl2\r\nl3\r\n.\r\n"
    );
    assert_eq!(h.send("TOP 2\r\n"), "-ERR Usage: TOP message lines\r\n");
}

#[test]
fn deletions_apply_only_at_quit() {
    let mut h = Harness::logged_in();
    assert_eq!(h.send("DELE 2\r\n"), "+OK Message 2 marked for deletion\r\n");
    assert_eq!(h.send("DELE 2\r\n"), "-ERR Message is marked for deletion\r\n");
    assert_eq!(h.send("RETR 2\r\n"), "-ERR Message is marked for deletion\r\n");
    assert!(h.send("STAT\r\n").starts_with("+OK 2 "));
    assert!(h.send("RSET\r\n").starts_with("+OK 3 messages"));
    h.send("DELE 1\r\nDELE 3\r\n");
    assert!(h.updates.is_empty(), "nothing is removed before QUIT");
    assert_eq!(h.send("QUIT\r\n"), "+OK Bye, 2 messages deleted\r\n");
    assert_eq!(h.updates, vec![vec![3, 9]]);
    assert!(h.closed);
}

#[test]
fn timeout_deletes_nothing_and_says_nothing() {
    let mut h = Harness::logged_in();
    h.send("DELE 1\r\n");
    h.s.timed_out();
    assert_eq!(h.run(), "");
    assert!(h.closed);
    assert!(h.updates.is_empty());
}

#[test]
fn quit_before_login() {
    let mut h = Harness::new();
    assert_eq!(h.send("QUIT\r\n"), "+OK Bye\r\n");
    assert!(h.closed);
    assert!(h.updates.is_empty());
}

#[test]
fn garbage_long_lines_and_limits() {
    let mut h = Harness::logged_in();
    assert_eq!(h.send(&format!("LIST {}\r\n", "9".repeat(600))), "-ERR Line too long\r\n");
    assert_eq!(h.send("\u{0}\u{1}\r\n"), "-ERR Unknown command\r\n");
    assert_eq!(h.send("NOOP\r\n"), "+OK\r\n");
    assert_eq!(h.send("STLS\r\n"), "-ERR Already under TLS\r\n");
    let mut last = String::new();
    while !h.closed {
        last = h.send("XYZZY\r\n");
    }
    assert!(last.ends_with("-ERR Too many errors, closing connection\r\n"), "{last}");
    assert!(h.closed);

    let mut h = Harness::new();
    let out = h.send(&"CAPA\r\n".repeat(51));
    assert!(out.ends_with("-ERR Too many commands, closing connection\r\n"));
    assert!(h.closed);
}

#[test]
fn pipelined_commands_answer_in_order() {
    let mut h = Harness::new();
    let out = h.send(&format!(
        "USER alice@example.org\r\nPASS {}\r\nSTAT\r\nUIDL 1\r\nQUIT\r\n",
        String::from_utf8_lossy(PASSWORD)
    ));
    let firsts: Vec<&str> = out.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(firsts, ["+OK", "+OK", "+OK", "+OK", "+OK"], "{out}");
    assert!(h.closed);
}

#[test]
fn random_input_never_panics() {
    let mut seed: u64 = 0x2545f4914f6cdd1d;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let tokens: &[&str] = &[
        "USER alice@example.org\r\n",
        "PASS plinth-orbit-cactus-9\r\n",
        "AUTH PLAIN\r\n",
        "STAT\r\n",
        "LIST\r\n",
        "RETR 1\r\n",
        "TOP 2 1\r\n",
        "DELE 1\r\n",
        "RSET\r\n",
        "UIDL 9\r\n",
        "*\r\n",
        "\r\n",
        "\n",
        "CAPA\r\n",
    ];
    for _ in 0..300 {
        let mut h = Harness::new();
        for _ in 0..100 {
            if h.closed {
                break;
            }
            let mut chunk = Vec::new();
            for _ in 0..(next() % 5) {
                if next() % 4 == 0 {
                    chunk.extend((0..next() % 30).map(|_| next() as u8));
                } else {
                    chunk.extend_from_slice(tokens[(next() % tokens.len() as u64) as usize].as_bytes());
                }
            }
            h.s.feed(&chunk);
            h.run();
            assert!(h.s.input.buffered().len() <= 512 + chunk.len());
        }
    }
}
