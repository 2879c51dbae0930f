//! The verdict as header fields prepended to the stored message: one
//! `Authentication-Results` (RFC 8601 §2.2) with every method's result, and `Received-SPF`
//! (RFC 7208 §9.1) for the MAIL FROM check. Pure rendering from a [`Verdict`].
//!
//! Every value that came from the network (HELO, MAIL FROM, a signature's d= and s=) is
//! written as a token when it is one and as a quoted-string otherwise, with line breaks and
//! other control characters dropped, so no sender can add a field or end one early.

use crate::verdict::{DkimCheck, Verdict};
use std::fmt::Write;

/// Where each result starts: a folded line of its own (RFC 5322 §2.2.3).
const FOLD: &str = ";\r\n\t";
/// Values longer than this are cut: a header line stays far below 998 octets (RFC 5322 §2.1.1).
const MAX_VALUE: usize = 200;

/// `Authentication-Results: …\r\n`, ready to prepend.
pub fn authentication_results(verdict: &Verdict, authserv_id: &str) -> String {
    let envelope = &verdict.envelope;
    let mut field = String::with_capacity(512);
    field.push_str("Authentication-Results: ");
    field.push_str(&value(authserv_id));

    // RFC 8601 §2.7.2: smtp.mailfrom; for the null sender, the identity SPF checked
    // (RFC 7208 §2.4: postmaster@HELO).
    let mail_from = if envelope.mail_from.is_empty() {
        format!("postmaster@{}", envelope.helo)
    } else {
        envelope.mail_from.clone()
    };
    let _ = write!(field, "{FOLD}spf={} smtp.mailfrom={}", verdict.spf_mail_from.result, address_value(&mail_from));
    let _ = write!(field, "{FOLD}spf={} smtp.helo={}", verdict.spf_helo.result, value(&envelope.helo));

    if verdict.dkim.is_empty() {
        let _ = write!(field, "{FOLD}dkim=none");
    }
    for dkim in &verdict.dkim {
        write_dkim(&mut field, dkim);
    }

    let dmarc = &verdict.dmarc;
    let _ = write!(field, "{FOLD}dmarc={}", dmarc.result);
    if let Some(reason) = &dmarc.reason {
        let _ = write!(field, " reason={}", quoted(reason));
    }
    if !dmarc.from_domain.is_empty() {
        let _ = write!(field, " header.from={}", value(&dmarc.from_domain));
    }
    if let Some(policy) = dmarc.policy {
        let _ = write!(field, " policy.dmarc={policy}"); // the DMARCbis property
    }

    let arc = &verdict.arc;
    let _ = write!(field, "{FOLD}arc={}", arc.result);
    if let Some(reason) = &arc.reason {
        let _ = write!(field, " reason={}", quoted(reason));
    }
    let _ = write!(field, " smtp.remote-ip={}", value(&envelope.client_ip.to_string())); // RFC 8617 §10.1

    // RFC 8601 §2.7.3: the property is the address; the names go in a comment.
    let _ =
        write!(field, "{FOLD}iprev={} policy.iprev={}", verdict.iprev.result, value(&envelope.client_ip.to_string()));
    if let Some(name) = verdict.iprev.names.first() {
        let _ = write!(field, " ({})", comment(name));
    }
    field.push_str("\r\n");
    field
}

fn write_dkim(field: &mut String, dkim: &DkimCheck) {
    let _ = write!(field, "{FOLD}dkim={}", dkim.result);
    if let Some(reason) = &dkim.reason {
        let _ = write!(field, " reason={}", quoted(reason));
    }
    if !dkim.domain.is_empty() {
        let _ = write!(field, " header.d={}", value(&dkim.domain));
    }
    if !dkim.selector.is_empty() {
        let _ = write!(field, " header.s={}", value(&dkim.selector));
    }
    if !dkim.algorithm.is_empty() {
        let _ = write!(field, " header.a={}", value(&dkim.algorithm));
    }
    if !dkim.signature_prefix.is_empty() {
        let _ = write!(field, " header.b={}", value(&dkim.signature_prefix)); // RFC 6008
    }
}

