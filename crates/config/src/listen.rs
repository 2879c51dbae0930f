//! `[listen]`: the addresses each listener binds, one key per row of the listener table
//! (`portcullis_listeners::TABLE`). A missing key means that listener is off.

use std::net::SocketAddr;

use portcullis_listeners::{Listener, COUNT, NAMES};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::check::Check;
use crate::error::ConfigError;

/// Every listener's addresses; empty for a listener that is off.
#[derive(Debug, Clone, Default)]
pub struct Listen {
    addresses: [Vec<SocketAddr>; COUNT],
}

impl Listen {
    /// What `listener` binds (empty: it is off).
    pub fn addresses(&self, listener: Listener) -> &[SocketAddr] {
        &self.addresses[listener.index()]
    }

    /// `listen.admin`: the admin API, `/metrics` and the dashboard.
    pub fn admin(&self) -> &[SocketAddr] {
        self.addresses(Listener::Admin)
    }

    /// Whether `listener` is on.
    pub fn is_on(&self, listener: Listener) -> bool {
        !self.addresses(listener).is_empty()
    }

    /// The mail listeners that are on, with their addresses, in table order.
    pub fn mail(&self) -> impl Iterator<Item = (Listener, &[SocketAddr])> {
        Listener::ALL.into_iter().map(|l| (l, self.addresses(l))).filter(|(_, a)| !a.is_empty())
    }

    /// Sets what `listener` binds (tests, tools that build a config in code).
    pub fn set(&mut self, listener: Listener, addresses: Vec<SocketAddr>) {
        self.addresses[listener.index()] = addresses;
    }
}

/// The section as written: one optional list per listener name, any other key refused.
#[derive(Default)]
pub(crate) struct RawListen {
    addresses: [Option<Vec<String>>; COUNT],
}

impl RawListen {
    pub(crate) fn validate(self, c: &Check<'_>) -> Result<Listen, ConfigError> {
        let mut listen = Listen::default();
        for (listener, value) in Listener::EVERY.into_iter().zip(self.addresses) {
            listen.set(listener, c.addresses(listener.spec().listen_key, value)?);
        }
        Ok(listen)
    }
}

/// A struct whose fields are the listener names: serde (and the key tracer of
/// `accepted_keys.rs`) sees the same field list a derive would give.
impl<'de> Deserialize<'de> for RawListen {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RawListen, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = RawListen;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a table of listener addresses")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawListen, A::Error> {
                let mut raw = RawListen::default();
                while let Some(key) = map.next_key::<String>()? {
                    let Some(listener) = Listener::named(&key) else {
                        return Err(de::Error::unknown_field(&key, &NAMES));
                    };
                    let slot = &mut raw.addresses[listener.index()];
                    if slot.is_some() {
                        return Err(de::Error::custom(format!("duplicate key `{key}`")));
                    }
                    *slot = Some(map.next_value()?);
                }
                Ok(raw)
            }
        }
        deserializer.deserialize_struct("RawListen", &NAMES, Fields)
    }
}
