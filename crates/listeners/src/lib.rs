//! The one place that names the listeners. Every gate Portcullis opens is one row of
//! [`TABLE`]: its name (the `listen.NAME` key, the `[firewall.NAME]` section, the `listener`
//! field of events and metric labels), the protocol it speaks, how TLS is had on it, its
//! standard port, and whether clients log in on it (which decides whether AUTH is offered and
//! whether `limits.login_timeout` applies). The config, the guard, the events, the accept loop,
//! the metrics and the dashboard all derive what they need from this table, so that a new
//! listener is one row here plus its protocol's code (docs/architecture.md §9).
//!
//! A crate of its own, with nothing but serde, because the config crate (which reads the
//! names) and the events crate (which carries them) must not depend on each other.
#![forbid(unsafe_code)]

use serde::{Serialize, Serializer};

/// Which gate a connection came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Listener {
    /// SMTP from other mail servers (MX, 25): STARTTLS offered, never AUTH.
    Smtp,
    /// SMTP submission, implicit TLS (465).
    Submissions,
    /// SMTP submission, STARTTLS required (587).
    Submission,
    /// IMAP, implicit TLS (993).
    Imaps,
    /// POP3, implicit TLS (995).
    Pop3s,
    /// HTTPS (443): the documents mail clients set themselves up from (autoconfig,
    /// autodiscover, Apple profiles), the MTA-STS policy, and ACME's TLS-ALPN-01 answers. Not a
    /// mail listener: nobody logs in, and it is not in [`Listener::ALL`].
    Https,
    /// Plain HTTP (80): ACME HTTP-01 answers only (`tls.acme.challenge = "http-01"`); every
    /// other request is a 404, so no document is ever sent where it could be altered.
    Http,
    /// HTTP: the admin API, `/metrics` and the dashboard (`listen.admin`). Admitted by the
    /// guard like the mail listeners, but not one of them: it has no mail sessions, and is not
    /// in [`Listener::ALL`].
    Admin,
}

/// What is spoken on a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Smtp,
    Imap,
    Pop3,
    Http,
}

impl Protocol {
    /// "smtp", "imap", "pop3" or "http" (the `protocol` metric label).
    pub const fn as_str(self) -> &'static str {
        match self {
            Protocol::Smtp => "smtp",
            Protocol::Imap => "imap",
            Protocol::Pop3 => "pop3",
            Protocol::Http => "http",
        }
    }
}

/// How a connection gets TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlsMode {
    /// From the first byte (RFC 8314).
    Implicit,
    /// STARTTLS, and nothing but EHLO/HELO/STARTTLS/NOOP/RSET/QUIT before it (587).
    StartTlsRequired,
    /// STARTTLS offered, plaintext allowed: other servers may lack TLS (RFC 3207, port 25).
    StartTlsOffered,
    /// As `admin.tls` says (plain HTTP on loopback by default).
    AdminSetting,
    /// Never: port 80 serves nothing but ACME HTTP-01 answers (RFC 8555 §8.3 asks for them
    /// over plain HTTP).
    Never,
}

/// One row of [`TABLE`]: everything that varies from one listener to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    pub listener: Listener,
    /// The `listen.NAME` key, `[firewall.NAME]`, and the `listener` field of events.
    pub name: &'static str,
    pub protocol: Protocol,
    pub tls: TlsMode,
    /// The standard port (`init` binds it; `init --dev` binds 10000 + it on loopback).
    pub port: u16,
    /// Clients log in here (SASL AUTH, LOGIN, USER/PASS): logins are offered, and a connection
    /// that has not logged in within `limits.login_timeout` is closed. Not on 25, where other
    /// servers deliver without logging in, nor on the admin listener, which has its tokens.
    pub login: bool,
    /// What it is, for people (`init --dev`'s summary, docs).
    pub summary: &'static str,
    /// The config keys naming it, spelt out so that error messages can carry them as
    /// `&'static str` (a test checks they follow from `name`).
    pub listen_key: &'static str,
    pub firewall_allow_key: &'static str,
    pub firewall_deny_key: &'static str,
}