/// `Received-SPF: …\r\n` for the MAIL FROM identity (RFC 7208 §9.1), ready to prepend.
pub fn received_spf(verdict: &Verdict, authserv_id: &str) -> String {
    let envelope = &verdict.envelope;
    let spf = &verdict.spf_mail_from;
    let ip = envelope.client_ip;
    let domain = comment(&spf.domain);
    let explanation = match spf.result.as_str() {
        "pass" => format!("domain of {domain} designates {ip} as permitted sender"),
        "fail" => format!("domain of {domain} does not designate {ip} as permitted sender"),
        "softfail" => format!("domain of transitioning {domain} does not designate {ip} as permitted sender"),
        "neutral" => format!("{ip} is neither permitted nor denied by domain of {domain}"),
        "none" => format!("domain of {domain} does not designate permitted sender hosts"),
        "temperror" => format!("temporary DNS failure checking the SPF record of {domain}"),
        _ => format!("the SPF record of {domain} is not usable"),
    };
    let identity = if envelope.mail_from.is_empty() { "helo" } else { "mailfrom" };
    let mut field = String::with_capacity(320);
    let _ = write!(
        field,
        "Received-SPF: {} ({}: {explanation})\r\n\treceiver={}; client-ip={}; envelope-from={}; helo={}; identity={identity};\r\n",
        spf.result,
        comment(authserv_id),
        value(authserv_id),
        value(&ip.to_string()),
        quoted(&envelope.mail_from),
        value(&envelope.helo),
    );
    field
}

/// A `value` (RFC 2045 token) as is, anything else as a quoted-string.
fn value(text: &str) -> String {
    let clean = clean(text);
    let is_token = !clean.is_empty() && clean.chars().all(|c| c.is_ascii_graphic() && !"()<>@,;:\\\"/[]?=".contains(c));
    if is_token {
        clean
    } else {
        quoted(&clean)
    }
}

/// RFC 8601 §2.2 pvalue: `[local-part "@"] domain`. A local-part that is not a dot-atom
/// becomes a quoted-string inside the address; a value that is no address is quoted whole.
fn address_value(address: &str) -> String {
    let clean = clean(address);
    match clean.rsplit_once('@') {
        Some((local, domain)) if is_dot_atom(domain) => {
            if is_dot_atom(local) {
                format!("{local}@{domain}")
            } else {
                format!("{}@{domain}", quoted(local.trim_matches('"')))
            }
        }
        _ => quoted(&clean),
    }
}

fn is_dot_atom(text: &str) -> bool {
    !text.is_empty()
        && text.split('.').all(|atom| {
            !atom.is_empty() && atom.chars().all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c))
        })
}

/// A quoted-string (RFC 5322 §3.2.4): `"` and `\` escaped.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in clean(text).chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Comment text: parentheses and backslashes would end or escape the comment, so they go.
fn comment(text: &str) -> String {
    clean(text).chars().filter(|c| !"()\\".contains(*c)).collect()
}

