//! Port 25 (the MX role) driven directly: the client checks before the greeting, early talkers,
//! pipelining before it was offered, no AUTH, any sender (the null one too) checked by the
//! driver, STARTTLS offered but not required, REQUIRETLS only over TLS, and a message handed
//! over as it came, with only our Received header on top.

use super::tests::{codes, config, plain, Harness};
use super::*;
use crate::*;

fn mx_config() -> Config {
    Config { role: Role::Mx, ..config(false) }
}

/// A port-25 session past its (clean) client checks and greeting.
fn mx() -> Harness {
    let mut h = Harness::unstarted(mx_config());
    assert_eq!(h.run(), "220 mail.example.org ESMTP Portcullis\r\n");
    h
}

const BODY: &str = "From: <sender@remote.test>\r\nSubject: hello\r\n\r\nbody\r\n";

#[test]
fn the_greeting_waits_for_the_client_checks() {
    let mut h = Harness::unstarted(mx_config());
    assert!(matches!(h.s.next_action(), Action::CheckClient), "the checks come before anything is said");
    assert!(h.s.take_output().is_empty(), "no greeting before the checks");
    h.s.client_checked(ClientOutcome { refuse: None, name: Some("mx.remote.test".into()) });
    assert!(matches!(h.s.next_action(), Action::Read));
    assert_eq!(h.s.take_output(), b"220 mail.example.org ESMTP Portcullis\r\n");
}

#[test]
fn ehlo_offers_starttls_and_never_auth_and_requiretls_only_over_tls() {
    let mut h = mx();
    let ehlo = h.send("EHLO mx.remote.test\r\n");
    assert_eq!(
        ehlo,
        "250-mail.example.org\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n\
         250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250 STARTTLS\r\n"
    );
    assert_eq!(h.send("STARTTLS\r\n"), "220 2.0.0 Ready to start TLS\r\n");
    let ehlo = h.send("EHLO mx.remote.test\r\n");
    assert!(ehlo.ends_with("250-CHUNKING\r\n250 REQUIRETLS\r\n"), "{ehlo}");
    assert!(!ehlo.contains("AUTH") && !ehlo.contains("STARTTLS"), "{ehlo}");
    assert_eq!(h.send("STARTTLS\r\n"), "503 5.5.1 TLS is already active\r\n");
}

#[test]
fn auth_is_refused_on_25_whatever_the_mechanism() {
    let mut h = mx();
    h.send("EHLO mx.remote.test\r\n");
    for auth in [format!("AUTH PLAIN {}", plain("alice@example.org", b"secret")), "AUTH LOGIN".into()] {
        let reply = h.send(&format!("{auth}\r\n"));
        assert!(reply.starts_with("503 5.5.1 Authentication is not available on this port"), "{reply}");
    }
    assert_eq!(h.facts, vec![Fact::AuthOnMx, Fact::AuthOnMx]);
    assert!(h.s.principal().is_none());
}

#[test]
fn plaintext_mail_from_anyone_for_local_recipients_only() {
    let mut h = mx();
    h.send("EHLO mx.remote.test\r\n");
    assert_eq!(h.send("MAIL FROM:<sender@remote.test>\r\n"), "250 2.1.0 Sender ok\r\n");
    assert_eq!(h.senders, vec!["sender@remote.test".to_string()], "the driver checked the sender");
    assert_eq!(h.send("RCPT TO:<bob@example.org>\r\n"), "250 2.1.5 Recipient ok\r\n");
    assert!(h.send("RCPT TO:<nobody@example.org>\r\n").starts_with("550 5.1.1 "));
    let relay = h.send("RCPT TO:<victim@elsewhere.test>\r\n");
    assert!(relay.starts_with("550 5.7.1 <victim@elsewhere.test>: Relaying is not enabled"), "{relay}");
    assert_eq!(h.send("DATA\r\n"), "354 End data with <CR><LF>.<CR><LF>\r\n");
    assert!(h.send(&format!("{BODY}.\r\n")).starts_with("250 2.0.0 Message stored as S1.1"));
    let envelope = &h.delivered[0];
    assert_eq!(envelope.from, "sender@remote.test");
    assert_eq!(envelope.helo, "mx.remote.test");
    assert!(!envelope.require_tls);
    assert_eq!(envelope.message(), BODY.as_bytes(), "handed over as it came: no Date, no Message-ID added");
    let trace = std::str::from_utf8(&envelope.data[..envelope.trace_len]).unwrap();
    assert!(
        trace.starts_with(
            "Received: from mx.remote.test ([127.0.0.2])\r\n\tby mail.example.org (Portcullis) with ESMTP id S1.1\r\n"
        ),
        "{trace}"
    );
    assert!(!trace.contains("using"), "no TLS: {trace}");
}

