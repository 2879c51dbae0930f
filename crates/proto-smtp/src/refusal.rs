//! The reply that turns a connection away before the greeting, when the guard refused it (a
//! connection limit, mostly). RFC 5321 §3.1 lets a server answer the opening of a connection
//! with something other than 220; 421 closes the channel and may answer anything (§4.2.5).

use portcullis_events::RefuseReason;

/// The whole reply, CRLF included, for a connection the guard refused for `reason`.
pub fn refused_connection(reason: RefuseReason) -> &'static [u8] {
    match reason {
        // RFC 3463 X.7.0: a security policy, here the limit per address.
        RefuseReason::TooManyConnectionsFromPeer => {
            b"421 4.7.0 Too many connections from your address, try again later\r\n"
        }
        // RFC 3463 X.3.2: the system is not accepting network messages.
        RefuseReason::TooManyConnectionsPerMinute => {
            b"421 4.7.0 Too many connections from your address per minute, try again later\r\n"
        }
        RefuseReason::TooManyConnections => b"421 4.3.2 Too many connections, try again later\r\n",
        RefuseReason::ShuttingDown => b"421 4.3.2 Shutting down, try again later\r\n",
        RefuseReason::Firewall | RefuseReason::Banned => b"421 4.7.0 Not accepting connections from your address\r\n",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_is_one_421_line() {
        use RefuseReason::*;
        for reason in [
            Firewall,
            Banned,
            TooManyConnections,
            TooManyConnectionsFromPeer,
            TooManyConnectionsPerMinute,
            ShuttingDown,
        ] {
            let reply = refused_connection(reason);
            assert!(reply.starts_with(b"421 4."), "{reason:?}");
            assert!(reply.ends_with(b"\r\n") && !reply[..reply.len() - 2].contains(&b'\n'), "{reason:?}");
        }
        assert_eq!(refused_connection(TooManyConnections), b"421 4.3.2 Too many connections, try again later\r\n");
    }
}
