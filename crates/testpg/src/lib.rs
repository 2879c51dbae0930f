//! A private PostgreSQL cluster for tests (like `portcullis-testdns` for DNS): Debian's
//! `initdb` in a temp dir, `postgres` on 127.0.0.1 with an ephemeral port and its unix socket
//! inside that dir, trust authentication on loopback only, and a fresh empty database per test.
//!
//! Without PostgreSQL installed, [`PgCluster::start`] says SKIPPED and returns `None` (a test
//! then tests nothing and says so), but panics under `PORTCULLIS_REQUIRE_ALL=1`, as every
//! suite here does (docs/testing.md): CI installs everything and must not pass by skipping.
//!
//! initdb and postgres refuse to run as root, and CI runs as root: the dir then belongs to
//! `nobody` and the binaries run through `setpriv` as nobody (`unsafe_code = forbid` rules out
//! a setuid in `pre_exec`).
//!
//! A test binary usually keeps one cluster in a `static`, and statics are never dropped: a
//! small reaper shell, started with the cluster and reading a pipe from this process, stops the
//! postmaster and removes the dir when the pipe closes, which happens when the cluster is
//! dropped or when the test process ends in any way (even SIGKILL).
#![forbid(unsafe_code)]

use std::fs::{self, File};
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Where Debian installs each major version's binaries (`/usr/lib/postgresql/15/bin`).
const DEBIAN_VERSIONS: &str = "/usr/lib/postgresql";
/// How long a starting postmaster may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Ports tried before giving up (another process may take a free port before postgres binds it).
const PORT_ATTEMPTS: usize = 10;

/// What runs as root must run as this user (initdb and postgres refuse root).
const UNPRIVILEGED_USER: &str = "nobody";
const UNPRIVILEGED_GROUP: &str = "nogroup";

/// Stops the postmaster named in `$1/data/postmaster.pid` and removes `$1` once its stdin
/// closes. Immediate shutdown (SIGQUIT) first, SIGKILL after 10 s.
const REAPER: &str = r#"
read -r _
pid=$(head -n 1 "$1/data/postmaster.pid" 2>/dev/null)
if [ -n "$pid" ]; then
    kill -QUIT "$pid" 2>/dev/null
    i=0
    while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    kill -KILL "$pid" 2>/dev/null
fi
rm -rf "$1"
"#;

/// A running private cluster. Dropping it stops the postmaster and removes its files.
pub struct PgCluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    /// `Some((uid, gid))` when running as root: whom the binaries run as.
    run_as: Option<(u32, u32)>,
    /// Extra `-c name=value` settings for every start (TLS).
    settings: Vec<String>,
    postmaster: Mutex<Option<Child>>,
    /// Closing it (drop) tells the reaper to stop the cluster and remove `dir`.
    reaper: Mutex<Option<(ChildStdin, Child)>>,
}

/// TLS for the server: PEM texts of the certificate chain and its private key.
pub struct ServerTls<'a> {
    pub cert_pem: &'a str,
    pub key_pem: &'a str,
}

impl PgCluster {
    /// Starts a cluster, or says SKIPPED and returns `None` without PostgreSQL (panics
    /// instead under `PORTCULLIS_REQUIRE_ALL=1`).
    pub fn start() -> Option<PgCluster> {
        Self::start_with(None)
    }

    /// Like [`PgCluster::start`], with `ssl = on` and this certificate (TCP clients may then
    /// ask for TLS; the unix socket never uses it).
    pub fn start_tls(tls: ServerTls<'_>) -> Option<PgCluster> {
        Self::start_with(Some(tls))
    }