#[test]
fn the_null_sender_is_taken_for_bounces() {
    let mut h = mx();
    h.send("EHLO mx.remote.test\r\n");
    assert_eq!(h.send("MAIL FROM:<>\r\n"), "250 2.1.0 Sender ok\r\n");
    assert_eq!(h.senders, vec![String::new()]);
    assert_eq!(codes(&h.send("RCPT TO:<bob@example.org>\r\nDATA\r\n")), ["250", "354"]);
    assert!(h.send(&format!("{BODY}.\r\n")).starts_with("250 "));
    assert_eq!(h.delivered[0].from, "");
}

#[test]
fn a_refused_sender_leaves_no_transaction() {
    let mut h = mx();
    h.send("EHLO mx.remote.test\r\n");
    h.sender = SenderOutcome::Refused(Refusal {
        code: 550,
        enhanced: "5.7.27",
        text: "Sender address has null MX (nomail.test)".into(),
    });
    assert_eq!(h.send("MAIL FROM:<x@nomail.test>\r\n"), "550 5.7.27 Sender address has null MX (nomail.test)\r\n");
    assert_eq!(h.send("RCPT TO:<bob@example.org>\r\n"), "503 5.5.1 Need MAIL command first\r\n");
    h.sender = SenderOutcome::Accept;
    assert_eq!(h.send("MAIL FROM:<ok@remote.test>\r\n"), "250 2.1.0 Sender ok\r\n");
}

#[test]
fn an_early_talker_is_refused_before_the_greeting() {
    let mut h = Harness::unstarted(mx_config());
    h.early = b"EHLO spam.test\r\n".to_vec();
    let said = h.run();
    assert_eq!(said, "554 mail.example.org Protocol error: you spoke before my greeting\r\n");
    assert!(h.closed);
    assert_eq!(h.facts, vec![Fact::EarlyTalker]);
}

#[test]
fn a_listed_client_gets_554_and_may_only_quit() {
    let mut h = Harness::unstarted(mx_config());
    h.client = ClientOutcome { refuse: Some("Your address is listed on dnsbl.test".into()), name: None };
    assert_eq!(h.run(), "554 mail.example.org Your address is listed on dnsbl.test\r\n");
    for command in ["EHLO mx.remote.test", "MAIL FROM:<a@remote.test>", "NOOP"] {
        assert!(h.send(&format!("{command}\r\n")).starts_with("503 5.5.1 "), "{command}");
    }
    assert!(h.senders.is_empty());
    assert_eq!(h.send("QUIT\r\n"), "221 2.0.0 Bye\r\n");
    assert!(h.closed);
}

#[test]
fn commands_sent_ahead_before_pipelining_was_offered_are_refused() {
    // EHLO and MAIL in one go, before the EHLO reply said PIPELINING.
    let mut h = mx();
    let said = h.send("EHLO spam.test\r\nMAIL FROM:<a@remote.test>\r\n");
    assert_eq!(said, "554 5.5.0 Improper command pipelining: wait for each reply\r\n");
    assert!(h.closed);
    assert_eq!(h.facts, vec![Fact::UnofferedPipelining]);

    // HELO never offers PIPELINING.
    let mut h = mx();
    h.send("HELO old.remote.test\r\n");
    let said = h.send("MAIL FROM:<a@remote.test>\r\nRCPT TO:<bob@example.org>\r\n");
    assert!(said.starts_with("554 5.5.0 "), "{said}");
    assert!(h.senders.is_empty(), "the pipelined MAIL never ran");

    // After EHLO offered it, pipelining is fine.
    let mut h = mx();
    h.send("EHLO mx.remote.test\r\n");
    let said = h.send("MAIL FROM:<a@remote.test>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n");
    assert_eq!(codes(&said), ["250", "250", "354"]);
    assert!(h.facts.is_empty());
}

#[test]
fn starttls_discards_what_was_pipelined_behind_it_and_what_the_client_learnt() {
    let mut h = mx();
    h.send("EHLO mx.remote.test\r\n");
    let said = h.send("STARTTLS\r\nMAIL FROM:<injected@remote.test>\r\nRCPT TO:<bob@example.org>\r\n");
    assert_eq!(said, "220 2.0.0 Ready to start TLS\r\n", "nothing after STARTTLS is answered");
    assert!(h.senders.is_empty(), "the injected MAIL never ran");
    assert_eq!(h.send("MAIL FROM:<a@remote.test>\r\n"), "503 5.5.1 Send EHLO first\r\n");
    // PIPELINING must be offered again under TLS (RFC 3207 §4.2).
    let said = h.send("EHLO mx.remote.test\r\nMAIL FROM:<a@remote.test>\r\n");
    assert!(said.starts_with("554 5.5.0 "), "{said}");
}

