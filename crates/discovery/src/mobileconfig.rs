//! An Apple configuration profile (`.mobileconfig`, an XML property list) that sets up one
//! address in Apple Mail on iOS and macOS: IMAP over implicit TLS (or POP3 when IMAP is off)
//! and SMTP submission, with SSL on for both. It holds the address and never a password: the
//! device asks for it when the profile is installed. Unsigned (the device says so); served
//! only over HTTPS.
//!
//! The payload UUIDs are derived from the host and the address (RFC 9562 §5.8, version 8), so
//! fetching the profile again gives the same one and installing it replaces, not duplicates.

use sha2::{Digest, Sha256};

use crate::facts::ServerFacts;
use crate::xml::escape;

pub const CONTENT_TYPE: &str = "application/x-apple-aspen-config";

/// The profile for `address` (already checked to be in a local domain), or `None` when the
/// server offers no way in or no way out.
pub fn profile(server: &ServerFacts, address: &str) -> Option<String> {
    if !server.offers_client_access() {
        return None;
    }
    let p = &server.ports;
    let (incoming_type, incoming_port) = match (p.imaps, p.pop3s) {
        (Some(port), _) => ("EmailTypeIMAP", port),
        (None, Some(port)) => ("EmailTypePOP", port),
        (None, None) => return None,
    };
    // Apple Mail's outgoing server takes one port; implicit TLS is preferred (RFC 8314 §3.3).
    let outgoing_port = p.submissions.or(p.submission)?;
    let host = escape(&server.hostname);
    let addr = escape(address);
    let reverse_host: Vec<&str> = server.hostname.rsplit('.').collect();
    let identifier = escape(&format!("{}.portcullis.mail", reverse_host.join(".")));
    let account_uuid = uuid(&server.hostname, address, "account");
    let profile_uuid = uuid(&server.hostname, address, "profile");
    let mut dict = String::new();
    let mut key = |k: &str, v: String| dict.push_str(&format!("      <key>{k}</key>\n      {v}\n"));
    let string = |s: &str| format!("<string>{s}</string>");
    let integer = |n: u16| format!("<integer>{n}</integer>");
    key("EmailAccountDescription", string(&addr));
    key("EmailAccountName", string(&addr));
    key("EmailAccountType", string(incoming_type));
    key("EmailAddress", string(&addr));
    key("IncomingMailServerAuthentication", string("EmailAuthPassword"));
    key("IncomingMailServerHostName", string(&host));
    key("IncomingMailServerPortNumber", integer(incoming_port));
    key("IncomingMailServerUseSSL", "<true/>".into());
    key("IncomingMailServerUsername", string(&addr));
    key("OutgoingMailServerAuthentication", string("EmailAuthPassword"));
    key("OutgoingMailServerHostName", string(&host));
    key("OutgoingMailServerPortNumber", integer(outgoing_port));
    // On 587 "SSL" is STARTTLS, which Portcullis requires before AUTH anyway.
    key("OutgoingMailServerUseSSL", "<true/>".into());
    key("OutgoingMailServerUsername", string(&addr));
    key("OutgoingPasswordSameAsIncomingPassword", "<true/>".into());
    key("PayloadDescription", string(&format!("The mail account {addr}")));
    key("PayloadDisplayName", string(&addr));
    key("PayloadIdentifier", string(&format!("{identifier}.account.{account_uuid}")));
    key("PayloadType", string("com.apple.mail.managed"));
    key("PayloadUUID", string(&account_uuid));
    key("PayloadVersion", integer(1));
    key("PreventAppSheet", "<false/>".into());
    key("PreventMove", "<false/>".into());
    key("SMIMEEnabled", "<false/>".into());
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
         <plist version=\"1.0\">\n<dict>\n  <key>PayloadContent</key>\n  <array>\n    <dict>\n",
    );
    xml.push_str(&dict);
    xml.push_str("    </dict>\n  </array>\n");
    xml.push_str(&format!("  <key>PayloadDisplayName</key>\n  <string>Mail: {addr}</string>\n"));
    xml.push_str(&format!("  <key>PayloadIdentifier</key>\n  <string>{identifier}.{profile_uuid}</string>\n"));
    xml.push_str("  <key>PayloadRemovalDisallowed</key>\n  <false/>\n");
    xml.push_str("  <key>PayloadType</key>\n  <string>Configuration</string>\n");
    xml.push_str(&format!("  <key>PayloadUUID</key>\n  <string>{profile_uuid}</string>\n"));
    xml.push_str("  <key>PayloadVersion</key>\n  <integer>1</integer>\n</dict>\n</plist>\n");
    Some(xml)
}

/// A version-8 UUID (RFC 9562 §5.8) from the SHA-256 of what it names, upper case as Apple
/// writes them.
fn uuid(host: &str, address: &str, role: &str) -> String {
    let digest = Sha256::digest(format!("portcullis\0{host}\0{address}\0{role}").as_bytes());
    let mut b: [u8; 16] = [0; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x80; // version 8
    b[8] = (b[8] & 0x3f) | 0x80; // the RFC 9562 variant
    let hex: String = b.iter().map(|x| format!("{x:02X}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::Ports;

    fn facts() -> ServerFacts {
        let ports = Ports { submissions: Some(465), submission: Some(587), imaps: Some(993), ..Ports::default() };
        ServerFacts::new("mail.example.org", ports)
    }

    #[test]
    fn the_profile_names_the_address_the_tls_ports_and_no_password() {
        let xml = profile(&facts(), "alice@example.org").unwrap();
        assert!(xml.contains("<key>IncomingMailServerPortNumber</key>\n      <integer>993</integer>"), "{xml}");
        assert!(xml.contains("<key>OutgoingMailServerPortNumber</key>\n      <integer>465</integer>"), "{xml}");
        assert!(xml.contains("<string>alice@example.org</string>"));
        assert!(!xml.to_lowercase().contains("<key>incomingpassword") && !xml.contains("OutgoingPassword<"));
    }

    #[test]
    fn uuids_are_stable_per_address_and_well_formed() {
        let a = uuid("mail.example.org", "alice@example.org", "account");
        assert_eq!(a, uuid("mail.example.org", "alice@example.org", "account"));
        assert_ne!(a, uuid("mail.example.org", "bob@example.org", "account"));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "8");
    }

    #[test]
    fn the_address_is_escaped() {
        let xml = profile(&facts(), "a&<b>@example.org").unwrap();
        assert!(xml.contains("a&amp;&lt;b&gt;@example.org") && !xml.contains("<b>"), "{xml}");
    }
}
