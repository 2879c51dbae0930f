//! The reply that turns a connection away instead of the greeting, when the guard refused it (a
//! connection limit, mostly): `-ERR`, with the response codes of RFC 2449 §8 and RFC 3206.

use portcullis_events::RefuseReason;

/// The whole reply, CRLF included, for a connection the guard refused for `reason`.
pub fn refused_connection(reason: RefuseReason) -> &'static [u8] {
    match reason {
        // RFC 3206 §4: SYS/TEMP, a temporary problem on the server's side; come back later.
        RefuseReason::TooManyConnections
        | RefuseReason::TooManyConnectionsFromPeer
        | RefuseReason::TooManyConnectionsPerMinute => b"-ERR [SYS/TEMP] Too many connections, try again later\r\n",
        RefuseReason::ShuttingDown => b"-ERR [SYS/TEMP] Shutting down, try again later\r\n",
        RefuseReason::Firewall | RefuseReason::Banned => b"-ERR Not accepting connections from your address\r\n",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_is_one_err_line() {
        use RefuseReason::*;
        for reason in [Firewall, Banned, TooManyConnections, TooManyConnectionsFromPeer, ShuttingDown] {
            let reply = refused_connection(reason);
            assert!(reply.starts_with(b"-ERR "), "{reason:?}");
            assert!(reply.ends_with(b"\r\n") && !reply[..reply.len() - 2].contains(&b'\n'), "{reason:?}");
        }
        assert_eq!(
            refused_connection(TooManyConnections),
            b"-ERR [SYS/TEMP] Too many connections, try again later\r\n"
        );
    }
}
