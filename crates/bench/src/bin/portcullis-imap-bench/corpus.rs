//! A deterministic corpus of realistic messages: message `i` of seed `s` is always the same
//! bytes. Headers as real mail has them (Received, DKIM-Signature, list headers, threading,
//! encoded words), sizes of a few KiB, some multipart/alternative, some multipart/mixed with a
//! base64 attachment (nested alternative inside some of them). Every Message-ID is unique.
//!
//! Written as a Maildir (`cur/`), which Dovecot reads as is and `load` APPENDs to Portcullis:
//! the file name carries the received time (seconds, increasing with `i`, so that Dovecot
//! assigns UIDs in corpus order), the size (`S=`, `W=`: lines end in CRLF, so both are the
//! file's length) and the flags (`:2,FRS`).

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Received time of message 0: 2025-01-01 00:00:00 UTC; each next one 1 to 600 s later.
const EPOCH: i64 = 1_735_689_600;

pub const SEEN: u8 = 1;
pub const ANSWERED: u8 = 2;
pub const FLAGGED: u8 = 4;

/// splitmix64: small, fast, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, i: u64, stream: u64) -> Rng {
        let mut r = Rng(seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
        r.next();
        r
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const FIRST: &[&str] = &[
    "Alice", "Bruno", "Chloé", "Dmitri", "Emma", "Farid", "Grace", "Hiro", "Ingrid", "Jonas", "Kavya", "Liam", "Maya",
    "Nils", "Olga", "Pedro", "Quinn", "Rosa", "Sven", "Tariq", "Uma", "Viktor", "Wen", "Yara", "Zoë",
];
const LAST: &[&str] = &[
    "Andersen",
    "Baptiste",
    "Costa",
    "Dubois",
    "Eriksson",
    "Fischer",
    "García",
    "Hansen",
    "Ivanova",
    "Jensen",
    "Kowalski",
    "Lindqvist",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Petrov",
    "Rossi",
    "Schmidt",
    "Tanaka",
    "Vargas",
];
const DOMAINS: &[&str] = &[
    "example.com",
    "example.org",
    "example.net",
    "mail.example.com",
    "lists.example.org",
    "corp.example",
    "university.example.edu",
    "shop.example",
    "news.example.net",
    "dev.example.io",
];
const WORDS: &[&str] = &[
    "the",
    "of",
    "and",
    "to",
    "in",
    "a",
    "is",
    "that",
    "for",
    "it",
    "as",
    "was",
    "with",
    "be",
    "by",
    "on",
    "not",
    "this",
    "are",
    "at",
    "from",
    "have",
    "or",
    "an",
    "they",
    "which",
    "one",
    "you",
    "were",
    "all",
    "we",
    "when",
    "there",
    "can",
    "been",
    "has",
    "more",
    "if",
    "will",
    "would",
    "about",
    "so",
    "what",
    "up",
    "their",
    "out",
    "report",
    "meeting",
    "budget",
    "release",
    "deploy",
    "server",
    "mailbox",
    "invoice",
    "schedule",
    "review",
    "draft",
    "quarter",
    "project",
    "customer",
    "ticket",
    "backup",
    "network",
    "update",
    "agenda",
    "proposal",
    "portcullis",
    "gateway",
    "castle",
    "drawbridge",
    "tower",
    "courier",
    "parcel",
    "harbour",
    "lantern",
    "orchard",
];
const SUBJECTS: &[&str] = &[
    "Quarterly report",
    "Meeting notes",
    "Invoice",
    "Release plan",
    "Deploy window",
    "Backup status",
    "Question about the budget",
    "Weekly digest",
    "Your order has shipped",
    "Project kickoff",
    "Ticket update",
    "Agenda for Thursday",
    "Review request",
    "Network maintenance",
    "Draft proposal",
    "Lunch on Friday?",
];
const UTF8_SUBJECTS: &[&str] =
    &["Réunion de l'équipe", "Grüße aus München", "Ärger mit dem Drucker", "Año nuevo, planes nuevos", "Été à Zürich"];
const MAILERS: &[&str] = &[
    "X-Mailer: Microsoft Outlook 16.0",
    "User-Agent: Mozilla Thunderbird 115.6.0",
    "X-Mailer: Apple Mail (2.3774.300.61.1.2)",
    "User-Agent: Mutt/2.2.12 (2023-09-09)",
    "X-Mailer: PHPMailer 6.9.1",
];

/// The Message-ID of message `i` (with the angle brackets).
pub fn message_id(seed: u64, i: usize) -> String {
    let mut r = Rng::new(seed, i as u64, 1);
    let domain = r.pick(DOMAINS);
    format!("<{:016x}.{i}@{domain}>", r.next())
}

/// When message `i` was received (Unix seconds): strictly increasing with `i`.
pub fn received(seed: u64, i: usize) -> i64 {
    // 300 s apart on average, jittered within each slot so the order never changes.
    let mut r = Rng::new(seed, i as u64, 2);
    EPOCH + i as i64 * 600 + r.range(0, 599) as i64
}

pub struct Message {
    pub bytes: Vec<u8>,
    pub flags: u8,
    pub received: i64,
}

fn person(r: &mut Rng) -> (String, String) {
    let first = *r.pick(FIRST);
    let last = *r.pick(LAST);
    let domain = r.pick(DOMAINS);
    let local: String = format!("{}.{}", ascii(first), ascii(last))
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
        .collect();
    (format!("{first} {last}"), format!("{local}@{domain}"))
}

fn ascii(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'é' | 'ë' => 'e',
            'í' => 'i',
            'ö' | 'ó' => 'o',
            'ü' => 'u',
            'ä' | 'á' => 'a',
            other => other,
        })
        .collect()
}

