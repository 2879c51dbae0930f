//! The POP3 session driven the way the server drives it, with arbitrary client bytes and
//! canned answers to its actions, over a maildrop that holds one message of the fuzzer's own.
//!
//! Input: an options byte, a chunk-size byte (0: everything at once), a length byte L, L bytes
//! of a message in the maildrop (beside fixed ones), then what the client sends.
//! Options: bit 0 a channel binding; bits 1-2 opening the maildrop fails (in use, temporary);
//! bit 3 the final update fails; bit 4 fetched messages have vanished; bits 6-7 how the
//! connection ends (peer closes, timeout, shutdown, or nothing more).
//!
//! Besides "no panic", it checks that a message sent by RETR or TOP ends at its terminating
//! "." line and nowhere before (dot-stuffing), and that RETR sends the whole message back.
#![no_main]
#![forbid(unsafe_code)]

use libfuzzer_sys::fuzz_target;
use portcullis_proto_pop3::{Action, AuthOutcome, Config, Entry, Maildrop, OpenError, Session};
use portcullis_sasl::{Attempt, ScramKeys, ScramProof};

const ALICE: &str = "alice@example.org";
const PASSWORD: &[u8] = b"secret";

struct Driver {
    s: Session,
    messages: Vec<(u32, Vec<u8>)>,
    open: Result<(), OpenError>,
    update_ok: bool,
    vanished: bool,
    closed: bool,
    budget: usize,
}

impl Driver {
    fn run(&mut self) {
        let mut steps = 0usize;
        loop {
            steps += 1;
            assert!(steps <= 4 * self.budget + 64, "the session keeps acting without input");
            match self.s.next_action() {
                Action::Read => break,
                Action::Close => {
                    self.closed = true;
                    break;
                }
                Action::ScramLookup { username } => {
                    let keys = if username == ALICE {
                        ScramKeys::derive_with_salt("secret", b"salt", 1).unwrap()
                    } else {
                        ScramKeys::decoy(&username, b"decoy", 1)
                    };
                    self.s.scram_keys(keys);
                }
                Action::Authenticate { attempt, .. } => {
                    let outcome = match attempt {
                        Attempt::Password(c) if c.username.starts_with("temp") => AuthOutcome::TemporaryFailure,
                        Attempt::Password(c) if c.username == ALICE && &c.password[..] == PASSWORD => {
                            AuthOutcome::Success(1)
                        }
                        Attempt::Scram { username, proof: ScramProof::Valid, .. } if username == ALICE => {
                            AuthOutcome::Success(1)
                        }
                        _ => AuthOutcome::InvalidCredentials,
                    };
                    self.s.auth_result(outcome);
                }
                Action::OpenMaildrop { account } => {
                    assert_eq!(account, 1);
                    let result = self.open.map(|()| Maildrop {
                        uidvalidity: 1700,
                        messages: self
                            .messages
                            .iter()
                            .map(|(uid, m)| Entry { uid: *uid, size: m.len() as u64 })
                            .collect(),
                    });
                    self.s.maildrop_opened(result);
                }
                Action::Fetch { uid } => {
                    let before = self.s.take_output();
                    check_lines(&before);
                    let raw = self.messages.iter().find(|(u, _)| *u == uid).map(|(_, m)| m.clone());
                    assert!(raw.is_some(), "fetch of a UID not in the maildrop");
                    let raw = if self.vanished { None } else { raw };
                    self.s.message_fetched(raw.clone());
                    let out = self.s.take_output();
                    if let Some(raw) = raw {
                        check_message(&out, &raw);
                    }
                }
                Action::Update { delete } => {
                    assert!(delete.iter().all(|uid| self.messages.iter().any(|(u, _)| u == uid)));
                    self.s.update_result(self.update_ok);
                }
                Action::Report(_) => {}
            }
        }
        check_lines(&self.s.take_output());
    }
}

fn check_lines(output: &[u8]) {
    assert!(output.is_empty() || output.ends_with(b"\r\n"), "unterminated response {output:?}");
}

/// "+OK ...", the dot-stuffed content, ".": the terminator appears once, at the end; for RETR
/// (the status line names the size) the unstuffed content is the message.
fn check_message(out: &[u8], raw: &[u8]) {
    assert!(out.starts_with(b"+OK "), "{out:?}");
    let status_end = out.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
    let body = &out[status_end..];
    let terminator = [&b"\r\n"[..], &body[..]].concat();
    let first = terminator.windows(5).position(|w| w == b"\r\n.\r\n");
    assert_eq!(first, Some(terminator.len() - 5), "the message ends early: {out:?}");
    if out.starts_with(format!("+OK {} octets", raw.len()).as_bytes()) {
        let mut unstuffed = Vec::new();
        let mut at_line_start = true;
        for &b in &body[..body.len() - 3] {
            if !(at_line_start && b == b'.') {
                unstuffed.push(b);
            }
            at_line_start = b == b'\n';
        }
        let mut expected = raw.to_vec();
        if !expected.is_empty() && !expected.ends_with(b"\r\n") {
            expected.extend_from_slice(b"\r\n");
        }
        assert_eq!(unstuffed, expected);
    }
}

fuzz_target!(|data: &[u8]| {
    let [options, chunk, len, rest @ ..] = data else { return };
    let (own, input) = rest.split_at((*len as usize).min(rest.len()));
    let config = Config {
        hostname: "mail.example.org".into(),
        max_line_length: 512,
        max_commands: 200,
        max_auth_failures: 3,
        max_errors: 20,
    };
    let mut d = Driver {
        s: Session::new(config, (options & 1 != 0).then(|| vec![7; 32])),
        messages: vec![
            (3, b"Subject: one\r\n\r\nfirst\r\n.dot line\r\n..\r\n.\r\n".to_vec()),
            (7, b"Subject: two\r\nX: y\r\n\r\nl1\r\nl2\r\nl3\r\n".to_vec()),
            (9, b"Subject: no final newline\r\n\r\nend".to_vec()),
            (10, b".\n.\r\n\n.".to_vec()),
            (11, Vec::new()),
            (12, own.to_vec()),
        ],
        open: match (options >> 1) & 3 {
            1 => Err(OpenError::InUse),
            2 => Err(OpenError::TemporaryFailure),
            _ => Ok(()),
        },
        update_ok: options & 8 == 0,
        vanished: options & 16 != 0,
        closed: false,
        budget: 0,
    };
    d.run();
    let chunk = if *chunk == 0 { input.len().max(1) } else { *chunk as usize };
    for piece in input.chunks(chunk) {
        if d.closed {
            return;
        }
        d.s.feed(piece);
        d.budget = piece.len();
        d.run();
    }
    if d.closed {
        return;
    }
    match options >> 6 {
        0 => d.s.peer_closed(),
        1 => d.s.timed_out(),
        2 => d.s.shutting_down(),
        _ => return,
    }
    d.budget = 0;
    d.run();
    assert!(d.closed, "the session did not close");
});
