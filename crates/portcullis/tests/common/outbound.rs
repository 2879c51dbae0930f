//! What the outbound tests (tests/outbound.rs, tests/outbound_postfix.rs,
//! tests/queue_runner.rs) share: the sending instance's settings, alice's submission, the
//! queue's size as the database on disk has it, and a destination written here that speaks
//! just enough SMTP to take, refuse or stall a message, for the cases a real receiver cannot
//! be told to play (counting connections, switching its answer while it runs).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portcullis_testdns::TestDns;

use super::{dns_section, Settings, TestServer, ALICE};

/// The queue's schedule for a sender: the first retry, the longest wait between retries, and
/// when a message expires (humantime strings, as in the config file).
pub struct Schedule {
    pub retry_first: &'static str,
    pub retry_max_interval: &'static str,
    pub expire: &'static str,
}

/// A sending instance's settings: its DNS questions to `dns`, its queue on `schedule` (delay
/// notices at once), and `delivery` as its `[delivery]` lines (the port of the exchangers, a
/// source address, …).
pub fn sender(dns: &TestDns, schedule: Schedule, delivery: &str) -> Settings {
    let Schedule { retry_first, retry_max_interval, expire } = schedule;
    Settings {
        sections: vec![
            dns_section(dns.addr()),
            format!(
                "[queue]\nretry_first = \"{retry_first}\"\nretry_max_interval = \"{retry_max_interval}\"\n\
                 expire = \"{expire}\"\ndelay_notice = \"0s\""
            ),
            format!("[delivery]\n{delivery}"),
        ],
        ..Settings::default()
    }
}

/// Alice submits a short message to `to` on `a` over 465; it must be taken.
pub fn submit(a: &TestServer, to: &str, subject: &str) {
    let reply = a.submit(to, &format!("From: <{ALICE}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n\r\nHello {to}."));
    assert!(reply.starts_with("250 "), "{reply}");
}

/// Messages in `a`'s queue, as the database on disk has them.
pub fn queued(a: &TestServer) -> usize {
    a.with_store(async |store| store.queued().await.unwrap().len())
}

/// What a [`Sink`] does with a message.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Answer {
    /// Every RCPT gets this reply (a 4xx or 5xx, or a 2xx to take the message).
    Rcpt(&'static str),
    /// Takes the message up to its final dot, then never answers.
    StallInData,
}

/// Takes every message.
pub const TAKE: Answer = Answer::Rcpt("250 ok");

/// A destination that speaks just enough SMTP, its answer switchable while it runs.
pub struct Sink {
    answer: Mutex<Answer>,
    /// Messages answered with 250.
    taken: AtomicUsize,
    /// Messages received whole but never answered.
    stalled: AtomicUsize,
    connections: AtomicUsize,
}

impl Sink {
    /// Listens on `ip`:`port` until the test ends, a thread a connection.
    pub fn start(ip: &str, port: u16, answer: Answer) -> Arc<Sink> {
        let listener = TcpListener::bind((ip, port)).unwrap_or_else(|e| panic!("sink on {ip}:{port}: {e}"));
        let sink = Arc::new(Sink {
            answer: Mutex::new(answer),
            taken: AtomicUsize::new(0),
            stalled: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
        });
        let serving = sink.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                serving.connections.fetch_add(1, Ordering::SeqCst);
                let sink = serving.clone();
                std::thread::spawn(move || sink.serve(stream));
            }
        });
        sink
    }

    pub fn set(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    fn answer(&self) -> Answer {
        *self.answer.lock().unwrap()
    }

    pub fn taken(&self) -> usize {
        self.taken.load(Ordering::SeqCst)
    }

    pub fn stalled(&self) -> usize {
        self.stalled.load(Ordering::SeqCst)
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn serve(&self, stream: TcpStream) {
        stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut out = stream.try_clone().unwrap();
        let mut lines = BufReader::new(stream);
        let _ = out.write_all(b"220 sink.test ESMTP\r\n");
        let mut line = String::new();
        let mut in_data = false;
        let mut stalled = false;
        let mut recipients = 0;
        while lines.read_line(&mut line).unwrap_or(0) > 0 {
            let reply = if stalled {
                None // read on until the client goes away
            } else if in_data {
                if line == ".\r\n" {
                    in_data = false;
                    if self.answer() == Answer::StallInData {
                        self.stalled.fetch_add(1, Ordering::SeqCst);
                        stalled = true;
                        None
                    } else {
                        self.taken.fetch_add(1, Ordering::SeqCst);
                        Some("250 2.0.0 taken")
                    }
                } else {
                    None
                }
            } else {
                match line.get(..4).map(|c| c.to_ascii_uppercase()).as_deref() {
                    Some("EHLO") => Some("250-sink.test\r\n250 8BITMIME"),
                    Some("RCPT") => match self.answer() {
                        Answer::Rcpt(reply) if !reply.starts_with('2') => Some(reply),
                        Answer::Rcpt(reply) => {
                            recipients += 1;
                            Some(reply)
                        }
                        Answer::StallInData => {
                            recipients += 1;
                            Some("250 ok")
                        }
                    },
                    Some("MAIL") | Some("RSET") => {
                        recipients = 0;
                        Some("250 ok")
                    }
                    Some("DATA") if recipients == 0 => Some("554 5.5.1 no valid recipients"),
                    Some("DATA") => {
                        in_data = true;
                        Some("354 go on")
                    }
                    Some("QUIT") => {
                        let _ = out.write_all(b"221 bye\r\n");
                        return;
                    }
                    _ => Some("250 ok"),
                }
            };
            if let Some(reply) = reply {
                if out.write_all(format!("{reply}\r\n").as_bytes()).is_err() {
                    return;
                }
            }
            line.clear();
        }
    }
}
