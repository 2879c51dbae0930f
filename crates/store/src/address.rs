//! Account addresses: one spelling per account, so lookups never depend on the case a client
//! typed. The function lives in `portcullis-config` (a leaf), so that the guard, which counts
//! logins per account, uses the very same one.

pub use portcullis_config::{normalize_address, normalize_domain};
