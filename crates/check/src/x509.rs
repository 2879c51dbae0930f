//! The two facts of a certificate the report shows that rustls does not hand out: its validity
//! period (for "days to expiry") and the names it covers (to say what it *is* valid for when a
//! name does not match). Read straight from the DER: it is a short walk through fixed fields,
//! smaller than an X.509 crate and its dependencies. Chain and name *validation* is not done
//! here; that is rustls-webpki's job (see `cert.rs`).

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// subjectAltName dNSName and iPAddress entries, as text.
    pub names: Vec<String>,
}

/// Parses the fields of an X.509 certificate (DER) this auditor reports.
pub fn facts(der: &[u8]) -> Option<Facts> {
    let (tag, cert, _) = tlv(der)?;
    expect(tag, 0x30)?;
    let (tag, tbs, _) = tlv(cert)?;
    expect(tag, 0x30)?;
    let mut rest = tbs;
    let (tag, _, after) = tlv(rest)?;
    if tag == 0xA0 {
        rest = after; // [0] EXPLICIT version
    }
    for _ in 0..3 {
        rest = tlv(rest)?.2; // serialNumber, signature, issuer
    }
    let (tag, validity, after) = tlv(rest)?;
    expect(tag, 0x30)?;
    let (t1, before, v) = tlv(validity)?;
    let (t2, after_time, _) = tlv(v)?;
    let not_before = time(t1, before)?;
    let not_after = time(t2, after_time)?;
    rest = after;
    rest = tlv(rest)?.2; // subject
    rest = tlv(rest)?.2; // subjectPublicKeyInfo
    let mut names = Vec::new();
    while let Some((tag, value, next)) = tlv(rest) {
        if tag == 0xA3 {
            names = subject_alt_names(value).unwrap_or_default();
        }
        rest = next;
    }
    Some(Facts { not_before, not_after, names })
}

fn subject_alt_names(explicit: &[u8]) -> Option<Vec<String>> {
    const SAN: &[u8] = &[0x55, 0x1D, 0x11]; // 2.5.29.17
    let (tag, mut list, _) = tlv(explicit)?;
    expect(tag, 0x30)?;
    while let Some((_, ext, next)) = tlv(list) {
        list = next;
        let (tag, oid, mut rest) = tlv(ext)?;
        if tag != 0x06 || oid != SAN {
            continue;
        }
        let (mut tag, mut value, after) = tlv(rest)?;
        if tag == 0x01 {
            rest = after; // critical
            (tag, value, _) = tlv(rest)?;
        }
        expect(tag, 0x04)?;
        let (tag, mut general_names, _) = tlv(value)?;
        expect(tag, 0x30)?;
        let mut names = Vec::new();
        while let Some((tag, name, next)) = tlv(general_names) {
            general_names = next;
            match (tag, name.len()) {
                (0x82, _) => names.push(String::from_utf8_lossy(name).into_owned()),
                (0x87, 4) => names.push(std::net::Ipv4Addr::new(name[0], name[1], name[2], name[3]).to_string()),
                (0x87, 16) => {
                    let octets: [u8; 16] = name.try_into().ok()?;
                    names.push(std::net::Ipv6Addr::from(octets).to_string());
                }
                _ => {}
            }
        }
        return Some(names);
    }
    Some(Vec::new())
}

fn expect(tag: u8, wanted: u8) -> Option<()> {
    (tag == wanted).then_some(())
}

/// One DER element: (tag, contents, what follows). Single-byte tags only, which is all X.509
/// uses in the fields read here.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        first as usize
    } else {
        let n = (first & 0x7F) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, b| (acc << 8) | *b as usize);
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// UTCTime (YYMMDDHHMMSSZ, years 1950-2049) or GeneralizedTime (YYYYMMDDHHMMSSZ), as Unix
/// seconds. RFC 5280 requires both in UTC with seconds and a Z.
fn time(tag: u8, value: &[u8]) -> Option<i64> {
    // Digits and the final Z, nothing else: no sign ("+4" parses as a number), no fraction, no
    // offset; and, all ASCII, the text below can be sliced anywhere without a panic.
    let digits = value.strip_suffix(b"Z")?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let text = std::str::from_utf8(value).ok()?;
    let (year, rest) = match (tag, text.len()) {
        (0x17, 13) => {
            let yy: i64 = text[..2].parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &text[2..])
        }
        (0x18, 15) => (text[..4].parse().ok()?, &text[4..]),
        _ => return None,
    };
    let field = |i: usize| rest[i..i + 2].parse::<i64>().ok();
    let (month, day, hour, minute, second) = (field(0)?, field(2)?, field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month) || !(1..=days_in_month(year, month)).contains(&day) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second)
}

/// 28 to 31: a day past it is no date (February 30 would otherwise count as March 1 or 2).
fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// "2031-04-05" for Unix seconds.
pub fn date(unix: i64) -> String {
    let days = unix.div_euclid(86400);
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11017);
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(951782400), "2000-02-29");
        assert_eq!(date(days_from_civil(2049, 12, 31) * 86400 + 86399), "2049-12-31");
        assert_eq!(time(0x17, b"210101000000Z"), Some(1609459200));
        assert_eq!(time(0x17, b"500101000000Z"), Some(-631152000), "UTCTime 50 is 1950");
        assert_eq!(time(0x18, b"20500101000000Z"), Some(2524608000));
        assert_eq!(time(0x17, b"2101010000Z"), None);
        assert_eq!(time(0x17, b"211301000000Z"), None);
    }

    /// Found by the auditor_x509 fuzz target: a day past the end of its month was read as a day
    /// of the next month, and a sign as part of the year.
    #[test]
    fn times_are_real_dates_in_digits() {
        assert_eq!(time(0x18, b"20510230235959Z"), None, "February 30");
        assert_eq!(time(0x17, b"230229000000Z"), None, "2023 is no leap year");
        assert_eq!(time(0x17, b"240229000000Z"), Some(1709164800), "2024 is one");
        assert_eq!(time(0x18, b"21000229000000Z"), None, "2100 is not");
        assert_eq!(time(0x18, b"20000229000000Z"), Some(951782400), "2000 is");
        assert_eq!(time(0x17, b"490430120000Z").map(date).as_deref(), Some("2049-04-30"));
        assert_eq!(time(0x17, b"+41231235959Z"), None);
        assert_eq!(time(0x18, b"-0011231235959Z"), None);
        assert_eq!(time(0x18, b"20511231235959+"), None);
    }

    /// A character of more than one byte where the year ends: slicing the text there panicked
    /// (a byte index inside a character).
    #[test]
    fn non_ascii_times_are_none() {
        assert_eq!(time(0x17, "1é010100000Z".as_bytes()), None);
        assert_eq!(time(0x18, "202é010100000Z".as_bytes()), None);
    }

    #[test]
    fn reads_validity_and_names_from_a_real_certificate() {
        let mut params =
            rcgen::CertificateParams::new(vec!["mail.example.org".to_string(), "127.0.0.1".to_string()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2051, 6, 30); // GeneralizedTime from 2050 on
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let facts = facts(cert.der()).unwrap();
        assert_eq!(date(facts.not_before), "2020-01-01");
        assert_eq!(date(facts.not_after), "2051-06-30");
        assert_eq!(facts.names, ["mail.example.org", "127.0.0.1"]);
    }

    #[test]
    fn garbage_is_none() {
        assert_eq!(facts(b""), None);
        assert_eq!(facts(&[0x30, 0x82, 0xFF]), None);
        assert_eq!(facts(&[0x30, 0x03, 0x30, 0x01, 0x00]), None);
    }
}
