//! What mail clients and other mail servers discover about this server (issue 18), so that
//! nobody types a port number and no client falls back to a plaintext port:
//!
//! - the documents clients fetch: Thunderbird's autoconfig (`autoconfig`), Microsoft's POX
//!   autodiscover (`autodiscover`), an Apple profile for one address (`mobileconfig`), and
//!   the MTA-STS policy senders fetch (`mta_sts`), each listing TLS ports only;
//! - the HTTP routes that serve them ([`Site::respond`]), which the HTTPS listener calls;
//! - every DNS record a domain needs ([`plan`]: MX, SPF, DKIM, DMARC, MTA-STS, TLS-RPT, SRV
//!   per RFC 6186 and RFC 8314 §5.1, CAA, the autoconfig names) as zone-file lines, and the
//!   check of what the DNS really says against them ([`check`], one [`Finding`] per record,
//!   each with its fix).
//!
//! Everything is made from [`ServerFacts`] (host name, which ports are on) and
//! [`DomainFacts`] (DKIM keys, report addresses), which the caller reads from the config and
//! the store. Everything put into a document is escaped (`xml.rs`): a domain or an address
//! comes from a client. Only [`check`] does I/O (DNS, through crates/dns); the rest is pure.
#![forbid(unsafe_code)]

pub mod autoconfig;
pub mod autodiscover;
mod check;
mod facts;
mod from_config;
mod http;
pub mod mobileconfig;
pub mod mta_sts;
mod observe;
mod records;
mod xml;

pub use check::{judge, Context, Finding, Observed, Status};
pub use facts::{DkimKey, DomainFacts, Ports, ServerFacts};
pub use from_config::server_facts;
pub use http::{percent_decode, Http01Answers, LocalDomains, Request, Response, Site, MAX_BODY};
pub use observe::{check, observe};
pub use records::{plan, Data, Expected, Plan, Purpose, TTL};
pub use xml::escape;
