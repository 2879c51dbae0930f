//! Real messages, with ENVELOPE and BODYSTRUCTURE compared against strings derived by hand
//! from RFC 9051 §7.5.2 / RFC 3501 §7.4.2. Messages are written with "\n" and sent as CRLF.

mod common;

use common::*;
use portcullis_mime::{binary, body_text, header_values, section, summarize, Section, SectionText};

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn sec(raw: &[u8], part: &[u32], text: Option<SectionText>) -> Option<String> {
    section(raw, &Section { part: part.to_vec(), text }).map(|v| show(&v))
}

fn fields(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

fn header_len(raw: &[u8]) -> usize {
    raw.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4).unwrap()
}

#[test]
fn plain_ascii() {
    let raw = crlf(PLAIN);
    let s = summarize(&raw);
    assert_eq!(
        show(&s.envelope),
        "(\"Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\" \"afternoon meeting\" \
         ((\"Fred Foobar\" NIL \"foobar\" \"Blurdybloop.example\")) \
         ((\"Fred Foobar\" NIL \"foobar\" \"Blurdybloop.example\")) \
         ((\"Fred Foobar\" NIL \"foobar\" \"Blurdybloop.example\")) \
         ((NIL NIL \"mooch\" \"owatagu.siam.edu.example\")) NIL NIL NIL \
         \"<B27397-0100000@Blurdybloop.example>\")"
    );
    assert_eq!(
        show(&s.bodystructure),
        "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 55 1 NIL NIL NIL NIL)"
    );
    assert_eq!(show(&s.body), "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 55 1)");
    assert_eq!(s.header_len, header_len(&raw));
    // The Date: header's own date and time, 1996-07-17 02:23:25 (its zone, -0700, ignored).
    assert_eq!(s.sent_date, Some(837_570_205));

    let body = "Hello Joe, do you think we can meet at 3:30 tomorrow?\r\n";
    assert_eq!(sec(&raw, &[], None), Some(show(&raw)));
    assert_eq!(sec(&raw, &[], Some(SectionText::Text)).as_deref(), Some(body));
    assert_eq!(sec(&raw, &[], Some(SectionText::Header)), Some(show(&raw[..s.header_len])));
    // A single-part message has exactly one part, its body; its MIME header is the header.
    assert_eq!(sec(&raw, &[1], None).as_deref(), Some(body));
    assert_eq!(sec(&raw, &[1], Some(SectionText::Mime)), Some(show(&raw[..s.header_len])));
    assert_eq!(sec(&raw, &[2], None), None);
    assert_eq!(sec(&raw, &[1, 1], None), None);
    assert_eq!(sec(&raw, &[1], Some(SectionText::Header)), None);
    assert_eq!(sec(&raw, &[], Some(SectionText::Mime)), None);
    assert_eq!(binary(&raw, &[1]), Ok(Some(body.as_bytes().to_vec())));
    assert_eq!(body_text(&raw), body);
}

#[test]
fn header_fields_and_not() {
    let raw = crlf(PLAIN);
    assert_eq!(
        sec(&raw, &[], Some(SectionText::HeaderFields(fields(&["subject", "FROM", "X-Absent"])))).as_deref(),
        Some("From: Fred Foobar <foobar@Blurdybloop.example>\r\nSubject: afternoon meeting\r\n\r\n")
    );
    assert_eq!(
        sec(&raw, &[], Some(SectionText::HeaderFieldsNot(fields(&["From", "Subject", "To", "Message-Id", "Date"]))))
            .as_deref(),
        Some("MIME-Version: 1.0\r\nContent-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n\r\n")
    );
    assert_eq!(sec(&raw, &[], Some(SectionText::HeaderFields(fields(&["X-None"])))).as_deref(), Some("\r\n"));
}

