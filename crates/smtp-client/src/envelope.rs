//! A message as the client hands it on: the envelope (sender, recipients), the ESMTP
//! parameters that travel with it (RFC 3461 DSN: NOTIFY, ORCPT, RET, ENVID; RFC 6152 BODY;
//! RFC 6531 SMTPUTF8; RFC 8689 REQUIRETLS) and the content. The queue stores these and the
//! bounce generator reads them, so their text forms (`Notify::parse`, `Ret::parse`) are the
//! ESMTP parameter values themselves.

use std::fmt;
use std::sync::Arc;

/// One message to hand on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The reverse path without angle brackets; empty for the null sender (bounces).
    pub sender: String,
    pub recipients: Vec<Recipient>,
    pub params: MessageParams,
    /// The message, header and body, lines ended by CRLF, not dot-stuffed.
    pub content: Arc<[u8]>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub address: String,
    /// RFC 3461 NOTIFY; `None` when the submitter gave none.
    pub notify: Option<Notify>,
    /// RFC 3461 ORCPT.
    pub original: Option<OriginalRecipient>,
}

/// The MAIL FROM parameters a message carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageParams {
    /// RFC 3461 RET.
    pub ret: Option<Ret>,
    /// RFC 3461 ENVID, decoded (xtext is applied when sending).
    pub envid: Option<String>,
    /// RFC 8689: hand on only over validated TLS to a server that offers REQUIRETLS.
    pub requiretls: bool,
    /// RFC 6531: the envelope or the header has UTF-8 beyond ASCII.
    pub smtputf8: bool,
    /// RFC 6152: the submitter declared BODY=8BITMIME (the content is also scanned).
    pub eight_bit: bool,
}

/// RFC 3461 §4.1 NOTIFY: when the sender wants a notice. All false is NOTIFY=NEVER.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Notify {
    pub success: bool,
    pub failure: bool,
    pub delay: bool,
}

/// RFC 3461 §4.3 RET: what of the message a failure notice returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ret {
    Full,
    Headers,
}

/// RFC 3461 §4.2 ORCPT: the recipient as first given, with its address type ("rfc822").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalRecipient {
    pub addr_type: String,
    /// Decoded (xtext is applied when sending).
    pub address: String,
}

impl Notify {
    pub const NEVER: Notify = Notify { success: false, failure: false, delay: false };
    /// What an absent NOTIFY means (RFC 3461 §4.1: "FAILURE" or "FAILURE,DELAY"; this
    /// implementation sends both).
    pub const DEFAULT: Notify = Notify { success: false, failure: true, delay: true };

    /// Parses the parameter value: "NEVER", or a comma list of SUCCESS, FAILURE, DELAY.
    pub fn parse(value: &str) -> Result<Notify, String> {
        if value.eq_ignore_ascii_case("NEVER") {
            return Ok(Notify::NEVER);
        }
        let mut notify = Notify::NEVER;
        for word in value.split(',') {
            match word.to_ascii_uppercase().as_str() {
                "SUCCESS" => notify.success = true,
                "FAILURE" => notify.failure = true,
                "DELAY" => notify.delay = true,
                // RFC 3461 §4.1: NEVER must appear alone.
                _ => return Err(format!("NOTIFY={value}: {word:?} is not SUCCESS, FAILURE or DELAY")),
            }
        }
        Ok(notify)
    }

    /// The parameter value.
    pub fn param(&self) -> String {
        let words: Vec<&str> = [(self.success, "SUCCESS"), (self.failure, "FAILURE"), (self.delay, "DELAY")]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, w)| *w)
            .collect();
        if words.is_empty() {
            "NEVER".into()
        } else {
            words.join(",")
        }
    }

    /// The value that applies to a recipient: its own, or the default.
    pub fn effective(notify: Option<Notify>) -> Notify {
        notify.unwrap_or(Notify::DEFAULT)
    }
}

impl Ret {
    pub fn parse(value: &str) -> Result<Ret, String> {
        match value.to_ascii_uppercase().as_str() {
            "FULL" => Ok(Ret::Full),
            "HDRS" => Ok(Ret::Headers),
            _ => Err(format!("RET={value}: not FULL or HDRS")),
        }
    }

    pub fn param(&self) -> &'static str {
        match self {
            Ret::Full => "FULL",
            Ret::Headers => "HDRS",
        }
    }
}

impl OriginalRecipient {
    /// An "rfc822" original recipient.
    pub fn rfc822(address: &str) -> OriginalRecipient {
        OriginalRecipient { addr_type: "rfc822".into(), address: address.into() }
    }