/// No control characters (CR and LF above all), and no more than [`MAX_VALUE`] characters.
fn clean(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(MAX_VALUE).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::*;

    fn verdict() -> Verdict {
        Verdict {
            envelope: Envelope {
                client_ip: [192, 0, 2, 1].into(),
                helo: "mail.example.net".into(),
                mail_from: "alice@example.net".into(),
            },
            spf_helo: SpfCheck { result: SpfResult::None, domain: "mail.example.net".into() },
            spf_mail_from: SpfCheck { result: SpfResult::Pass, domain: "example.net".into() },
            dkim: vec![DkimCheck {
                result: DkimResult::Pass,
                domain: "example.net".into(),
                selector: "s2026".into(),
                algorithm: "rsa-sha256".into(),
                signature_prefix: "AbCd+/12".into(),
                reason: None,
            }],
            dmarc: DmarcCheck {
                result: DmarcResult::Pass,
                from_domain: "example.net".into(),
                policy: Some(DmarcPolicy::Reject),
                spf_aligned: true,
                dkim_aligned: true,
                reason: None,
            },
            arc: ArcCheck { result: ArcResult::None, sets: 0, reason: None },
            iprev: IprevCheck { result: IprevResult::Pass, names: vec!["mail.example.net".into()] },
        }
    }

    #[test]
    fn authentication_results_lists_every_method() {
        let field = authentication_results(&verdict(), "mx.example.org");
        assert_eq!(
            field,
            "Authentication-Results: mx.example.org;\r\n\
             \tspf=pass smtp.mailfrom=alice@example.net;\r\n\
             \tspf=none smtp.helo=mail.example.net;\r\n\
             \tdkim=pass header.d=example.net header.s=s2026 header.a=rsa-sha256 header.b=\"AbCd+/12\";\r\n\
             \tdmarc=pass header.from=example.net policy.dmarc=reject;\r\n\
             \tarc=none smtp.remote-ip=192.0.2.1;\r\n\
             \tiprev=pass policy.iprev=192.0.2.1 (mail.example.net)\r\n"
        );
    }

    #[test]
    fn failures_carry_a_quoted_reason() {
        let mut v = verdict();
        v.dkim[0].result = DkimResult::Fail;
        v.dkim[0].reason = Some("body hash did not verify".into());
        let field = authentication_results(&v, "mx.example.org");
        assert!(field.contains("dkim=fail reason=\"body hash did not verify\" header.d=example.net"), "{field}");
    }

    #[test]
    fn hostile_values_cannot_break_out_of_the_field() {
        let mut v = verdict();
        v.envelope.helo = "evil\r\nAuthentication-Results: mx.example.org; dmarc=pass".into();
        v.envelope.mail_from = "\"odd local\"@example.net".into();
        v.dkim[0].domain = "a;b".into();
        v.dkim[0].reason = Some("say \"hi\" \\ bye".into());
        let field = authentication_results(&v, "mx.example.org");
        // Only the folds we write break lines, and each folded line starts with a tab.
        assert_eq!(field.matches("\r\n").count(), 7, "{field}");
        assert!(field.split("\r\n").skip(1).all(|line| line.is_empty() || line.starts_with('\t')), "{field}");
        assert!(field.contains("smtp.helo=\"evilAuthentication-Results: mx.example.org; dmarc=pass\""), "{field}");
        assert!(field.contains("smtp.mailfrom=\"odd local\"@example.net"), "{field}");
        assert!(field.contains("header.d=\"a;b\""), "{field}");
        assert!(field.contains("reason=\"say \\\"hi\\\" \\\\ bye\""), "{field}");
        let spf = received_spf(&v, "mx.example.org");
        assert_eq!(spf.matches("\r\n").count(), 2, "{spf}");
    }

    #[test]
    fn the_null_sender_is_reported_as_postmaster_at_helo() {
        let mut v = verdict();
        v.envelope.mail_from.clear();
        let field = authentication_results(&v, "mx.example.org");
        assert!(field.contains("smtp.mailfrom=postmaster@mail.example.net"), "{field}");
        let spf = received_spf(&v, "mx.example.org");
        assert!(spf.contains("envelope-from=\"\"; helo=mail.example.net; identity=helo;"), "{spf}");
    }

    #[test]
    fn received_spf_follows_rfc_7208_9_1() {
        let spf = received_spf(&verdict(), "mx.example.org");
        assert_eq!(
            spf,
            "Received-SPF: pass (mx.example.org: domain of example.net designates 192.0.2.1 as permitted sender)\r\n\
             \treceiver=mx.example.org; client-ip=192.0.2.1; envelope-from=\"alice@example.net\"; \
             helo=mail.example.net; identity=mailfrom;\r\n"
        );
    }

    #[test]
    fn ipv6_addresses_are_quoted_as_they_are_no_tokens() {
        let mut v = verdict();
        v.envelope.client_ip = "2001:db8::1".parse().unwrap();
        assert!(received_spf(&v, "mx.example.org").contains("client-ip=\"2001:db8::1\";"));
        assert!(authentication_results(&v, "mx.example.org").contains("policy.iprev=\"2001:db8::1\""));
    }
}
