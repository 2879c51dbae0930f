//! MTA-STS (RFC 8461) for outbound delivery: the policy of a destination domain, from the
//! cache while its TXT id is unchanged and its max_age not over, otherwise fetched again; a
//! fetch that fails keeps an unexpired cached policy in force (§3.3, §5.1), so an attacker
//! who blocks the fetch cannot downgrade a domain that is already known to enforce.
//!
//! What the caller provides: the resolver and trust roots, the HTTPS port (443; tests use
//! another), a fetch timeout, and the wall-clock time. The cache lives in memory; a server
//! with several nodes may later keep it in the store (it is only an optimisation plus the
//! downgrade protection above).

mod fetch;
pub mod policy;

pub use fetch::MAX_POLICY_BYTES;
pub use policy::{Mode, Policy};

use crate::tls::{TlsFailure, TrustRoots};
use portcullis_dns::Resolver;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// Domains whose policy is remembered at most (the oldest fetched is forgotten first).
const CACHE_LIMIT: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Cached {
    id: String,
    policy: Policy,
    fetched: SystemTime,
}

/// The policy that applies to a domain now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// No policy (or mode none): opportunistic TLS.
    NoPolicy,
    Policy(Policy),
    /// A TXT record announces a policy but none could be had, and none is cached: delivery
    /// goes on without one (§5.1 and RFC 8460 report the failure).
    Unavailable(TlsFailure, String),
}

/// Fetches and remembers MTA-STS policies.
pub struct MtaSts {
    resolver: Resolver,
    roots: TrustRoots,
    port: u16,
    timeout: Duration,
    cache: Mutex<HashMap<String, Cached>>,
}

impl MtaSts {
    pub fn new(resolver: Resolver, roots: TrustRoots, port: u16, timeout: Duration) -> MtaSts {
        MtaSts { resolver, roots, port, timeout, cache: Mutex::new(HashMap::new()) }
    }

    /// The policy of `domain` at `now`.
    pub async fn lookup(&self, domain: &str, now: SystemTime) -> Lookup {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let cached = self.cached(&domain, now);
        let txt = self.resolver.txt(&format!("_mta-sts.{domain}")).await;
        let id = match txt {
            Ok(records) => policy::txt_id(&records).ok(),
            Err(_) => None,
        };
        let Some(id) = id else {
            // §3.3: without a (valid) TXT record, an unexpired cached policy stays in force.
            return cached.map_or(Lookup::NoPolicy, |c| Lookup::from_policy(c.policy));
        };
        if let Some(c) = cached.as_ref().filter(|c| c.id == id) {
            return Lookup::from_policy(c.policy.clone());
        }
        let fetched = fetch::fetch(&self.resolver, &self.roots, &domain, self.port, self.timeout).await;
        let parsed = match fetched {
            Ok(text) => policy::parse(&text).map_err(|e| (TlsFailure::StsPolicyInvalid, e)),
            Err(e) => Err((TlsFailure::StsPolicyFetchError, e)),
        };
        match parsed {
            Ok(policy) => {
                self.remember(&domain, Cached { id, policy: policy.clone(), fetched: now });
                Lookup::from_policy(policy)
            }
            // §5.1: a failed refresh keeps the unexpired cached policy.
            Err((failure, why)) => match cached {
                Some(c) => Lookup::from_policy(c.policy),
                None => Lookup::Unavailable(failure, why),
            },
        }
    }

    fn cached(&self, domain: &str, now: SystemTime) -> Option<Cached> {
        let cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.get(domain).filter(|c| now < c.fetched + Duration::from_secs(c.policy.max_age)).cloned()
    }

    fn remember(&self, domain: &str, entry: Cached) {
        let mut cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= CACHE_LIMIT && !cache.contains_key(domain) {
            if let Some(oldest) = cache.iter().min_by_key(|(_, c)| c.fetched).map(|(d, _)| d.clone()) {
                cache.remove(&oldest);
            }
        }
        cache.insert(domain.to_string(), entry);
    }
}

impl Lookup {
    fn from_policy(policy: Policy) -> Lookup {
        if policy.mode == Mode::None {
            Lookup::NoPolicy
        } else {
            Lookup::Policy(policy)
        }
    }
}
