//! RFC 5322 §3.4 address lists, parsed leniently into what IMAP needs: the ENVELOPE's address
//! structures (RFC 3501 §7.4.2, group start and end markers included) and the text SEARCH FROM,
//! TO, CC and BCC match against.
//!
//! Written here rather than taken from mail-parser, whose address parser loses what the
//! ENVELOPE must show: source routes (`<@route:user@domain>`), empty groups (`group:;`),
//! malformed addresses inside groups, and a comment standing in for a missing display name
//! (`user@domain (Real Name)`); and it decodes display names, where the ENVELOPE sends the
//! bytes as written (encoded words and 8-bit text alike).
//!
//! The parser never fails: whatever the header holds becomes some list of addresses, as
//! Dovecot's does. Display names keep their bytes (quotes removed, escapes undone, runs of
//! white space made one space); a part that is missing (`user` alone, `@domain`) is reported
//! as `None` for the writer to fill in.

/// One entry of an address list, in header order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Item {
    Mailbox(Mailbox),
    /// `name:` begins a group; its members follow until [`Item::GroupEnd`].
    GroupStart(Vec<u8>),
    GroupEnd,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Mailbox {
    /// The display name, or else the last comment of the address.
    pub name: Option<Vec<u8>>,
    /// The obsolete source route ("@a,@b"), without its final colon; empty when it has no
    /// end ([`Mailbox::invalid_route`]).
    pub route: Option<Vec<u8>>,
    pub local: Option<Vec<u8>>,
    pub domain: Option<Vec<u8>>,
}

impl Mailbox {
    /// An empty route: `<@domain>` without the colon that should end the route.
    pub(crate) fn invalid_route(&self) -> bool {
        self.route.as_ref().is_some_and(|r| r.is_empty())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// An atom, or a quoted string (its content): a word.
    Word(Vec<u8>, bool),
    /// A domain literal, brackets included.
    Literal(Vec<u8>),
    Comment(Vec<u8>),
    /// One of `<>@,;:`.
    Special(u8),
}

/// Splits an unfolded header value into tokens; white space only separates them.
fn tokenize(value: &[u8]) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(&c) = value.get(i) {
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'"' => {
                let (content, end) = delimited(value, i + 1, b'"', None);
                tokens.push(Token::Word(content, true));
                i = end;
            }
            b'(' => {
                let (content, end) = delimited(value, i + 1, b')', Some(b'('));
                tokens.push(Token::Comment(content));
                i = end;
            }
            b'[' => {
                let (content, end) = delimited(value, i + 1, b']', None);
                let mut literal = vec![b'['];
                literal.extend_from_slice(&content);
                literal.push(b']');
                tokens.push(Token::Literal(literal));
                i = end;
            }
            b'<' | b'>' | b'@' | b',' | b';' | b':' => {
                tokens.push(Token::Special(c));
                i += 1;
            }
            // A stray closing bracket or parenthesis is kept as text, like any other byte.
            _ => {
                let start = i;
                while value.get(i).is_some_and(|&b| !is_delimiter(b)) {
                    i += 1;
                }
                if i == start {
                    i += 1;
                }
                tokens.push(Token::Word(value[start..i].to_vec(), false));
            }
        }
    }
    tokens
}

/// Ends an atom (`.` does not: "john.doe" and "Mr. Smith" stay whole words).
fn is_delimiter(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'"' | b'(' | b'[' | b'<' | b'>' | b'@' | b',' | b';' | b':')
}

/// The content up to the unescaped `close` (nested `open`s counted, for comments), and where
/// parsing resumes. An unterminated one runs to the end of the value.
fn delimited(value: &[u8], mut i: usize, close: u8, open: Option<u8>) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    let mut depth = 0usize;
    while let Some(&b) = value.get(i) {
        i += 1;
        match b {
            b'\\' => {
                if let Some(&next) = value.get(i) {
                    out.push(next);
                    i += 1;
                }
            }
            b'\r' | b'\n' => {}
            _ if Some(b) == open => {
                depth += 1;
                out.push(b);
            }
            _ if b == close && depth == 0 => return (out, i),
            _ if b == close => {
                depth -= 1;
                out.push(b);
            }
            _ => out.push(b),
        }
    }
    (out, i)
}

