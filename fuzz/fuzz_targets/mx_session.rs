//! The SMTP session in its port-25 role (mail from other servers) driven the way the server
//! drives it, with arbitrary client bytes and canned answers to its actions.
//!
//! Input: one options byte, one chunk-size byte, then what the client sends, fed in chunks of
//! that size (0: all at once). Options: bit 0 the client check refuses (a DNSBL listing);
//! bit 1 the client talks before the greeting (the first chunk arrives during the checks);
//! bits 2-3 the sender check's answer; bits 4-5 the delivery outcome; bits 6-7 how the
//! connection ends (peer closes, timeout, shutdown, or nothing more).
//!
//! Besides "no panic", it checks what port 25 promises: no AUTH is ever attempted, nothing
//! happens before the client checks or after an early talker, a listed client gets no
//! transaction, a message only ever comes from a sender the checks accepted, to at most
//! `max_recipients` local recipients, no bigger than the limit, handed over as it came behind
//! our trace header, REQUIRETLS only over TLS, and every reply line is well formed.
#![no_main]
#![forbid(unsafe_code)]

use libfuzzer_sys::fuzz_target;
use portcullis_proto_smtp::{
    Action, ClientOutcome, Config, DeliveryOutcome, Peer, RecipientOutcome, Refusal, Role, SenderOutcome, Session,
};

const MAX_MESSAGE: u64 = 2000;
const MAX_RECIPIENTS: usize = 3;

fn config() -> Config {
    Config {
        hostname: "mx.example.org".into(),
        role: Role::Mx,
        implicit_tls: false,
        max_message_size: MAX_MESSAGE,
        max_recipients: MAX_RECIPIENTS,
        max_line_length: 512,
        max_commands: 200,
        max_auth_failures: 3,
        max_errors: 20,
    }
}

struct Driver {
    s: Session,
    tls: bool,
    client: ClientOutcome,
    /// Sent during the client checks (an early talker).
    early: Vec<u8>,
    checked: bool,
    sender: SenderOutcome,
    /// The senders the checks accepted.
    accepted_senders: Vec<String>,
    delivery: DeliveryOutcome,
    closed: bool,
    budget: usize,
}

impl Driver {
    fn run(&mut self) {
        let mut steps = 0usize;
        loop {
            steps += 1;
            assert!(steps <= 4 * self.budget + 64, "the session keeps acting without input");
            let action = self.s.next_action();
            if !self.checked {
                assert!(matches!(action, Action::CheckClient), "{action:?} before the client checks");
            }
            match action {
                Action::Read => break,
                Action::Close => {
                    self.closed = true;
                    break;
                }
                Action::CheckClient => {
                    assert!(!self.checked, "the client checked twice");
                    assert!(self.s.take_output().is_empty(), "something said before the greeting");
                    self.checked = true;
                    let early = std::mem::take(&mut self.early);
                    self.s.feed(&early);
                    self.s.client_checked(self.client.clone());
                    let greeting = self.s.take_output();
                    if !early.is_empty() {
                        assert!(greeting.starts_with(b"554 "), "an early talker was greeted");
                    }
                    check_replies(&greeting);
                }
                Action::StartTls => {
                    assert!(!self.tls, "STARTTLS inside TLS");
                    check_replies(&self.s.take_output());
                    self.tls = true;
                    self.s.tls_established("TLSv1.3 TLS13_AES_128_GCM_SHA256".into(), None);
                }
                Action::ScramLookup { .. } | Action::Authenticate { .. } => panic!("AUTH reached on port 25"),
                Action::CheckSender { address } => {
                    assert!(self.client.refuse.is_none(), "a listed client got as far as MAIL FROM");
                    if self.sender == SenderOutcome::Accept {
                        self.accepted_senders.push(address);
                    }
                    self.s.sender_result(self.sender.clone());
                }
                Action::LookupRecipient { address } => {
                    let lower = address.to_lowercase();
                    let outcome = match lower.split('@').next().unwrap_or("") {
                        "alice" | "bob" => RecipientOutcome::Local(1 + lower.len() as i64 % 2),
                        "full" => RecipientOutcome::MailboxFull,
                        "temp" => RecipientOutcome::TemporaryFailure,
                        "rate" => RecipientOutcome::RateLimited,
                        _ if lower.ends_with("@example.org") => RecipientOutcome::UnknownUser,
                        _ => RecipientOutcome::NotLocal,
                    };
                    self.s.recipient_result(outcome);
                }
                Action::Deliver(envelope) => {
                    assert!(self.accepted_senders.contains(&envelope.from), "a sender nobody checked");
                    assert!(!envelope.recipients.is_empty() && envelope.recipients.len() <= MAX_RECIPIENTS);
                    assert!(envelope.data.len() as u64 <= 2 * MAX_MESSAGE + 4096, "{}", envelope.data.len());
                    assert!(envelope.data.starts_with(b"Received: "), "no trace header");
                    assert!(envelope.trace_len <= envelope.data.len());
                    assert!(!envelope.require_tls || self.tls, "REQUIRETLS taken without TLS");
                    self.s.delivery_result(self.delivery.clone());
                }
                Action::Report(_) => {}
            }
        }
        check_replies(&self.s.take_output());
    }
}

