//! Messages signed here verify with our own verifier (portcullis-sender-auth, mail-auth) and
//! with an independent one (dkimpy), both reading the key from a DNS server on loopback that
//! serves the record this crate publishes; changed messages fail with both.

#[path = "../../sender-auth/tests/support/mod.rs"]
mod support;

use portcullis_dkim_sign::{Algorithm, Signer, SigningKey};
use portcullis_dns::{DnsSettings, Resolver};
use portcullis_sender_auth::{AuthSettings, Authenticator, DkimResult, Envelope};
use portcullis_testdns::{TestDns, Zones};
use std::time::Duration;

const DOMAIN: &str = "signer.test";

fn message() -> Vec<u8> {
    b"From: Alice <alice@signer.test>\r\nTo: bob@example.net\r\nSubject: signed here\r\n\
      Date: Mon, 07 Dec 2026 10:00:00 +0000\r\nMessage-ID: <s1@signer.test>\r\nMIME-Version: 1.0\r\n\
      Content-Type: text/plain; charset=utf-8\r\n\r\nHello,\r\n\r\n  a body with  spaces \r\nand lines.\r\n"
        .to_vec()
}

/// A DNS server publishing each (selector, key) as this crate says to.
fn publish(keys: &[(&str, &SigningKey)]) -> TestDns {
    let mut zones = Zones::new().zone(DOMAIN);
    for (selector, key) in keys {
        zones = zones.txt(&SigningKey::dns_name(selector, DOMAIN), &key.dns_record());
    }
    TestDns::start(zones).unwrap()
}

/// Our verifier's DKIM results for `message`, keys from `dns`.
async fn ours(dns: &TestDns, message: &[u8]) -> Vec<DkimResult> {
    let settings = DnsSettings { timeout: Duration::from_millis(500), ..DnsSettings::with_servers(vec![dns.addr()]) };
    let auth = Authenticator::new(Resolver::new(&settings).unwrap(), AuthSettings::new("mx.portcullis.test"));
    let envelope = Envelope {
        client_ip: [192, 0, 2, 1].into(),
        helo: "out.signer.test".into(),
        mail_from: "alice@signer.test".into(),
    };
    auth.verify(&envelope, message, None).await.dkim.iter().map(|d| d.result).collect()
}

fn tampered(signed: &[u8]) -> Vec<u8> {
    String::from_utf8(signed.to_vec()).unwrap().replace("a body with", "a body WITH").into_bytes()
}

#[tokio::test]
async fn both_algorithms_verify_with_our_verifier_and_with_dkimpy() {
    for algorithm in [Algorithm::RsaSha256, Algorithm::Ed25519Sha256] {
        let key = SigningKey::generate(algorithm).unwrap();
        let dns = publish(&[("s1", &key)]);
        let signed = Signer::new(key, DOMAIN, "s1").sign_message(&message()).unwrap();
        assert_eq!(ours(&dns, &signed).await, vec![DkimResult::Pass], "{algorithm:?}");
        assert!(support::verify(dns.addr().port(), &signed), "dkimpy rejects our {algorithm:?} signature");

        let changed = tampered(&signed);
        assert_eq!(ours(&dns, &changed).await, vec![DkimResult::Fail], "{algorithm:?}");
        assert!(!support::verify(dns.addr().port(), &changed), "dkimpy accepts a changed body ({algorithm:?})");
    }
}

#[tokio::test]
async fn a_message_signed_with_both_keys_carries_two_passing_signatures() {
    let rsa = SigningKey::generate(Algorithm::RsaSha256).unwrap();
    let ed = SigningKey::generate(Algorithm::Ed25519Sha256).unwrap();
    let dns = publish(&[("rsa", &rsa), ("ed", &ed)]);
    let once = Signer::new(ed, DOMAIN, "ed").sign_message(&message()).unwrap();
    let twice = Signer::new(rsa, DOMAIN, "rsa").sign_message(&once).unwrap();
    assert_eq!(ours(&dns, &twice).await, vec![DkimResult::Pass, DkimResult::Pass]);
    assert!(support::verify(dns.addr().port(), &twice), "dkimpy checks the top (RSA) signature");
}

#[tokio::test]
async fn an_added_from_field_breaks_the_signature() {
    let key = SigningKey::generate(Algorithm::Ed25519Sha256).unwrap();
    let dns = publish(&[("s1", &key)]);
    let signed = Signer::new(key, DOMAIN, "s1").sign_message(&message()).unwrap();
    // Oversigning: From was listed once more than it occurred, so a second one is noticed.
    let mut forged = b"From: Mallory <ceo@signer.test>\r\n".to_vec();
    forged.extend_from_slice(&signed);
    assert_eq!(ours(&dns, &forged).await, vec![DkimResult::Fail]);
    assert!(!support::verify(dns.addr().port(), &forged), "dkimpy accepts an added From");
}

#[tokio::test]
async fn keys_survive_pem_and_openssl_keys_are_read() {
    let key = SigningKey::generate(Algorithm::Ed25519Sha256).unwrap();
    let stored = SigningKey::from_pem(&key.to_pem()).unwrap();
    assert_eq!(stored.public_base64(), key.public_base64());

    // A PKCS#1 RSA key as `openssl genrsa -traditional` writes it.
    let openssl = std::process::Command::new("openssl").args(["genrsa", "-traditional", "2048"]).output().unwrap();
    assert!(openssl.status.success(), "openssl genrsa: {}", String::from_utf8_lossy(&openssl.stderr));
    let pem = String::from_utf8(openssl.stdout).unwrap();
    assert!(pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let imported = SigningKey::from_pem(&pem).unwrap();
    assert_eq!(imported.algorithm(), Algorithm::RsaSha256);
    let dns = publish(&[("ops", &imported), ("ed", &stored)]);
    let signed = Signer::new(imported, DOMAIN, "ops").sign_message(&message()).unwrap();
    assert!(support::verify(dns.addr().port(), &signed), "dkimpy rejects a signature by an imported key");
    let signed = Signer::new(stored, DOMAIN, "ed").sign_message(&message()).unwrap();
    assert_eq!(ours(&dns, &signed).await, vec![DkimResult::Pass]);
}