/// Words joined with one space between them (a phrase, or a local part written with
/// comments or spaces between its pieces, which are joined without).
fn join(words: &[Vec<u8>], separator: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for word in words.iter().filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.extend_from_slice(separator);
        }
        out.extend_from_slice(word);
    }
    (!out.is_empty()).then_some(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    /// The last comment met in the current address: its name when it has no display name.
    comment: Option<Vec<u8>>,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn special(&self) -> Option<u8> {
        match self.peek() {
            Some(Token::Special(c)) => Some(*c),
            _ => None,
        }
    }

    /// Words (atoms, quoted strings, domain literals) up to the next special; comments are
    /// remembered, not returned.
    fn words(&mut self) -> Vec<Vec<u8>> {
        let mut words = Vec::new();
        while let Some(token) = self.peek() {
            match token {
                Token::Word(w, _) | Token::Literal(w) => words.push(w.clone()),
                Token::Comment(c) => {
                    let comment = crate::fields::trim(c).to_vec();
                    if !comment.is_empty() {
                        self.comment = Some(comment);
                    }
                }
                Token::Special(_) => break,
            }
            self.at += 1;
        }
        words
    }

    /// One address list, up to `;` inside a group, or the end. Like Dovecot's, it stops at
    /// the first address followed by anything but a separator ("a@b@c, d@e" is "a@b"), and an
    /// empty element between commas is an address with nothing in it.
    fn list(&mut self, out: &mut Vec<Item>, in_group: bool) -> Flow {
        while self.peek().is_some() {
            match self.special() {
                Some(b';') if in_group => return Flow::Continue,
                // A stray `;` or `>` outside any address: skipped.
                Some(b';' | b'>') => {
                    self.at += 1;
                    continue;
                }
                _ => {}
            }
            self.comment = None;
            let phrase = self.words();
            match self.special() {
                Some(b':') if !in_group => {
                    self.at += 1;
                    out.push(Item::GroupStart(join(&phrase, b" ").unwrap_or_default()));
                    let flow = self.list(out, true);
                    if self.special() == Some(b';') {
                        self.at += 1;
                    }
                    out.push(Item::GroupEnd);
                    if flow == Flow::Stop {
                        return Flow::Stop;
                    }
                }
                Some(b'<') => {
                    self.at += 1;
                    let name = join(&phrase, b" ");
                    let mut mailbox = self.angle_addr();
                    mailbox.name = name.or_else(|| self.comment.take());
                    out.push(Item::Mailbox(mailbox));
                }
                Some(b'@') => {
                    self.at += 1;
                    let domain = self.domain();
                    out.push(Item::Mailbox(Mailbox {
                        name: self.comment.take(),
                        route: None,
                        local: join(&phrase, b""),
                        domain,
                    }));
                }
                Some(b',') if phrase.is_empty() => out.push(Item::Mailbox(Mailbox::default())),
                _ if phrase.is_empty() => {}
                // One word is a mailbox without a domain, more words a name without an address.
                _ if phrase.len() == 1 => out.push(Item::Mailbox(Mailbox {
                    name: self.comment.take(),
                    route: None,
                    local: join(&phrase, b""),
                    domain: None,
                })),
                _ => out.push(Item::Mailbox(Mailbox { name: join(&phrase, b" "), ..Mailbox::default() })),
            }
            self.skip_comments();
            match self.special() {
                Some(b',') => self.at += 1,
                Some(b';') if in_group => return Flow::Continue,
                None if self.peek().is_none() => return Flow::Continue,
                _ => return Flow::Stop,
            }
        }
        Flow::Continue
    }

    /// After `<`: an optional route, the addr-spec, and `>` (missing at the end of a
    /// malformed header).
    fn angle_addr(&mut self) -> Mailbox {
        let mut mailbox = Mailbox::default();
        // obs-route: "@a,@b:" before the addr-spec (RFC 5322 §4.4).
        if self.special() == Some(b'@') {
            let start = self.at;
            let mut route = Vec::new();
            while let Some(token) = self.peek() {
                match token {
                    Token::Special(b':') => break,
                    Token::Special(b'>') => break,
                    Token::Special(c) => route.push(*c),
                    Token::Word(w, _) | Token::Literal(w) => route.extend_from_slice(w),
                    Token::Comment(_) => {}
                }
                self.at += 1;
            }
            if self.special() == Some(b':') {
                self.at += 1;
                mailbox.route = Some(route);
            } else {
                // "<@domain>": a route that never ends; nothing usable (an empty route).
                self.at = start;
                self.skip_to_angle_end();
                return Mailbox { route: Some(Vec::new()), ..Mailbox::default() };
            }
        }
        let local = self.words();
        mailbox.local = join(&local, b"");
        if self.special() == Some(b'@') {
            self.at += 1;
            mailbox.domain = self.domain();
        }
        self.skip_to_angle_end();
        mailbox
    }

    fn skip_comments(&mut self) {
        while matches!(self.peek(), Some(Token::Comment(_))) {
            self.at += 1;
        }
    }

    /// Past the `>` that closes an angle address; whatever else is inside it is dropped.
    fn skip_to_angle_end(&mut self) {
        while let Some(token) = self.peek() {
            let end = *token == Token::Special(b'>');
            self.at += 1;
            if end {
                break;
            }
        }
    }

    /// The domain after `@`: its words joined, up to the end of the address.
    fn domain(&mut self) -> Option<Vec<u8>> {
        let words = self.words();
        join(&words, b"")
    }
}

