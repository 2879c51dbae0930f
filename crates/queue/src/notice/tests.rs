//! Notices: who gets one, what they say, and that nothing from outside can break their form.

use super::*;
use std::time::Duration;

const CONTENT: &[u8] = b"From: alice@example.org\r\nTo: bob@remote.example\r\nSubject: plans\r\n\r\nSee you.\r\n";

fn original(sender: &str) -> Original<'_> {
    Original {
        sender,
        envid: Some("QQ314159"),
        ret: None,
        arrival: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        content: CONTENT,
    }
}

fn failed(address: &str) -> RecipientStatus {
    RecipientStatus {
        address: address.into(),
        original: Some(OriginalRecipient::rfc822(address)),
        notify: None,
        action: ReportAction::Failed,
        status: EnhancedCode::new(5, 1, 1),
        remote_mta: Some("mx.remote.example".into()),
        reply: Some(Reply {
            code: 550,
            enhanced: Some(EnhancedCode::new(5, 1, 1)),
            lines: vec!["5.1.1 <bob@remote.example>: Recipient address rejected".into(), "User unknown".into()],
        }),
        explanation: None,
        last_attempt: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_060)),
        will_retry_until: None,
    }
}

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_120)
}

fn text(notice: &Notice) -> String {
    String::from_utf8(notice.content.clone()).unwrap()
}

#[test]
fn a_failure_notice_carries_the_report_and_the_whole_message() {
    let n = notice(
        &NoticeSettings::default(),
        &original("alice@example.org"),
        &[failed("bob@remote.example")],
        now(),
        "u1",
    )
    .unwrap();
    assert_eq!(n.recipient, "alice@example.org");
    let t = text(&n);
    for expected in [
        "To: <alice@example.org>\r\n",
        "Subject: Undelivered Mail Returned to Sender\r\n",
        "Auto-Submitted: auto-replied\r\n",
        "Content-Type: multipart/report; report-type=delivery-status;\r\n boundary=\"=_portcullis_u1_0\"\r\n",
        "Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; localhost\r\nOriginal-Envelope-Id: QQ314159\r\n",
        "Original-Recipient: rfc822; bob@remote.example\r\nFinal-Recipient: rfc822; bob@remote.example\r\nAction: failed\r\nStatus: 5.1.1\r\nRemote-MTA: dns; mx.remote.example\r\n",
        "Diagnostic-Code: smtp; 550 5.1.1 <bob@remote.example>: Recipient address\r\n rejected User unknown\r\n",
        "Content-Type: message/rfc822\r\n\r\nFrom: alice@example.org\r\n",
        "See you.\r\n\r\n--=_portcullis_u1_0--\r\n",
    ] {
        assert!(t.contains(expected), "missing {expected:?} in\n{t}");
    }
}

#[test]
fn ret_hdrs_and_non_failure_notices_return_only_the_header() {
    let mut o = original("alice@example.org");
    o.ret = Some(Ret::Headers);
    let t = text(&notice(&NoticeSettings::default(), &o, &[failed("bob@remote.example")], now(), "u").unwrap());
    assert!(t.contains("Content-Type: text/rfc822-headers\r\n\r\nFrom: alice@example.org\r\n"), "{t}");
    assert!(!t.contains("See you."));

    let mut delayed = failed("bob@remote.example");
    delayed.action = ReportAction::Delayed;
    delayed.status = EnhancedCode::new(4, 2, 0);
    delayed.will_retry_until = Some(now() + Duration::from_secs(86_400));
    let t = text(&notice(&NoticeSettings::default(), &original("alice@example.org"), &[delayed], now(), "u").unwrap());
    assert!(t.contains("Subject: Delayed Mail (still being retried)"));
    assert!(t.contains("Action: delayed\r\nStatus: 4.2.0\r\n"));
    assert!(t.contains("Will-Retry-Until: "));
    assert!(!t.contains("See you."), "a delay notice returns the header only");
}

#[test]
fn a_big_message_is_returned_as_its_header() {
    let settings = NoticeSettings { max_returned_content: 10, ..NoticeSettings::default() };
    let t =
        text(&notice(&settings, &original("alice@example.org"), &[failed("bob@remote.example")], now(), "u").unwrap());
    assert!(t.contains("text/rfc822-headers") && !t.contains("See you."));
}

