//! [`ServerFacts`] read from the config, so that `portcullis dns`, the HTTPS listener and the
//! admin API's DNS checklist describe the same server: the host name, the port each listener
//! is reached on (the first address of its `listen.NAME`), and the CA that may issue for it
//! (`tls.acme`).

use std::net::SocketAddr;

use portcullis_config::{Config, Listener};

use crate::facts::{Ports, ServerFacts};

/// The facts of the server `config` describes.
pub fn server_facts(config: &Config) -> ServerFacts {
    let port =
        |listener: Option<Listener>| listener.and_then(|l| config.listen.addresses(l).first().map(SocketAddr::port));
    let ports = Ports {
        submissions: port(Some(Listener::Submissions)),
        submission: port(Some(Listener::Submission)),
        imaps: port(Some(Listener::Imaps)),
        pop3s: port(Some(Listener::Pop3s)),
        // Port 25 is a row of the listener table once the MX listener is there; looked up by
        // name so that this reads it as soon as it exists, and says "off" until then.
        smtp: port(Listener::named("smtp")),
        https: port(Some(Listener::Https)),
    };
    let mut facts = ServerFacts::new(config.hostname.clone(), ports);
    facts.caa_issuer = config.tls.acme.as_ref().and_then(|acme| acme.caa_issuer());
    facts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        let text = format!(
            "hostname = \"Mail.Example.org\"\n[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n{extra}\n[listen]\n\
             submissions = [\"0.0.0.0:465\"]\nimaps = [\"127.0.0.1:10993\", \"[::]:993\"]\nhttps = [\"0.0.0.0:443\"]\n"
        );
        Config::parse(std::path::Path::new("/etc/portcullis/portcullis.toml"), &text).unwrap()
    }

    #[test]
    fn ports_come_from_the_first_address_of_each_listener_and_the_ca_from_acme() {
        let facts = server_facts(&config(""));
        assert_eq!(facts.hostname, "mail.example.org");
        assert_eq!(facts.ports.submissions, Some(465));
        assert_eq!(facts.ports.submission, None, "a listener that is off has no port");
        assert_eq!(facts.ports.imaps, Some(10993));
        assert_eq!(facts.ports.https, Some(443));
        assert_eq!(facts.caa_issuer, None);
        let acme = "acme = { directory = \"https://acme-v02.api.letsencrypt.org/directory\", contact = \"mailto:a@example.org\" }";
        assert_eq!(server_facts(&config(acme)).caa_issuer.as_deref(), Some("letsencrypt.org"));
    }
}
