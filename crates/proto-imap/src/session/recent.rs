//! \Recent for IMAP4rev1 sessions (RFC 3501 §2.3.2): a message is recent in the one session
//! that is first told of it. IMAP4rev2 dropped the flag, so a session that enabled it keeps no
//! recent set at all.
//!
//! The store keeps, per mailbox, the first UID no session has been told of yet
//! (`Mailbox::recent_from`); a session that SELECTs the mailbox, or later sees new messages
//! arrive in it, claims everything from there up to UIDNEXT in one atomic write
//! (`Store::claim_recent`). What a session claimed is a handful of UID ranges, so asking whether
//! a message is recent costs a comparison or two, and SELECT without new mail writes nothing.
//! EXAMINE must not take the flag from anyone (RFC 3501 §6.3.2): a read-only session sees
//! every message from the mailbox's first unclaimed UID on as recent, and claims nothing.

use portcullis_store::MessageList;

/// The UIDs that are \Recent in this session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Recent {
    /// Inclusive UID ranges, in the order claimed (ascending, as UIDs only grow).
    ranges: Vec<(u32, u32)>,
}

impl Recent {
    /// Adds the UIDs `from..to` (`to` excluded, as `Store::claim_recent` returns them).
    pub(crate) fn claimed(&mut self, from: u32, to: u32) {
        if from >= to {
            return;
        }
        let last = to - 1;
        match self.ranges.last_mut() {
            // Consecutive claims join: a session that keeps its mailbox open while mail
            // arrives holds one range, not one per delivery.
            Some((_, hi)) if hi.checked_add(1) == Some(from) => *hi = last,
            _ => self.ranges.push((from, last)),
        }
    }

    /// Every UID from `from` on (EXAMINE: seen as recent, claimed by nobody).
    pub(crate) fn from_on(from: u32) -> Recent {
        Recent { ranges: vec![(from.max(1), u32::MAX)] }
    }

    pub(crate) fn contains(&self, uid: u32) -> bool {
        self.ranges.iter().any(|&(lo, hi)| lo <= uid && uid <= hi)
    }

    /// How many of `messages` are recent: the RECENT response.
    pub(crate) fn count(&self, messages: &MessageList) -> usize {
        self.ranges
            .iter()
            .map(|&(lo, hi)| {
                let end = hi.checked_add(1).map_or(messages.len(), |next| messages.partition_point(next));
                end - messages.partition_point(lo)
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_store::{Flags, MessageIndex};

    fn list(uids: &[u32]) -> MessageList {
        MessageList::from_messages(uids.iter().map(|&uid| MessageIndex { uid, flags: Flags::default(), modseq: 1 }))
    }

    #[test]
    fn claimed_ranges() {
        let mut recent = Recent::default();
        assert!(!recent.contains(1));
        assert_eq!(recent.count(&list(&[1, 2, 3])), 0);
        recent.claimed(4, 4);
        assert_eq!(recent, Recent::default(), "an empty claim adds nothing");
        recent.claimed(3, 5);
        recent.claimed(5, 7);
        assert_eq!(recent.ranges, vec![(3, 6)], "consecutive claims join");
        recent.claimed(9, 10);
        assert!(recent.contains(3) && recent.contains(6) && recent.contains(9));
        assert!(!recent.contains(2) && !recent.contains(7) && !recent.contains(10));
        // Some claimed UIDs were expunged, or have not reached this session yet.
        assert_eq!(recent.count(&list(&[1, 2, 3, 5, 8, 9])), 3);
    }

    #[test]
    fn examine_sees_everything_unclaimed() {
        let recent = Recent::from_on(3);
        assert!(!recent.contains(2));
        assert!(recent.contains(3) && recent.contains(u32::MAX));
        assert_eq!(recent.count(&list(&[1, 2, 3, 4, u32::MAX])), 3);
        assert_eq!(Recent::from_on(0).count(&list(&[1])), 1);
    }
}
