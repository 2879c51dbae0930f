//! From the greeting to an idle session: EHLO (HELO only when EHLO is not understood),
//! STARTTLS and the second EHLO, AUTH for a smart host.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use zeroize::Zeroizing;

use super::{Client, Expect, State, TlsMode};
use crate::capabilities::Capabilities;
use crate::outcome::{Cause, Stage};
use crate::reply::{Reply, ReplyClass};

impl Client {
    pub(super) fn on_handshake_reply(&mut self, expect: Expect, reply: Reply) {
        match expect {
            Expect::Greeting if reply.code == 220 => {
                self.send_line(&format!("EHLO {}", self.config.helo_name), Expect::Ehlo);
            }
            // RFC 5321 §3.1: a server may refuse service in its greeting (554); the client
            // says QUIT and goes elsewhere.
            Expect::Greeting => self.fail(Stage::Greeting, Cause::Reply(reply), true),
            Expect::Ehlo if reply.is_positive() => {
                self.caps = Capabilities::from_ehlo(&reply);
                self.after_ehlo();
            }
            // RFC 5321 §4.1.4 (and §3.2): a server that does not know EHLO answers 500/502
            // (or 501/504); only then does the client fall back to HELO, and never inside TLS,
            // where the server has already shown it speaks ESMTP.
            Expect::Ehlo if matches!(reply.code, 500..=504) && self.tls.is_none() => {
                self.send_line(&format!("HELO {}", self.config.helo_name), Expect::Helo);
            }
            Expect::Ehlo | Expect::Helo if !reply.is_positive() => self.fail(expect.stage(), Cause::Reply(reply), true),
            Expect::Helo => {
                self.caps = Capabilities::default();
                self.after_ehlo();
            }
            Expect::StartTls if reply.code == 220 => self.state = State::AwaitingTls,
            Expect::StartTls if self.config.tls == TlsMode::Required => {
                self.fail(Stage::StartTls, Cause::StartTlsRefused(reply), true)
            }
            Expect::StartTls => {
                // Opportunistic: refused (454 "TLS not available") means plaintext.
                self.starttls_declined = true;
                self.after_ehlo();
            }
            Expect::AuthPlain | Expect::AuthLoginDone if reply.code == 235 => {}
            Expect::AuthLoginUser | Expect::AuthLoginPassword if reply.code == 334 => {
                let Some(credentials) = self.config.credentials.clone() else {
                    self.fail(Stage::Auth, Cause::AuthUnavailable, true);
                    return;
                };
                let (secret, next) = if expect == Expect::AuthLoginUser {
                    (Zeroizing::new(credentials.username.clone()), Expect::AuthLoginPassword)
                } else {
                    (credentials.password.clone(), Expect::AuthLoginDone)
                };
                let encoded = Zeroizing::new(BASE64.encode(secret.as_bytes()));
                self.send_line(&encoded, next);
            }
            Expect::AuthPlain | Expect::AuthLoginUser | Expect::AuthLoginPassword | Expect::AuthLoginDone => {
                let cause = match reply.class() {
                    // A 334 challenge to PLAIN with an initial response, or a 2yz other than
                    // 235: the server does not follow RFC 4954.
                    ReplyClass::Intermediate | ReplyClass::Positive => Cause::Unexpected(reply),
                    _ => Cause::AuthRejected(reply),
                };
                if expect == Expect::AuthLoginUser || expect == Expect::AuthLoginPassword {
                    // Mid-exchange: RFC 4954 §4 cancels with "*" before anything else.
                    self.output.extend_from_slice(b"*\r\n");
                }
                self.fail(Stage::Auth, cause, true);
            }
            _ => self.fail(expect.stage(), Cause::Unexpected(reply), true),
        }
    }

    /// After the capabilities are known: STARTTLS, then AUTH, then idle.
    fn after_ehlo(&mut self) {
        if self.tls.is_none() {
            let offered = self.caps.starttls && !self.starttls_declined;
            match self.config.tls {
                TlsMode::Opportunistic | TlsMode::Required if offered => {
                    self.send_line("STARTTLS", Expect::StartTls);
                    return;
                }
                TlsMode::Required => {
                    self.fail(Stage::Ehlo, Cause::StartTlsUnavailable, true);
                    return;
                }
                TlsMode::Opportunistic | TlsMode::Never => {}
            }
        }
        let Some(credentials) = self.config.credentials.clone() else { return };
        if self.tls.is_none() {
            self.fail(Stage::Auth, Cause::AuthWithoutTls, true);
        } else if self.caps.offers_auth("PLAIN") {
            // RFC 4616: authzid empty, NUL, authcid, NUL, password; sent as the initial
            // response (RFC 4954 §4).
            let mut message =
                Zeroizing::new(Vec::with_capacity(credentials.username.len() + credentials.password.len() + 2));
            message.push(0);
            message.extend_from_slice(credentials.username.as_bytes());
            message.push(0);
            message.extend_from_slice(credentials.password.as_bytes());
            let line = Zeroizing::new(format!("AUTH PLAIN {}", BASE64.encode(&*message)));
            self.send_line(&line, Expect::AuthPlain);
        } else if self.caps.offers_auth("LOGIN") {
            self.send_line("AUTH LOGIN", Expect::AuthLoginUser);
        } else {
            self.fail(Stage::Auth, Cause::AuthUnavailable, true);
        }
    }
}