    fn start_with(tls: Option<ServerTls<'_>>) -> Option<PgCluster> {
        let Some(bin) = newest_bin_dir() else {
            let require_all = std::env::var("PORTCULLIS_REQUIRE_ALL").is_ok_and(|v| v == "1");
            assert!(
                !require_all,
                "PostgreSQL is not installed and PORTCULLIS_REQUIRE_ALL=1: apt-get install postgresql"
            );
            let mut err = std::io::stderr().lock();
            let _ = writeln!(
                err,
                "\nSKIPPED: PostgreSQL not installed (apt-get install postgresql); this test tested nothing"
            );
            return None;
        };
        let dir = tempfile::Builder::new().prefix("portcullis-pg-").tempdir().expect("temp dir").keep();
        let run_as = nix::unistd::geteuid().is_root().then(unprivileged_ids);
        // The reaper starts before anything else, so that even a failed start leaves nothing.
        let mut reaper = Command::new("sh")
            .args(["-c", REAPER, "portcullis-testpg-reaper"])
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the reaper shell");
        let reaper_stdin = reaper.stdin.take().expect("piped stdin");
        let mut cluster = PgCluster {
            bin,
            dir,
            port: 0,
            run_as,
            settings: Vec::new(),
            postmaster: Mutex::new(None),
            reaper: Mutex::new(Some((reaper_stdin, reaper))),
        };
        cluster.chown(&cluster.dir);
        cluster.initdb();
        if let Some(tls) = tls {
            cluster.install_tls(&tls);
        }
        cluster.start_on_free_port();
        Some(cluster)
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Creates a new empty database and returns its URL
    /// (`postgres://postgres@127.0.0.1:PORT/NAME`).
    pub fn fresh_database(&self) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(1);
        let name = format!("test_{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let out = Command::new(self.bin.join("createdb"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", &name])
            .output()
            .expect("run createdb");
        assert!(out.status.success(), "createdb {name} failed: {}", String::from_utf8_lossy(&out.stderr));
        self.url(&name)
    }

    /// The URL of database `name` on this cluster.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// The URL of database `name` through the cluster's Unix socket (its directory
    /// percent-encoded as the URL's host, which libpq and tokio-postgres read as a socket).
    pub fn socket_url(&self, name: &str) -> String {
        let dir = self.dir.to_string_lossy().replace('%', "%25").replace('/', "%2F");
        format!("postgres://postgres@{dir}:{}/{name}", self.port)
    }

    /// Kills the postmaster with SIGKILL, as a crash would (a following [`PgCluster::restart`]
    /// runs crash recovery).
    pub fn kill(&self) {
        let mut postmaster = self.postmaster.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mut child) = postmaster.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the postmaster again on the same port (after [`PgCluster::kill`]); waits until
    /// it accepts connections. Backends of a killed postmaster may still hold its shared
    /// memory for a moment, so a refused start is retried.
    pub fn restart(&self) {
        self.kill();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.try_start(self.port) {
                Ok(()) => return,
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
                Err(log) => panic!("postgres did not restart on port {}:\n{log}", self.port),
            }
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    /// A command for PostgreSQL's program `name`, run as nobody when we are root.
    fn command(&self, name: &str) -> Command {
        let program = self.bin.join(name);
        let mut command = match self.run_as {
            Some((uid, gid)) => {
                let mut c = Command::new("setpriv");
                c.args(["--reuid", &uid.to_string(), "--regid", &gid.to_string(), "--clear-groups", "--"]);
                c.arg(program);
                c
            }
            None => Command::new(program),
        };
        // The binaries look up their own path and may chdir: a dir nobody can read breaks them.
        command.current_dir(&self.dir);
        command
    }

    fn chown(&self, path: &Path) {
        if let Some((uid, gid)) = self.run_as {
            nix::unistd::chown(path, Some(uid.into()), Some(gid.into()))
                .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
        }
    }

    fn initdb(&self) {
        // --no-sync only spares initdb's own final flush of a cluster thrown away after the
        // test; the server itself keeps fsync = on (crash tests rely on it).
        let out = self
            .command("initdb")
            .arg("-D")
            .arg(self.data())
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"])
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // initdb's pg_hba.conf with -A trust trusts the unix socket and 127.0.0.1/::1 only;
        // listen_addresses (at start) keeps the server off every other address.
    }

    fn install_tls(&mut self, tls: &ServerTls<'_>) {
        use std::os::unix::fs::PermissionsExt;
        let cert = self.data().join("server.crt");
        let key = self.data().join("server.key");
        fs::write(&cert, tls.cert_pem).expect("write server.crt");
        fs::write(&key, tls.key_pem).expect("write server.key");
        // postgres refuses a key readable by others.
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).expect("chmod server.key");
        self.chown(&cert);
        self.chown(&key);
        self.settings.extend([
            "ssl=on".to_string(),
            format!("ssl_cert_file={}", cert.display()),
            format!("ssl_key_file={}", key.display()),
        ]);
    }

    fn start_on_free_port(&mut self) {
        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            match self.try_start(port) {
                Ok(()) => {
                    self.port = port;
                    return;
                }
                // Someone took the port between our probe and postgres's bind: another.
                Err(log) if log.contains("could not bind") || log.contains("could not create any TCP/IP sockets") => {
                    last = log;
                }
                Err(log) => panic!("postgres did not start:\n{log}"),
            }
        }
        panic!("postgres found no free port in {PORT_ATTEMPTS} attempts:\n{last}");
    }

    /// Starts the postmaster on `port` and waits until it accepts connections; on failure,
    /// the server's log.
    fn try_start(&self, port: u16) -> Result<(), String> {
        let log = File::options().create(true).append(true).open(self.log_path()).expect("open postgres.log");
        let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
        let mut command = self.command("postgres");
        command.arg("-D").arg(self.data()).args(["-p", &port.to_string()]).arg("-k").arg(&self.dir);
        // Loopback only; small shared memory, as several engineers' clusters share the machine.
        for setting in ["listen_addresses=127.0.0.1", "shared_buffers=16MB", "max_connections=200"]
            .into_iter()
            .map(String::from)
            .chain(self.settings.iter().cloned())
        {
            command.arg("-c").arg(setting);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("start postgres");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let text = fs::read(self.log_path()).unwrap_or_default();
                let text = String::from_utf8_lossy(&text[(log_start as usize).min(text.len())..]).into_owned();
                return Err(format!("postgres exited ({status}):\n{text}"));
            }
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                *self.postmaster.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("postgres did not accept connections in {START_TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // Immediate shutdown of our own child first: the reaper cannot tell a zombie from a
        // running postmaster (`kill -0` succeeds on both) until we collect it.
        if let Some(mut child) = self.postmaster.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGQUIT);
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        // The reaper then finds nothing running and removes the dir.
        if let Some((stdin, mut reaper)) = self.reaper.lock().unwrap_or_else(|e| e.into_inner()).take() {
            drop(stdin);
            let _ = reaper.wait();
        }
    }
}