#[test]
fn utf8_subject_with_encoded_words() {
    let raw = crlf(ENCODED);
    let s = summarize(&raw);
    // Display names as written: encoded words are not decoded and encoded again.
    let andre = "((\"=?ISO-8859-1?Q?Andr=E9?= Pirard\" NIL \"PIRARD\" \"vm1.ulg.ac.be\"))";
    assert_eq!(
        show(&s.envelope),
        format!(
            "(NIL \"=?UTF-8?Q?Caf=C3=A9?= =?UTF-8?Q?_cr=C3=A8me?=\" {andre} {andre} {andre} \
             ((\"=?UTF-8?B?0JjQstCw0L0=?=\" NIL \"ivan\" \"example.ru\")(NIL NIL \"plain\" \"example.ru\")) \
             NIL NIL NIL NIL)"
        )
    );
    assert_eq!(s.sent_date, None);
    assert_eq!(header_values(&raw, "SUBJECT"), vec!["Café crème".to_string()]);
    assert_eq!(header_values(&raw, "from"), vec!["André Pirard <PIRARD@vm1.ulg.ac.be>".to_string()]);
    assert!(header_values(&raw, "cc").is_empty());
}

#[test]
fn multipart_mixed_with_base64_attachment() {
    let raw = crlf(MIXED);
    let s = summarize(&raw);
    assert_eq!(
        show(&s.envelope),
        "(\"Mon, 1 Jan 2024 10:00:00 +0000\" \"Report\" ((\"Alice\" NIL \"alice\" \"example.org\")) \
         ((\"Alice\" NIL \"alice\" \"example.org\")) ((\"Alice\" NIL \"alice\" \"example.org\")) \
         ((\"Bob\" NIL \"bob\" \"example.com\")) NIL NIL NIL \"<c1@example.org>\")"
    );
    assert_eq!(
        show(&s.bodystructure),
        "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"QUOTED-PRINTABLE\" 22 0 NIL NIL NIL NIL)\
         (\"APPLICATION\" \"PDF\" (\"NAME\" \"report.pdf\") \"<part2@example.org>\" \"The report\" \"BASE64\" 20 \
         NIL (\"ATTACHMENT\" (\"FILENAME\" \"report.pdf\")) NIL NIL) \
         \"MIXED\" (\"BOUNDARY\" \"==b1==\") NIL NIL NIL)"
    );
    assert_eq!(
        show(&s.body),
        "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"QUOTED-PRINTABLE\" 22 0)\
         (\"APPLICATION\" \"PDF\" (\"NAME\" \"report.pdf\") \"<part2@example.org>\" \"The report\" \"BASE64\" 20) \
         \"MIXED\")"
    );
    assert_eq!(s.header_len, header_len(&raw));
    assert_eq!(s.sent_date, Some(1_704_103_200));

    assert_eq!(sec(&raw, &[1], None).as_deref(), Some("Voil=C3=A0 le rapport."));
    assert_eq!(sec(&raw, &[2], None).as_deref(), Some("JVBERi0xLjQKJcfsj6IK"));
    assert_eq!(
        sec(&raw, &[2], Some(SectionText::Mime)).as_deref(),
        Some(
            "Content-Type: application/pdf; name=\"report.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\
             Content-Disposition: attachment; filename=\"report.pdf\"\r\nContent-ID: <part2@example.org>\r\n\
             Content-Description: The report\r\n\r\n"
        )
    );
    assert_eq!(sec(&raw, &[3], None), None);
    assert_eq!(sec(&raw, &[0], None), None);
    assert!(sec(&raw, &[], Some(SectionText::Text)).unwrap().starts_with("This is a multi-part message"));
    assert_eq!(binary(&raw, &[1]), Ok(Some("Voilà le rapport.".as_bytes().to_vec())));
    assert_eq!(binary(&raw, &[2]), Ok(Some(b"%PDF-1.4\n%\xc7\xec\x8f\xa2\n".to_vec())));
    assert_eq!(binary(&raw, &[3]), Ok(None));
    assert_eq!(body_text(&raw), "Voilà le rapport.");
}