#[test]
fn never_to_the_null_sender_nor_about_an_automatic_message() {
    let settings = NoticeSettings::default();
    assert_eq!(notice(&settings, &original(""), &[failed("bob@remote.example")], now(), "u"), None);
    let auto = b"Auto-Submitted: auto-replied\r\nSubject: x\r\n\r\nbody\r\n";
    let mut o = original("alice@example.org");
    o.content = auto;
    assert_eq!(notice(&settings, &o, &[failed("bob@remote.example")], now(), "u"), None);
    // A notice we made is automatic itself: a notice about it is never made (no loops).
    let first = notice(&settings, &original("alice@example.org"), &[failed("bob@remote.example")], now(), "u").unwrap();
    let mut about = original("someone@example.org");
    about.content = &first.content;
    assert_eq!(notice(&settings, &about, &[failed("alice@example.org")], now(), "v"), None);
}

#[test]
fn notify_decides_who_is_reported() {
    let settings = NoticeSettings::default();
    let o = original("alice@example.org");
    let mut never = failed("a@remote.example");
    never.notify = Some(Notify::NEVER);
    assert_eq!(notice(&settings, &o, std::slice::from_ref(&never), now(), "u"), None);

    let mut only_success = failed("b@remote.example");
    only_success.notify = Some(Notify { success: true, failure: false, delay: false });
    assert_eq!(notice(&settings, &o, std::slice::from_ref(&only_success), now(), "u"), None);
    only_success.action = ReportAction::Relayed;
    only_success.reply = None;
    let n = notice(&settings, &o, &[never.clone(), only_success], now(), "u").unwrap();
    assert_eq!(n.reported, [("b@remote.example".to_string(), ReportAction::Relayed)]);
    assert!(text(&n).contains("Subject: Successful Mail Delivery Report"));

    let mut delay_default = failed("c@remote.example");
    delay_default.action = ReportAction::Delayed;
    assert!(notice(&settings, &o, &[delay_default.clone()], now(), "u").is_some(), "no NOTIFY: delays reported");
    delay_default.notify = Some(Notify { success: false, failure: true, delay: false });
    assert_eq!(notice(&settings, &o, &[delay_default], now(), "u"), None);
    // Without NOTIFY, no success notice.
    let mut delivered = failed("d@remote.example");
    delivered.action = ReportAction::Delivered;
    assert_eq!(notice(&settings, &o, &[delivered], now(), "u"), None);
}

#[test]
fn hostile_text_cannot_add_fields() {
    let mut r = failed("bob@remote.example");
    r.reply = Some(Reply { code: 550, enhanced: None, lines: vec!["no\r\nX-Injected: yes".into()] });
    let mut o = original("alice@example.org");
    o.envid = Some("id\r\nBcc: victim@example.org");
    let t = text(&notice(&NoticeSettings::default(), &o, &[r], now(), "u").unwrap());
    assert!(!t.contains("\r\nX-Injected") && !t.contains("\r\nBcc:"), "{t}");
}

#[test]
fn the_boundary_never_occurs_in_the_returned_message() {
    let content = b"Subject: trap\r\n\r\n--=_portcullis_u_0\r\n";
    let mut o = original("alice@example.org");
    o.content = content;
    let t = text(&notice(&NoticeSettings::default(), &o, &[failed("bob@remote.example")], now(), "u").unwrap());
    assert!(t.contains("boundary=\"=_portcullis_u_1\""), "{t}");
}

#[test]
fn utf8_addresses_use_the_global_types() {
    let mut r = failed("jöran@bücher.example");
    r.original = None;
    let t = text(&notice(&NoticeSettings::default(), &original("alice@example.org"), &[r], now(), "u").unwrap());
    assert!(t.contains("Content-Type: message/global-delivery-status"));
    assert!(t.contains("Final-Recipient: utf-8; jöran@bücher.example"));
    assert!(t.contains("Content-Type: message/global\r\n"));
}
