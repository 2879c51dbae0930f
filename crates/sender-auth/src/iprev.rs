//! Forward-confirmed reverse DNS of the client (RFC 8601 §3 "iprev"): the address's PTR
//! names, and whether one of them resolves back to the address. Recorded, not enforced.
//! Done here on the typed resolver rather than mail-auth's, whose "forward lookup found
//! nothing" becomes permerror where RFC 8601 §2.7.3 says fail.

use crate::verdict::{IprevCheck, IprevResult};
use portcullis_dns::Resolver;
use std::net::IpAddr;

/// PTR names followed at most (RFC 7208 §5.5 stops at 10 for the same walk).
const MAX_NAMES: usize = 10;

pub async fn check_iprev(resolver: &Resolver, ip: IpAddr) -> IprevCheck {
    let names = match resolver.ptr(ip).await {
        Ok(names) => names,
        // RFC 8601 §2.7.3: no PTR data is a permerror; a DNS failure a temperror.
        Err(err) if err.is_temporary() => return IprevCheck { result: IprevResult::TempError, names: vec![] },
        Err(_) => return IprevCheck { result: IprevResult::PermError, names: vec![] },
    };
    let names: Vec<String> = names.into_iter().take(MAX_NAMES).collect();
    let mut temporary = false;
    for name in &names {
        let forward = match ip {
            IpAddr::V4(v4) => resolver.ipv4(name).await.map(|addrs| addrs.contains(&v4)),
            IpAddr::V6(v6) => resolver.ipv6(name).await.map(|addrs| addrs.contains(&v6)),
        };
        match forward {
            Ok(true) => return IprevCheck { result: IprevResult::Pass, names },
            Ok(false) => {}
            Err(err) => temporary |= err.is_temporary(),
        }
    }
    // No name led back: fail, unless a lookup that could have failed to do so only for now.
    let result = if temporary { IprevResult::TempError } else { IprevResult::Fail };
    IprevCheck { result, names }
}
