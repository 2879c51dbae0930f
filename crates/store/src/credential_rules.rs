//! The backend-independent rules of stored credentials, written once for every store: when an
//! app password opens anything, when a TOTP setting counts as enabled, when a wrong-code count
//! locks TOTP, and which time steps may still be used. Pure functions of the stored values;
//! each backend keeps only its SQL (which applies these rules inside one statement where two
//! nodes could race, and says so where it does).

use crate::AppPasswordState;

/// An app password's state at `now` (Unix seconds): a revocation outranks an expiry, and an
/// expiry at `now` or before has passed.
pub fn app_password_state(revoked: bool, expires: Option<i64>, now: i64) -> AppPasswordState {
    if revoked {
        AppPasswordState::Revoked
    } else if expires.is_some_and(|e| e <= now) {
        AppPasswordState::Expired
    } else {
        AppPasswordState::Active
    }
}

/// Whether a TOTP setting is in force: asked for, and with a secret to check codes against
/// (clearing the secret turns TOTP off whatever was asked). Turning it on is also a new
/// credentials generation: the password alone no longer opens mail protocols.
pub fn totp_enabled(secret_present: bool, enable: bool) -> bool {
    enable && secret_present
}

/// The number of wrong codes at which TOTP locks: at least one, so a lock never precedes a
/// first wrong code.
pub fn totp_lock_threshold(lock_at: u32) -> u32 {
    lock_at.max(1)
}

/// Whether the wrong code that brought the count to `failures_after` is the one that locked
/// TOTP (later ones find it already locked).
pub fn totp_failure_locked_it(failures_after: i64, lock_at: u32) -> bool {
    failures_after == i64::from(totp_lock_threshold(lock_at))
}

/// Whether time step `step` may still be used after `last_step` was (RFC 6238 §5.2: a code is
/// accepted once; one for an earlier step, within the skew window, would be a replay). The
/// backends apply this as `totp_last_step < step` in the UPDATE that records the step, so that
/// of two nodes given the same code one wins.
pub fn totp_step_fresh(last_step: i64, step: i64) -> bool {
    step > last_step
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revocation_outranks_an_expiry_and_an_expiry_is_inclusive() {
        assert_eq!(app_password_state(false, None, 100), AppPasswordState::Active);
        assert_eq!(app_password_state(false, Some(101), 100), AppPasswordState::Active);
        assert_eq!(app_password_state(false, Some(100), 100), AppPasswordState::Expired);
        assert_eq!(app_password_state(true, Some(50), 100), AppPasswordState::Revoked);
        assert_eq!(app_password_state(true, None, 100), AppPasswordState::Revoked);
    }

    #[test]
    fn totp_is_enabled_only_with_a_secret() {
        assert!(totp_enabled(true, true));
        assert!(!totp_enabled(false, true));
        assert!(!totp_enabled(true, false));
    }

    #[test]
    fn only_the_failure_reaching_the_threshold_locks() {
        assert!(!totp_failure_locked_it(4, 5));
        assert!(totp_failure_locked_it(5, 5));
        assert!(!totp_failure_locked_it(6, 5), "already locked by the fifth");
        assert!(totp_failure_locked_it(1, 0), "a threshold of zero means one");
        assert_eq!(totp_lock_threshold(0), 1);
    }

    #[test]
    fn a_step_is_used_once_and_never_an_earlier_one() {
        assert!(totp_step_fresh(0, 1));
        assert!(!totp_step_fresh(7, 7));
        assert!(!totp_step_fresh(7, 6));
    }
}
