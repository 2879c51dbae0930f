//! A real Portcullis process on ephemeral loopback ports, with a temp data dir, a certificate
//! generated for the test, cheap password hashing, and a tiny client for its protocols.
#![allow(dead_code)]

pub mod haproxy;
pub mod mx;
pub mod outbound;
pub mod outside;
pub mod pytest;
pub mod sessions;
pub mod store;
pub mod totp;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

pub const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
pub const HOSTNAME: &str = "mail.example.test";
pub const DOMAIN: &str = "example.test";
pub const ALICE: &str = "alice@example.test";
pub const BOB: &str = "bob@example.test";
pub const PASSWORD: &str = "plinth-orbit-cactus-9";

pub fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// A port nothing listens on at `ip` (bound once, then released).
pub fn free_port(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0)).unwrap().local_addr().unwrap().port()
}

/// Waits (at most 20 s) until `what` accepts connections on `ip`:`port`; on failure, shows
/// `log`, the daemon's own account of why it did not start.
pub fn wait_listening(ip: &str, port: u16, what: &str, log: Option<&Path>) {
    let started = Instant::now();
    while TcpStream::connect((ip, port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{what} did not listen on {ip}:{port}: {}",
            log.map(|l| std::fs::read_to_string(l).unwrap_or_default()).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `done` until it is true, failing the test after `limit`; how long it took.
pub fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "{what} never happened within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    started.elapsed()
}

/// The `[dns]` section that sends the server's questions to `dns` (a
/// `portcullis_testdns::TestDns` on loopback), answered quickly or not at all.
pub fn dns_section(dns: SocketAddr) -> String {
    format!("[dns]\nservers = [\"{dns}\"]\ntimeout = \"1s\"\nattempts = 1")
}

/// Extra lines for the config sections.
#[derive(Default, Clone)]
pub struct Settings {
    pub tls: Vec<String>,
    pub limits: Vec<String>,
    /// Replaces the cheap password hashing tests use by default.
    pub passwords: Vec<String>,
    pub process: Vec<String>,
    pub store: Vec<String>,
    /// Whole extra sections, e.g. "[guard]\nban_after_failures = 3".
    pub sections: Vec<String>,
    /// Extra `[listen]` lines, e.g. `https = ["127.0.0.1:0"]`, or `smtp = ["127.0.0.1:0"]` (port 25's listener, which needs
    /// a `[dns]` section pointing at a test DNS server: see [`Settings::mx`]).
    pub listen: Vec<String>,
    /// Leave out the admin listener (on by default, on 127.0.0.1:0).
    pub no_admin: bool,
}

impl Settings {
    /// With the MX listener on (`listen.smtp`), its DNS questions asked of `dns` (a
    /// `portcullis_testdns::TestDns` on loopback), answered quickly or not at all.
    pub fn mx(dns: SocketAddr) -> Settings {
        Settings {
            listen: vec!["smtp = [\"127.0.0.1:0\"]".into()],
            sections: vec![dns_section(dns)],
            ..Settings::default()
        }
    }
}

pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    child: Option<Child>,
    lines: Arc<Mutex<Vec<String>>>,
    /// Reads the server's stdout into `lines` until the process ends.
    reader: Option<std::thread::JoinHandle<()>>,
    pub addrs: HashMap<String, SocketAddr>,
    cert: CertificateDer<'static>,
    /// The `[store]` line naming the database when it is not the SQLite default (PostgreSQL:
    /// `PORTCULLIS_TEST_STORE=postgres`, or nodes sharing one database); kept across
    /// [`TestServer::rewrite_config`].
    store_line: Option<String>,
}

pub fn write_cert(dir: &Path) -> CertificateDer<'static> {
    let key = rcgen::generate_simple_self_signed(vec![HOSTNAME.to_string(), "localhost".to_string()]).unwrap();
    std::fs::write(dir.join("cert.pem"), key.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.signing_key.serialize_pem()).unwrap();
    key.cert.der().clone()
}

impl TestServer {
    pub fn start() -> TestServer {
        TestServer::start_with(Settings::default())
    }

