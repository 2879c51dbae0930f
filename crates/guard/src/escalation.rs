//! Widening bans: when enough of one customer's networks are banned, the customer's whole
//! allocation is. An IPv6 attacker holding a /48 has 65,536 /64s, each of which would be banned
//! on its own failures, the ban list growing by thousands a minute; so `guard.escalate_after`
//! banned /64s inside a /56 ban the /56, and as many /56s holding a ban inside a /48 ban the
//! /48 (counting /56s, not /64s, so that one /64 in each of many /56s adds up too). Beyond the
//! /48 a network spans organisations, so it stops there. IPv4 likewise from addresses to their
//! /24, off unless `guard.escalate_ipv4_after` is set. Never over a trusted network or an
//! address an account logged in from: an owner is not banned for its neighbours.

use std::collections::HashSet;
use std::time::SystemTime;

use ipnet::IpNet;

use crate::ban_list::BanList;
use crate::source::supernet;

/// A wider network now due for a ban, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub network: IpNet,
    pub reason: String,
}

/// The wider networks due for a ban now that `banned` is (it is in `bans` already), narrowest
/// first. `spared` says which networks may not be banned (trusted, or an owner inside).
pub fn due(
    bans: &BanList,
    banned: &IpNet,
    settings: &portcullis_config::Guard,
    now: SystemTime,
    spared: impl Fn(&IpNet) -> bool,
) -> Vec<Due> {
    let mut due = Vec::new();
    let open = |network: &IpNet| bans.covering(network, now).is_none() && !spared(network);
    match banned {
        IpNet::V6(v6) if v6.prefix_len() == 64 || v6.prefix_len() == 56 => {
            let e = settings.escalate_after as usize;
            if e == 0 {
                return due;
            }
            let mut fresh_56 = None;
            if v6.prefix_len() == 64 {
                let n56 = supernet(banned, 56);
                let inside = bans.inside(&n56, 64).filter(|b| b.in_force(now)).count();
                if inside >= e && open(&n56) {
                    due.push(Due { network: n56, reason: format!("{inside} banned /64s inside") });
                    fresh_56 = Some(n56);
                }
            }
            let n48 = supernet(banned, 48);
            let mut holding: HashSet<IpNet> = [56, 64]
                .into_iter()
                .flat_map(|length| bans.inside(&n48, length))
                .filter(|b| b.in_force(now))
                .map(|b| supernet(&b.network, 56))
                .collect();
            holding.extend(fresh_56);
            if holding.len() >= e && open(&n48) {
                due.push(Due { network: n48, reason: format!("{} /56s holding a ban inside", holding.len()) });
            }
        }
        IpNet::V4(v4) if v4.prefix_len() == 32 && settings.escalate_ipv4_after > 0 => {
            let n24 = supernet(banned, 24);
            let inside = bans.inside(&n24, 32).filter(|b| b.in_force(now)).count();
            if inside >= settings.escalate_ipv4_after as usize && open(&n24) {
                due.push(Due { network: n24, reason: format!("{inside} banned addresses inside") });
            }
        }
        _ => {}
    }
    due
}
