//! The IMAP session beyond parsing: client bytes through the framer (literals, continuation
//! requests, limits) into the session, which answers from a real SQLite store, with IDLE and
//! SASL lines read raw as the server's driver reads them.
//!
//! One store per process (in /dev/shm when there is one, so that its fsyncs are cheap); each
//! input gets a fresh account with a few messages, removed afterwards, so inputs do not leak
//! state into each other. The client logs in with any user name and the password "pw".
//!
//! Input: an options byte, a chunk-size byte (0: everything at once), then what the client
//! sends. Options: bit 0 log in first, bit 1 also SELECT INBOX; bit 2 a channel binding;
//! bit 3 a new message arrives between chunks (as another session's delivery would, waking
//! IDLE); bit 4 a small quota; bits 6-7 how the connection ends (timeout, shutdown, or the
//! peer just goes).
#![no_main]
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use libfuzzer_sys::fuzz_target;
use portcullis_proto_imap::{
    AuthFailure, Config, Environment, Fact, Frame, Framer, Limits, Principal, Progress, Session,
};
use portcullis_sasl::{Attempt, ScramKeys, ScramProof};
use portcullis_store::{AccountId, Delivery, PasswordSecrets, Quota, Store};

// Smaller than the server's (64 KiB, and the configured message size) so that inputs of the
// sizes libFuzzer makes reach the limits.
const MAX_COMMAND: usize = 1024;
const MAX_MESSAGE: u64 = 3000;

const MESSAGES: [&[u8]; 3] = [
    b"From: Alice <alice@example.org>\r\nTo: bob@example.org, \"Carol\" <carol@example.org>\r\nSubject: Lunch\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\nMessage-ID: <m1@example.org>\r\n\r\nSee you at noon.\r\n",
    b"From: bob@example.org\r\nSubject: =?UTF-8?B?w6l0w6k=?=\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner body\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAECAwQ=\r\n--b--\r\n",
    b"Subject: no body",
];

struct World {
    runtime: tokio::runtime::Runtime,
    store: Arc<dyn Store>,
    _dir: PathBuf,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let base =
            if std::path::Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
        // libFuzzer ends the process without dropping statics: remove what runs that are over
        // left behind (their process is gone), so that /dev/shm does not fill up.
        if std::path::Path::new("/proc/self").exists() {
            for entry in std::fs::read_dir(&base).into_iter().flatten().flatten() {
                let name = entry.file_name();
                let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("portcullis-fuzz-imap-")) else { continue };
                if !std::path::Path::new("/proc").join(pid).exists() {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let dir = base.join(format!("portcullis-fuzz-imap-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let store = portcullis_store_backends::temporary(&dir, Some(1 << 20)).unwrap();
        runtime.block_on(store.add_domain("example.org")).unwrap();
        World { runtime, store, _dir: dir }
    })
}

struct Env {
    store: Arc<dyn Store>,
    account: AccountId,
    address: String,
}

#[async_trait]
impl Environment for Env {
    fn store(&self) -> &dyn Store {
        &*self.store
    }

    async fn authenticate(&self, _mechanism: &'static str, attempt: Attempt) -> Result<Principal, AuthFailure> {
        let ok = match &attempt {
            Attempt::Password(c) if c.username.starts_with("temp") => return Err(AuthFailure::Temporary),
            Attempt::Password(c) => &c.password[..] == b"pw",
            Attempt::Scram { proof, .. } => *proof == ScramProof::Valid,
        };
        if ok {
            Ok(Principal { account: self.account, address: self.address.clone() })
        } else {
            Err(AuthFailure::InvalidCredentials)
        }
    }

    async fn scram_keys(&self, username: &str) -> ScramKeys {
        ScramKeys::decoy(username, b"decoy", 1)
    }

    fn report(&self, _fact: Fact) {}
}

struct Client<'a> {
    env: &'a Env,
    session: Session,
    framer: Framer,
    progress: Progress,
}

impl Client<'_> {
    /// Runs everything the buffered input allows, as the server's loop does.
    async fn run(&mut self) {
        let env: &dyn Environment = self.env;
        let mut steps = 0usize;
        loop {
            steps += 1;
            assert!(steps < 1_000_000, "the session does not make progress");
            // As the server does: once logged in, APPEND's message may exceed the command limit.
            if self.session.principal().is_some() {
                self.framer.logged_in();
            }
            self.progress = match self.progress {
                Progress::Close => return,
                Progress::More => self.session.resume(env).await,
                Progress::Ready => match self.framer.next_frame() {
                    Some(Frame::Command(command)) => self.session.command(env, &command).await,
                    Some(Frame::Continue) => {
                        self.session.continue_literal();
                        Progress::Ready
                    }
                    Some(Frame::Refused { tag, reason, close }) => self.session.refused(env, tag, reason, close),
                    None => return self.waiting(),
                },
                Progress::SaslLine => match self.framer.next_line() {
                    Some(Ok(line)) => self.session.sasl_line(env, &line).await,
                    Some(Err(())) => self.session.sasl_line(env, b"*").await,
                    None => return self.waiting(),
                },
                Progress::Idle => match self.framer.next_line() {
                    Some(Ok(line)) => self.session.idle_line(env, &line).await,
                    Some(Err(())) => self.session.idle_line(env, b"").await,
                    None => return self.waiting(),
                },
            };
            check_output(&self.session.take_output());
        }
    }

