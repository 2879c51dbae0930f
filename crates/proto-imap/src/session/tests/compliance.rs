//! The behaviours Dovecot's imaptest holds servers to (issue 16), one test each, in the sans-IO
//! session: \Recent, keyword announcements, CONDSTORE enabling, ESEARCH MODSEQ, LIST patterns,
//! RECURSIVEMATCH and LSUB parents, MOVE into the selected mailbox, NUL in APPEND, and the
//! SEARCH keys on dates and addresses.

use super::*;

/// The untagged lines of `out`, in order.
fn untagged(out: &str) -> Vec<&str> {
    out.lines().filter(|l| l.starts_with("* ")).collect()
}

#[tokio::test]
async fn recent_goes_to_one_session_and_examine_takes_nothing() {
    let env = env().await;
    deliver(&env, "alice@example.org", MESSAGE).await;
    deliver(&env, "alice@example.org", MESSAGE).await;
    let mut a = Client::logged_in(&env, "alice@example.org").await;

    // EXAMINE shows them as recent and leaves them so (RFC 3501 §6.3.2).
    let out = a.send("a EXAMINE INBOX\r\n").await;
    assert!(out.contains("* 2 EXISTS\r\n* 2 RECENT\r\n"), "{out}");
    assert_eq!(a.send("b FETCH 1 FLAGS\r\n").await, "* 1 FETCH (FLAGS (\\Recent))\r\nb OK FETCH completed\r\n");
    a.send("c CLOSE\r\n").await;
    let out = a.send("d STATUS INBOX (MESSAGES RECENT)\r\n").await;
    assert_eq!(out, "* STATUS \"INBOX\" (MESSAGES 2 RECENT 2)\r\nd OK STATUS completed\r\n");

    // SELECT takes them: this session has them, the next one does not.
    let out = a.send("e SELECT INBOX\r\n").await;
    assert!(out.contains("* 2 RECENT\r\n"), "{out}");
    let mut b = Client::selected(&env, "alice@example.org", "INBOX").await;
    assert_eq!(
        b.send("f FETCH 1:* FLAGS\r\n").await,
        "* 1 FETCH (FLAGS ())\r\n* 2 FETCH (FLAGS ())\r\nf OK FETCH completed\r\n"
    );
    let out = b.send("g STATUS INBOX (RECENT)\r\n").await;
    assert!(out.starts_with("* STATUS \"INBOX\" (RECENT 0)\r\n"), "{out}");

    // NEW is RECENT UNSEEN, OLD is NOT RECENT.
    a.send("h STORE 1 +FLAGS (\\Seen)\r\n").await;
    assert_eq!(a.send("i SEARCH NEW\r\n").await, "* SEARCH 2\r\ni OK SEARCH completed\r\n");
    assert_eq!(a.send("j SEARCH RECENT\r\n").await, "* SEARCH 1 2\r\nj OK SEARCH completed\r\n");
    assert_eq!(a.send("k SEARCH OLD\r\n").await, "* SEARCH\r\nk OK SEARCH completed\r\n");
    assert_eq!(b.send("k SEARCH OLD\r\n").await, "* SEARCH 1 2\r\nk OK SEARCH completed\r\n");

    // Copies into a mailbox another session has selected are recent there, with their flags
    // (\Recent itself is never copied).
    let mut c = Client::selected(&env, "alice@example.org", "Archive").await;
    assert!(a.send("l COPY 1:2 Archive\r\n").await.contains("l OK [COPYUID "));
    c.session.mailbox_changed();
    assert_eq!(c.send("m NOOP\r\n").await, "* 2 EXISTS\r\n* 2 RECENT\r\nm OK NOOP completed\r\n");
    assert_eq!(
        c.send("n FETCH 1:2 FLAGS\r\n").await,
        "* 1 FETCH (FLAGS (\\Recent \\Seen))\r\n* 2 FETCH (FLAGS (\\Recent))\r\nn OK FETCH completed\r\n"
    );

    // IMAP4rev2 has no \Recent: such a session neither shows nor takes it.
    drop((b, c));
    deliver(&env, "alice@example.org", MESSAGE).await;
    let mut rev2 = Client::logged_in(&env, "alice@example.org").await;
    rev2.send("o ENABLE IMAP4rev2\r\n").await;
    let out = rev2.send("p SELECT INBOX\r\n").await;
    assert!(!out.contains("RECENT"), "{out}");
    assert_eq!(rev2.send("q FETCH 3 FLAGS\r\n").await, "* 3 FETCH (FLAGS ())\r\nq OK FETCH completed\r\n");
    a.session.mailbox_changed();
    assert_eq!(a.send("r NOOP\r\n").await, "* 3 EXISTS\r\n* 3 RECENT\r\nr OK NOOP completed\r\n");
}

