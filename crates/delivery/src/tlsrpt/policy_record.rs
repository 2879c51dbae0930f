//! Where a domain wants its TLS reports: the `_smtp._tls.DOMAIN` TXT record (RFC 8460 §3),
//! `v=TLSRPTv1; rua=mailto:reports@example.org,https://…`. Only the mailto: addresses are
//! used here (reports by email, §5.3); an https: URI is left out (HTTPS POST, §5.4, is not
//! sent by this server).

/// The record's first field (§3).
const POLICY_RECORD_PREFIX: &str = "v=TLSRPTv1";

/// The mailto: addresses of the domain's reporting record, given its TXT records. RFC 8460
/// §3: records not starting `v=TLSRPTv1` are discarded, and unless exactly one remains the
/// domain does not take reports (an `Err` that says why).
pub fn mailto_recipients(records: &[Vec<u8>]) -> Result<Vec<String>, String> {
    let matching: Vec<&Vec<u8>> = records.iter().filter(|r| r.starts_with(POLICY_RECORD_PREFIX.as_bytes())).collect();
    let record = match matching.as_slice() {
        [one] => String::from_utf8_lossy(one).into_owned(),
        [] => return Err("no v=TLSRPTv1 TXT record".into()),
        _ => return Err("several v=TLSRPTv1 TXT records".into()),
    };
    let mut fields = record.split(';').map(str::trim).filter(|f| !f.is_empty());
    if fields.next() != Some(POLICY_RECORD_PREFIX) {
        return Err(format!("{record:?} does not start with {POLICY_RECORD_PREFIX};"));
    }
    let Some(rua) = fields.find_map(|f| f.strip_prefix("rua=")) else {
        return Err(format!("{record:?} has no rua"));
    };
    let mut addresses = Vec::new();
    for uri in rua.split(',').map(str::trim) {
        let Some(rest) = uri.get(..7).filter(|s| s.eq_ignore_ascii_case("mailto:")).map(|_| &uri[7..]) else {
            continue; // https: and anything else
        };
        // RFC 6068: the address before any "?" header fields; %-escapes decoded.
        let address = percent_decode(rest.split('?').next().unwrap_or(""))?;
        let valid = address.rsplit_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !address.chars().any(|c| c.is_control() || c.is_whitespace())
        });
        if !valid {
            return Err(format!("{uri:?} is not a mailto: URI with an address"));
        }
        if !addresses.contains(&address) {
            addresses.push(address);
        }
    }
    if addresses.is_empty() {
        return Err(format!("{record:?} names no mailto: address"));
    }
    Ok(addresses)
}

fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok());
            out.push(hex.ok_or_else(|| format!("bad %-escape in {text:?}"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{text:?} is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::mailto_recipients;

    fn txt(records: &[&str]) -> Vec<Vec<u8>> {
        records.iter().map(|r| r.as_bytes().to_vec()).collect()
    }

    #[test]
    fn mailto_addresses_are_taken_and_https_left_out() {
        let got = mailto_recipients(&txt(&[
            "v=spf1 -all",
            "v=TLSRPTv1; rua=mailto:tls@example.net,https://reports.example.net/tls, MAILTO:other%2Btls@example.net?subject=x",
        ]))
        .unwrap();
        assert_eq!(got, ["tls@example.net", "other+tls@example.net"]);
    }

    #[test]
    fn no_record_several_records_or_no_mailto_mean_no_reports() {
        assert!(mailto_recipients(&txt(&["v=spf1 -all"])).is_err());
        assert!(
            mailto_recipients(&txt(&["v=TLSRPTv1; rua=mailto:a@x.test", "v=TLSRPTv1; rua=mailto:b@x.test"])).is_err()
        );
        assert!(mailto_recipients(&txt(&["v=TLSRPTv1; rua=https://x.test/r"])).is_err());
        assert!(mailto_recipients(&txt(&["v=TLSRPTv1;"])).is_err());
        assert!(mailto_recipients(&txt(&["v=TLSRPTv1; rua=mailto:no-at-sign"])).is_err());
        assert!(mailto_recipients(&txt(&["v=TLSRPTv1; rua=mailto:a%zz@x.test"])).is_err());
        assert!(mailto_recipients(&txt(&["v=TLSRPTv10; rua=mailto:a@x.test"])).is_err());
    }
}
