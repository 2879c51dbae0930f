//! The response that turns a connection away instead of the greeting, when the guard refused it
//! (a connection limit, mostly): an untagged BYE, which RFC 9051 §7.1.5 allows as the greeting
//! of a server unwilling to accept the connection.

use portcullis_events::RefuseReason;

/// The whole response, CRLF included, for a connection the guard refused for `reason`.
pub fn refused_connection(reason: RefuseReason) -> &'static [u8] {
    match reason {
        // RFC 9051 §7.1: UNAVAILABLE, a temporary failure; the client may try again later.
        RefuseReason::TooManyConnections
        | RefuseReason::TooManyConnectionsFromPeer
        | RefuseReason::TooManyConnectionsPerMinute => b"* BYE [UNAVAILABLE] Too many connections, try again later\r\n",
        RefuseReason::ShuttingDown => b"* BYE [UNAVAILABLE] Shutting down, try again later\r\n",
        RefuseReason::Firewall | RefuseReason::Banned => b"* BYE Not accepting connections from your address\r\n",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_is_one_bye_line() {
        use RefuseReason::*;
        for reason in [Firewall, Banned, TooManyConnections, TooManyConnectionsFromPeer, ShuttingDown] {
            let reply = refused_connection(reason);
            assert!(reply.starts_with(b"* BYE "), "{reason:?}");
            assert!(reply.ends_with(b"\r\n") && !reply[..reply.len() - 2].contains(&b'\n'), "{reason:?}");
        }
        assert_eq!(
            refused_connection(TooManyConnectionsFromPeer),
            b"* BYE [UNAVAILABLE] Too many connections, try again later\r\n"
        );
    }
}