/// A display name as a header wants it: an encoded word when it is not ASCII.
fn display(name: &str) -> String {
    if name.is_ascii() {
        format!("\"{name}\"")
    } else {
        encoded_word(name)
    }
}

fn encoded_word(text: &str) -> String {
    use base64::Engine as _;
    format!("=?UTF-8?B?{}?=", base64::engine::general_purpose::STANDARD.encode(text))
}

fn rfc5322_date(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (y, m, d) = civil(days);
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MON: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    format!(
        "{}, {d} {} {y} {:02}:{:02}:{:02} +0000",
        WD[days.rem_euclid(7) as usize],
        MON[m as usize - 1],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// An IMAP date-time (without the quotes): `01-Jan-2025 00:00:00 +0000`.
pub fn imap_date(t: i64) -> String {
    let (y, m, d) = civil(t.div_euclid(86_400));
    let secs = t.rem_euclid(86_400);
    const MON: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    format!("{d:02}-{}-{y} {:02}:{:02}:{:02} +0000", MON[m as usize - 1], secs / 3600, secs / 60 % 60, secs % 60)
}

fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + if m <= 2 { 1 } else { 0 }, m, d)
}

/// Plain text of about `size` bytes: paragraphs of lines under 76 characters, CRLF.
fn text(r: &mut Rng, size: usize) -> String {
    let mut out = String::with_capacity(size + 100);
    let mut line = String::new();
    let mut sentence_start = true;
    while out.len() + line.len() < size {
        let mut word = r.pick(WORDS).to_string();
        if sentence_start {
            word[..1].make_ascii_uppercase();
            sentence_start = false;
        }
        if r.chance(8) {
            word.push('.');
            sentence_start = true;
        } else if r.chance(5) {
            word.push(',');
        }
        if line.len() + word.len() + 1 > 72 {
            out.push_str(&line);
            out.push_str("\r\n");
            line.clear();
            if sentence_start && r.chance(25) {
                out.push_str("\r\n");
            }
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&word);
    }
    if !line.is_empty() {
        out.push_str(&line);
        if !line.ends_with('.') {
            out.push('.');
        }
        out.push_str("\r\n");
    }
    out
}

