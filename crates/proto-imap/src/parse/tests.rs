use super::*;
use zeroize::Zeroizing;

fn parse(s: &str) -> CommandBody {
    match parse_command(s.as_bytes()) {
        Ok(c) => c.body,
        Err(e) => panic!("{s:?}: {e:?}"),
    }
}

fn error(s: &[u8]) -> ParseError {
    parse_command(s).expect_err(&String::from_utf8_lossy(s))
}

fn set(s: &str) -> SequenceSet {
    let mut p = Parser { b: s.as_bytes(), i: 0, depth: 0, keys: 0, append_message: None };
    p.sequence_set().unwrap()
}

#[test]
fn simple_commands() {
    for (text, body) in [
        ("a CAPABILITY\r\n", CommandBody::Capability),
        ("a noop\r\n", CommandBody::Noop),
        ("A1 LOGOUT\n", CommandBody::Logout),
        ("x IDLE\r\n", CommandBody::Idle),
        ("x UNSELECT\r\n", CommandBody::Unselect),
        ("x EXPUNGE\r\n", CommandBody::Expunge { uids: None }),
        ("x NAMESPACE\r\n", CommandBody::Namespace),
    ] {
        assert_eq!(parse(text), body);
    }
    let c = parse_command(b"tag.1 CHECK\r\n").unwrap();
    assert_eq!(c.tag, "tag.1");
}

#[test]
fn login_with_quoted_atom_and_literal_strings() {
    assert_eq!(
        parse("a LOGIN alice@example.org \"pa ss\\\"w\\\\d\"\r\n"),
        CommandBody::Login {
            username: b"alice@example.org".to_vec(),
            password: Zeroizing::new(b"pa ss\"w\\d".to_vec())
        }
    );
    assert_eq!(
        parse("a LOGIN {5}\r\nalice {3+}\r\np w\r\n"),
        CommandBody::Login { username: b"alice".to_vec(), password: Zeroizing::new(b"p w".to_vec()) }
    );
}

#[test]
fn authenticate_and_id_and_enable() {
    assert_eq!(
        parse("a AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\n"),
        CommandBody::Authenticate {
            mechanism: "PLAIN".into(),
            initial_response: Some(b"AGFsaWNlAHNlY3JldA==".to_vec())
        }
    );
    assert_eq!(
        parse("a authenticate plain\r\n"),
        CommandBody::Authenticate { mechanism: "PLAIN".into(), initial_response: None }
    );
    assert_eq!(
        parse("a ID (\"name\" \"Thunderbird\" \"version\" NIL)\r\n"),
        CommandBody::Id(Some(vec![("name".into(), Some("Thunderbird".into())), ("version".into(), None)]))
    );
    assert_eq!(parse("a ID NIL\r\n"), CommandBody::Id(None));
    assert_eq!(
        parse("a ENABLE IMAP4rev2 CONDSTORE\r\n"),
        CommandBody::Enable(vec!["IMAP4REV2".into(), "CONDSTORE".into()])
    );
}

#[test]
fn select_with_condstore_and_qresync() {
    assert_eq!(
        parse("a SELECT INBOX\r\n"),
        CommandBody::Select { mailbox: b"INBOX".to_vec(), read_only: false, params: SelectParams::default() }
    );
    assert_eq!(
        parse("a EXAMINE \"Sent Items\" (CONDSTORE)\r\n"),
        CommandBody::Select {
            mailbox: b"Sent Items".to_vec(),
            read_only: true,
            params: SelectParams { condstore: true, qresync: None }
        }
    );
    let CommandBody::Select { params, .. } =
        parse("a SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541 (1:5 41:45)))\r\n")
    else {
        panic!()
    };
    let q = params.qresync.unwrap();
    assert_eq!((q.uidvalidity, q.modseq), (67890007, 20050715194045000));
    assert_eq!(q.known_uids, Some(set("41,43:211,214:541")));
    assert_eq!(q.seq_match, Some((set("1:5"), set("41:45"))));
}

#[test]
fn list_basic_and_extended() {
    assert_eq!(
        parse("a LIST \"\" *\r\n"),
        CommandBody::List(ListCommand { reference: vec![], patterns: vec![b"*".to_vec()], ..Default::default() })
    );
    assert_eq!(
        parse("a LIST \"\" %/Archive%\r\n"),
        CommandBody::List(ListCommand {
            reference: vec![],
            patterns: vec![b"%/Archive%".to_vec()],
            ..Default::default()
        })
    );
    let CommandBody::List(l) =
        parse("a LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (\"INBOX\" \"Lists/%\") RETURN (CHILDREN SPECIAL-USE STATUS (MESSAGES UNSEEN SIZE))\r\n")
    else {
        panic!()
    };
    assert!(l.extended && l.subscribed && l.recursive_match && l.return_children && l.return_special_use);
    assert_eq!(l.patterns, vec![b"INBOX".to_vec(), b"Lists/%".to_vec()]);
    assert_eq!(l.return_status, vec![StatusItem::Messages, StatusItem::Unseen, StatusItem::Size]);
    assert!(parse_command(b"a LIST (RECURSIVEMATCH) \"\" *\r\n").is_err());
    assert!(matches!(parse("a LIST \"\" \"\" RETURN ()\r\n"), CommandBody::List(l) if l.extended));
}