/// Every listener, in the order of [`Listener`] (a test checks it).
pub const TABLE: [Spec; 8] = [
    Spec {
        listener: Listener::Smtp,
        name: "smtp",
        protocol: Protocol::Smtp,
        tls: TlsMode::StartTlsOffered,
        port: 25,
        login: false,
        summary: "SMTP from other servers (MX), STARTTLS offered",
        listen_key: "listen.smtp",
        firewall_allow_key: "firewall.smtp.allow",
        firewall_deny_key: "firewall.smtp.deny",
    },
    Spec {
        listener: Listener::Submissions,
        name: "submissions",
        protocol: Protocol::Smtp,
        tls: TlsMode::Implicit,
        port: 465,
        login: true,
        summary: "SMTP submission, implicit TLS",
        listen_key: "listen.submissions",
        firewall_allow_key: "firewall.submissions.allow",
        firewall_deny_key: "firewall.submissions.deny",
    },
    Spec {
        listener: Listener::Submission,
        name: "submission",
        protocol: Protocol::Smtp,
        tls: TlsMode::StartTlsRequired,
        port: 587,
        login: true,
        summary: "SMTP submission, STARTTLS",
        listen_key: "listen.submission",
        firewall_allow_key: "firewall.submission.allow",
        firewall_deny_key: "firewall.submission.deny",
    },
    Spec {
        listener: Listener::Imaps,
        name: "imaps",
        protocol: Protocol::Imap,
        tls: TlsMode::Implicit,
        port: 993,
        login: true,
        summary: "IMAP, implicit TLS",
        listen_key: "listen.imaps",
        firewall_allow_key: "firewall.imaps.allow",
        firewall_deny_key: "firewall.imaps.deny",
    },
    Spec {
        listener: Listener::Pop3s,
        name: "pop3s",
        protocol: Protocol::Pop3,
        tls: TlsMode::Implicit,
        port: 995,
        login: true,
        summary: "POP3, implicit TLS",
        listen_key: "listen.pop3s",
        firewall_allow_key: "firewall.pop3s.allow",
        firewall_deny_key: "firewall.pop3s.deny",
    },
    Spec {
        listener: Listener::Https,
        name: "https",
        protocol: Protocol::Http,
        tls: TlsMode::Implicit,
        port: 443,
        login: false,
        summary: "HTTPS: autoconfig, autodiscover, MTA-STS, ACME",
        listen_key: "listen.https",
        firewall_allow_key: "firewall.https.allow",
        firewall_deny_key: "firewall.https.deny",
    },
    Spec {
        listener: Listener::Http,
        name: "http",
        protocol: Protocol::Http,
        tls: TlsMode::Never,
        port: 80,
        login: false,
        summary: "HTTP: ACME HTTP-01 answers only",
        listen_key: "listen.http",
        firewall_allow_key: "firewall.http.allow",
        firewall_deny_key: "firewall.http.deny",
    },
    Spec {
        listener: Listener::Admin,
        name: "admin",
        protocol: Protocol::Http,
        tls: TlsMode::AdminSetting,
        port: 8080,
        login: false,
        summary: "Dashboard, admin API, /metrics",
        listen_key: "listen.admin",
        firewall_allow_key: "firewall.admin.allow",
        firewall_deny_key: "firewall.admin.deny",
    },
];

/// How many listeners there are, the admin listener included.
pub const COUNT: usize = TABLE.len();

/// Every listener's name, in table order: the keys `[listen]` accepts.
pub const NAMES: [&str; COUNT] = {
    let mut names = [""; COUNT];
    let mut i = 0;
    while i < COUNT {
        names[i] = TABLE[i].name;
        i += 1;
    }
    names
};

/// How many mail listeners there are: the rows before the first HTTP one (a test checks that
/// every mail row comes before every HTTP row, so that the mail listeners' indexes are
/// `0..MAIL_COUNT`).
pub const MAIL_COUNT: usize = {
    let mut i = 0;
    while i < COUNT && !matches!(TABLE[i].protocol, Protocol::Http) {
        i += 1;
    }
    i
};

/// What `init --dev` adds to a standard port: 465 becomes 10465.
pub const DEV_PORT_OFFSET: u16 = 10_000;

impl Listener {
    /// Every listener, the admin listener last.
    pub const EVERY: [Listener; COUNT] = {
        let mut every = [Listener::Admin; COUNT];
        let mut i = 0;
        while i < COUNT {
            every[i] = TABLE[i].listener;
            i += 1;
        }
        every
    };