fn html(text: &str) -> String {
    let mut out = String::from("<!DOCTYPE html>\r\n<html><head><meta charset=\"utf-8\"></head><body>\r\n");
    for paragraph in text.split("\r\n\r\n") {
        out.push_str("<p>");
        out.push_str(paragraph);
        out.push_str("</p>\r\n");
    }
    out.push_str("</body></html>\r\n");
    out
}

fn base64_lines(bytes: &[u8]) -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut out = String::with_capacity(encoded.len() + encoded.len() / 76 * 2 + 2);
    for chunk in encoded.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push_str("\r\n");
    }
    out
}

/// Message `i` of the corpus with seed `seed`.
pub fn message(seed: u64, i: usize, to_name: &str, to_addr: &str) -> Message {
    let mut r = Rng::new(seed, i as u64, 3);
    let received = received(seed, i);
    let (from_name, from_addr) = person(&mut r);
    let from_domain = from_addr.split('@').nth(1).unwrap_or("example.com").to_string();
    let sent = received - r.range(1, 90) as i64;
    let mut h = String::with_capacity(2048);
    h.push_str(&format!("Return-Path: <{from_addr}>\r\n"));
    h.push_str(&format!(
        "Received: from mx{}.{from_domain} (mx{}.{from_domain} [192.0.2.{}])\r\n\tby mail.bench.test (Portcullis) with ESMTPS id {:012X}\r\n\tfor <{to_addr}>; {}\r\n",
        r.range(1, 4),
        r.range(1, 4),
        r.range(1, 254),
        r.next() & 0xFFFF_FFFF_FFFF,
        rfc5322_date(received)
    ));
    h.push_str(&format!(
        "Received: from [10.{}.{}.{}] (unknown [198.51.100.{}])\r\n\tby mx1.{from_domain} with ESMTPSA id {:010x}; {}\r\n",
        r.range(0, 255),
        r.range(0, 255),
        r.range(1, 254),
        r.range(1, 254),
        r.next() & 0xFF_FFFF_FFFF,
        rfc5322_date(sent)
    ));
    if r.chance(50) {
        let mut sig = String::new();
        for _ in 0..6 {
            sig.push_str(&format!("{:016x}", r.next()));
        }
        use base64::Engine as _;
        let b = base64::engine::general_purpose::STANDARD.encode(sig.as_bytes());
        h.push_str(&format!(
            "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d={from_domain};\r\n\ts=s{}; t={sent}; h=from:to:subject:date:message-id:mime-version;\r\n\tbh={}=;\r\n\tb={}\r\n\t {}\r\n",
            r.range(2020, 2025),
            &b[..43],
            &b[..76.min(b.len())],
            &b[76.min(b.len())..]
        ));
    }
    let list = r.chance(30);
    h.push_str(&format!("From: {} <{from_addr}>\r\n", display(&from_name)));
    h.push_str(&format!("To: {} <{to_addr}>\r\n", display(to_name)));
    if r.chance(30) {
        let n = r.range(1, 3);
        let cc: Vec<String> = (0..n)
            .map(|_| {
                let (name, addr) = person(&mut r);
                format!("{} <{addr}>", display(&name))
            })
            .collect();
        h.push_str(&format!("Cc: {}\r\n", cc.join(",\r\n ")));
    }
    let reply = i > 0 && r.chance(35);
    let mut subject = if r.chance(10) {
        encoded_word(r.pick::<&str>(UTF8_SUBJECTS))
    } else {
        format!("{} #{}", r.pick(SUBJECTS), r.range(100, 9999))
    };
    if list {
        subject = format!("[team-{}] {subject}", r.range(1, 9));
    }
    if reply {
        subject = format!("Re: {subject}");
    } else if r.chance(5) {
        subject = format!("Fwd: {subject}");
    }
    h.push_str(&format!("Subject: {subject}\r\n"));
    h.push_str(&format!("Date: {}\r\n", rfc5322_date(sent)));
    h.push_str(&format!("Message-ID: {}\r\n", message_id(seed, i)));
    if reply {
        let parent = r.range(i.saturating_sub(50) as u64, i as u64 - 1) as usize;
        let grand = parent.saturating_sub(r.range(1, 20) as usize);
        h.push_str(&format!("In-Reply-To: {}\r\n", message_id(seed, parent)));
        h.push_str(&format!("References: {}\r\n {}\r\n", message_id(seed, grand), message_id(seed, parent)));
    }
    if list {
        h.push_str(
            "List-Id: Team list <team.lists.example.org>\r\nList-Unsubscribe: <mailto:team-leave@lists.example.org>\r\nPrecedence: list\r\n",
        );
    }
    h.push_str(r.pick::<&str>(MAILERS));
    h.push_str("\r\nMIME-Version: 1.0\r\n");

    let kind = r.range(0, 99);
    let body_size = r.range(400, 5000) as usize;
    let body = text(&mut r, body_size);
    let boundary = format!("=_bench_{:016x}", r.next());
    let mut m = h;
    if kind < 55 {
        m.push_str("Content-Type: text/plain; charset=utf-8; format=flowed\r\nContent-Transfer-Encoding: 7bit\r\n\r\n");
        m.push_str(&body);
    } else if kind < 80 {
        alternative(&mut m, &boundary, &body);
    } else {
        m.push_str(&format!(
            "Content-Type: multipart/mixed;\r\n boundary=\"{boundary}\"\r\n\r\nThis is a multi-part message in MIME format.\r\n\r\n--{boundary}\r\n"
        ));
        if kind < 85 {
            let inner = format!("=_alt_{:016x}", r.next());
            alternative(&mut m, &inner, &body);
        } else {
            m.push_str("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n");
            m.push_str(&body);
        }
        let attachments = if r.chance(20) { 2 } else { 1 };
        for _ in 0..attachments {
            let (kind, ext) = *r.pick(&[
                ("application/pdf", "pdf"),
                ("image/png", "png"),
                ("image/jpeg", "jpg"),
                ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
            ]);
            let raw_size = r.range(1024, 12 * 1024) as usize;
            let data: Vec<u8> = (0..raw_size.div_ceil(8)).flat_map(|_| r.next().to_le_bytes()).take(raw_size).collect();
            let name =
                format!("{}-{}.{ext}", r.pick(&["report", "scan", "photo", "figures", "invoice"]), r.range(1, 999));
            m.push_str(&format!(
                "\r\n--{boundary}\r\nContent-Type: {kind}; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            ));
            m.push_str(&base64_lines(&data));
        }
        m.push_str(&format!("\r\n--{boundary}--\r\n"));
    }

    // Most mail has been read; some answered, a few flagged.
    let mut flags = 0;
    if r.chance(75) {
        flags |= SEEN;
    }
    if flags & SEEN != 0 && r.chance(8) {
        flags |= ANSWERED;
    }
    if r.chance(3) {
        flags |= FLAGGED;
    }
    Message { bytes: m.into_bytes(), flags, received }
}

fn alternative(m: &mut String, boundary: &str, body: &str) {
    m.push_str(&format!("Content-Type: multipart/alternative;\r\n boundary=\"{boundary}\"\r\n\r\n"));
    m.push_str(&format!(
        "--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
    ));
    m.push_str(body);
    m.push_str(&format!(
        "\r\n--{boundary}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
    ));
    m.push_str(&html(body));
    m.push_str(&format!("\r\n--{boundary}--\r\n"));
}

/// The Maildir file name of a message: received time, sequence, size, flags.
pub fn file_name(i: usize, m: &Message) -> String {
    let mut letters = String::new();
    // Maildir flag letters in ASCII order: F (flagged), R (replied), S (seen).
    if m.flags & FLAGGED != 0 {
        letters.push('F');
    }
    if m.flags & ANSWERED != 0 {
        letters.push('R');
    }
    if m.flags & SEEN != 0 {
        letters.push('S');
    }
    let size = m.bytes.len();
    format!("{}.M0P1Q{i}.bench,S={size},W={size}:2,{letters}", m.received)
}

/// Writes messages `0..count` into `dir/cur` (creating `cur`, `new` and `tmp`), each file's
/// mtime set to its received time. Returns the total size.
pub fn write_maildir(dir: &Path, seed: u64, count: usize, to_name: &str, to_addr: &str) -> std::io::Result<u64> {
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    let mut total = 0;
    for i in 0..count {
        let m = message(seed, i, to_name, to_addr);
        let path = dir.join("cur").join(file_name(i, &m));
        let mut file = std::fs::File::create(&path)?;
        file.write_all(&m.bytes)?;
        let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(m.received as u64);
        file.set_times(std::fs::FileTimes::new().set_modified(when).set_accessed(when))?;
        total += m.bytes.len() as u64;
    }
    Ok(total)
}

/// A message file of a Maildir written by [`write_maildir`] (or any Maildir): what APPEND needs.
pub struct MaildirEntry {
    pub path: PathBuf,
    /// Sorting key: received seconds, then the rest of the name.
    pub received: i64,
    /// `(\Seen \Answered)` or empty.
    pub flags: String,
}

/// The messages of `dir/cur` and `dir/new`, in received order (as Dovecot numbers them).
pub fn read_maildir(dir: &Path) -> std::io::Result<Vec<MaildirEntry>> {
    let mut entries = Vec::new();
    for sub in ["cur", "new"] {
        let Ok(listing) = std::fs::read_dir(dir.join(sub)) else { continue };
        for entry in listing {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let received = name.split('.').next().and_then(|s| s.parse().ok()).unwrap_or(0);
            let letters = name.rsplit_once(":2,").map(|(_, l)| l).unwrap_or("");
            let mut flags = Vec::new();
            for (letter, flag) in
                [('S', "\\Seen"), ('R', "\\Answered"), ('F', "\\Flagged"), ('D', "\\Draft"), ('T', "\\Deleted")]
            {
                if letters.contains(letter) {
                    flags.push(flag);
                }
            }
            let flags = if flags.is_empty() { String::new() } else { format!("({})", flags.join(" ")) };
            entries.push((name, MaildirEntry { path: entry.path(), received, flags }));
        }
    }
    entries.sort_by(|(a, x), (b, y)| x.received.cmp(&y.received).then_with(|| a.cmp(b)));
    Ok(entries.into_iter().map(|(_, e)| e).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_corpus_is_deterministic_and_ids_are_unique() {
        let a = message(7, 12, "Bench User", "bench@bench.test");
        let b = message(7, 12, "Bench User", "bench@bench.test");
        assert_eq!(a.bytes, b.bytes);
        let ids: std::collections::HashSet<String> = (0..5000).map(|i| message_id(7, i)).collect();
        assert_eq!(ids.len(), 5000);
        let text = String::from_utf8(a.bytes).unwrap();
        assert!(text.contains(&format!("Message-ID: {}\r\n", message_id(7, 12))));
        assert!(!text.contains("\n\n") && !text.replace("\r\n", "").contains('\n'));
    }

    #[test]
    fn sizes_and_kinds_vary() {
        let messages: Vec<Message> = (0..1000).map(|i| message(1, i, "B", "b@b.test")).collect();
        let sizes: Vec<usize> = messages.iter().map(|m| m.bytes.len()).collect();
        let mean = sizes.iter().sum::<usize>() / sizes.len();
        assert!((3000..12000).contains(&mean), "{mean}");
        let mixed = messages.iter().filter(|m| m.bytes.windows(15).any(|w| w == b"multipart/mixed")).count();
        assert!((100..300).contains(&mixed), "{mixed}");
        assert!(messages.windows(2).all(|w| w[0].received < w[1].received));
    }

    #[test]
    fn dates_are_formatted() {
        assert_eq!(imap_date(EPOCH), "01-Jan-2025 00:00:00 +0000");
        assert_eq!(rfc5322_date(EPOCH + 3661), "Wed, 1 Jan 2025 01:01:01 +0000");
    }
}
