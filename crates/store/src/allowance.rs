//! The backend-independent rules of a delivery, written once for every backend: who gets a
//! copy (each recipient once, ascending: the order both backends lock accounts in, so the
//! first refused account is the same whatever the backend), and the all-or-nothing storage
//! allowance (one recipient without room refuses the message for everyone).

use crate::AccountId;

/// The accounts a delivery stores a copy for: each once, ascending. Empty means store nothing
/// at all: a body no message refers to would never be removed.
pub fn delivery_recipients(mut recipients: Vec<AccountId>) -> Vec<AccountId> {
    recipients.sort_unstable();
    recipients.dedup();
    recipients
}

/// Whether `size` more bytes fit in an account using `used` under the allowance `limit`
/// (`None`: unlimited). Exactly full is allowed; one byte more is not.
pub fn has_room(used: u64, limit: Option<u64>, size: u64) -> bool {
    limit.is_none_or(|limit| used.saturating_add(size) <= limit)
}

/// The first of `recipients` (as [`delivery_recipients`] orders them) whose allowance, as
/// `usage` reports it (bytes used, limit), has no room for `size` more bytes: the delivery is
/// then refused for every recipient. `None`: every copy fits.
pub fn first_without_room<E>(
    recipients: &[AccountId],
    size: u64,
    mut usage: impl FnMut(AccountId) -> Result<(u64, Option<u64>), E>,
) -> Result<Option<AccountId>, E> {
    for &account in recipients {
        let (used, limit) = usage(account)?;
        if !has_room(used, limit, size) {
            return Ok(Some(account));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_are_sorted_once_each() {
        assert_eq!(delivery_recipients(vec![3, 1, 3, 2, 1]), vec![1, 2, 3]);
        assert!(delivery_recipients(Vec::new()).is_empty());
    }

    #[test]
    fn room_is_up_to_the_limit_inclusive() {
        assert!(has_room(5, Some(10), 5));
        assert!(!has_room(5, Some(10), 6));
        assert!(has_room(u64::MAX, None, u64::MAX));
        assert!(!has_room(u64::MAX - 1, Some(u64::MAX - 1), 2), "no overflow past the limit");
    }

    #[test]
    fn one_recipient_without_room_is_named_first_in_order() {
        let usage = |a: AccountId| Ok::<_, ()>(if a == 1 { (0, None) } else { (9, Some(10)) });
        assert_eq!(first_without_room(&[1, 2, 3], 2, usage), Ok(Some(2)));
        assert_eq!(first_without_room(&[1, 2, 3], 1, usage), Ok(None));
        assert_eq!(first_without_room(&[1, 2], 2, |_| Err::<(u64, Option<u64>), _>("down")), Err("down"));
    }
}