    /// Parses the parameter value "type;xtext" (RFC 3461 §4.2).
    pub fn parse(value: &str) -> Result<OriginalRecipient, String> {
        let (addr_type, encoded) = value.split_once(';').ok_or_else(|| format!("ORCPT={value}: no ';'"))?;
        if addr_type.is_empty() || !addr_type.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(format!("ORCPT={value}: bad address type"));
        }
        Ok(OriginalRecipient { addr_type: addr_type.to_ascii_lowercase(), address: xtext_decode(encoded)? })
    }

    /// The parameter value; `None` when the address cannot be written as xtext (it is not
    /// ASCII: RFC 6533's utf-8 form would need the peer's SMTPUTF8, and the parameter is
    /// optional, so it is left out).
    pub fn param(&self) -> Option<String> {
        self.address.is_ascii().then(|| format!("{};{}", self.addr_type, xtext_encode(&self.address)))
    }
}

impl fmt::Display for Notify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.param())
    }
}

/// RFC 3461 §4: xtext, "+" followed by two upper-case hex digits for every octet outside
/// "!".."~" and for "+" and "=".
pub fn xtext_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

/// The inverse of [`xtext_encode`]; the result must be UTF-8.
pub fn xtext_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                let hex = bytes.get(i + 1..i + 3).ok_or_else(|| format!("xtext {text:?}: '+' without two digits"))?;
                let hex = std::str::from_utf8(hex).map_err(|_| format!("xtext {text:?}: bad hex"))?;
                let byte = u8::from_str_radix(hex, 16).map_err(|_| format!("xtext {text:?}: bad hex {hex:?}"))?;
                out.push(byte);
                i += 3;
            }
            b if (b'!'..=b'~').contains(&b) && b != b'=' => {
                out.push(b);
                i += 1;
            }
            _ => return Err(format!("xtext {text:?}: a character xtext does not allow")),
        }
    }
    String::from_utf8(out).map_err(|_| format!("xtext {text:?}: not UTF-8"))
}

/// An address fit to put between angle brackets on a command line: no control characters,
/// spaces or brackets (nothing that could end the line or smuggle a parameter), at most
/// RFC 5321 §4.5.3.1.3's 256 octets of path.
pub(crate) fn address_is_sendable(address: &str) -> bool {
    address.len() <= 254 && !address.chars().any(|c| c.is_control() || c == ' ' || c == '<' || c == '>')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_round_trips_and_never_stands_alone() {
        for value in ["NEVER", "SUCCESS", "FAILURE,DELAY", "SUCCESS,FAILURE,DELAY"] {
            assert_eq!(Notify::parse(value).unwrap().param(), value);
        }
        assert_eq!(Notify::parse("delay,success").unwrap(), Notify { success: true, failure: false, delay: true });
        assert!(Notify::parse("NEVER,SUCCESS").is_err());
        assert!(Notify::parse("").is_err());
        assert_eq!(Notify::effective(None), Notify::DEFAULT);
    }

    #[test]
    fn xtext_escapes_plus_equals_and_non_printables() {
        assert_eq!(xtext_encode("a+b=c d@e"), "a+2Bb+3Dc+20d@e");
        assert_eq!(xtext_decode("a+2Bb+3Dc+20d@e").unwrap(), "a+b=c d@e");
        assert!(xtext_decode("a+2").is_err());
        assert!(xtext_decode("a=b").is_err());
        assert!(xtext_decode("a+ZZ").is_err());
    }

    #[test]
    fn orcpt_and_ret_parse() {
        let orcpt = OriginalRecipient::parse("rfc822;bob+2Bx@example.org").unwrap();
        assert_eq!(orcpt, OriginalRecipient::rfc822("bob+x@example.org"));
        assert_eq!(orcpt.param().unwrap(), "rfc822;bob+2Bx@example.org");
        assert_eq!(OriginalRecipient::rfc822("jöran@example.org").param(), None);
        assert!(OriginalRecipient::parse("nosemicolon").is_err());
        assert_eq!(Ret::parse("hdrs").unwrap(), Ret::Headers);
        assert!(Ret::parse("SOME").is_err());
    }

    #[test]
    fn addresses_that_could_break_a_command_line_are_not_sendable() {
        assert!(address_is_sendable("a@example.org"));
        assert!(address_is_sendable("jöran@bücher.example"));
        for bad in ["a@b\r\nRCPT TO:<c@d>", "a@b> NOTIFY=NEVER", "a b@c", "a@b\0"] {
            assert!(!address_is_sendable(bad), "{bad:?}");
        }
    }
}