    /// The mail listeners: every listener but the HTTP ones ([`Listener::Https`],
    /// [`Listener::Admin`]), in table order. Arrays indexed by [`Listener::index`] of a mail
    /// listener have this length.
    pub const ALL: [Listener; MAIL_COUNT] = {
        let mut all = [Listener::Admin; MAIL_COUNT];
        let mut i = 0;
        while i < MAIL_COUNT {
            all[i] = TABLE[i].listener;
            i += 1;
        }
        all
    };

    /// Its row of [`TABLE`].
    pub const fn spec(self) -> &'static Spec {
        &TABLE[self as usize]
    }

    pub const fn as_str(self) -> &'static str {
        self.spec().name
    }

    /// The protocol spoken on it: "smtp", "imap", "pop3" or "http".
    pub const fn protocol(self) -> &'static str {
        self.spec().protocol.as_str()
    }

    /// Its position in [`Listener::EVERY`] (and in [`Listener::ALL`] for a mail listener):
    /// for arrays with one entry per listener.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Whether it carries mail sessions (every listener but the HTTP ones).
    pub const fn is_mail(self) -> bool {
        !matches!(self.spec().protocol, Protocol::Http)
    }

    /// The listener called `name` (as in `listen.NAME`).
    pub fn named(name: &str) -> Option<Listener> {
        TABLE.iter().find(|spec| spec.name == name).map(|spec| spec.listener)
    }

    /// The port `init --dev` binds on loopback: 10000 + the standard port.
    pub const fn dev_port(self) -> u16 {
        DEV_PORT_OFFSET + self.spec().port
    }
}

impl std::fmt::Display for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Serialised as its name, as events have always carried it.
impl Serialize for Listener {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_in_the_order_of_the_enum_and_its_keys_follow_from_the_names() {
        for (i, spec) in TABLE.iter().enumerate() {
            assert_eq!(spec.listener as usize, i, "{} is out of order", spec.name);
            assert_eq!(spec.listener.spec(), spec);
            assert_eq!(spec.listen_key, format!("listen.{}", spec.name));
            assert_eq!(spec.firewall_allow_key, format!("firewall.{}.allow", spec.name));
            assert_eq!(spec.firewall_deny_key, format!("firewall.{}.deny", spec.name));
            assert_eq!(Listener::named(spec.name), Some(spec.listener));
            assert_eq!(NAMES[i], spec.name);
        }
        let distinct: std::collections::HashSet<_> = TABLE.iter().map(|s| s.name).collect();
        assert_eq!(distinct.len(), COUNT, "names are unique");
        assert_eq!(Listener::named("lmtp"), None);
    }

    #[test]
    fn the_mail_listeners_are_every_listener_but_the_http_ones_and_come_first() {
        assert_eq!(Listener::EVERY.last(), Some(&Listener::Admin));
        assert_eq!(&Listener::EVERY[..MAIL_COUNT], &Listener::ALL[..]);
        assert!(Listener::ALL.iter().all(|l| l.is_mail()));
        assert!(Listener::EVERY[MAIL_COUNT..].iter().all(|l| !l.is_mail()), "HTTP rows come last");
        assert!(!Listener::Admin.is_mail());
        assert!(!Listener::Https.is_mail());
        assert!(!Listener::Http.is_mail());
        for (i, l) in Listener::ALL.iter().enumerate() {
            assert_eq!(l.index(), i);
        }
    }

    #[test]
    fn port_25_offers_starttls_and_takes_no_logins() {
        let smtp = Listener::Smtp.spec();
        assert_eq!((smtp.port, smtp.tls, smtp.login), (25, TlsMode::StartTlsOffered, false));
        assert_eq!(Listener::Smtp.dev_port(), 10025);
        assert_eq!(Listener::Submissions.dev_port(), 10465);
        assert!(Listener::Submission.spec().login);
        assert_eq!(Listener::Imaps.protocol(), "imap");
        let https = Listener::Https.spec();
        assert_eq!((https.port, https.tls, https.login), (443, TlsMode::Implicit, false));
        assert_eq!((Listener::Https.dev_port(), Listener::Https.protocol()), (10443, "http"));
        let http = Listener::Http.spec();
        assert_eq!((http.port, http.tls, http.login), (80, TlsMode::Never, false));
    }

    #[test]
    fn listeners_serialise_as_their_names() {
        assert_eq!(serde_json::to_string(&Listener::Pop3s).unwrap(), "\"pop3s\"");
        assert_eq!(serde_json::to_string(&Listener::Smtp).unwrap(), "\"smtp\"");
        assert_eq!(Listener::Submission.to_string(), "submission");
    }
}
