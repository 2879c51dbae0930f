//! A DNS server for tests (issue 14): started on 127.0.0.1 on an ephemeral port, UDP and TCP
//! on the same port, serving [`Zones`] built in Rust or from zone-file text, with switches
//! for the hostile cases ([`Fault`]: never answer, answer bytes that do not decode, SERVFAIL,
//! REFUSED) for the whole server or for one name. Any crate's tests can use it as a
//! dev-dependency; it answers like a recursive resolver for a world made of the test zones.
//!
//! It runs on a thread of its own with its own runtime, so it serves while the test blocks
//! (on a subprocess such as dkimpy, or in a synchronous test) and whatever runtime the test
//! uses. Dropping the [`TestDns`] stops it.
#![forbid(unsafe_code)]

mod respond;
mod zones;

pub use hickory_proto::rr::RData;
pub use zones::Zones;

use hickory_proto::rr::Name;
use respond::Transport;
use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::oneshot;

/// A hostile behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Never answer (UDP datagrams dropped, TCP connections held open without a reply): the
    /// client's timeout is all that ends the query.
    Silent,
    /// Answer with the right ID and question but bytes that do not decode (the last record
    /// is cut short).
    Malformed,
    /// RCODE 2, what a resolver says when it could not get an answer.
    ServFail,
    /// RCODE 5.
    Refused,
}

/// One question the server received, for tests that check what was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asked {
    /// Lower case, without the trailing dot.
    pub name: String,
    /// "A", "MX", "TXT", ...
    pub rtype: String,
    pub tcp: bool,
}

#[derive(Default)]
struct State {
    zones: Zones,
    fault: Option<Fault>,
    faults_by_name: HashMap<Name, Fault>,
    asked: Vec<Asked>,
}

/// A running server; stops when dropped.
pub struct TestDns {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestDns {
    /// Starts serving `zones` on 127.0.0.1, UDP and TCP on one ephemeral port.
    pub fn start(zones: Zones) -> io::Result<TestDns> {
        let (udp, tcp) = bind_pair()?;
        let addr = udp.local_addr()?;
        let state = Arc::new(Mutex::new(State { zones, ..State::default() }));
        let (stop, stopped) = oneshot::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread_state = state.clone();
        let thread = std::thread::Builder::new().name(format!("testdns-{}", addr.port())).spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(err) => {
                    let _ = ready_tx.send(Err(err));
                    return;
                }
            };
            runtime.block_on(async move {
                let sockets = UdpSocket::from_std(udp).and_then(|u| Ok((u, TcpListener::from_std(tcp)?)));
                let (udp, tcp) = match sockets {
                    Ok(sockets) => sockets,
                    Err(err) => {
                        let _ = ready_tx.send(Err(err));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                tokio::select! {
                    _ = serve_udp(udp, thread_state.clone()) => {}
                    _ = serve_tcp(tcp, thread_state) => {}
                    _ = stopped => {}
                }
            });
        })?;
        ready_rx.recv().map_err(|_| io::Error::other("the test DNS thread died while starting"))??;
        Ok(TestDns { addr, state, stop: Some(stop), thread: Some(thread) })
    }

    /// Where it listens (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A hostile behaviour for every query (or `None` to answer normally again).
    pub fn set_fault(&self, fault: Option<Fault>) {
        self.lock().fault = fault;
    }

    /// A hostile behaviour for queries about one name (any type), the rest answered normally.
    pub fn set_fault_for(&self, name: &str, fault: Fault) {
        let mut name = Name::from_utf8(name).unwrap_or_else(|e| panic!("fault name {name:?}: {e}"));
        name.set_fqdn(true);
        self.lock().faults_by_name.insert(name.to_lowercase(), fault);
    }

    /// Replaces what is served (earlier answers may still sit in a client's cache).
    pub fn set_zones(&self, zones: Zones) {
        self.lock().zones = zones;
    }

    /// Every question received so far, in order.
    pub fn asked(&self) -> Vec<Asked> {
        self.lock().asked.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A poisoned lock only means a test thread panicked; the state is still usable.
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A UDP socket and a TCP listener on the same ephemeral port: the UDP port is chosen by the
/// system, and taken again if its TCP twin happens to be in use.
fn bind_pair() -> io::Result<(StdUdpSocket, std::net::TcpListener)> {
    let mut last = None;
    for _ in 0..20 {
        let udp = StdUdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        match std::net::TcpListener::bind(udp.local_addr()?) {
            Ok(tcp) => {
                udp.set_nonblocking(true)?;
                tcp.set_nonblocking(true)?;
                return Ok((udp, tcp));
            }
            Err(err) => last = Some(err),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free port pair")))
}

/// Computes the reply to one query and logs the question; `None` = stay silent.
fn handle(state: &Mutex<State>, query: &[u8], transport: Transport) -> Option<Vec<u8>> {
    let (message, question) = respond::question(query)?;
    let mut state = lock(state);
    let lower = question.name.to_lowercase();
    let mut name = lower.to_ascii();
    if name.ends_with('.') {
        name.pop();
    }
    state.asked.push(Asked { name, rtype: question.rtype.to_string(), tcp: transport == Transport::Tcp });
    let fault = state.faults_by_name.get(&lower).copied().or(state.fault);
    respond::respond(&state.zones, &message, &question, fault, transport)
}

async fn serve_udp(socket: UdpSocket, state: Arc<Mutex<State>>) {
    let mut buf = vec![0u8; 65535];
    loop {
        let Ok((len, from)) = socket.recv_from(&mut buf).await else { continue };
        if let Some(reply) = handle(&state, &buf[..len], Transport::Udp) {
            let _ = socket.send_to(&reply, from).await;
        }
    }
}

async fn serve_tcp(listener: TcpListener, state: Arc<Mutex<State>>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        tokio::spawn(serve_tcp_connection(stream, state.clone()));
    }
}

/// RFC 1035 §4.2.2 / RFC 7766 §8: each message behind a two-octet length; several queries
/// may come on one connection.
async fn serve_tcp_connection(mut stream: TcpStream, state: Arc<Mutex<State>>) {
    loop {
        let Ok(len) = stream.read_u16().await else { return };
        let mut query = vec![0u8; usize::from(len)];
        if stream.read_exact(&mut query).await.is_err() {
            return;
        }
        let Some(reply) = handle(&state, &query, Transport::Tcp) else { continue };
        let Ok(reply_len) = u16::try_from(reply.len()) else { return };
        let mut framed = reply_len.to_be_bytes().to_vec();
        framed.extend_from_slice(&reply);
        if stream.write_all(&framed).await.is_err() {
            return;
        }
    }
}