/// The newest `/usr/lib/postgresql/N/bin` that has `postgres` and `initdb`.
fn newest_bin_dir() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = fs::read_dir(DEBIAN_VERSIONS)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            (bin.join("postgres").exists() && bin.join("initdb").exists()).then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn unprivileged_ids() -> (u32, u32) {
    let user = nix::unistd::User::from_name(UNPRIVILEGED_USER)
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("running as root needs the user {UNPRIVILEGED_USER} for PostgreSQL"));
    let gid = nix::unistd::Group::from_name(UNPRIVILEGED_GROUP).ok().flatten().map_or(user.gid, |g| g.gid);
    (user.uid.as_raw(), gid.as_raw())
}

/// A port free on 127.0.0.1 right now (the OS's choice of an ephemeral port).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("bind 127.0.0.1:0").port()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_serves_fresh_databases_survives_a_crash_and_leaves_nothing_behind() {
        let Some(cluster) = PgCluster::start() else { return };
        let psql = |url: &str, sql: &str| {
            let out = Command::new(cluster.bin.join("psql"))
                .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", url, "-c", sql])
                .output()
                .expect("run psql");
            assert!(out.status.success(), "psql: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        let a = cluster.fresh_database();
        let b = cluster.fresh_database();
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("postgres://postgres@127.0.0.1:{}/", cluster.port())), "{a}");
        psql(&a, "CREATE TABLE t (x int); INSERT INTO t VALUES (7)");
        assert_eq!(psql(&b, "SELECT count(*) FROM pg_tables WHERE tablename = 't'"), "0", "databases are apart");
        assert_eq!(psql(&a, "SHOW fsync"), "on");
        assert_eq!(psql(&a, "SHOW listen_addresses"), "127.0.0.1");
        // A committed row survives a SIGKILL of the postmaster and crash recovery.
        cluster.kill();
        cluster.restart();
        assert_eq!(psql(&a, "SELECT x FROM t"), "7");
        let dir = cluster.dir.clone();
        let port = cluster.port();
        drop(cluster);
        assert!(!dir.exists(), "{} is left behind", dir.display());
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "postgres still listens on {port}");
    }
}
