//! MTA-STS texts (RFC 8461): the `_mta-sts` TXT record that announces a policy and names its
//! version (§3.1), the policy file itself (§3.2), and matching an MX host against the policy's
//! `mx` patterns (§4.1). Pure parsing; fetching and caching are elsewhere.

/// RFC 8461 §3.2: max_age is at most 31557600 seconds (about a year).
pub const MAX_AGE_LIMIT: u64 = 31_557_600;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    Testing,
    /// The domain withdrew its policy.
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub mode: Mode,
    /// Patterns: "mail.example.com" or "*.example.net" (one leftmost label), lower case.
    pub mx: Vec<String>,
    /// Seconds the policy may be cached.
    pub max_age: u64,
}

/// The id of the policy the TXT record announces (§3.1), or an error when there is no
/// valid record (several records starting with "v=STSv1" count as none).
pub fn txt_id(records: &[Vec<u8>]) -> Result<String, String> {
    let sts: Vec<&Vec<u8>> = records.iter().filter(|r| r.starts_with(b"v=STSv1")).collect();
    let record = match sts.as_slice() {
        [one] => String::from_utf8_lossy(one).into_owned(),
        [] => return Err("no v=STSv1 TXT record".into()),
        _ => return Err("several v=STSv1 TXT records".into()),
    };
    let mut fields = record.split(';').map(str::trim).filter(|f| !f.is_empty());
    if fields.next() != Some("v=STSv1") {
        return Err(format!("{record:?} does not start with v=STSv1;"));
    }
    for field in fields {
        if let Some(id) = field.strip_prefix("id=") {
            // sts-id = 1*32(ALPHA / DIGIT)
            if (1..=32).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Ok(id.to_string());
            }
            return Err(format!("bad id {id:?}"));
        }
    }
    Err(format!("{record:?} has no id"))
}

/// Parses a policy file: "key: value" lines ended by CRLF or LF (§3.2); unknown keys are
/// ignored, `mx` may repeat; version, mode and max_age are required, and `mx` unless the
/// mode is none.
pub fn parse(text: &str) -> Result<Policy, String> {
    let (mut version, mut mode, mut max_age, mut mx) = (None, None, None, Vec::new());
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            continue;
        }
        let (key, value) = line.split_once(':').ok_or_else(|| format!("line {line:?} has no ':'"))?;
        let value = value.trim();
        match key.trim() {
            "version" => version = Some(value.to_string()),
            "mode" => {
                mode = Some(match value {
                    "enforce" => Mode::Enforce,
                    "testing" => Mode::Testing,
                    "none" => Mode::None,
                    other => return Err(format!("unknown mode {other:?}")),
                })
            }
            "max_age" => {
                let seconds: u64 = value
                    .parse()
                    .ok()
                    .filter(|_| !value.is_empty() && value.len() <= 10 && value.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| format!("max_age {value:?} is not a number of seconds"))?;
                max_age = Some(seconds.min(MAX_AGE_LIMIT));
            }
            "mx" => mx.push(value.trim_end_matches('.').to_ascii_lowercase()),
            _ => {}
        }
    }
    if version.as_deref() != Some("STSv1") {
        return Err("version is not STSv1".into());
    }
    let mode = mode.ok_or("no mode")?;
    let max_age = max_age.ok_or("no max_age")?;
    if mx.is_empty() && mode != Mode::None {
        return Err("no mx".into());
    }
    Ok(Policy { mode, mx, max_age })
}

impl Policy {
    /// Whether `host` (an MX name) is allowed (§4.1): an exact match, or "*.suffix" matching
    /// exactly one more label on the left.
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.mx.iter().any(|pattern| match pattern.strip_prefix("*.") {
            Some(suffix) => host.split_once('.').is_some_and(|(first, rest)| !first.is_empty() && rest == suffix),
            None => *pattern == host,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_example_policy_parses() {
        let p = parse("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n").unwrap();
        assert_eq!(p.mode, Mode::Enforce);
        assert_eq!(p.max_age, 604_800);
        assert!(p.allows("mail.example.com") && p.allows("MAIL.Example.com."));
        assert!(p.allows("a.example.net"));
        assert!(!p.allows("a.b.example.net"), "a wildcard covers one label");
        assert!(!p.allows("example.net"));
        assert!(!p.allows("evil-mail.example.com"));
    }

    #[test]
    fn bad_policies_are_refused() {
        for bad in [
            "version: STSv2\nmode: enforce\nmx: a\nmax_age: 1\n",
            "version: STSv1\nmode: strict\nmx: a\nmax_age: 1\n",
            "version: STSv1\nmode: enforce\nmax_age: 1\n",
            "version: STSv1\nmode: enforce\nmx: a\n",
            "version: STSv1\nmode: enforce\nmx: a\nmax_age: -1\n",
            "<html>not a policy</html>",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let none = parse("version: STSv1\nmode: none\nmax_age: 99999999999\n");
        assert!(none.is_err(), "an 11-digit max_age is refused");
        let capped = parse("version: STSv1\nmode: none\nmax_age: 9999999999\n").unwrap();
        assert_eq!(capped.max_age, MAX_AGE_LIMIT);
    }

    #[test]
    fn the_txt_record_gives_the_id() {
        assert_eq!(txt_id(&[b"v=STSv1; id=20160831085700Z;".to_vec()]).unwrap(), "20160831085700Z");
        assert_eq!(txt_id(&[b"other".to_vec(), b"v=STSv1;id=abc".to_vec()]).unwrap(), "abc");
        assert!(txt_id(&[b"v=STSv1; id=a;".to_vec(), b"v=STSv1; id=b;".to_vec()]).is_err());
        assert!(txt_id(&[b"v=STSv1; id=has-dash;".to_vec()]).is_err());
        assert!(txt_id(&[b"v=STSv1;".to_vec()]).is_err());
        assert!(txt_id(&[]).is_err());
    }
}