#[test]
fn alternative_nested_in_mixed() {
    let raw = crlf(ALTERNATIVE);
    let s = summarize(&raw);
    assert_eq!(
        show(&s.bodystructure),
        "(((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 10 0 NIL NIL NIL NIL)\
         (\"TEXT\" \"HTML\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 11 0 NIL NIL NIL NIL) \
         \"ALTERNATIVE\" (\"BOUNDARY\" \"inner\") NIL NIL NIL)\
         (\"IMAGE\" \"PNG\" NIL NIL NIL \"BASE64\" 12 NIL (\"INLINE\" NIL) NIL NIL) \
         \"MIXED\" (\"BOUNDARY\" \"outer\") NIL NIL NIL)"
    );
    assert_eq!(
        show(&s.body),
        "(((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 10 0)\
         (\"TEXT\" \"HTML\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 11 0) \"ALTERNATIVE\")\
         (\"IMAGE\" \"PNG\" NIL NIL NIL \"BASE64\" 12) \"MIXED\")"
    );
    assert_eq!(sec(&raw, &[1, 1], None).as_deref(), Some("plain text"));
    assert_eq!(sec(&raw, &[1, 2], None).as_deref(), Some("<p>html</p>"));
    assert_eq!(
        sec(&raw, &[1, 2], Some(SectionText::Mime)).as_deref(),
        Some("Content-Type: text/html; charset=us-ascii\r\n\r\n")
    );
    // A multipart part's body is everything between its header and the next outer delimiter.
    let alt = sec(&raw, &[1], None).unwrap();
    assert!(alt.starts_with("--inner\r\n") && alt.ends_with("--inner--\r\n"), "{alt:?}");
    assert_eq!(sec(&raw, &[2], None).as_deref(), Some("iVBORw0KGgo="));
    assert_eq!(sec(&raw, &[1, 3], None), None);
    assert_eq!(binary(&raw, &[2]), Ok(Some(b"\x89PNG\r\n\x1a\n".to_vec())));
    assert_eq!(body_text(&raw), "plain text\n<p>html</p>");
}

