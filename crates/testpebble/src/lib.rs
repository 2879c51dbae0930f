//! Pebble, Debian's small ACME test CA, for the tests of the ACME manager (crates/acme) and of
//! the server's HTTPS listener (crates/portcullis tests/https.rs): the presence check (SKIPPED,
//! or a failure under PORTCULLIS_REQUIRE_ALL=1), pebble's own HTTPS certificate from a CA made
//! at test time (the package ships none), and the process on 127.0.0.1 with the settings a
//! test needs to be quick, killed when dropped. Any crate's tests can use it as a dev-dependency.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustls_pki_types::CertificateDer;

/// Where Debian's `pebble` package installs the CA.
pub const PEBBLE: &str = "/usr/bin/pebble";

/// Whether pebble is installed; if not, says SKIPPED (the caller returns: its test tested
/// nothing), or fails the test when PORTCULLIS_REQUIRE_ALL=1 as every suite here does.
pub fn present() -> bool {
    if Path::new(PEBBLE).exists() {
        return true;
    }
    let require_all = std::env::var("PORTCULLIS_REQUIRE_ALL").is_ok_and(|v| v == "1");
    assert!(!require_all, "{PEBBLE} is missing and PORTCULLIS_REQUIRE_ALL=1: apt-get install pebble");
    eprintln!("\nSKIPPED: {PEBBLE} is missing (apt-get install pebble); this test tested nothing");
    false
}

/// Pebble's HTTPS certificate (for `localhost` and 127.0.0.1) and the CA that issued it, made
/// for one test; a client of pebble's directory trusts [`Self::root`] (or [`Self::ca_file`]).
pub struct DirectoryCa {
    pub root: CertificateDer<'static>,
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

impl DirectoryCa {
    /// Makes the CA and the certificate, and writes them as PEM files into `dir`.
    pub fn new(dir: &Path) -> DirectoryCa {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "pebble directory CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.subject_alt_names.push(rcgen::SanType::IpAddress(Ipv4Addr::LOCALHOST.into()));
        let leaf = params.signed_by(&key, &issuer).unwrap();
        let files = DirectoryCa {
            root: ca.der().clone(),
            ca_file: dir.join("pebble-ca.pem"),
            cert_file: dir.join("pebble-cert.pem"),
            key_file: dir.join("pebble-key.pem"),
        };
        std::fs::write(&files.ca_file, ca.pem()).unwrap();
        std::fs::write(&files.cert_file, leaf.pem()).unwrap();
        std::fs::write(&files.key_file, key.serialize_pem()).unwrap();
        files
    }
}

/// How one pebble runs.
pub struct Options<'a> {
    /// Its directory's port on 127.0.0.1 (a test that restarts pebble keeps the same one).
    pub port: u16,
    /// The DNS server it resolves the names to validate through (a crates/testdns server).
    pub dns: SocketAddr,
    /// Where its validator connects for TLS-ALPN-01 (RFC 8737) and HTTP-01 (RFC 8555 §8.3).
    pub tls_port: u16,
    pub http_port: u16,
    /// The lifetime of the certificates it issues (short, to see renewals).
    pub validity_seconds: u64,
    /// Names it refuses to issue for.
    pub blocklist: &'a [&'a str],
}

/// A running pebble; killed when dropped.
pub struct Pebble {
    child: Child,
    port: u16,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Pebble {
    /// Starts pebble with `ca`'s certificate, its config and log in `dir`; returns once its
    /// directory port accepts connections (at most 15 s).
    pub fn start(ca: &DirectoryCa, dir: &Path, o: Options<'_>) -> Pebble {
        let port = o.port;
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{port}"),
                "managementListenAddress": format!("127.0.0.1:{}", free_port()),
                "certificate": ca.cert_file,
                "privateKey": ca.key_file,
                "httpPort": o.http_port,
                "tlsPort": o.tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
                "domainBlocklist": o.blocklist,
                "certificateValidityPeriod": o.validity_seconds,
            }
        });
        // Named by port and blocklist: a test that restarts pebble keeps both logs.
        let name = format!("pebble-{port}-{}", o.blocklist.len());
        let config_file = dir.join(format!("{name}.json"));
        std::fs::write(&config_file, config.to_string()).unwrap();
        let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
        let child = Command::new(PEBBLE)
            .arg("-config")
            .arg(&config_file)
            .arg("-dnsserver")
            .arg(o.dns.to_string())
            .arg("-strict=false")
            // Validate at once, never reject a good nonce, never reuse an authorization (so a
            // renewal is validated again, as a real CA would after its reuse window).
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("pebble starts");
        let pebble = Pebble { child, port };
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            assert!(Instant::now() < deadline, "pebble did not listen on {port}; see {}", dir.display());
            std::thread::sleep(Duration::from_millis(50));
        }
        pebble
    }

    /// The ACME directory URL.
    pub fn directory(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.port)
    }
}

/// A free TCP port on 127.0.0.1 (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port()
}