#[tokio::test]
async fn a_new_keyword_is_announced_before_any_fetch_names_it() {
    let env = env().await;
    deliver(&env, "alice@example.org", MESSAGE).await;
    let mut a = Client::selected(&env, "alice@example.org", "INBOX").await;
    let mut b = Client::selected(&env, "alice@example.org", "INBOX").await;
    let out = a.send("a STORE 1 +FLAGS ($Label1 NIL)\r\n").await;
    // NIL is an atom, so a keyword like any other (imaptest's `nil` group expects it kept).
    assert_eq!(
        untagged(&out),
        [
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1 NIL)",
            "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1 NIL \\*)] Flags permitted",
            "* 1 FETCH (UID 1 FLAGS (\\Recent $Label1 NIL))",
        ]
    );
    // The other session hears of them the same way, FLAGS first.
    b.session.mailbox_changed();
    let out = b.send("b NOOP\r\n").await;
    assert_eq!(
        untagged(&out),
        [
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1 NIL)",
            "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1 NIL \\*)] Flags permitted",
            "* 1 FETCH (UID 1 FLAGS ($Label1 NIL))",
        ]
    );
    // A keyword already announced is not announced again.
    let out = a.send("c STORE 1 FLAGS ($label1)\r\n").await;
    assert_eq!(untagged(&out), ["* 1 FETCH (UID 1 FLAGS (\\Recent $Label1))"]);
    // New mail carrying a new keyword: FLAGS before EXISTS.
    let raw = MESSAGE.replace("Lunch", "Tagged");
    b.send(&format!("d APPEND INBOX ($New) {{{}+}}\r\n{raw}\r\n", raw.len())).await;
    a.session.mailbox_changed();
    let lines = a.send("e NOOP\r\n").await;
    let lines = untagged(&lines);
    assert!(lines[0].starts_with("* FLAGS (") && lines[0].contains("$New"), "{lines:?}");
    assert_eq!(lines[2], "* 2 EXISTS", "{lines:?}");
}

#[tokio::test]
async fn condstore_enabling_commands_tell_the_highest_modseq_once() {
    let env = env().await;
    for _ in 0..4 {
        deliver(&env, "alice@example.org", MESSAGE).await;
    }
    let mut c = Client::selected(&env, "alice@example.org", "INBOX").await;
    let out = c.send("a FETCH 1 MODSEQ\r\n").await;
    let lines = untagged(&out);
    assert!(lines[0].starts_with("* OK [HIGHESTMODSEQ ") && lines[1].starts_with("* 1 FETCH (MODSEQ ("), "{out}");
    let out = c.send("b STORE 1 +FLAGS (\\Seen)\r\n").await;
    assert!(out.starts_with("* 1 FETCH (UID 1 FLAGS (\\Recent \\Seen) MODSEQ ("), "stores now tell modseqs: {out}");
    assert!(!c.send("c FETCH 2 MODSEQ\r\n").await.contains("HIGHESTMODSEQ"), "once");
}