#[test]
fn message_rfc822_attached() {
    let raw = crlf(FORWARD);
    let s = summarize(&raw);
    let inner_envelope = "(\"Mon, 1 Jan 2024 12:00:00 +0100\" \"original\" \
        ((\"Erin\" NIL \"erin\" \"example.com\")) ((\"Erin\" NIL \"erin\" \"example.com\")) \
        ((\"Erin\" NIL \"erin\" \"example.com\")) ((\"Carol\" NIL \"carol\" \"example.net\")) \
        NIL NIL NIL \"<orig@example.com>\")";
    // The embedded message is 316 octets with 16 line ends (counted independently of this
    // crate): it ends with its own close delimiter, whose line break is its own, not the outer
    // boundary's (as Dovecot counts it).
    assert_eq!(
        show(&s.bodystructure),
        format!(
            "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 10 0 NIL NIL NIL NIL)\
             (\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 316 {inner_envelope} \
             ((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"7BIT\" 5 0 NIL NIL NIL NIL)\
             (\"TEXT\" \"X-DIFF\" (\"NAME\" \"p.diff\" \"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 5 0 NIL NIL NIL NIL) \
             \"MIXED\" (\"BOUNDARY\" \"in\") NIL NIL NIL) 16 NIL (\"ATTACHMENT\" NIL) NIL NIL) \
             \"MIXED\" (\"BOUNDARY\" \"fwd\") NIL NIL NIL)"
        )
    );
    assert_eq!(
        show(&s.body),
        format!(
            "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 10 0)\
             (\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 316 {inner_envelope} \
             ((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"7BIT\" 5 0)\
             (\"TEXT\" \"X-DIFF\" (\"NAME\" \"p.diff\" \"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 5 0) \
             \"MIXED\") 16) \"MIXED\")"
        )
    );
    assert_eq!(s.sent_date, Some(1_704_184_200), "2024-01-02 08:30, the Date: header's own time");

    let embedded = sec(&raw, &[2], None).unwrap();
    assert_eq!(embedded.len(), 316);
    assert!(embedded.starts_with("From: Erin") && embedded.ends_with("--in--\r\n"));
    let header = sec(&raw, &[2], Some(SectionText::Header)).unwrap();
    assert_eq!(header.len(), 197);
    assert!(header.starts_with("From: Erin") && header.ends_with("boundary=in\r\n\r\n"));
    assert_eq!(format!("{header}{}", sec(&raw, &[2], Some(SectionText::Text)).unwrap()), embedded);
    assert_eq!(
        sec(&raw, &[2], Some(SectionText::HeaderFields(fields(&["Subject"])))).as_deref(),
        Some("Subject: original\r\n\r\n")
    );
    assert_eq!(
        sec(&raw, &[2], Some(SectionText::Mime)).as_deref(),
        Some("Content-Type: message/rfc822\r\nContent-Disposition: attachment\r\n\r\n")
    );
    assert_eq!(sec(&raw, &[2, 1], None).as_deref(), Some("first"));
    assert_eq!(sec(&raw, &[2, 2], None).as_deref(), Some("+line"));
    assert_eq!(
        sec(&raw, &[2, 2], Some(SectionText::Mime)).as_deref(),
        Some("Content-Type: text/x-diff; name=p.diff\r\n\r\n")
    );
    assert_eq!(sec(&raw, &[2, 3], None), None);
    assert_eq!(sec(&raw, &[2, 1], Some(SectionText::Header)), None);
    assert_eq!(sec(&raw, &[1, 1], None), None);
    assert_eq!(binary(&raw, &[2, 1]), Ok(Some(b"first".to_vec())));
    assert_eq!(body_text(&raw), "See below.\nfirst\n+line");
    // SEARCH HEADER looks at the top-level header only.
    assert_eq!(header_values(&raw, "Subject"), vec!["Fwd: original".to_string()]);
}

#[test]
fn message_rfc822_single_part_inside() {
    // An embedded message that is not multipart has one part, numbered 1 below the message.
    let raw = crlf(
        "Subject: outer\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: message/rfc822\n\n\
         Subject: inner\n\ninner body\n--b--\n",
    );
    let s = summarize(&raw);
    assert_eq!(
        show(&s.bodystructure),
        "((\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 28 (NIL \"inner\" NIL NIL NIL NIL NIL NIL NIL NIL) \
         (\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 10 0 NIL NIL NIL NIL) 2 NIL NIL NIL NIL) \
         \"MIXED\" (\"BOUNDARY\" \"b\") NIL NIL NIL)"
    );
    assert_eq!(sec(&raw, &[1, 1], None).as_deref(), Some("inner body"));
    assert_eq!(sec(&raw, &[1, 1], Some(SectionText::Mime)).as_deref(), Some("Subject: inner\r\n\r\n"));
    assert_eq!(sec(&raw, &[1, 2], None), None);
    assert_eq!(sec(&raw, &[1], Some(SectionText::Text)).as_deref(), Some("inner body"));
}

