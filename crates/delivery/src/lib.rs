//! Outbound delivery (issue 15): from a batch of queued messages for one domain to a report
//! per recipient (delivered / temporary / permanent, with the reason) and a record per
//! connection (host, address, TLS policy, TLS version and cipher, certificate verdict).
//!
//! - [`Courier`]: the one-method interface the queue runner calls; [`RemoteCourier`] is the
//!   SMTP way (a local-store courier can sit beside it in the server).
//! - `route`: MX hosts by preference (random among equals), the implicit MX, null MX (RFC
//!   7505), address family order, DNSSEC status for DANE.
//! - `tls`: the per-host policy (none, MTA-STS testing or enforce, DANE, smart host) and its
//!   certificate verifier; `tls::dane` matches TLSA records (usages 3 and 2, selectors 0
//!   and 1, matching 0, 1, 2).
//! - `mta_sts`: TXT id, policy fetch over HTTPS through this server's resolver, parsing,
//!   cache with max_age.
//! - `connection`: the tokio driver of `portcullis-smtp-client` with RFC 5321 §4.5.3.2 waits.
//! - [`TlsReportAggregate`]: RFC 8460 session counts per policy domain; [`mailto_recipients`]
//!   reads a domain's `_smtp._tls` record, [`report_mail`] writes the report's message.
//!
//! What the caller provides: [`DeliverySettings`] (from `[delivery]`, `[relay]`,
//! `[mta_sts]`, `[dane]`), the server's [`portcullis_dns::Resolver`] (a validating resolver
//! for DANE), [`TrustRoots`] (webpki-roots plus any extra anchors), and batches grouped by
//! destination domain (recipients of one domain in one transaction; several messages over
//! one connection). Per-destination concurrency and rates are the runner's, through
//! `portcullis-queue`'s limiter; retries and notices too.
//!
//! The server maps `[delivery]` (port, families, source addresses, `trust_roots`,
//! `reply_timeout`, `attempt_timeout`), `[relay]`, `[mta_sts]` and `[dane]` onto
//! [`DeliverySettings`] (docs/configuration.md); the other fields (hosts and connections per
//! attempt, CHUNKING, the reply bounds) keep their defaults there.
#![forbid(unsafe_code)]

mod connection;
mod courier;
pub mod mta_sts;
mod record;
pub mod route;
mod settings;
pub mod tls;
mod tlsrpt;

pub use courier::{Batch, BatchReport, Courier, RemoteCourier};
pub use record::{AttemptOutcome, AttemptRecord, RecipientReport, TlsDetails, Why};
pub use settings::{DeliverySettings, IpPreference, Relay, Timeouts};
pub use tls::{CertificateCheck, HostPolicy, PolicyKind, TlsFailure, TrustRoots};
pub use tlsrpt::{mailto_recipients, report_mail, ReportMail, TlsReportAggregate};