/// Every reply line is "NNN " or "NNN-" and text, ended by CRLF, with no stray CR or LF.
fn check_replies(output: &[u8]) {
    if output.is_empty() {
        return;
    }
    assert!(output.ends_with(b"\r\n"), "unterminated reply {:?}", String::from_utf8_lossy(output));
    for line in output[..output.len() - 1].split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or_else(|| panic!("bare LF in {output:?}"));
        assert!(
            line.len() >= 4
                && line[..3].iter().all(u8::is_ascii_digit)
                && matches!(line[3], b' ' | b'-')
                && !line.contains(&b'\r'),
            "malformed reply line {:?}",
            String::from_utf8_lossy(line)
        );
    }
}

fn refusal(code: u16, enhanced: &'static str, text: &str) -> Refusal {
    Refusal { code, enhanced, text: text.into() }
}

fuzz_target!(|data: &[u8]| {
    let [options, chunk, input @ ..] = data else { return };
    let peer = Peer {
        ip: "192.0.2.25".parse().unwrap(),
        session_id: "M1".into(),
        tls: None,
        channel_binding: None,
        name: Some("mx.remote.test".into()),
    };
    let client = ClientOutcome {
        refuse: (options & 1 != 0).then(|| "Your address is listed on dnsbl.test".into()),
        name: Some("mx.remote.test".into()),
    };
    let sender = match (options >> 2) & 3 {
        0 | 1 => SenderOutcome::Accept,
        2 => SenderOutcome::Refused(refusal(550, "5.7.27", "Sender address has null MX")),
        _ => SenderOutcome::Refused(refusal(451, "4.4.3", "Temporary DNS failure\r\nInjected: 1")),
    };
    let delivery = match (options >> 4) & 3 {
        0 => DeliveryOutcome::Stored,
        1 => DeliveryOutcome::MailboxFull("bob@example.org".into()),
        2 => DeliveryOutcome::Refused(refusal(550, "5.7.1", "fails the DMARC policy")),
        _ => DeliveryOutcome::TemporaryFailure,
    };
    let chunk = if *chunk == 0 { input.len().max(1) } else { *chunk as usize };
    let mut pieces = input.chunks(chunk);
    let early = if options & 2 != 0 { pieces.next().unwrap_or_default().to_vec() } else { Vec::new() };
    let mut d = Driver {
        s: Session::with_clock(config(), peer, || 1_764_291_600),
        tls: false,
        client,
        early,
        checked: false,
        sender,
        accepted_senders: Vec::new(),
        delivery,
        closed: false,
        budget: 0,
    };
    d.run();
    for piece in pieces {
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