    /// A server with alice and bob in example.test, on the store [`store::default_store_line`]
    /// names (SQLite, or a fresh PostgreSQL database under `PORTCULLIS_TEST_STORE=postgres`).
    pub fn start_with(settings: Settings) -> TestServer {
        let mut server = TestServer::prepare(&settings, store::default_store_line(), None);
        server.add_accounts();
        server.launch();
        server
    }

    /// `count` nodes sharing one fresh PostgreSQL database, each with its own data dir (node
    /// id, admin token) and otherwise the same config, certificate and key; alice and bob made
    /// once through the first node's CLI. `None` after a SKIPPED notice without PostgreSQL.
    pub fn start_nodes(settings: Settings, count: usize) -> Option<Vec<TestServer>> {
        let line = store::url_line(&store::shared_database()?);
        let first = TestServer::prepare(&settings, Some(line.clone()), None);
        first.add_accounts();
        let mut nodes = vec![first];
        for _ in 1..count {
            let node = TestServer::prepare(&settings, Some(line.clone()), Some(&nodes[0]));
            nodes.push(node);
        }
        for node in &mut nodes {
            node.launch();
        }
        Some(nodes)
    }

    /// A data dir, a config and a certificate (`twin`'s, for nodes that clients reach through
    /// one balancer under one name), and no process yet.
    fn prepare(settings: &Settings, store_line: Option<String>, twin: Option<&TestServer>) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        if is_root() {
            // The server drops to nobody, who must be able to walk into the temp dir.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let cert = match twin {
            Some(twin) => {
                for file in ["cert.pem", "key.pem"] {
                    std::fs::copy(twin.dir.path().join(file), dir.path().join(file)).unwrap();
                }
                twin.cert.clone()
            }
            None => write_cert(dir.path()),
        };
        let config_path = dir.path().join("portcullis.toml");
        std::fs::write(&config_path, config_text(settings, store_line.as_deref())).unwrap();
        TestServer {
            dir,
            config_path,
            child: None,
            lines: Arc::default(),
            reader: None,
            addrs: HashMap::new(),
            cert,
            store_line,
        }
    }

    /// example.test with alice and bob, through the CLI.
    fn add_accounts(&self) {
        self.cli_ok(&["domain", "add", DOMAIN], None);
        for user in [ALICE, BOB] {
            self.cli_ok(&["account", "add", user, "--password-stdin"], Some(PASSWORD));
        }
    }

    /// Starts (or restarts) the server process and waits for its listeners.
    pub fn launch(&mut self) {
        assert!(self.child.is_none());
        let before = self.events().iter().filter(|e| e["event"] == "listening").count();
        let mut child = Command::new(BIN)
            .args(["--config", self.config_path.to_str().unwrap(), "serve"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines = self.lines.clone();
        self.reader = Some(std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        }));
        self.child = Some(child);
        let started = Instant::now();
        loop {
            let listening: Vec<_> =
                self.events().into_iter().filter(|e| e["event"] == "listening").skip(before).collect();
            if listening.len() >= self.expected_listeners() {
                self.addrs = listening
                    .iter()
                    .map(|e| {
                        (e["listener"].as_str().unwrap().to_string(), e["addr"].as_str().unwrap().parse().unwrap())
                    })
                    .collect();
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                let mut err = String::new();
                self.child.take().unwrap().stderr.unwrap().read_to_string(&mut err).unwrap();
                panic!("the server exited ({status}) at start: {err}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the server did not start: {:?}",
                self.lines.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Addresses in the config's [listen] section: the `listening` events to wait for.
    fn expected_listeners(&self) -> usize {
        let text = std::fs::read_to_string(&self.config_path).unwrap();
        let listen = text.split("[listen]\n").nth(1).unwrap_or("");
        let listen = listen.split("\n[").next().unwrap_or("");
        listen.matches('"').count() / 2
    }

    /// Writes the admin listener's bound address into the config, so that the CLI (which reads
    /// the address from there) finds the running server; a relaunch binds the same port.
    pub fn pin_admin_port(&self) {
        let text = std::fs::read_to_string(&self.config_path).unwrap();
        let pinned = text.replace("admin = [\"127.0.0.1:0\"]", &format!("admin = [\"{}\"]", self.addr("admin")));
        std::fs::write(&self.config_path, pinned).unwrap();
    }

    /// The admin API's token, from the token file the server generated.
    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("data/admin.token")).unwrap().trim().to_string()
    }

    /// One HTTP/1.1 request to the admin listener (plain HTTP): status, headers (lower-case
    /// names) and body.
    pub fn http(&self, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> HttpResponse {
        let mut stream = TcpStream::connect(self.addr("admin")).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        http_exchange(&mut stream, method, path, token, body)
    }

    /// An admin API call with the right token; the status and the JSON body (null if none).
    pub fn api(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> (u16, serde_json::Value) {
        let body = body.map(|b| b.to_string());
        let r = self.http(method, path, Some(&self.admin_token()), body.as_deref());
        let json = if r.body.is_empty() { serde_json::Value::Null } else { serde_json::from_str(&r.body).unwrap() };
        (r.status, json)
    }

    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.as_ref().expect("running").id() as i32)
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(self.pid(), signal).unwrap();
    }

    /// SIGTERM, then wait for the exit; returns its status and stderr.
    pub fn stop(&mut self) -> (std::process::ExitStatus, String) {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        self.wait_exit(Duration::from_secs(20))
    }

    pub fn wait_exit(&mut self, limit: Duration) -> (std::process::ExitStatus, String) {
        let started = Instant::now();
        let child = self.child.as_mut().expect("running");
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let mut err = String::new();
                let mut child = self.child.take().unwrap();
                child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
                let _ = child.wait();
                // Everything the process logged is in `lines` once its stdout has ended.
                if let Some(reader) = self.reader.take() {
                    let _ = reader.join();
                }
                return (status, err);
            }
            assert!(started.elapsed() < limit, "the server did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Every JSON event logged so far.
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.lines.lock().unwrap().iter().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    /// The last lines of the log, for a failure's message (all of it can be megabytes).
    pub fn log_tail(&self) -> String {
        let lines = self.lines.lock().unwrap();
        let tail = &lines[lines.len().saturating_sub(40)..];
        format!("({} lines before these):\n{}", lines.len() - tail.len(), tail.join("\n"))
    }

    /// Waits until an event matching `pred` shows up.
    pub fn wait_event(&self, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let started = Instant::now();
        loop {
            if let Some(e) = self.events().into_iter().find(|e| pred(e)) {
                return e;
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "event never came; the log ends with {}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until at least `count` events match `pred`; all that match by then.
    pub fn wait_events(&self, pred: impl Fn(&serde_json::Value) -> bool, count: usize) -> Vec<serde_json::Value> {
        let started = Instant::now();
        loop {
            let found: Vec<_> = self.events().into_iter().filter(|e| pred(e)).collect();
            if found.len() >= count {
                return found;
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "{} of {count} events came; the log ends with {}",
                found.len(),
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `f` on a second handle on the server's store, the one its config names, opened as the
    /// CLI opens it beside a running server (so whatever the backend): to look at what is stored
    /// rather than what a protocol says. The handle is closed before this returns.
    pub fn with_store<T>(&self, f: impl AsyncFnOnce(Arc<dyn portcullis_store::Store>) -> T) -> T {
        let config = portcullis_config::Config::load(&self.config_path).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let store = portcullis_store_backends::open(&config.store, Default::default()).await.unwrap();
            let out = f(store.clone()).await;
            store.close();
            out
        })
    }

    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(&self.config_path)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            writeln!(input, "{text}").unwrap();
        }
        drop(input);
        child.wait_with_output().unwrap()
    }

    pub fn cli_ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.cli(args, stdin);
        assert!(out.status.success(), "portcullis {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn addr(&self, listener: &str) -> SocketAddr {
        self.addrs[listener]
    }

    pub fn cert_path(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    pub fn client_config(&self, versions: &[&'static rustls::SupportedProtocolVersion]) -> Arc<ClientConfig> {
        client_config(&self.cert, versions)
    }

    /// A client connection to an implicit-TLS listener.
    pub fn connect_tls(&self, listener: &str) -> Client {
        Client::plain(TcpStream::connect(self.addr(listener)).unwrap())
            .upgrade(self.client_config(rustls::ALL_VERSIONS))
    }

    /// A plain connection from another loopback address (127.0.0.x stands in for other clients).
    pub fn connect_from(&self, source: &str, listener: &str) -> Client {
        self.connect_with(source, listener, None)
    }

    /// As [`TestServer::connect_from`], optionally with a small receive buffer (a slow reader).
    pub fn connect_with(&self, source: &str, listener: &str, receive_buffer: Option<usize>) -> Client {
        Client::plain(self.tcp_with(source, listener, receive_buffer).unwrap())
    }

    /// A bare TCP connection from `source` (no timeouts set), or the connect error.
    pub fn tcp_with(&self, source: &str, listener: &str, receive_buffer: Option<usize>) -> std::io::Result<TcpStream> {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        if let Some(size) = receive_buffer {
            socket.set_recv_buffer_size(size)?;
        }
        let source: SocketAddr = format!("{source}:0").parse().unwrap();
        socket.bind(&source.into())?;
        socket.connect(&self.addr(listener).into())?;
        Ok(socket.into())
    }

    pub fn connect_plain(&self, listener: &str) -> Client {
        Client::plain(TcpStream::connect(self.addr(listener)).unwrap())
    }

    /// Whether the server refuses a connection from `source` at accept (a ban, the firewall, a
    /// connection limit): it closes the connection before the TLS handshake (or, on 587,
    /// before the greeting) and logs `connection_refused` for it. A completed handshake or a
    /// greeting is an admission. Anything else fails the test: a server that stays silent, or
    /// closes without saying it refused, is not refusing.
    pub fn refused(&self, source: &str, listener: &str) -> bool {
        let client = self.connect_from(source, listener);
        let peer = client.local_addr().to_string();
        let outcome = if listener == "submission" {
            let mut client = client;
            match client.try_line() {
                Ok(greeting) if greeting.is_empty() => Err(std::io::ErrorKind::UnexpectedEof.into()),
                other => other.map(drop),
            }
        } else {
            client.handshake(self.client_config(rustls::ALL_VERSIONS)).map(drop)
        };
        match outcome {
            Ok(()) => false,
            Err(e) if is_closed(&e) => {
                self.wait_event(|e| e["event"] == "connection_refused" && e["peer"] == peer.as_str());
                true
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                panic!(
                    "{listener} from {source}: neither admitted nor refused: the server stayed silent (read timeout)"
                )
            }
            Err(e) => panic!("{listener} from {source}: neither admitted nor refused: {e}"),
        }
    }

    /// Rewrites the config with new settings (for SIGHUP tests).
    pub fn rewrite_config(&self, settings: &Settings) {
        std::fs::write(&self.config_path, config_text(settings, self.store_line.as_deref())).unwrap();
    }

    /// Logs in over IMAPS from `source`; the tagged answer line.
    pub fn imap_login(&self, source: &str, user: &str, password: &str) -> String {
        let mut c = self.connect_from(source, "imaps").upgrade(self.client_config(rustls::ALL_VERSIONS));
        c.line();
        c.send(&format!("a LOGIN {user} {password}"));
        loop {
            let line = c.line();
            if line.starts_with("a ") || line.is_empty() {
                return line;
            }
        }
    }

    /// Submits a message over 465 as alice.
    pub fn submit(&self, to: &str, message: &str) -> String {
        let mut c = self.connect_tls("submissions");
        c.reply();
        c.cmd("EHLO test.client");
        assert!(c.cmd(&format!("AUTH PLAIN {}", plain(ALICE, PASSWORD))).starts_with("235"));
        c.cmd(&format!("MAIL FROM:<{ALICE}>"));
        assert!(c.cmd(&format!("RCPT TO:<{to}>")).starts_with("250"));
        assert!(c.cmd("DATA").starts_with("354"));
        c.send(&format!("{message}\r\n."));
        let reply = c.reply();
        c.cmd("QUIT");
        reply
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = nix::sys::signal::kill(self.pid(), nix::sys::signal::Signal::SIGKILL);
            self.kill();
        }
    }
}

/// The config file for `s`; `store_line` (a `url = …`) goes into `[store]` unless the
/// settings name a store URL themselves.
fn config_text(s: &Settings, store_line: Option<&str>) -> String {
    let user = if is_root() { "user = \"nobody\"\n" } else { "" };
    let admin = if s.no_admin { "" } else { "admin = [\"127.0.0.1:0\"]\n" };
    let mut store = s.store.clone();
    if let Some(line) = store_line.filter(|_| !store.iter().any(|l| l.trim_start().starts_with("url"))) {
        store.push(line.to_string());
    }
    let passwords = if s.passwords.is_empty() {
        "argon2_memory_kib = 1024\nargon2_iterations = 1".to_string()
    } else {
        s.passwords.join("\n")
    };
    format!(
        "hostname = \"{HOSTNAME}\"\ndata_dir = \"data\"\n\
         [tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n{}\n\
         [listen]\nsubmissions = [\"127.0.0.1:0\"]\nsubmission = [\"127.0.0.1:0\"]\nimaps = [\"127.0.0.1:0\"]\npop3s = [\"127.0.0.1:0\"]\n{admin}{}\
         [passwords]\n{}\n\
         [store]\n{}\n\
         [limits]\n{}\n\
         [process]\n{user}shutdown_grace = \"3s\"\n{}\n\
         [log]\nformat = \"json\"\n{}\n",
        s.tls.join("\n"),
        s.listen.iter().map(|l| format!("{l}\n")).collect::<String>(),
        passwords,
        store.join("\n"),
        s.limits.join("\n"),
        s.process.join("\n"),
        s.sections.join("\n"),
    )
}

#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
}

/// Writes one request (Connection: close) and reads the whole response.
pub fn http_exchange(
    stream: &mut impl Io,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> HttpResponse {
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() || method == "POST" {
        request.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    stream.flush().unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let body = if headers.get("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        let mut out = String::new();
        let mut rest = rest;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if size == 0 {
                break;
            }
            out.push_str(&after[..size]);
            rest = &after[size + 2..];
        }
        out
    } else {
        rest.to_string()
    };
    HttpResponse { status, headers, body }
}

pub fn client_config(
    cert: &CertificateDer<'static>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(cert.clone()).unwrap();
    Arc::new(
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

pub fn plain(user: &str, password: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"))
}

pub trait Io: Read + Write + Send {}
impl<T: Read + Write + Send> Io for T {}

/// A line-oriented client for SMTP and POP3 over plain TCP or TLS.
pub struct Client {
    tcp: Option<TcpStream>,
    io: Box<dyn Io>,
    buf: Vec<u8>,
    /// The TCP socket underneath, also after the upgrade to TLS: for timeouts, half-closing,
    /// and bytes that bypass TLS.
    socket: TcpStream,
}

impl Client {
    pub fn plain(tcp: TcpStream) -> Client {
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let socket = tcp.try_clone().unwrap();
        Client { io: Box::new(tcp.try_clone().unwrap()), tcp: Some(tcp), buf: Vec::new(), socket }
    }

    /// Starts TLS on the connection (after STARTTLS, or at once for implicit TLS).
    pub fn upgrade(self, config: Arc<ClientConfig>) -> Client {
        self.handshake(config).expect("TLS handshake")
    }

    /// Runs the TLS handshake to completion, reporting its failure.
    pub fn handshake(mut self, config: Arc<ClientConfig>) -> std::io::Result<Client> {
        let mut tcp = self.tcp.take().expect("a plain connection");
        let mut conn = ClientConnection::new(config, ServerName::try_from(HOSTNAME).unwrap()).unwrap();
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp)?;
        }
        Ok(Client { tcp: None, io: Box::new(StreamOwned::new(conn, tcp)), buf: Vec::new(), socket: self.socket })
    }

    pub fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes());
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).unwrap();
        self.io.flush().unwrap();
    }

    /// As [`Client::send_raw`], reporting a failed write (the server closed) instead of panicking.
    pub fn try_send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.io.write_all(bytes)?;
        self.io.flush()
    }

    /// Writes straight to the TCP socket, under any TLS (garbage inside a TLS connection).
    pub fn send_beneath_tls(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.socket.write_all(bytes)
    }

    /// How long a read waits (20 s unless changed); `None` waits forever.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) {
        self.socket.set_read_timeout(timeout).unwrap();
    }

    /// Our end of the connection: the `peer` the server's events name.
    pub fn local_addr(&self) -> SocketAddr {
        self.socket.local_addr().unwrap()
    }

    /// Closes our sending side (TCP FIN, no TLS close_notify) and keeps reading.
    pub fn shutdown_write(&self) {
        let _ = self.socket.shutdown(std::net::Shutdown::Write);
    }

    /// One line, without CRLF; "" at EOF.
    pub fn line(&mut self) -> String {
        self.try_line().unwrap_or_default()
    }

    pub fn try_line(&mut self) -> std::io::Result<String> {
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=end).collect();
                return Ok(String::from_utf8_lossy(&line).trim_end_matches(['\r', '\n']).to_string());
            }
            let mut chunk = [0u8; 8192];
            let n = self.io.read(&mut chunk)?;
            if n == 0 {
                return Ok(std::mem::take(&mut self.buf).into_iter().map(char::from).collect());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// What is buffered, or else one read's worth: empty at EOF, `Err` on a timeout or reset.
    pub fn read_chunk(&mut self) -> std::io::Result<Vec<u8>> {
        if !self.buf.is_empty() {
            return Ok(std::mem::take(&mut self.buf));
        }
        let mut chunk = [0u8; 16384];
        let n = self.io.read(&mut chunk)?;
        Ok(chunk[..n].to_vec())
    }

    /// Exactly `n` bytes (an IMAP literal), or what came before the connection ended.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            let mut chunk = [0u8; 16384];
            match self.io.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(got) => self.buf.extend_from_slice(&chunk[..got]),
            }
        }
        let n = n.min(self.buf.len());
        self.buf.drain(..n).collect()
    }

    /// A whole SMTP reply (all continuation lines), joined by "\n".
    pub fn reply(&mut self) -> String {
        let mut lines = Vec::new();
        loop {
            let line = self.line();
            let last = line.len() < 4 || line.as_bytes()[3] != b'-';
            lines.push(line);
            if last {
                return lines.join("\n");
            }
        }
    }

    pub fn cmd(&mut self, line: &str) -> String {
        self.send(line);
        self.reply()
    }

    /// A POP3 multi-line response body (after the status line), un-dot-stuffed.
    pub fn multiline(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let line = self.line();
            if line == "." {
                return lines;
            }
            lines.push(line.strip_prefix('.').map(str::to_string).filter(|_| line.starts_with("..")).unwrap_or(line));
        }
    }

    /// Everything until the server closes the connection (lossy text).
    pub fn rest(&mut self) -> String {
        let mut all = std::mem::take(&mut self.buf);
        let _ = self.io.read_to_end(&mut all);
        String::from_utf8_lossy(&all).into_owned()
    }

    /// True when the server closes the connection (EOF, a reset, or TLS ended without
    /// close_notify) without a further word; false when it says something instead. A server
    /// that keeps the connection open and silent for the read timeout fails the test: a
    /// timeout is not a close.
    pub fn closed(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut byte = [0u8; 1];
        match self.io.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) if is_closed(&e) => true,
            Err(e) => panic!("{}", self.not_closed(e)),
        }
    }

    /// Reads until the server closes the connection, as [`Client::closed`] sees a close, and
    /// returns what it said before. Silence until the read timeout fails the test.
    pub fn until_closed(&mut self) -> Vec<u8> {
        let mut said = std::mem::take(&mut self.buf);
        let mut chunk = [0u8; 16384];
        loop {
            match self.io.read(&mut chunk) {
                Ok(0) => return said,
                Ok(n) => said.extend_from_slice(&chunk[..n]),
                Err(e) if is_closed(&e) => return said,
                Err(e) => panic!("{} (after {:?})", self.not_closed(e), String::from_utf8_lossy(&said)),
            }
        }
    }

    fn not_closed(&self, e: std::io::Error) -> String {
        match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => format!(
                "the server neither closed the connection nor said anything for {:?}",
                self.socket.read_timeout().ok().flatten().unwrap_or_default()
            ),
            _ => format!("reading, expecting the server to close the connection: {e}"),
        }
    }
}

/// How a connection ends when the server closes it: a reset, or TLS ended without
/// close_notify (EOF itself is `Ok(0)`). Timeouts are not among them.
pub fn is_closed(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe)
}
