//! The outbound SMTP client driven with arbitrary server bytes, the way the delivery driver
//! drives it: a message (or two) to send, the TLS handshake "succeeding" when asked, and the
//! server's replies fed in chunks so they arrive split anywhere.
//!
//! Input: one options byte, one chunk-size byte, then what the server sends.
//! Options: bits 0-1 the TLS mode (never, opportunistic, required); bit 2 credentials are
//! configured; bit 3 the handshake is "verified"; bit 4 BDAT when offered; bit 5 the message
//! asks REQUIRETLS; bit 6 a second message; bit 7 the connection ends with a timeout rather
//! than a close.
//!
//! Besides "no panic" and bounded work per input byte, it checks what the client promises:
//! credentials never leave before TLS, with TLS required no transaction starts in plaintext,
//! a REQUIRETLS message goes only over verified TLS, every recipient gets exactly one
//! result, and the session closes when the connection ends.
#![no_main]
#![forbid(unsafe_code)]

use libfuzzer_sys::fuzz_target;
use portcullis_smtp_client::{
    Action, Client, ClientConfig, Credentials, Message, MessageParams, Recipient, ReplyLimits, TlsMode,
};
use std::sync::Arc;

fn message(requiretls: bool) -> Message {
    Message {
        sender: "alice@example.org".into(),
        recipients: ["a@remote.example", "b@remote.example"]
            .iter()
            .map(|r| Recipient { address: r.to_string(), notify: None, original: None })
            .collect(),
        params: MessageParams { requiretls, ..MessageParams::default() },
        content: Arc::from(&b"Subject: x\r\n\r\n.body\r\n"[..]),
    }
}

fuzz_target!(|data: &[u8]| {
    let [options, chunk, input @ ..] = data else { return };
    let mode = match options & 3 {
        0 => TlsMode::Never,
        1 => TlsMode::Opportunistic,
        _ => TlsMode::Required,
    };
    let config = ClientConfig {
        helo_name: "out.example.org".into(),
        tls: mode,
        credentials: (options & 4 != 0)
            .then(|| Credentials { username: "fuzz-user".into(), password: "fuzz-secret".to_string().into() }),
        chunking: options & 16 != 0,
        limits: ReplyLimits { max_line: 512, max_lines: 20, max_bytes: 4096 },
    };
    let verified = options & 8 != 0;
    let requiretls = options & 32 != 0;
    let mut messages = vec![message(requiretls)];
    if options & 64 != 0 {
        messages.push(message(false));
    }
    let mut client = Client::new(config);
    let mut sent = Vec::new();
    let mut results = 0usize;
    let mut closed = false;
    let mut tls = false;
    let mut next = 0usize;
    let chunk = if *chunk == 0 { input.len().max(1) } else { *chunk as usize };
    let mut pieces = input.chunks(chunk);
    let mut steps = 0usize;
    let mut ended = false;
    while !closed {
        steps += 1;
        assert!(steps <= 8 * input.len() + 256, "the client keeps acting without input");
        match client.next_action() {
            Action::Read => {
                let out = client.take_output();
                check_output(&out, tls, mode);
                sent.extend_from_slice(&out);
                match pieces.next() {
                    Some(piece) => client.feed(piece),
                    None if !ended => {
                        ended = true;
                        if options & 128 != 0 {
                            client.timed_out()
                        } else {
                            client.peer_closed()
                        }
                    }
                    None => panic!("the client asks to read after the connection ended"),
                }
            }
            Action::StartTls => {
                assert!(!tls, "STARTTLS inside TLS");
                // Commands still unsent go before the handshake (EHLO, STARTTLS).
                let out = client.take_output();
                check_output(&out, tls, mode);
                assert!(out.is_empty() || out.ends_with(b"STARTTLS\r\n"), "{out:?}");
                tls = true;
                client.tls_established(verified);
            }
            Action::Ready => match messages.get(next) {
                Some(m) => {
                    next += 1;
                    client.send_message(m).expect("idle");
                }
                None => client.quit().expect("idle"),
            },
            Action::MessageDone(result) => {
                assert_eq!(result.recipients.len(), 2, "one result per recipient");
                results += 1;
                let delivered = result
                    .recipients
                    .iter()
                    .any(|r| r.disposition == portcullis_smtp_client::Disposition::Delivered);
                if next == 1 && requiretls && delivered {
                    assert!(tls && verified, "REQUIRETLS delivered without verified TLS");
                }
            }
            Action::Close(_) => {
                let out = client.take_output();
                check_output(&out, tls, mode);
                closed = true;
            }
        }
    }
    assert!(results <= next, "more results than messages");
});

/// Credentials only inside TLS; with TLS required, no transaction in plaintext.
fn check_output(out: &[u8], tls: bool, mode: TlsMode) {
    if tls {
        return;
    }
    let text = String::from_utf8_lossy(out);
    assert!(!text.contains("AUTH "), "AUTH before TLS: {text:?}");
    assert!(!text.contains("ZnV6ei1zZWNyZXQ"), "the password before TLS");
    if mode == TlsMode::Required {
        assert!(!text.contains("MAIL FROM"), "a transaction in plaintext with TLS required: {text:?}");
    }
}
