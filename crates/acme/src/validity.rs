//! When a certificate is valid and when to renew it. The validity is read from the
//! certificate itself (x509-parser), so a certificate stored before a restart is renewed on
//! the same schedule; the schedule and the backoff are pure functions of the time given.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A certificate's validity period (RFC 5280 §4.1.2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl Validity {
    /// Reads the validity of a DER certificate.
    pub fn of(der: &[u8]) -> Result<Validity, String> {
        let (_, cert) =
            x509_parser::parse_x509_certificate(der).map_err(|e| format!("the certificate does not parse: {e}"))?;
        let validity = cert.validity();
        let time = |t: i64| -> SystemTime {
            if t >= 0 {
                UNIX_EPOCH + Duration::from_secs(t as u64)
            } else {
                UNIX_EPOCH
            }
        };
        Ok(Validity {
            not_before: time(validity.not_before.timestamp()),
            not_after: time(validity.not_after.timestamp()),
        })
    }

    pub fn lifetime(&self) -> Duration {
        self.not_after.duration_since(self.not_before).unwrap_or_default()
    }

    /// When `numerator/denominator` of the lifetime has passed.
    pub fn renewal_due(&self, (numerator, denominator): (u32, u32)) -> SystemTime {
        let lifetime = self.lifetime();
        let fraction = lifetime.mul_f64(f64::from(numerator) / f64::from(denominator.max(1)));
        self.not_before + fraction
    }

    /// How long it stays valid after `now` (zero once expired).
    pub fn remaining(&self, now: SystemTime) -> Duration {
        self.not_after.duration_since(now).unwrap_or_default()
    }
}

/// The wait before retry number `failures` (1 after the first failure): `first` doubled per
/// failure, at most `max`.
pub fn backoff(failures: u32, first: Duration, max: Duration) -> Duration {
    let doublings = failures.saturating_sub(1).min(30);
    first.saturating_mul(1u32 << doublings).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_due_at_two_thirds_of_the_lifetime() {
        let start = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let v = Validity { not_before: start, not_after: start + Duration::from_secs(90 * 86400) };
        assert_eq!(v.renewal_due((2, 3)), start + Duration::from_secs(60 * 86400));
        assert_eq!(v.remaining(start + Duration::from_secs(89 * 86400)), Duration::from_secs(86400));
        assert_eq!(v.remaining(start + Duration::from_secs(91 * 86400)), Duration::ZERO);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let (first, max) = (Duration::from_secs(60), Duration::from_secs(3600));
        let waits: Vec<u64> = (1..=8).map(|n| backoff(n, first, max).as_secs()).collect();
        assert_eq!(waits, [60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(backoff(u32::MAX, first, max), max);
    }

    #[test]
    fn the_validity_is_read_from_the_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["a.example".to_string()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2030, 1, 1);
        params.not_after = rcgen::date_time_ymd(2030, 4, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let v = Validity::of(cert.der()).unwrap();
        assert_eq!(v.lifetime(), Duration::from_secs(90 * 86400));
        assert!(Validity::of(b"not a certificate").is_err());
    }
}