#[tokio::test]
async fn esearch_modseq_is_that_of_the_messages_returned() {
    let env = env().await;
    for _ in 0..4 {
        deliver(&env, "alice@example.org", MESSAGE).await;
    }
    let mut c = Client::selected(&env, "alice@example.org", "INBOX").await;
    c.send("a FETCH 1 MODSEQ\r\n").await;
    let mut modseq = [0u64; 5];
    for n in [1, 3, 2, 4] {
        let out = c.send(&format!("s STORE {n} +FLAGS (\\Seen)\r\n")).await;
        modseq[n] = out.split("MODSEQ (").nth(1).unwrap().split(')').next().unwrap().parse().unwrap();
    }
    let search = |returns: &str, set: &str, since: u64| {
        format!("t SEARCH RETURN ({returns}) {set} MODSEQ \"/flags/\\\\seen\" all {since}\r\n")
    };
    let (m1, m2, m3, m4) = (modseq[1], modseq[2], modseq[3], modseq[4]);
    for (returns, set, since, expected) in [
        ("MIN", "1:3", 1, format!("MIN 1 MODSEQ {m1}")),
        ("MAX", "1:3", 1, format!("MAX 3 MODSEQ {m3}")),
        ("", "1:3", 1, format!("ALL 1:3 MODSEQ {m2}")),
        ("MIN MAX", "2:3", 1, format!("MIN 2 MAX 3 MODSEQ {m2}")),
        ("COUNT", "1:4", 1, format!("COUNT 4 MODSEQ {m4}")),
        ("ALL", "2:3", m3, format!("ALL 2:3 MODSEQ {m2}")),
        ("ALL", "2:3", m2, format!("ALL 2 MODSEQ {m2}")),
    ] {
        let out = c.send(&search(returns, set, since)).await;
        assert_eq!(out, format!("* ESEARCH (TAG \"t\") {expected}\r\nt OK SEARCH completed\r\n"), "{returns} {set}");
    }
    assert_eq!(c.send(&search("ALL", "2:3", m4)).await, "* ESEARCH (TAG \"t\")\r\nt OK SEARCH completed\r\n");
}

#[tokio::test]
async fn list_patterns_that_are_no_mailbox_names_match_nothing() {
    let env = env().await;
    let mut c = Client::logged_in(&env, "alice@example.org").await;
    // `&'` is no modified UTF-7, but still a pattern (imaptest's `atoms` group).
    assert_eq!(c.send("a LIST \"\" !#$&'+,-.0123456789:;<=>?@^_`|[}%*\r\n").await, "a OK LIST completed\r\n");
    assert_eq!(c.send("b LIST \"&'\" *\r\n").await, "b OK LIST completed\r\n");
    assert_eq!(c.send("c LSUB \"\" &-*&\r\n").await, "c OK LSUB completed\r\n");
    assert!(c.send("d SELECT !#$&'+,-.0123456789:;<=>?@^_`|[}\r\n").await.starts_with("d NO "));
    assert_eq!(c.send("e LIST \"\" ~foo\r\n").await, "e OK LIST completed\r\n");
    let out = c.send("f LIST \"\" I&-*\r\n").await;
    assert_eq!(out, "f OK LIST completed\r\n", "a valid pattern still matches as decoded");
}

