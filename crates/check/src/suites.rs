//! The TLS 1.0–1.2 cipher suites the hand-built probes offer, with the two properties the
//! checklist asks about (AEAD, forward secrecy) and the ones nobody should accept at all.
//!
//! rustls only knows the nine modern suites, so it can neither offer these nor name them when a
//! server picks one: this table is both the offer and the dictionary.

/// How the session key is agreed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kx {
    /// Ephemeral elliptic-curve Diffie-Hellman: forward secret.
    Ecdhe,
    /// Ephemeral finite-field Diffie-Hellman: forward secret.
    Dhe,
    /// The client encrypts the secret to the certificate's RSA key: whoever gets that key later
    /// can read every recorded session.
    Rsa,
    /// Unauthenticated Diffie-Hellman: anyone in the middle can take part.
    Anon,
}

/// How records are protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bulk {
    /// AES-GCM or ChaCha20-Poly1305.
    Aead,
    /// AES, Camellia or SEED in CBC mode with HMAC (padding oracles, Lucky13).
    Cbc,
    /// Broken or toy protection: RC4, 3DES (Sweet32), single DES, export grade, NULL.
    Broken,
}

#[derive(Debug, Clone, Copy)]
pub struct Suite {
    pub id: u16,
    pub name: &'static str,
    pub kx: Kx,
    pub bulk: Bulk,
    /// Defined for TLS 1.2 only (SHA-256/384 MACs and PRFs, GCM, ChaCha20).
    pub tls12_only: bool,
}

impl Suite {
    pub fn forward_secret(&self) -> bool {
        matches!(self.kx, Kx::Ecdhe | Kx::Dhe)
    }

    /// Nothing to weigh here: these must simply be off.
    pub fn obsolete(&self) -> bool {
        self.bulk == Bulk::Broken || self.kx == Kx::Anon
    }
}

const fn s(id: u16, name: &'static str, kx: Kx, bulk: Bulk, tls12_only: bool) -> Suite {
    Suite { id, name, kx, bulk, tls12_only }
}

use Bulk::*;
use Kx::*;