#[test]
fn requiretls_is_taken_only_over_tls_and_recorded() {
    let mut h = mx();
    h.send("EHLO mx.remote.test\r\n");
    assert_eq!(h.send("MAIL FROM:<a@remote.test> REQUIRETLS\r\n"), "530 5.7.10 REQUIRETLS needs STARTTLS first\r\n");
    h.send("STARTTLS\r\n");
    h.send("EHLO mx.remote.test\r\n");
    assert_eq!(h.send("MAIL FROM:<a@remote.test> REQUIRETLS\r\n"), "250 2.1.0 Sender ok\r\n");
    assert_eq!(codes(&h.send("RCPT TO:<bob@example.org>\r\n")), ["250"]);
    h.send("DATA\r\n");
    assert!(h.send(&format!("{BODY}.\r\n")).starts_with("250 "));
    let envelope = &h.delivered[0];
    assert!(envelope.require_tls);
    let trace = std::str::from_utf8(&envelope.data[..envelope.trace_len]).unwrap();
    assert!(trace.contains("with ESMTPS id S1.1\r\n\t(using TLSv1.3 TLS13_AES_128_GCM_SHA256)"), "{trace}");
}

#[test]
fn requiretls_on_submission_goes_with_the_message() {
    let mut h = Harness::new(true);
    h.send("EHLO client.example\r\n");
    h.send(&format!("AUTH PLAIN {}\r\n", plain("alice@example.org", b"plinth-orbit-cactus-9")));
    assert_eq!(h.send("MAIL FROM:<alice@example.org> REQUIRETLS\r\n"), "250 2.1.0 Sender ok\r\n");
    h.send("RCPT TO:<x@remote.test>\r\nDATA\r\n");
    assert!(h.send("Subject: secret\r\n\r\nhi\r\n.\r\n").starts_with("250 "));
    assert!(h.delivered[0].require_tls);
    // Without it, none.
    h.send("MAIL FROM:<alice@example.org>\r\nRCPT TO:<x@remote.test>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\n");
    assert!(!h.delivered[1].require_tls);
}

#[test]
fn smtputf8_and_the_client_name_reach_the_received_header() {
    let mut h = Harness::unstarted(mx_config());
    h.client = ClientOutcome { refuse: None, name: Some("mx.remote.test".into()) };
    h.run();
    h.send("EHLO mx.remote.test\r\n");
    h.send("STARTTLS\r\n");
    h.send("EHLO mx.remote.test\r\n");
    assert_eq!(codes(&h.send("MAIL FROM:<jöran@remote.test> SMTPUTF8\r\n")), ["250"]);
    assert_eq!(codes(&h.send("RCPT TO:<bob@example.org>\r\nDATA\r\n")), ["250", "354"]);
    h.send(&format!("{BODY}.\r\n"));
    let envelope = &h.delivered[0];
    let trace = std::str::from_utf8(&envelope.data[..envelope.trace_len]).unwrap();
    assert!(
        trace.starts_with("Received: from mx.remote.test (mx.remote.test [127.0.0.2])\r\n\tby mail.example.org (Portcullis) with UTF8SMTPS id"),
        "{trace}"
    );
}

#[test]
fn refusals_decided_at_the_end_of_data_and_rate_limits_are_sent_as_given() {
    let mut h = mx();
    h.send("EHLO mx.remote.test\r\n");
    h.delivery = DeliveryOutcome::Refused(Refusal {
        code: 550,
        enhanced: "5.7.1",
        text: "Message refused: it fails the DMARC policy (p=reject) of remote.test".into(),
    });
    h.send("MAIL FROM:<a@remote.test>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n");
    let said = h.send(&format!("{BODY}.\r\n"));
    assert_eq!(said, "550 5.7.1 Message refused: it fails the DMARC policy (p=reject) of remote.test\r\n");
    // The session goes on: the next transaction starts afresh.
    assert_eq!(h.send("RCPT TO:<bob@example.org>\r\n"), "503 5.5.1 Need MAIL command first\r\n");
    h.send("MAIL FROM:<a@remote.test>\r\n");
    h.s.feed(b"RCPT TO:<bob@example.org>\r\n");
    assert!(matches!(h.s.next_action(), Action::LookupRecipient { .. }));
    h.s.recipient_result(RecipientOutcome::RateLimited);
    assert!(matches!(h.s.next_action(), Action::Read));
    assert_eq!(h.s.take_output(), b"450 4.7.1 Too many recipients from your address; try again later\r\n");
}

#[test]
fn port_25_never_relays_whatever_the_driver_answers() {
    let mut h = mx();
    h.send("EHLO mx.remote.test\r\n");
    h.send("MAIL FROM:<a@remote.test>\r\n");
    h.s.feed(b"RCPT TO:<c@elsewhere.test>\r\n");
    assert!(matches!(h.s.next_action(), Action::LookupRecipient { .. }));
    h.s.recipient_result(RecipientOutcome::Remote);
    assert!(matches!(h.s.next_action(), Action::Read));
    assert!(h.s.take_output().starts_with(b"550 5.7.1 <c@elsewhere.test>: Relaying is not enabled"));
}