#[test]
fn status_create_rename_append() {
    assert_eq!(
        parse("a STATUS Drafts (MESSAGES UIDNEXT HIGHESTMODSEQ)\r\n"),
        CommandBody::Status {
            mailbox: b"Drafts".to_vec(),
            items: vec![StatusItem::Messages, StatusItem::UidNext, StatusItem::HighestModSeq]
        }
    );
    assert_eq!(
        parse("a CREATE Receipts (USE (\\Archive))\r\n"),
        CommandBody::Create { mailbox: b"Receipts".to_vec(), special_use: vec!["\\ARCHIVE".into()] }
    );
    assert_eq!(parse("a RENAME a b\r\n"), CommandBody::Rename { from: b"a".to_vec(), to: b"b".to_vec() });
    assert_eq!(
        parse("a APPEND Sent (\\Seen $Forwarded) \" 7-Feb-1994 21:52:25 -0800\" {5+}\r\nHello\r\n"),
        CommandBody::Append {
            mailbox: b"Sent".to_vec(),
            flags: vec![Flag::Seen, Flag::Keyword("$Forwarded".into())],
            date: Some(760_686_745),
            message: b"Hello".to_vec()
        }
    );
    assert!(matches!(parse("a APPEND INBOX {0}\r\n\r\n"), CommandBody::Append { message, .. } if message.is_empty()));
}

#[test]
fn fetch_items_sections_and_modifiers() {
    let CommandBody::Fetch(f) = parse("a FETCH 1:* (FLAGS)\r\n") else { panic!() };
    assert_eq!(
        (f.uid, f.set, f.items),
        (false, SequenceSet::of(&[(SeqNum::Value(1), SeqNum::Star)]), vec![FetchItem::Flags])
    );
    let CommandBody::Fetch(f) = parse(
        "a UID FETCH 4,6:9 (UID BODY.PEEK[HEADER.FIELDS (From Subject)] BODY[1.2.MIME] BODY[TEXT]<0.2048> BINARY.PEEK[2] BINARY.SIZE[1] RFC822.SIZE MODSEQ) (CHANGEDSINCE 12345 VANISHED)\r\n",
    ) else {
        panic!()
    };
    assert!(f.uid && f.vanished);
    assert_eq!(f.changed_since, Some(12345));
    assert_eq!(
        f.items,
        vec![
            FetchItem::Uid,
            FetchItem::BodySection {
                peek: true,
                section: Section {
                    part: vec![],
                    text: Some(SectionText::HeaderFields(vec!["From".into(), "Subject".into()]))
                },
                partial: None,
                legacy: None
            },
            FetchItem::BodySection {
                peek: false,
                section: Section { part: vec![1, 2], text: Some(SectionText::Mime) },
                partial: None,
                legacy: None
            },
            FetchItem::BodySection {
                peek: false,
                section: Section { part: vec![], text: Some(SectionText::Text) },
                partial: Some((0, 2048)),
                legacy: None
            },
            FetchItem::Binary { peek: true, part: vec![2], partial: None },
            FetchItem::BinarySize { part: vec![1] },
            FetchItem::Rfc822Size,
            FetchItem::ModSeq,
        ]
    );
    let CommandBody::Fetch(f) = parse("a FETCH 1 FULL\r\n") else { panic!() };
    assert_eq!(f.items.len(), 5);
    let CommandBody::Fetch(f) = parse("a FETCH 1 BODY[]\r\n") else { panic!() };
    assert_eq!(
        f.items,
        vec![FetchItem::BodySection { peek: false, section: Section::default(), partial: None, legacy: None }]
    );
    let CommandBody::Fetch(f) = parse("a FETCH 2 (BODY[3.HEADER] BODY)\r\n") else { panic!() };
    assert_eq!(f.items[1], FetchItem::Body);
    assert!(parse_command(b"a FETCH 1 (CHANGEDSINCE)\r\n").is_err());
    assert!(parse_command(b"a FETCH 1 FLAGS (VANISHED CHANGEDSINCE 1)\r\n").is_err(), "VANISHED needs UID FETCH");
    assert!(parse_command(b"a FETCH 1 BODY[1.MIME.X]\r\n").is_err());
    assert!(parse_command(b"a FETCH 1 BODY[MIME]\r\n").is_err());
    assert!(parse_command(b"a FETCH 0 FLAGS\r\n").is_err());
}