/// Every suite the probes know, strongest first.
pub const ALL: &[Suite] = &[
    // AEAD with forward secrecy: what a good TLS 1.2 server picks.
    s(0xC02C, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", Ecdhe, Aead, true),
    s(0xC030, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", Ecdhe, Aead, true),
    s(0xCCA9, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", Ecdhe, Aead, true),
    s(0xCCA8, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", Ecdhe, Aead, true),
    s(0xC02B, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", Ecdhe, Aead, true),
    s(0xC02F, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", Ecdhe, Aead, true),
    s(0x009F, "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", Dhe, Aead, true),
    s(0xCCAA, "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256", Dhe, Aead, true),
    s(0x009E, "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", Dhe, Aead, true),
    // CBC with forward secrecy.
    s(0xC024, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384", Ecdhe, Cbc, true),
    s(0xC028, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", Ecdhe, Cbc, true),
    s(0xC023, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", Ecdhe, Cbc, true),
    s(0xC027, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", Ecdhe, Cbc, true),
    s(0xC00A, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", Ecdhe, Cbc, false),
    s(0xC014, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", Ecdhe, Cbc, false),
    s(0xC009, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", Ecdhe, Cbc, false),
    s(0xC013, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", Ecdhe, Cbc, false),
    s(0x006B, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256", Dhe, Cbc, true),
    s(0x0067, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256", Dhe, Cbc, true),
    s(0x0039, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA", Dhe, Cbc, false),
    s(0x0033, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA", Dhe, Cbc, false),
    s(0x0088, "TLS_DHE_RSA_WITH_CAMELLIA_256_CBC_SHA", Dhe, Cbc, false),
    s(0x0045, "TLS_DHE_RSA_WITH_CAMELLIA_128_CBC_SHA", Dhe, Cbc, false),
    // Static RSA key exchange: no forward secrecy.
    s(0x009D, "TLS_RSA_WITH_AES_256_GCM_SHA384", Rsa, Aead, true),
    s(0x009C, "TLS_RSA_WITH_AES_128_GCM_SHA256", Rsa, Aead, true),
    s(0x003D, "TLS_RSA_WITH_AES_256_CBC_SHA256", Rsa, Cbc, true),
    s(0x003C, "TLS_RSA_WITH_AES_128_CBC_SHA256", Rsa, Cbc, true),
    s(0x0035, "TLS_RSA_WITH_AES_256_CBC_SHA", Rsa, Cbc, false),
    s(0x002F, "TLS_RSA_WITH_AES_128_CBC_SHA", Rsa, Cbc, false),
    s(0x0084, "TLS_RSA_WITH_CAMELLIA_256_CBC_SHA", Rsa, Cbc, false),
    s(0x0041, "TLS_RSA_WITH_CAMELLIA_128_CBC_SHA", Rsa, Cbc, false),
    s(0x0096, "TLS_RSA_WITH_SEED_CBC_SHA", Rsa, Cbc, false),
    // Obsolete: 3DES, RC4, DES, export grade, NULL, anonymous.
    s(0xC012, "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", Ecdhe, Broken, false),
    s(0xC008, "TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA", Ecdhe, Broken, false),
    s(0x0016, "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA", Dhe, Broken, false),
    s(0x000A, "TLS_RSA_WITH_3DES_EDE_CBC_SHA", Rsa, Broken, false),
    s(0xC011, "TLS_ECDHE_RSA_WITH_RC4_128_SHA", Ecdhe, Broken, false),
    s(0xC007, "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA", Ecdhe, Broken, false),
    s(0x0005, "TLS_RSA_WITH_RC4_128_SHA", Rsa, Broken, false),
    s(0x0004, "TLS_RSA_WITH_RC4_128_MD5", Rsa, Broken, false),
    s(0x0015, "TLS_DHE_RSA_WITH_DES_CBC_SHA", Dhe, Broken, false),
    s(0x0009, "TLS_RSA_WITH_DES_CBC_SHA", Rsa, Broken, false),
    s(0x0014, "TLS_DHE_RSA_EXPORT_WITH_DES40_CBC_SHA", Dhe, Broken, false),
    s(0x0008, "TLS_RSA_EXPORT_WITH_DES40_CBC_SHA", Rsa, Broken, false),
    s(0x0006, "TLS_RSA_EXPORT_WITH_RC2_CBC_40_MD5", Rsa, Broken, false),
    s(0x0003, "TLS_RSA_EXPORT_WITH_RC4_40_MD5", Rsa, Broken, false),
    s(0xC010, "TLS_ECDHE_RSA_WITH_NULL_SHA", Ecdhe, Broken, false),
    s(0xC006, "TLS_ECDHE_ECDSA_WITH_NULL_SHA", Ecdhe, Broken, false),
    s(0x003B, "TLS_RSA_WITH_NULL_SHA256", Rsa, Broken, true),
    s(0x0002, "TLS_RSA_WITH_NULL_SHA", Rsa, Broken, false),
    s(0x0001, "TLS_RSA_WITH_NULL_MD5", Rsa, Broken, false),
    s(0xC019, "TLS_ECDH_anon_WITH_AES_256_CBC_SHA", Anon, Cbc, false),
    s(0xC018, "TLS_ECDH_anon_WITH_AES_128_CBC_SHA", Anon, Cbc, false),
    s(0x00A6, "TLS_DH_anon_WITH_AES_128_GCM_SHA256", Anon, Aead, true),
    s(0x003A, "TLS_DH_anon_WITH_AES_256_CBC_SHA", Anon, Cbc, false),
    s(0x0034, "TLS_DH_anon_WITH_AES_128_CBC_SHA", Anon, Cbc, false),
    s(0x001B, "TLS_DH_anon_WITH_3DES_EDE_CBC_SHA", Anon, Broken, false),
    s(0x0018, "TLS_DH_anon_WITH_RC4_128_MD5", Anon, Broken, false),
];

/// TLS_EMPTY_RENEGOTIATION_INFO_SCSV (RFC 5746): stands in for the renegotiation_info
/// extension, which an SSLv3 ClientHello cannot carry.
pub const RENEGOTIATION_SCSV: u16 = 0x00FF;

pub fn by_id(id: u16) -> Option<&'static Suite> {
    ALL.iter().find(|s| s.id == id)
}

/// The name of a suite a server picked ("0xABCD" for one this table does not know, e.g. a
/// TLS 1.3 suite).
pub fn name(id: u16) -> String {
    by_id(id).map(|s| s.name.to_string()).unwrap_or_else(|| format!("0x{id:04X}"))
}

/// Which suites one probe offers; the server's choice tells whether it accepts that class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Everything defined for the version being probed, so that any server speaking that version
    /// at all answers with a ServerHello.
    AnyFor(u16),
    /// TLS 1.2 suites without AEAD, leaving out the obsolete ones (probed on their own).
    NonAead,
    /// TLS 1.2 suites with static RSA key exchange, leaving out the obsolete ones.
    NonForwardSecret,
    /// RC4, 3DES, DES, export grade, NULL and anonymous suites.
    Obsolete,
    /// Every TLS 1.2 suite, but without the extended_master_secret extension (RFC 7627), which
    /// every other probe offers: what a client from before 2016 sends.
    WithoutEms,
}

impl Offer {
    pub fn suites(self) -> Vec<&'static Suite> {
        ALL.iter()
            .filter(|s| match self {
                Offer::AnyFor(version) => version >= 0x0303 || !s.tls12_only,
                Offer::NonAead => s.bulk != Bulk::Aead && !s.obsolete(),
                Offer::NonForwardSecret => !s.forward_secret() && !s.obsolete(),
                Offer::Obsolete => s.obsolete(),
                Offer::WithoutEms => true,
            })
            .collect()
    }

    /// Whether the ClientHello offers the extended master secret (RFC 7627).
    pub fn with_ems(self) -> bool {
        self != Offer::WithoutEms
    }

    /// True when `id` is one this offer was probing for (a server answering with a suite it was
    /// not offered is broken, and that is not acceptance of the class).
    pub fn contains(self, id: u16) -> bool {
        self.suites().iter().any(|s| s.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique() {
        for (i, a) in ALL.iter().enumerate() {
            assert!(ALL[i + 1..].iter().all(|b| b.id != a.id), "{} twice", a.name);
        }
    }

    #[test]
    fn classes_are_what_they_say() {
        assert!(Offer::NonAead.suites().iter().all(|s| s.bulk == Bulk::Cbc && !s.obsolete()));
        assert!(Offer::NonForwardSecret.suites().iter().all(|s| s.kx == Kx::Rsa && !s.obsolete()));
        assert!(Offer::NonForwardSecret.contains(0x009C), "RSA key exchange with GCM is still not forward secret");
        assert!(Offer::Obsolete.contains(0x000A) && Offer::Obsolete.contains(0x0034));
        assert!(!Offer::Obsolete.contains(0xC02F));
        // SSLv3..TLS 1.1 offers leave out the suites those versions cannot negotiate.
        assert!(!Offer::AnyFor(0x0301).contains(0xC02F));
        assert!(Offer::AnyFor(0x0301).contains(0xC013));
        assert!(Offer::AnyFor(0x0303).contains(0xC02F));
    }

    #[test]
    fn names() {
        assert_eq!(name(0xC013), "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA");
        assert_eq!(name(0x1301), "0x1301");
    }
}