#[test]
fn base64_encoded_message_rfc822_is_decoded_then_parsed() {
    // RFC 2046 forbids it, some senders do it: the embedded message is the decoded bytes.
    // "Subject: hi\r\n\r\nyo" in base64:
    let raw = crlf(
        "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: message/rfc822\n\
         Content-Transfer-Encoding: base64\n\nU3ViamVjdDogaGkNCg0KeW8=\n--b--\n",
    );
    let s = summarize(&raw);
    assert_eq!(
        show(&s.body),
        "((\"MESSAGE\" \"RFC822\" NIL NIL NIL \"BASE64\" 26 (NIL \"hi\" NIL NIL NIL NIL NIL NIL NIL NIL) \
         (\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 2 0) 1) \"MIXED\")"
    );
    // Still encoded, the body reads as one header line, whose line break is its own (as in
    // Dovecot, which does not decode it).
    assert_eq!(sec(&raw, &[1], None).as_deref(), Some("U3ViamVjdDogaGkNCg0KeW8=\r\n"));
    assert_eq!(sec(&raw, &[1], Some(SectionText::Header)).as_deref(), Some("Subject: hi\r\n\r\n"));
    assert_eq!(sec(&raw, &[1, 1], None).as_deref(), Some("yo"));
    assert_eq!(binary(&raw, &[1]), Ok(Some(b"Subject: hi\r\n\r\nyo".to_vec())));
}

#[test]
fn top_level_message_rfc822_and_digest() {
    let raw = crlf("Subject: wrapper\nContent-Type: message/rfc822\n\nSubject: inside\n\nhello\n");
    let s = summarize(&raw);
    assert_eq!(
        show(&s.body),
        "(\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 26 (NIL \"inside\" NIL NIL NIL NIL NIL NIL NIL NIL) \
         (\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 7 1) 3)"
    );
    assert_eq!(sec(&raw, &[1, 1], None).as_deref(), Some("hello\r\n"));
    assert_eq!(sec(&raw, &[1], Some(SectionText::Header)).as_deref(), Some("Subject: inside\r\n\r\n"));

    // Parts of a multipart/digest without a Content-Type are message/rfc822 (RFC 2046 §5.1.5).
    let raw = crlf(
        "Content-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: one\n\n1\n--d\n\nSubject: two\n\n2\n--d--\n",
    );
    let s = summarize(&raw);
    assert_eq!(
        show(&s.body),
        "((\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 17 (NIL \"one\" NIL NIL NIL NIL NIL NIL NIL NIL) \
         (\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 1 0) 2)\
         (\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 17 (NIL \"two\" NIL NIL NIL NIL NIL NIL NIL NIL) \
         (\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 1 0) 2) \"DIGEST\")"
    );
    assert_eq!(sec(&raw, &[2, 1], None).as_deref(), Some("2"));
    assert_eq!(
        sec(&raw, &[2], Some(SectionText::HeaderFields(fields(&["subject"])))).as_deref(),
        Some("Subject: two\r\n\r\n")
    );
}

#[test]
fn groups_and_missing_headers() {
    let raw = crlf(GROUPS);
    let s = summarize(&raw);
    let pete = "((\"Pete\" NIL \"pete\" \"silly.example\"))";
    assert_eq!(
        show(&s.envelope),
        format!(
            "(NIL NIL {pete} {pete} \
             ((NIL NIL \"list\" NIL)(NIL NIL \"a\" \"b.test\")(NIL NIL NIL NIL)(NIL NIL \"c\" \"d.test\")) \
             ((NIL NIL \"A Group\" NIL)(\"Ed Jones\" NIL \"c\" \"a.test\")(NIL NIL \"joe\" \"where.test\")\
             (\"John\" NIL \"jdoe\" \"one.test\")(NIL NIL NIL NIL)) \
             ((NIL NIL \"Undisclosed recipients\" NIL)(NIL NIL NIL NIL)) NIL NIL NIL)"
        )
    );
    // No Content-Type: text/plain; charset=us-ascii.
    assert_eq!(
        show(&s.bodystructure),
        "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 6 1 NIL NIL NIL NIL)"
    );
    assert_eq!(s.sent_date, None);
    assert_eq!(header_values(&raw, "bcc"), vec![String::new()]);
}