    /// The server reads more only now: what it holds of an unfinished command is bounded, however
    /// the client sends it (one command's counted bytes, and APPEND's message).
    fn waiting(&self) {
        assert!(self.framer.buffered() <= MAX_COMMAND + MAX_MESSAGE as usize, "{}", self.framer.buffered());
    }
}

/// What a client reads is whole lines ended by CRLF, with no other CR or LF outside literals,
/// and every literal ("{n}" at the end of a line) is there in full: nothing the client sent can
/// end a response line early or start a literal the client will not get.
fn check_output(output: &[u8]) {
    let text = || String::from_utf8_lossy(output).into_owned();
    let mut at = 0;
    while at < output.len() {
        let end =
            at + output[at..].iter().position(|&b| b == b'\n').unwrap_or_else(|| panic!("unterminated: {}", text()));
        let line = output[at..end].strip_suffix(b"\r").unwrap_or_else(|| panic!("bare LF: {}", text()));
        assert!(!line.contains(&b'\r'), "bare CR: {}", text());
        at = end + 1;
        if let Some(inner) = line.strip_suffix(b"}") {
            if let Some(open) = inner.iter().rposition(|&b| b == b'{') {
                let digits = &inner[open + 1..];
                if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) {
                    let n: usize = std::str::from_utf8(digits).unwrap().parse().expect("literal size");
                    assert!(at + n <= output.len(), "short literal: {}", text());
                    at += n;
                }
            }
        }
    }
}

async fn deliver(store: &dyn Store, account: AccountId, raw: &[u8]) {
    let delivery = Delivery { recipients: vec![account], raw: raw.to_vec(), internal_date: 1_764_291_600 };
    let _ = store.deliver(delivery).await;
}

async fn session(world: &World, options: u8, chunk: u8, input: &[u8]) {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let address = format!("u{}@example.org", NEXT.fetch_add(1, Ordering::Relaxed));
    let quota = if options & 16 != 0 { Quota::Bytes(600) } else { Quota::Default };
    let store = world.store.clone();
    let account = store.add_account(&address, &PasswordSecrets::hash_only("unused"), quota).await.unwrap();
    for raw in MESSAGES {
        deliver(&*store, account, raw).await;
    }
    let env = Env { store: store.clone(), account, address: address.clone() };
    let config = Config {
        hostname: "mail.example.org".into(),
        max_message_size: MAX_MESSAGE,
        max_auth_failures: 3,
        max_sessions_per_account: 3,
        max_commands: 200,
        max_errors: 20,
    };
    let mut client = Client {
        env: &env,
        session: Session::new(config, (options & 4 != 0).then(|| vec![7; 32])),
        framer: Framer::new(Limits { max_command: MAX_COMMAND, max_append: MAX_MESSAGE }),
        progress: Progress::Ready,
    };
    if options & 1 != 0 {
        client.framer.push(b"0 LOGIN user pw\r\n");
        if options & 2 != 0 {
            client.framer.push(b"1 SELECT INBOX\r\n");
        }
    }
    let chunk = if chunk == 0 { input.len().max(1) } else { chunk as usize };
    for piece in input.chunks(chunk) {
        if client.progress == Progress::Close {
            break;
        }
        client.framer.push(piece);
        client.run().await;
        if options & 8 != 0 && client.progress != Progress::Close {
            deliver(&*store, account, MESSAGES[0]).await;
            client.session.mailbox_changed();
            if client.session.idling() {
                client.session.idle_sync(&env).await;
            }
        }
    }
    client.run().await;
    match options >> 6 {
        0 => client.session.timed_out(),
        1 => client.session.shutting_down(),
        _ => {}
    }
    check_output(&client.session.take_output());
    drop(client);
    store.remove_account(&address).await.unwrap();
}

fuzz_target!(|data: &[u8]| {
    let [options, chunk, input @ ..] = data else { return };
    let world = world();
    world.runtime.block_on(session(world, *options, *chunk, input));
});
