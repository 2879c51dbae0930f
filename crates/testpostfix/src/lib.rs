//! A private Postfix instance for the tests that need a mail server nobody here wrote (the
//! server's tests/check.rs runs one as the weak peer, tests/mx_postfix.rs as the foreign MX in
//! front of port 25, tests/outbound_postfix.rs as the receiver of outbound mail; delivery's
//! tests/receivers.rs as a STARTTLS receiver): `postfix -c DIR` from a temp dir on 127.0.0.1,
//! never the system service, stopped when the test ends. Any crate's tests can use it as a
//! dev-dependency. The parts
//! every instance needs (its own queue, data and log, no local delivery, no DNS lookups of
//! peers, the services besides the listeners) are written here once; each test adds only
//! what makes its instance different.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The main.cf lines every instance shares: everything of its own below `{p}` (the instance's
/// directory), no local delivery or aliases, IPv4 on 127.0.0.1 only (Postfix checks
/// `inet_interfaces` against the interfaces' own addresses), and no reverse lookups of peers.
const MAIN_CF_BASE: &str = "compatibility_level = 3.6\n\
    queue_directory = {p}/queue\n\
    data_directory = {p}/data\n\
    maillog_file = {p}/maillog\n\
    maillog_file_prefixes = {p}\n\
    mydestination =\n\
    inet_interfaces = 127.0.0.1\n\
    inet_protocols = ipv4\n\
    alias_maps =\n\
    alias_database =\n\
    local_recipient_maps =\n\
    smtpd_peername_lookup = no\n";

/// The services of master.cf besides the listeners, none chrooted: the queue directory is
/// private to the test.
const SERVICES: &str = "cleanup   unix  n - n - 0 cleanup\n\
    qmgr      unix  n - n 300 1 qmgr\n\
    tlsmgr    unix  - - n 1000? 1 tlsmgr\n\
    rewrite   unix  - - n - - trivial-rewrite\n\
    bounce    unix  - - n - 0 bounce\n\
    defer     unix  - - n - 0 bounce\n\
    trace     unix  - - n - 0 bounce\n\
    verify    unix  - - n - 1 verify\n\
    proxymap  unix  - - n - - proxymap\n\
    anvil     unix  - - n - 1 anvil\n\
    scache    unix  - - n - 1 scache\n\
    error     unix  - - n - - error\n\
    retry     unix  - - n - - error\n\
    discard   unix  - - n - - discard\n\
    postlog   unix-dgram n - n - 1 postlogd\n";

/// A running private instance; `postfix stop` when dropped.
pub struct Postfix {
    config: PathBuf,
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new("postfix").arg("-c").arg(&self.config).arg("stop").stderr(Stdio::null()).status();
    }
}

impl Postfix {
    /// Starts `program` (the `postfix` binary) with its configuration in `dir/postfix`: the
    /// shared main.cf lines and then `main_cf` (the instance's own), master.cf's `listeners`
    /// lines and then the shared services. Returns once 127.0.0.1 accepts connections on
    /// every port of `ports`. Needs root: Postfix sets up its queue and drops privileges.
    pub fn start(program: &Path, dir: &Path, main_cf: &str, listeners: &str, ports: &[u16]) -> Postfix {
        let pf = dir.join("postfix");
        for sub in ["", "queue", "data"] {
            std::fs::create_dir_all(pf.join(sub)).unwrap();
        }
        let postfix_user =
            nix::unistd::User::from_name("postfix").unwrap().expect("the postfix user (apt-get install postfix)");
        nix::unistd::chown(&pf.join("data"), Some(postfix_user.uid), None).unwrap();
        let base = MAIN_CF_BASE.replace("{p}", &pf.display().to_string());
        std::fs::write(pf.join("main.cf"), format!("{base}{main_cf}")).unwrap();
        std::fs::write(pf.join("master.cf"), format!("{listeners}{SERVICES}")).unwrap();
        let started = Command::new(program).arg("-c").arg(&pf).arg("start").output().unwrap();
        let instance = Postfix { config: pf };
        assert!(
            started.status.success(),
            "postfix start: {}{}",
            String::from_utf8_lossy(&started.stderr),
            instance.log()
        );
        for &port in ports {
            instance.wait_listening(port);
        }
        instance
    }

    /// The receiver of mail for `domain` that outbound tests deliver to: `smtpd` on
    /// 127.0.0.1:`port` as `mx.DOMAIN`, STARTTLS offered with `cert_pem` (the chain) and
    /// `key_pem` (written into `dir`), TLS sessions logged, mail for `domain` relayed (and no
    /// other) and then thrown away, no bounces to the postmaster.
    pub fn start_tls_receiver(
        program: &Path,
        dir: &Path,
        domain: &str,
        port: u16,
        cert_pem: &str,
        key_pem: &str,
    ) -> Postfix {
        std::fs::write(dir.join("cert.pem"), cert_pem).unwrap();
        std::fs::write(dir.join("key.pem"), key_pem).unwrap();
        let d = dir.display();
        let main_cf = format!(
            "myhostname = mx.{domain}\n\
             relay_domains = {domain}\n\
             mynetworks = 127.0.0.1/32\n\
             relay_recipient_maps =\n\
             smtpd_tls_cert_file = {d}/cert.pem\n\
             smtpd_tls_key_file = {d}/key.pem\n\
             smtpd_tls_security_level = may\n\
             smtpd_tls_loglevel = 1\n\
             smtpd_relay_restrictions = reject_unauth_destination\n\
             default_transport = discard\n\
             relay_transport = discard\n\
             notify_classes =\n"
        );
        Postfix::start(program, dir, &main_cf, &format!("127.0.0.1:{port} inet n - n - - smtpd\n"), &[port])
    }

    /// Waits (at most 20 s) until 127.0.0.1 accepts connections on `port`.
    fn wait_listening(&self, port: u16) {
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "postfix did not listen on 127.0.0.1:{port}: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The instance's log file (`maillog_file`).
    pub fn log_path(&self) -> PathBuf {
        self.config.join("maillog")
    }

    /// The log so far (empty before the first line).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Waits (at most 30 s) for `what` in the log; the log as it was then.
    pub fn wait_log(&self, what: &str) -> String {
        let started = Instant::now();
        loop {
            let log = self.log();
            if log.contains(what) {
                return log;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "{what:?} never appeared in the Postfix log:\n{log}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