#[tokio::test]
async fn recursivematch_and_lsub_show_parents_of_subscriptions_the_pattern_misses() {
    let env = env().await;
    let mut c = Client::logged_in(&env, "alice@example.org").await;
    for name in ["t/test1", "t/test2/test1", "t/test7/test7", "t/test8/test8", "t/test8/test9", "t/test3/x"] {
        c.send(&format!("c CREATE {name}\r\n")).await;
    }
    for name in ["t/test1", "t/test2/test1", "t/test7/test7", "t/test8/test8", "t/test8/test9"] {
        c.send(&format!("s SUBSCRIBE {name}\r\n")).await;
    }
    // test2's subscribed child is not listed itself: test2 is, with CHILDINFO.
    let out = c.send("a LIST (SUBSCRIBED RECURSIVEMATCH) \"\" t/test2\r\n").await;
    assert!(out.contains("\"t/test2\" (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n"), "{out}");
    // ... but when the patterns list the child, it speaks for itself (RFC 5258 §3.5).
    let out = c.send("b LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (t/test2 t/test2/test1)\r\n").await;
    assert_eq!(untagged(&out), ["* LIST (\\HasNoChildren \\Subscribed) \"/\" \"t/test2/test1\""]);
    let out = c.send("c LIST (SUBSCRIBED RECURSIVEMATCH) \"\" *test7\r\n").await;
    assert_eq!(untagged(&out), ["* LIST (\\HasNoChildren \\Subscribed) \"/\" \"t/test7/test7\""]);
    let out = c.send("d LIST (SUBSCRIBED RECURSIVEMATCH) \"\" *test8\r\n").await;
    assert!(out.contains("\"t/test8\" (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n"), "test8/test9 is not listed: {out}");

    // LSUB "%": a parent of a subscription is \Noselect, subscribed or not (RFC 3501 §6.3.9).
    let out = c.send("e LSUB \"\" t/%\r\n").await;
    assert_eq!(
        untagged(&out),
        [
            "* LSUB () \"/\" \"t/test1\"",
            "* LSUB (\\Noselect) \"/\" \"t/test2\"",
            "* LSUB (\\Noselect) \"/\" \"t/test7\"",
            "* LSUB (\\Noselect) \"/\" \"t/test8\"",
        ]
    );
    let out = c.send("f LSUB \"\" *test7\r\n").await;
    assert_eq!(untagged(&out), ["* LSUB () \"/\" \"t/test7/test7\""], "matched itself: no parent");
}

#[tokio::test]
async fn move_into_the_selected_mailbox_expunges_and_adds() {
    let env = env().await;
    for _ in 0..3 {
        deliver(&env, "alice@example.org", MESSAGE).await;
    }
    let mut c = Client::selected(&env, "alice@example.org", "INBOX").await;
    let out = c.send("a MOVE 1 INBOX\r\n").await;
    assert!(out.starts_with("* OK [COPYUID "), "{out}");
    assert!(out.contains(" 1 4] Moved\r\n* 1 EXPUNGE\r\n* 3 EXISTS\r\n* 3 RECENT\r\na OK MOVE completed\r\n"), "{out}");
    let out = c.send("b COPY 1 INBOX\r\n").await;
    assert!(out.contains("* 4 EXISTS\r\n") && out.ends_with(" 2 5] COPY completed\r\n"), "{out}");
    assert_eq!(c.send("c UID SEARCH ALL\r\n").await, "* SEARCH 2 3 4 5\r\nc OK SEARCH completed\r\n");
}

#[tokio::test]
async fn append_of_a_binary_part_with_nul_stores_it_base64() {
    let env = env().await;
    let mut c = Client::logged_in(&env, "alice@example.org").await;
    let raw = b"From: user@domain.org\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n\x00-\xe4\n\r\n\n";
    let mut command = format!("a APPEND INBOX ~{{{}+}}\r\n", raw.len()).into_bytes();
    command.extend_from_slice(raw);
    command.extend_from_slice(b"\r\n");
    assert!(c.send_bytes(&command).await.contains("a OK [APPENDUID "));
    c.send("b SELECT INBOX\r\n").await;
    let out = c.send("c FETCH 1 (BODY.PEEK[1] BINARY.SIZE[1] BODYSTRUCTURE)\r\n").await;
    assert!(out.starts_with("* 1 FETCH (BODY[1] {14}\r\nAC3kCg0KCg==\r\n BINARY.SIZE[1] 7 BODYSTRUCTURE (\"APPLICATION\" \"OCTET-STREAM\" NIL NIL NIL \"BASE64\" 14 "), "{out}");
    let out = c.send_bytes(b"d FETCH 1 BINARY.PEEK[1]\r\n").await;
    assert!(out.as_bytes().starts_with(b"* 1 FETCH (BINARY[1] ~{7}\r\n\x00-"), "{out:?}");
    // A NUL outside any body cannot be hidden.
    let raw = b"Subject: a\x00b\r\n\r\nbody\r\n";
    let mut command = format!("e APPEND INBOX ~{{{}+}}\r\n", raw.len()).into_bytes();
    command.extend_from_slice(raw);
    command.extend_from_slice(b"\r\n");
    assert!(c.send_bytes(&command).await.starts_with("e NO [CANNOT]"));
}

