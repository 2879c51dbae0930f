//! A private HAProxy (Debian's binary, never the system's service) in front of one or more
//! Portcullis nodes, in TCP mode: each frontend on a free loopback port balances its
//! connections round robin over its nodes with a PROXY v2 header (the node's `[proxy]`
//! listeners expect one), health-checks each node on its admin listener's `/health`, and
//! sends a connection to another node when its node refuses it (a dead process).

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One node behind a frontend: where its proxied listener is, and its admin listener (health).
#[derive(Clone, Copy)]
pub struct Node {
    pub listener: SocketAddr,
    pub admin: SocketAddr,
}

/// A frontend by name, and the nodes it balances over.
pub struct Frontend {
    pub name: String,
    pub nodes: Vec<Node>,
}

impl Frontend {
    pub fn new(name: &str, nodes: Vec<Node>) -> Frontend {
        Frontend { name: name.to_string(), nodes }
    }
}

/// The running balancer; killed on drop.
pub struct HaProxy {
    child: Child,
    _dir: tempfile::TempDir,
    addrs: HashMap<String, SocketAddr>,
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl HaProxy {
    /// Starts `binary` with `frontends`; returns once every frontend accepts connections.
    pub fn start(binary: &Path, frontends: &[Frontend]) -> HaProxy {
        let dir = tempfile::tempdir().unwrap();
        let mut addrs = HashMap::new();
        // Health checks twice a second, a node down after one failed check: a SIGKILLed node
        // leaves the rotation at once. A refused connection is retried on another node
        // (`option redispatch 1`), so that a client never lands on a dead node meanwhile.
        let mut config = String::from(
            "global\n    maxconn 400\n\
             defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 60s\n    timeout server 60s\n\
             \x20   retries 3\n    option redispatch 1\n",
        );
        for frontend in frontends {
            let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            let name = &frontend.name;
            config.push_str(&format!(
                "frontend {name}\n    bind {addr}\n    default_backend {name}_nodes\n\
                 backend {name}_nodes\n    balance roundrobin\n    option httpchk GET /health\n\
                 \x20   http-check expect status 200\n"
            ));
            for (i, node) in frontend.nodes.iter().enumerate() {
                config.push_str(&format!(
                    "    server node{i} {} send-proxy-v2 check port {} addr {} inter 500ms fall 1 rise 1\n",
                    node.listener,
                    node.admin.port(),
                    node.admin.ip()
                ));
            }
            addrs.insert(name.clone(), addr);
        }
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, config).unwrap();
        let check = Command::new(binary).arg("-c").arg("-f").arg(&path).output().unwrap();
        assert!(check.status.success(), "haproxy -c: {}", String::from_utf8_lossy(&check.stderr));
        let child = Command::new(binary)
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut haproxy = HaProxy { child, _dir: dir, addrs };
        let started = Instant::now();
        // Probed from 127.0.0.4, so that no event of the test's clients' addresses comes from it.
        for addr in haproxy.addrs.values().copied().collect::<Vec<_>>() {
            loop {
                let probe = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
                probe.bind(&"127.0.0.4:0".parse::<SocketAddr>().unwrap().into()).unwrap();
                if probe.connect(&addr.into()).is_ok() {
                    break;
                }
                if let Some(status) = haproxy.child.try_wait().unwrap() {
                    panic!("haproxy exited at start: {status}");
                }
                assert!(started.elapsed() < Duration::from_secs(10), "haproxy did not start");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        haproxy
    }

    /// Where frontend `name` listens.
    pub fn addr(&self, name: &str) -> SocketAddr {
        self.addrs[name]
    }
}