/// The address list in a header field's raw value (folded or not).
pub(crate) fn parse(value: &[u8]) -> Vec<Item> {
    let mut parser = Parser { tokens: tokenize(value), at: 0, comment: None };
    let mut out = Vec::new();
    parser.list(&mut out, false);
    out
}

/// The text SEARCH FROM/TO/CC/BCC look into (RFC 9051 §6.4.4: "contains the specified
/// string"): each address as `name <local@domain>` with its display name decoded (RFC 2047,
/// 8-bit text as UTF-8), groups as `name: members;`, separated by ", ". Comments other than a
/// stand-in name, white space and quoting are gone, so "user-from (x)@ domain.org" is found as
/// "user-from@domain.org".
pub(crate) fn search_text(value: &[u8]) -> String {
    let mut out = String::new();
    let mut need_separator = false;
    for item in parse(value) {
        match item {
            Item::GroupStart(name) => {
                if need_separator {
                    out.push_str(", ");
                }
                out.push_str(&decode_words(&name));
                out.push_str(": ");
                need_separator = false;
            }
            Item::GroupEnd => {
                out.push(';');
                need_separator = true;
            }
            Item::Mailbox(m) => {
                if need_separator {
                    out.push_str(", ");
                }
                let address = match (&m.local, &m.domain) {
                    (Some(l), Some(d)) => format!("{}@{}", lossy(l), lossy(d)),
                    (Some(l), None) => lossy(l),
                    (None, Some(d)) => format!("@{}", lossy(d)),
                    (None, None) => String::new(),
                };
                match &m.name {
                    Some(name) if address.is_empty() => out.push_str(&decode_words(name)),
                    Some(name) => out.push_str(&format!("{} <{address}>", decode_words(name))),
                    None => out.push_str(&address),
                }
                need_separator = true;
            }
        }
    }
    out
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// RFC 2047 encoded words decoded (as mail-parser decodes unstructured text), the rest as
/// UTF-8.
fn decode_words(bytes: &[u8]) -> String {
    use mail_parser::parsers::MessageStream;
    use mail_parser::HeaderValue;
    let mut value = bytes.to_vec();
    value.extend_from_slice(b"\r\n");
    match MessageStream::new(&value).parse_unstructured() {
        HeaderValue::Text(text) => text.into_owned(),
        _ => lossy(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox(name: Option<&str>, route: Option<&str>, local: Option<&str>, domain: Option<&str>) -> Item {
        let b = |s: Option<&str>| s.map(|s| s.as_bytes().to_vec());
        Item::Mailbox(Mailbox { name: b(name), route: b(route), local: b(local), domain: b(domain) })
    }

    fn group(name: &str) -> Item {
        Item::GroupStart(name.as_bytes().to_vec())
    }

    #[test]
    fn plain_named_and_commented() {
        assert_eq!(parse(b" user@domain.org"), vec![mailbox(None, None, Some("user"), Some("domain.org"))]);
        assert_eq!(
            parse(b"Real  Name <user@domain.org>, \"Quoted \\\"Name\\\"\" <q@x>"),
            vec![
                mailbox(Some("Real Name"), None, Some("user"), Some("domain.org")),
                mailbox(Some("Quoted \"Name\""), None, Some("q"), Some("x")),
            ]
        );
        assert_eq!(
            parse(b"user@domain (Real Name)"),
            vec![mailbox(Some("Real Name"), None, Some("user"), Some("domain"))]
        );
        assert_eq!(
            parse(b"<user-from (comment)@ (comment) domain.org>"),
            vec![mailbox(Some("comment"), None, Some("user-from"), Some("domain.org"))]
        );
        assert_eq!(parse(b"john.doe@[192.0.2.1]"), vec![mailbox(None, None, Some("john.doe"), Some("[192.0.2.1]"))]);
        assert_eq!(
            parse(b"=?utf-8?q?J=C3=BCrgen?= <j@x>"),
            vec![mailbox(Some("=?utf-8?q?J=C3=BCrgen?="), None, Some("j"), Some("x"))]
        );
        assert_eq!(
            parse("Heinz M\u{fc}ller <h@x>".as_bytes())[0],
            mailbox(Some("Heinz Müller"), None, Some("h"), Some("x"))
        );
    }

    #[test]
    fn routes_groups_and_empty_groups() {
        assert_eq!(parse(b"<@route:user@domain>"), vec![mailbox(None, Some("@route"), Some("user"), Some("domain"))]);
        assert_eq!(parse(b"<@a,@b:user@domain>"), vec![mailbox(None, Some("@a,@b"), Some("user"), Some("domain"))]);
        assert_eq!(
            parse(b"group: g1@d1.org, g2@d2.org;, group2: g3@d3.org;"),
            vec![
                group("group"),
                mailbox(None, None, Some("g1"), Some("d1.org")),
                mailbox(None, None, Some("g2"), Some("d2.org")),
                Item::GroupEnd,
                group("group2"),
                mailbox(None, None, Some("g3"), Some("d3.org")),
                Item::GroupEnd,
            ]
        );
        assert_eq!(
            parse(b"group:;, group2: (foo) ;"),
            vec![group("group"), Item::GroupEnd, group("group2"), Item::GroupEnd]
        );
        // Unterminated, and with a malformed member kept.
        assert_eq!(
            parse(b"undisclosed: bad, ok@x"),
            vec![
                group("undisclosed"),
                mailbox(None, None, Some("bad"), None),
                mailbox(None, None, Some("ok"), Some("x")),
                Item::GroupEnd
            ]
        );
        assert_eq!(
            parse(b"<@x.org>, a@b"),
            vec![mailbox(None, Some(""), None, None), mailbox(None, None, Some("a"), Some("b"))]
        );
        assert_eq!(
            parse(b"Someone Else, Single, a@b, , c@d, (just a comment)"),
            vec![
                mailbox(Some("Someone Else"), None, None, None),
                mailbox(None, None, Some("Single"), None),
                mailbox(None, None, Some("a"), Some("b")),
                mailbox(None, None, None, None),
                mailbox(None, None, Some("c"), Some("d")),
            ]
        );
        assert_eq!(parse(b"a@b@c, d@e"), vec![mailbox(None, None, Some("a"), Some("b"))], "stops at junk");
    }

    #[test]
    fn malformed_input_never_loops_or_panics() {
        for value in [
            &b""[..],
            b",,,",
            b"<",
            b">",
            b"@",
            b"\"unterminated",
            b"(unterminated (nested)",
            b"[",
            b"a@",
            b"<a@b",
            b"a:b:c;;;",
            b"\\",
            b"\xff\xfe <x@y>",
            b";:<>@,",
        ] {
            let _ = parse(value);
            let _ = search_text(value);
        }
        assert_eq!(parse(b"a@"), vec![mailbox(None, None, Some("a"), None)]);
        assert_eq!(parse(b"@domain"), vec![mailbox(None, None, None, Some("domain"))]);
    }

    #[test]
    fn search_text_forms() {
        assert_eq!(search_text(b"<user-from (comment)@ (comment) domain.org>"), "comment <user-from@domain.org>");
        assert_eq!(search_text(b"=?utf-8?q?J=C3=BCrgen?= <j@x>, plain@y"), "Jürgen <j@x>, plain@y");
        assert_eq!(
            search_text(
                b"groupname: groupuser1@domain.org, groupuser2@domain.org;,\r\n  groupname2: groupuser3@domain.org;"
            ),
            "groupname: groupuser1@domain.org, groupuser2@domain.org;, groupname2: groupuser3@domain.org;"
        );
        assert_eq!(search_text(b"groupname:;"), "groupname: ;");
    }
}