#[test]
fn store_variants() {
    assert_eq!(
        parse("a STORE 1:3 +FLAGS.SILENT (\\Deleted $Junk)\r\n"),
        CommandBody::Store(StoreCommand {
            uid: false,
            set: set("1:3"),
            unchanged_since: None,
            op: StoreOp::Add,
            silent: true,
            flags: vec![Flag::Deleted, Flag::Keyword("$Junk".into())]
        })
    );
    assert_eq!(
        parse("a UID STORE 7 (UNCHANGEDSINCE 320162338) -FLAGS \\Seen\r\n"),
        CommandBody::Store(StoreCommand {
            uid: true,
            set: set("7"),
            unchanged_since: Some(320162338),
            op: StoreOp::Remove,
            silent: false,
            flags: vec![Flag::Seen]
        })
    );
    assert!(
        matches!(parse("a STORE 1 FLAGS ()\r\n"), CommandBody::Store(s) if s.flags.is_empty() && s.op == StoreOp::Replace)
    );
}

#[test]
fn search_keys() {
    let CommandBody::Search(s) = parse("a SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"\r\n") else { panic!() };
    assert_eq!(
        s.criteria,
        SearchKey::And(vec![
            SearchKey::Flag(Flag::Flagged),
            SearchKey::Since(days_from(1994, 2, 1)),
            SearchKey::Not(Box::new(SearchKey::From("Smith".into()))),
        ])
    );
    let CommandBody::Search(s) = parse("a UID SEARCH RETURN (MIN COUNT) CHARSET UTF-8 OR (SUBJECT {7}\r\nGrüße) 1:5 HEADER Message-ID \"<x@y>\" MODSEQ 620162338\r\n") else {
        panic!()
    };
    assert!(s.uid);
    assert_eq!(s.returns, Some(vec![SearchReturn::Min, SearchReturn::Count]));
    assert_eq!(s.charset.as_deref(), Some("UTF-8"));
    assert_eq!(
        s.criteria,
        SearchKey::And(vec![
            SearchKey::Or(
                Box::new(SearchKey::And(vec![SearchKey::Subject("Grüße".into())])),
                Box::new(SearchKey::SequenceSet(set("1:5")))
            ),
            SearchKey::Header("Message-ID".into(), "<x@y>".into()),
            SearchKey::ModSeq(620162338),
        ])
    );
    let CommandBody::Search(s) =
        parse("a SEARCH RETURN () UNSEEN LARGER 100 SMALLER 5000 UID 1:* KEYWORD $Junk SENTON \"3-Mar-2020\"\r\n")
    else {
        panic!()
    };
    assert_eq!(s.returns, Some(vec![]));
    assert!(matches!(s.criteria, SearchKey::And(ref v) if v.len() == 6));
    assert!(
        matches!(parse("a SEARCH MODSEQ \"/flags/\\\\draft\" all 620162338\r\n"), CommandBody::Search(s) if s.criteria == SearchKey::ModSeq(620162338))
    );
}

fn days_from(y: i64, m: u32, d: u32) -> i64 {
    crate::time::days_from_civil(y, m, d).unwrap()
}

#[test]
fn copy_move_expunge_and_quota() {
    assert_eq!(
        parse("a UID MOVE 1:3 Trash\r\n"),
        CommandBody::Move { uid: true, set: set("1:3"), mailbox: b"Trash".to_vec() }
    );
    assert_eq!(
        parse("a COPY 2 \"Saved\"\r\n"),
        CommandBody::Copy { uid: false, set: set("2"), mailbox: b"Saved".to_vec() }
    );
    assert_eq!(parse("a UID EXPUNGE 3000:3002\r\n"), CommandBody::Expunge { uids: Some(set("3000:3002")) });
    assert_eq!(parse("a GETQUOTAROOT INBOX\r\n"), CommandBody::GetQuotaRoot { mailbox: b"INBOX".to_vec() });
    assert_eq!(parse("a GETQUOTA \"\"\r\n"), CommandBody::GetQuota { root: vec![] });
    assert_eq!(
        parse("a SETQUOTA \"\" (STORAGE 512)\r\n"),
        CommandBody::SetQuota { root: vec![], limits: vec![("STORAGE".into(), 512)] }
    );
}

#[test]
fn sequence_sets() {
    let s = set("1,3:5,*,7:*");
    assert!(s.contains(1, 10) && s.contains(4, 10) && s.contains(10, 10) && s.contains(8, 10));
    assert!(!s.contains(2, 10) && !s.contains(6, 10));
    assert!(set("5:2").contains(3, 9), "ranges may be given high:low");
    assert_eq!(set("$"), SequenceSet::Saved);
    assert!(matches!(parse("a UID FETCH $ FLAGS\r\n"), CommandBody::Fetch(f) if f.set == SequenceSet::Saved));
    assert!(
        matches!(parse("a APPEND INBOX ~{3}\r\na\0c\r\n"), CommandBody::Append { message, .. } if message == b"a\0c")
    );
}

/// APPEND's message taken out of a command given away is the message, byte for byte; every
/// other command parses as from a borrowed buffer.
#[test]
fn owned_commands_give_append_its_own_buffer() {
    for raw in [
        &b"a APPEND INBOX (\\Seen) {12}\r\nhello\r\nworld\r\n"[..],
        b"b APPEND INBOX ~{3+}\r\na\0c\r\n",
        b"c APPEND \"Sent Items\" \"28-Nov-2026 10:00:00 +0000\" {0}\r\n\r\n",
        b"d SEARCH TEXT {5}\r\nhello\r\n",
        b"e LOGIN {5}\r\nalice pw\r\n",
    ] {
        let owned = parse_command_owned(raw.to_vec()).unwrap();
        assert_eq!(owned, parse_command(raw).unwrap(), "{:?}", String::from_utf8_lossy(raw));
    }
    assert!(matches!(
        parse_command_owned(b"a APPEND INBOX {12}\r\nhello\r\nworld\r\n".to_vec()).unwrap().body,
        CommandBody::Append { message, .. } if message == b"hello\r\nworld"
    ));
    assert!(parse_command_owned(b"a APPEND INBOX {99}\r\nshort\r\n".to_vec()).is_err());
}

#[test]
fn errors_keep_the_tag_when_there_is_one() {
    assert_eq!(error(b"a FROB\r\n").tag.as_deref(), Some("a"));
    assert_eq!(error(b"\r\n").tag, None);
    assert_eq!(error(b"+ NOOP\r\n").tag, None, "+ is not a tag character");
    for bad in [
        &b"a NOOP extra\r\n"[..],
        b"a LOGIN alice\r\n",
        b"a LOGIN {10}\r\nshort\r\n",
        b"a LOGIN \"unterminated\r\n",
        b"a SELECT\r\n",
        b"a FETCH 1:2 (FLAGS\r\n",
        b"a FETCH 99999999999 FLAGS\r\n",
        b"a SEARCH\r\n",
        b"a SEARCH SINCE 30-Feb-2020\r\n",
        b"a SEARCH ()\r\n",
        b"a STORE 1 FLAGS.LOUD (\\Seen)\r\n",
        b"a STATUS INBOX ()\r\n",
        b"a UID NOOP\r\n",
    ] {
        assert!(parse_command(bad).is_err(), "{}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn deep_nesting_is_refused_not_overflowed() {
    let deep = format!("a SEARCH {}ALL{}\r\n", "(".repeat(10_000), ")".repeat(10_000));
    assert!(parse_command(deep.as_bytes()).is_err());
    let nots = format!("a SEARCH {}ALL\r\n", "NOT ".repeat(10_000));
    assert!(parse_command(nots.as_bytes()).is_err());
}

#[test]
fn random_bytes_never_panic() {
    let mut seed: u64 = 0xdeadbeefcafef00d;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let pieces: &[&[u8]] = &[
        b"a ",
        b"UID ",
        b"FETCH ",
        b"SEARCH ",
        b"STORE ",
        b"LIST ",
        b"SELECT ",
        b"APPEND ",
        b"1:*",
        b"(",
        b")",
        b" ",
        b"{3}\r\n",
        b"{99}\r\n",
        b"\"",
        b"\\",
        b"BODY[",
        b"]",
        b"<0.5>",
        b"NOT ",
        b"OR ",
        b"*",
        b"%",
        b"\r\n",
        b"FLAGS",
        b"HEADER.FIELDS",
    ];
    for _ in 0..20_000 {
        let mut input = Vec::new();
        for _ in 0..(next() % 12) {
            if next() % 3 == 0 {
                input.extend((0..next() % 8).map(|_| next() as u8));
            } else {
                input.extend_from_slice(pieces[(next() % pieces.len() as u64) as usize]);
            }
        }
        let _ = parse_command(&input);
    }
}

/// Found by fuzzing (fuzz/fuzz_targets/imap_session.rs): a literal announcement followed by
/// anything but a line end gave "expected '\n'" with a raw LF, which the session sent inside
/// its BAD line. Error messages go into a response line: no control characters.
#[test]
fn error_messages_hold_no_control_characters() {
    let e = error(b"a LOGIN {5}x\r\n");
    assert_eq!(e.message, "expected '\\n'");
    for input in
        [&b"a LOGIN {5}x\r\n"[..], b"a LOGIN {5}\rx\n", b"a\x00 NOOP\r\n", b"a NO\x01OP\r\n", b"a SELECT \"\r\n"]
    {
        let e = error(input);
        assert!(!e.message.chars().any(char::is_control), "{input:?}: {:?}", e.message);
    }
}