#[test]
fn no_headers_at_all() {
    let s = summarize(b"");
    assert_eq!(show(&s.envelope), "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
    assert_eq!(
        show(&s.bodystructure),
        "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 0 0 NIL NIL NIL NIL)"
    );
    assert_eq!(s.header_len, 0);

    // A blank first line: empty header, everything else is body.
    let s = summarize(b"\r\nbody\r\n");
    assert_eq!(s.header_len, 2);
    assert_eq!(show(&s.body), "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 6 1)");

    // Header fields without the blank line: all header, empty body.
    let raw = b"Subject: only a header";
    let s = summarize(raw);
    assert_eq!(s.header_len, raw.len());
    assert_eq!(show(&s.envelope), "(NIL \"only a header\" NIL NIL NIL NIL NIL NIL NIL NIL)");
    assert_eq!(sec(raw, &[], Some(SectionText::Text)).as_deref(), Some(""));
    assert_eq!(
        sec(raw, &[], Some(SectionText::HeaderFields(fields(&["subject"])))).as_deref(),
        Some("Subject: only a header\r\n\r\n")
    );
}

#[test]
fn folded_headers() {
    let raw = crlf(FOLDED);
    let s = summarize(&raw);
    let john = "((\"Doe, John\" NIL \"john\" \"example.com\"))";
    assert_eq!(
        show(&s.envelope),
        format!(
            "(\"Thu, 4 Jan 2024 00:00:00 +0000\" \"This is a folded subject\" {john} {john} {john} \
             ((NIL NIL \"a\" \"example.com\")(NIL NIL \"b\" \"example.com\")) NIL NIL NIL \"<folded@example.com>\")"
        )
    );
    assert_eq!(s.sent_date, Some(1_704_326_400));
    assert_eq!(
        sec(&raw, &[], Some(SectionText::HeaderFields(fields(&["x-long", "SUBJECT"])))).as_deref(),
        Some("Subject: This is a\r\n folded subject\r\nX-Long: one\r\n  two\r\n\r\n")
    );
    assert_eq!(header_values(&raw, "Subject"), vec!["This is a folded subject".to_string()]);
    assert_eq!(header_values(&raw, "x-long"), vec!["one two".to_string()]);
}

#[test]
fn eight_bit_raw_header() {
    let raw = crlf(UTF8_RAW);
    let s = summarize(&raw);
    // 8-bit names keep their bytes (a literal), like every other 8-bit field.
    let juergen = "(({15}\r\nJürgen Müller NIL {7}\r\njürgen {15}\r\nbücher.example))";
    assert_eq!(
        show(&s.envelope),
        format!(
            "(\"Wed, 3 Jan 2024 09:00:00 +0100\" {{17}}\r\nGrüße aus Köln {juergen} {juergen} {juergen} \
             (({{6}}\r\n山田 NIL \"yamada\" {{9}}\r\n例え.jp)) NIL NIL NIL NIL)"
        )
    );
    assert_eq!(
        show(&s.bodystructure),
        "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"8BIT\" 17 1 NIL NIL NIL NIL)"
    );
    assert_eq!(s.sent_date, Some(1_704_272_400), "09:00 in its own zone");
    assert_eq!(header_values(&raw, "subject"), vec!["Grüße aus Köln".to_string()]);
    assert_eq!(body_text(&raw), "Schöne Grüße\r\n");
}

#[test]
fn extension_data_and_rfc2231() {
    let raw = crlf(
        "Content-Type: text/plain; charset=iso-8859-1; format=flowed\n\
         Content-Transfer-Encoding: quoted-printable\n\
         Content-Disposition: inline; filename*=utf-8''na%C3%AFve.txt\n\
         Content-Language: en, de\n\
         Content-Location: http://example.com/x.txt\n\
         Content-ID: <id1@example.com>\n\n\
         caf=E9\n",
    );
    let s = summarize(&raw);
    assert_eq!(
        show(&s.bodystructure),
        "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"iso-8859-1\" \"FORMAT\" \"flowed\") \"<id1@example.com>\" NIL \
         \"QUOTED-PRINTABLE\" 8 1 NIL (\"INLINE\" (\"FILENAME*\" \"utf-8''na%C3%AFve.txt\")) (\"en\" \"de\") \
         \"http://example.com/x.txt\")"
    );
    assert_eq!(binary(&raw, &[1]), Ok(Some(b"caf\xe9\r\n".to_vec())));
    assert_eq!(body_text(&raw), "café\r\n");
}

#[test]
fn unknown_transfer_encoding() {
    let raw = crlf("Content-Type: text/plain\nContent-Transfer-Encoding: x-uuencode\n\nbegin 644 x\n");
    assert!(binary(&raw, &[1]).is_err());
    assert_eq!(binary(&raw, &[2]), Ok(None));
    // BODY[] and BODYSTRUCTURE still work, reporting the encoding as written.
    assert!(show(&summarize(&raw).bodystructure).contains("\"X-UUENCODE\""));
    assert_eq!(sec(&raw, &[1], None).as_deref(), Some("begin 644 x\r\n"));
}

#[test]
fn multipart_without_parts_gets_one_empty_text_part() {
    let raw = crlf("Content-Type: multipart/mixed; boundary=b\n\n--b--\n");
    let s = summarize(&raw);
    assert_eq!(show(&s.body), "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 0 0) \"MIXED\")");
    assert_eq!(sec(&raw, &[1], None).as_deref(), Some(""));
    assert_eq!(sec(&raw, &[2], None), None);
}

#[test]
fn multipart_without_boundary_has_no_parts() {
    // As Dovecot reads it: still a multipart, with the one empty part the grammar needs.
    let raw = crlf("Content-Type: multipart/mixed\n\nno boundary here\n");
    assert_eq!(
        show(&summarize(&raw).body),
        "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 0 0) \"MIXED\")"
    );
    assert_eq!(sec(&raw, &[1], None).as_deref(), Some(""));
}

#[test]
fn words_hidden_from_mail_parser_survive_in_boundaries_and_values() {
    // Boundaries and values containing rfc822/global/digest must come out exactly as written.
    let raw = crlf(
        "Subject: global digest of rfc822\nContent-Type: multipart/mixed; boundary=\"Global-Digest-RFC822\"\n\n\
         --Global-Digest-RFC822\nContent-Type: text/plain; name=global.txt\n\nglobal rfc822 digest\n\
         --Global-Digest-RFC822--\n",
    );
    let s = summarize(&raw);
    assert_eq!(
        show(&s.bodystructure),
        "((\"TEXT\" \"PLAIN\" (\"NAME\" \"global.txt\" \"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 20 0 NIL NIL NIL NIL) \
         \"MIXED\" (\"BOUNDARY\" \"Global-Digest-RFC822\") NIL NIL NIL)"
    );
    assert!(show(&s.envelope).contains("\"global digest of rfc822\""));
    assert_eq!(body_text(&raw), "global rfc822 digest");
    assert_eq!(sec(&raw, &[1], None).as_deref(), Some("global rfc822 digest"));
}

#[test]
fn message_global_is_a_basic_part() {
    // Reported as a basic body so that rev1 clients, which only know MESSAGE/RFC822, parse it.
    let raw = crlf("Content-Type: message/global\n\nSubject: x\n\ny\n");
    assert_eq!(show(&summarize(&raw).body), "(\"MESSAGE\" \"GLOBAL\" NIL NIL NIL \"7BIT\" 17)");
    assert_eq!(sec(&raw, &[1, 1], None), None);
}

#[test]
fn bare_lf_messages() {
    // Stored messages should be CRLF, but LF-only input must still give consistent answers.
    let raw = b"Subject: lf\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\nx\n--b--\n";
    let s = summarize(raw);
    assert_eq!(s.header_len, 55);
    assert_eq!(show(&s.body), "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 1 0) \"MIXED\")");
    assert_eq!(sec(raw, &[1], None).as_deref(), Some("x"));
}
