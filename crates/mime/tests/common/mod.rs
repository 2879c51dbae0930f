//! Sample messages shared by the test files, written with "\n" and stored as CRLF.
#![allow(dead_code)]

pub fn crlf(s: &str) -> Vec<u8> {
    s.replace('\n', "\r\n").into_bytes()
}

/// Every sample, for the tests that run all of them.
pub const ALL: &[&str] = &[PLAIN, ENCODED, MIXED, ALTERNATIVE, FORWARD, GROUPS, FOLDED, UTF8_RAW];

// RFC 3501 §7.4.2's example message, single part, plain ASCII.
pub const PLAIN: &str = "\
From: Fred Foobar <foobar@Blurdybloop.example>
Subject: afternoon meeting
To: mooch@owatagu.siam.edu.example
Message-Id: <B27397-0100000@Blurdybloop.example>
MIME-Version: 1.0
Content-Type: TEXT/PLAIN; CHARSET=US-ASCII
Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)

Hello Joe, do you think we can meet at 3:30 tomorrow?
";

// Encoded words in the subject (left raw in the envelope) and in display names (decoded by
// mail-parser, re-encoded as UTF-8 "B" words so the envelope stays 7-bit).
pub const ENCODED: &str = "\
From: =?ISO-8859-1?Q?Andr=E9?= Pirard <PIRARD@vm1.ulg.ac.be>
To: =?UTF-8?B?0JjQstCw0L0=?= <ivan@example.ru>, plain@example.ru
Subject: =?UTF-8?Q?Caf=C3=A9?= =?UTF-8?Q?_cr=C3=A8me?=
Content-Type: text/plain; charset=utf-8

x
";

pub const MIXED: &str = "\
From: Alice <alice@example.org>
To: Bob <bob@example.com>
Subject: Report
Date: Mon, 1 Jan 2024 10:00:00 +0000
Message-ID: <c1@example.org>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=\"==b1==\"

This is a multi-part message in MIME format.
--==b1==
Content-Type: text/plain; charset=\"utf-8\"
Content-Transfer-Encoding: quoted-printable

Voil=C3=A0 le rapport.
--==b1==
Content-Type: application/pdf; name=\"report.pdf\"
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename=\"report.pdf\"
Content-ID: <part2@example.org>
Content-Description: The report

JVBERi0xLjQKJcfsj6IK
--==b1==--
";

pub const ALTERNATIVE: &str = "\
From: a@example.org
Subject: nested
Content-Type: multipart/mixed; boundary=outer

--outer
Content-Type: multipart/alternative; boundary=inner

--inner
Content-Type: text/plain; charset=us-ascii

plain text
--inner
Content-Type: text/html; charset=us-ascii

<p>html</p>
--inner--

--outer
Content-Type: image/png
Content-Transfer-Encoding: base64
Content-Disposition: inline

iVBORw0KGgo=
--outer--
";

pub const FORWARD: &str = "\
From: Carol <carol@example.net>
To: Dave <dave@example.net>
Subject: Fwd: original
Date: Tue, 2 Jan 2024 08:30:00 -0500
Content-Type: multipart/mixed; boundary=fwd

--fwd
Content-Type: text/plain

See below.
--fwd
Content-Type: message/rfc822
Content-Disposition: attachment

From: Erin <erin@example.com>
To: Carol <carol@example.net>
Subject: original
Date: Mon, 1 Jan 2024 12:00:00 +0100
Message-ID: <orig@example.com>
Content-Type: multipart/mixed; boundary=in

--in
Content-Type: text/plain; charset=utf-8

first
--in
Content-Type: text/x-diff; name=p.diff

+line
--in--
--fwd--
";

// RFC 5322 Appendix A.1.3 style groups, no Date/Subject/Message-ID, no Content-Type.
pub const GROUPS: &str = "\
From: Pete <pete@silly.example>
To: A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;
Cc: Undisclosed recipients:;
Reply-To: list:a@b.test;, c@d.test
Bcc:

body
";

pub const FOLDED: &str = "\
Subject: This is a
 folded subject
From: \"Doe, John\"
\t<john@example.com>
To: a@example.com,
 b@example.com
Message-ID:
 <folded@example.com>
X-Long: one
  two
Date: Thu,
 4 Jan 2024 00:00:00 +0000

Body
";

// SMTPUTF8 (RFC 6532): raw UTF-8 in header fields.
pub const UTF8_RAW: &str = "\
From: Jürgen Müller <jürgen@bücher.example>
To: 山田 <yamada@例え.jp>
Subject: Grüße aus Köln
Date: Wed, 3 Jan 2024 09:00:00 +0100
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Schöne Grüße
";