#[tokio::test]
async fn sent_dates_are_the_date_headers_own_day() {
    let env = env().await;
    for date in
        ["Sat, 24 Mar 2007 23:00:00 +0200", "Sun, 25 Mar 2007 00:00:00 +0200", "Mon, 26 Mar 2007 00:30:00 +0300"]
    {
        deliver(&env, "alice@example.org", &format!("Date: {date}\r\nSubject: d\r\n\r\nx\r\n")).await;
    }
    let mut c = Client::selected(&env, "alice@example.org", "INBOX").await;
    for (query, expected) in [
        ("SENTON 24-Mar-2007", "1"),
        ("SENTON 25-Mar-2007", "2"),
        ("SENTBEFORE 26-Mar-2007", "1 2"),
        ("SENTSINCE 26-Mar-2007", "3"),
        ("NOT SENTON 25-Mar-2007", "1 3"),
    ] {
        let out = c.send(&format!("s SEARCH {query}\r\n")).await;
        assert_eq!(out, format!("* SEARCH {expected}\r\ns OK SEARCH completed\r\n"), "{query}");
    }
}

#[tokio::test]
async fn address_keys_match_the_addresses_however_written() {
    let env = env().await;
    for from in [
        "user-from@domain.org",
        "<user-from (comment)@ (comment) domain.org>",
        "user-from@domain.org (RealFrom)",
        "=?utf-8?q?J=C3=BCrgen?= <jf@domain.org>",
    ] {
        deliver(&env, "alice@example.org", &format!("From: {from}\r\nTo: group: g1@d.org, g2@d.org;\r\n\r\nx\r\n"))
            .await;
    }
    let mut c = Client::selected(&env, "alice@example.org", "INBOX").await;
    for (query, expected) in [
        ("FROM user-from@domain.org", "1 2 3"),
        ("FROM ser-fro", "1 2 3"),
        ("FROM realfrom", "3"),
        ("FROM comment", "2"),
        ("CHARSET UTF-8 FROM \"jürgen\"", "4"),
        ("TO group", "1 2 3 4"),
        ("TO g2@d", "1 2 3 4"),
        ("TO g3", ""),
        ("HEADER FROM comment", "2"),
    ] {
        let out = c.send(&format!("s SEARCH {query}\r\n")).await;
        let expected = if expected.is_empty() { String::new() } else { format!(" {expected}") };
        assert_eq!(out, format!("* SEARCH{expected}\r\ns OK SEARCH completed\r\n"), "{query}");
    }
}

#[tokio::test]
async fn an_empty_part_is_sent_as_an_empty_literal() {
    let env = env().await;
    deliver(&env, "alice@example.org", "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n--b--\r\n").await;
    let mut c = Client::selected(&env, "alice@example.org", "INBOX").await;
    let out = c.send("a FETCH 1 (BODY.PEEK[1] BODY.PEEK[1.MIME] BINARY.PEEK[1])\r\n").await;
    assert_eq!(
        out,
        "* 1 FETCH (BODY[1] {0}\r\n BODY[1.MIME] {2}\r\n\r\n BINARY[1] {0}\r\n)\r\na OK FETCH completed\r\n"
    );
}
