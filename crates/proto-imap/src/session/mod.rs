//! The IMAP session: one connection's state, answering parsed commands from the store.
//!
//! Bytes in and out stay with the driver: it frames input (see [`crate::frame`]), hands whole
//! commands to [`Session::command`], and sends [`Session::take_output`]. The session reaches
//! the store and the authenticator through [`Environment`], and tells the driver what to do next
//! with [`Progress`] (flush and continue a long FETCH, wait in IDLE, read a SASL line, close).

mod fetch;
mod mailboxes;
mod recent;
mod search;
mod update;
mod view;

use async_trait::async_trait;
use portcullis_sasl::{self as sasl, Attempt, Credentials, Mechanism, ScramKeys};
use portcullis_store::{AccountId, SessionSlot, Store};

use crate::command::*;
use crate::frame::Refusal;
use crate::parse::{parse_command, parse_command_owned};
use view::View;

pub use fetch::PendingFetch;

/// What the server around the session provides.
#[async_trait]
pub trait Environment: Send + Sync {
    fn store(&self) -> &dyn Store;
    /// Checks credentials and reports the outcome as an event.
    async fn authenticate(&self, mechanism: &'static str, attempt: Attempt) -> Result<Principal, AuthFailure>;
    /// SCRAM keys for a user, or a decoy (unknown users must look like known ones).
    async fn scram_keys(&self, username: &str) -> ScramKeys;
    /// A protocol fact the guard and the operator should know about.
    fn report(&self, fact: Fact);
    /// Runs work that may take long (parsing a large message's MIME structure, matching LIST
    /// patterns against every mailbox) where it does not hold up other sessions: the server
    /// runs it on a thread of its own, off the workers every connection shares. By default,
    /// in place.
    async fn offload(&self, work: Box<dyn FnOnce() + Send>) {
        work()
    }
}

/// Lets the runtime run other tasks before this one goes on: work that is long but needs
/// nothing from the store (a search over a large mailbox's flags, the flags of every message
/// changed by another session) would otherwise hold its worker, and the sessions queued on it,
/// to the end. Written here rather than taken from tokio, which the session does not use.
pub(crate) async fn yield_now() {
    struct YieldNow(bool);
    impl std::future::Future for YieldNow {
        type Output = ();
        fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
            if self.0 {
                return std::task::Poll::Ready(());
            }
            self.0 = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    }
    YieldNow(false).await
}

/// Messages a loop over a mailbox handles between two yields (see [`yield_now`]).
pub(crate) const MESSAGES_PER_YIELD: usize = 2000;

/// Runs `work` through [`Environment::offload`]; its result, or `None` if it panicked.
pub(crate) async fn offloaded<R: Send + 'static>(
    env: &dyn Environment,
    work: impl FnOnce() -> R + Send + 'static,
) -> Option<R> {
    let slot = std::sync::Arc::new(std::sync::Mutex::new(None));
    let result = slot.clone();
    env.offload(Box::new(move || {
        let value = work();
        if let Ok(mut result) = result.lock() {
            *result = Some(value);
        }
    }))
    .await;
    let value = slot.lock().ok()?.take();
    value
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub account: AccountId,
    pub address: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    InvalidCredentials,
    Temporary,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fact {
    CommandTooLong,
    LiteralTooBig,
    TooManyErrors,
    TooManyCommands,
    TooManyAuthFailures,
    TooManySessions,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub hostname: String,
    /// APPENDLIMIT: the largest message APPEND takes.
    pub max_message_size: u64,
    pub max_auth_failures: u32,
    pub max_sessions_per_account: usize,
    pub max_commands: u64,
    /// Refused commands tolerated before the connection is closed.
    pub max_errors: u32,
}

/// What the driver does after a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Send the output and read the next command.
    Ready,
    /// Send the output, then call [`Session::resume`]: the command has more to say.
    More,
    /// Send the output; the client is idling. Call [`Session::idle_sync`] when the selected
    /// mailbox changes and [`Session::idle_line`] with each line the client sends.
    Idle,
    /// Send the output, read one line, and give it to [`Session::sasl_line`].
    SaslLine,
    /// Send the output and close the connection.
    Close,
}

enum State {
    NotAuthenticated,
    Authenticated,
    Selected(Box<View>),
}

/// A command that continues past one call.
enum Pending {
    Fetch(Box<PendingFetch>),
    Idle { tag: String },
    Sasl { tag: String, exchange: sasl::Exchange },
}

pub struct Session {
    config: Config,
    state: State,
    principal: Option<Principal>,
    _slot: Option<SessionSlot>,
    out: Vec<u8>,
    /// ENABLE IMAP4rev2 (RFC 9051 behaviour instead of RFC 3501).
    rev2: bool,
    /// Mailbox names and quoted strings in UTF-8 (IMAP4rev2 or UTF8=ACCEPT).
    utf8: bool,
    condstore: bool,
    qresync: bool,
    pending: Option<Pending>,
    /// SEARCHRES: UIDs saved by SEARCH RETURN (SAVE), for `$`.
    saved: Vec<u32>,
    commands: u64,
    errors: u32,
    auth_failures: u32,
    closing: bool,
    /// The TLS connection's `tls-exporter` value, for SCRAM-SHA-256-PLUS.
    channel_binding: Option<Vec<u8>>,
    /// A response code for the tagged OK of the command being run ("[READ-WRITE]").
    code: Option<String>,
}

/// Whether a command was answered OK (or NO/BAD).
type Done = Result<(), Answer>;

/// A tagged answer other than OK.
#[derive(Debug)]
pub(crate) enum Answer {
    No(String),
    Bad(String),
}

fn no(text: impl Into<String>) -> Answer {
    Answer::No(text.into())
}

fn bad(text: impl Into<String>) -> Answer {
    Answer::Bad(text.into())
}

impl Session {
    /// A new connection (always under TLS: IMAP is offered on 993 only); the greeting is in
    /// the output.
    pub fn new(config: Config, channel_binding: Option<Vec<u8>>) -> Session {
        let mut s = Session {
            config,
            state: State::NotAuthenticated,
            principal: None,
            _slot: None,
            out: Vec::with_capacity(4096),
            rev2: false,
            utf8: false,
            condstore: false,
            qresync: false,
            pending: None,
            saved: Vec::new(),
            commands: 0,
            errors: 0,
            auth_failures: 0,
            closing: false,
            channel_binding,
            code: None,
        };
        let greeting = format!("* OK [CAPABILITY {}] {} IMAP server ready\r\n", s.capabilities(), s.config.hostname);
        s.out.extend_from_slice(greeting.as_bytes());
        s
    }

    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    pub fn principal(&self) -> Option<&Principal> {
        self.principal.as_ref()
    }

    /// The mailbox whose changes this session must hear about.
    pub fn selected_mailbox(&self) -> Option<i64> {
        match &self.state {
            State::Selected(view) => Some(view.id),
            _ => None,
        }
    }

    /// The driver saw the selected mailbox change (a delivery, another session's STORE or
    /// EXPUNGE); the next command or IDLE tells the client.
    pub fn mailbox_changed(&mut self) {
        if let State::Selected(view) = &mut self.state {
            view.stale = true;
        }
    }

    /// A synchronizing literal was announced: let the client send it.
    pub fn continue_literal(&mut self) {
        self.out.extend_from_slice(b"+ Ready for literal data\r\n");
    }

    /// The framer dropped a command that broke a limit.
    pub fn refused(&mut self, env: &dyn Environment, tag: Option<String>, reason: Refusal, close: bool) -> Progress {
        let (fact, text) = match reason {
            Refusal::CommandTooLong => (Fact::CommandTooLong, "Command line too long"),
            Refusal::LiteralTooBig => (Fact::LiteralTooBig, "[TOOBIG] Literal too large"),
        };
        env.report(fact);
        if close {
            self.untagged(&format!("BYE {text}"));
            return Progress::Close;
        }
        match tag {
            Some(tag) if reason == Refusal::LiteralTooBig => self.tagged(&tag, &format!("NO {text}")),
            Some(tag) => self.tagged(&tag, &format!("BAD {text}")),
            None => self.untagged(&format!("BAD {text}")),
        }
        self.count_error(env)
    }

    /// The client was silent for longer than the autologout timer (RFC 9051 §5.4).
    pub fn timed_out(&mut self) {
        self.untagged("BYE Autologout; idle for too long");
    }

    pub fn shutting_down(&mut self) {
        self.untagged("BYE [UNAVAILABLE] Server shutting down");
    }

    /// One whole command as framed.
    pub async fn command(&mut self, env: &dyn Environment, input: &[u8]) -> Progress {
        if let Some(closing) = self.count_command(env) {
            return closing;
        }
        self.run(env, parse_command(input)).await
    }

    /// [`Session::command`] for a command the driver gives away: APPEND's message is then
    /// held once, as the command's own buffer (see [`parse_command_owned`]).
    pub async fn command_owned(&mut self, env: &dyn Environment, input: Vec<u8>) -> Progress {
        if let Some(closing) = self.count_command(env) {
            return closing;
        }
        self.run(env, parse_command_owned(input)).await
    }

    /// Counts a command; `Some(Close)` past `max_commands`.
    fn count_command(&mut self, env: &dyn Environment) -> Option<Progress> {
        self.commands += 1;
        if self.commands > self.config.max_commands {
            env.report(Fact::TooManyCommands);
            self.untagged("BYE Too many commands");
            return Some(Progress::Close);
        }
        None
    }

    async fn run(&mut self, env: &dyn Environment, parsed: Result<Command, crate::ParseError>) -> Progress {
        let command = match parsed {
            Ok(command) => command,
            Err(e) => {
                let text = format!("BAD Syntax error: {}", e.message);
                match e.tag {
                    Some(tag) => self.tagged(&tag, &text),
                    None => self.untagged(&text),
                }
                return self.count_error(env);
            }
        };
        let tag = command.tag.clone();
        let name = command.body.name();
        self.code = None;
        match self.execute(env, command).await {
            Ok(Some(progress)) => progress,
            Ok(None) => {
                let code = self.code.take().map(|c| format!("{c} ")).unwrap_or_default();
                self.tagged(&tag, &format!("OK {code}{name} completed"));
                self.after_command()
            }
            Err(Answer::No(text)) => {
                self.tagged(&tag, &format!("NO {text}"));
                self.after_command()
            }
            Err(Answer::Bad(text)) => {
                self.tagged(&tag, &format!("BAD {text}"));
                self.count_error(env)
            }
        }
    }

    fn after_command(&self) -> Progress {
        if self.closing {
            Progress::Close
        } else {
            Progress::Ready
        }
    }

    fn count_error(&mut self, env: &dyn Environment) -> Progress {
        self.errors += 1;
        if self.errors > self.config.max_errors {
            env.report(Fact::TooManyErrors);
            self.untagged("BYE Too many errors");
            return Progress::Close;
        }
        Progress::Ready
    }

    /// Continues a command that returned [`Progress::More`].
    pub async fn resume(&mut self, env: &dyn Environment) -> Progress {
        match self.pending.take() {
            Some(Pending::Fetch(pending)) => self.fetch_more(env, *pending).await,
            other => {
                self.pending = other;
                Progress::Ready
            }
        }
    }

    fn untagged(&mut self, text: &str) {
        self.out.extend_from_slice(b"* ");
        self.out.extend_from_slice(text.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    fn tagged(&mut self, tag: &str, text: &str) {
        self.out.extend_from_slice(tag.as_bytes());
        self.out.push(b' ');
        self.out.extend_from_slice(text.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    fn capabilities(&self) -> String {
        let mut caps = String::from("IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE IDLE");
        match self.state {
            State::NotAuthenticated => caps.push_str(" AUTH=PLAIN AUTH=SCRAM-SHA-256 AUTH=SCRAM-SHA-256-PLUS"),
            _ => {
                caps.push_str(
                    " NAMESPACE UNSELECT UIDPLUS MOVE CHILDREN LIST-EXTENDED LIST-STATUS SPECIAL-USE \
                     CREATE-SPECIAL-USE ESEARCH SEARCHRES BINARY CONDSTORE QRESYNC QUOTA QUOTA=RES-STORAGE \
                     STATUS=SIZE UTF8=ACCEPT",
                );
                caps.push_str(&format!(" APPENDLIMIT={}", self.config.max_message_size));
            }
        }
        caps
    }

    async fn execute(&mut self, env: &dyn Environment, command: Command) -> Result<Option<Progress>, Answer> {
        let tag = command.tag;
        let authenticated = !matches!(self.state, State::NotAuthenticated);
        let selected = matches!(self.state, State::Selected(_));
        match command.body {
            CommandBody::Capability => {
                let caps = self.capabilities();
                self.untagged(&format!("CAPABILITY {caps}"));
            }
            CommandBody::Noop | CommandBody::Check => self.sync(env, true, true).await?,
            CommandBody::Logout => {
                self.untagged("BYE Logging out");
                self.closing = true;
            }
            CommandBody::Id(_) => self.untagged("ID (\"name\" \"Portcullis\")"),
            CommandBody::StartTls => return Err(bad("TLS is already active")),
            CommandBody::Login { username, password } => {
                if authenticated {
                    return Err(bad("Already authenticated"));
                }
                let username =
                    String::from_utf8(username).map_err(|_| no("[AUTHENTICATIONFAILED] Invalid username"))?;
                let credentials = Credentials { authzid: String::new(), username, password };
                return self.login(env, &tag, "LOGIN", Attempt::Password(credentials)).await.map(Some);
            }
            CommandBody::Authenticate { mechanism, initial_response } => {
                if authenticated {
                    return Err(bad("Already authenticated"));
                }
                let mechanism = match Mechanism::from_name(&mechanism) {
                    Some(m @ (Mechanism::Plain | Mechanism::ScramSha256 | Mechanism::ScramSha256Plus)) => m,
                    _ => return Err(no("Unsupported authentication mechanism")),
                };
                let binding = self.channel_binding.clone();
                let (exchange, step) =
                    sasl::Exchange::start(mechanism, initial_response.as_deref(), binding.as_deref());
                return self.sasl_step(env, tag, exchange, step).await.map(Some);
            }
            _ if !authenticated => return Err(bad("Log in first")),
            CommandBody::Enable(capabilities) => self.enable(capabilities, selected)?,
            CommandBody::Select { mailbox, read_only, params } => self.select(env, &mailbox, read_only, params).await?,
            CommandBody::Create { mailbox, special_use } => self.create(env, &mailbox, special_use).await?,
            CommandBody::Delete { mailbox } => self.delete(env, &mailbox).await?,
            CommandBody::Rename { from, to } => self.rename(env, &from, &to).await?,
            CommandBody::Subscribe { mailbox } => self.subscribe(env, &mailbox, true).await?,
            CommandBody::Unsubscribe { mailbox } => self.subscribe(env, &mailbox, false).await?,
            CommandBody::List(list) => self.list(env, list).await?,
            CommandBody::Lsub { reference, pattern } => self.lsub(env, &reference, &pattern).await?,
            CommandBody::Namespace => self.untagged("NAMESPACE ((\"\" \"/\")) NIL NIL"),
            CommandBody::Status { mailbox, items } => self.status(env, &mailbox, &items).await?,
            CommandBody::Append { mailbox, flags, date, message } => {
                self.append(env, &mailbox, flags, date, message).await?;
                self.sync(env, true, false).await?;
            }
            CommandBody::GetQuota { root } => self.get_quota(env, &root).await?,
            CommandBody::GetQuotaRoot { mailbox } => self.get_quota_root(env, &mailbox).await?,
            CommandBody::SetQuota { .. } => return Err(no("[NOPERM] Quotas are set by the administrator")),
            CommandBody::Idle => {
                self.out.extend_from_slice(b"+ idling\r\n");
                self.sync(env, true, true).await?;
                self.pending = Some(Pending::Idle { tag });
                return Ok(Some(Progress::Idle));
            }
            _ if !selected => return Err(bad("Select a mailbox first")),
            CommandBody::Close => self.close(env, true).await?,
            CommandBody::Unselect => self.close(env, false).await?,
            CommandBody::Expunge { uids } => self.expunge(env, uids.as_ref()).await?,
            CommandBody::Search(search) => return self.search(env, &tag, search).await.map(Some),
            CommandBody::Fetch(fetch) => return self.fetch(env, tag, fetch).await.map(Some),
            CommandBody::Store(store) => return self.store(env, &tag, store).await.map(Some),
            CommandBody::Copy { uid, set, mailbox } => {
                return self.copy(env, &tag, uid, &set, &mailbox, false).await.map(Some)
            }
            CommandBody::Move { uid, set, mailbox } => {
                return self.copy(env, &tag, uid, &set, &mailbox, true).await.map(Some)
            }
        }
        Ok(None)
    }

    async fn login(
        &mut self,
        env: &dyn Environment,
        tag: &str,
        mechanism: &'static str,
        attempt: Attempt,
    ) -> Result<Progress, Answer> {
        match env.authenticate(mechanism, attempt).await {
            Ok(principal) => {
                let slot = env
                    .store()
                    .acquire_session(principal.account, self.config.max_sessions_per_account)
                    .await
                    .map_err(|_| no("[UNAVAILABLE] Try again later"))?;
                let Some(slot) = slot else {
                    env.report(Fact::TooManySessions);
                    return Err(no("[LIMIT] Too many sessions for this account; close some"));
                };
                self._slot = Some(slot);
                self.principal = Some(principal);
                self.state = State::Authenticated;
                let caps = self.capabilities();
                self.tagged(tag, &format!("OK [CAPABILITY {caps}] Logged in"));
                Ok(Progress::Ready)
            }
            Err(AuthFailure::Temporary) => Err(no("[UNAVAILABLE] Authentication is temporarily unavailable")),
            Err(AuthFailure::InvalidCredentials) => {
                self.auth_failures += 1;
                if self.auth_failures >= self.config.max_auth_failures {
                    env.report(Fact::TooManyAuthFailures);
                    self.tagged(tag, "NO [AUTHENTICATIONFAILED] Authentication failed (accounts with two-factor authentication log in with an app password)");
                    self.untagged("BYE Too many authentication failures");
                    return Ok(Progress::Close);
                }
                Err(no("[AUTHENTICATIONFAILED] Authentication failed (accounts with two-factor authentication log in with an app password)"))
            }
        }
    }

    async fn sasl_step(
        &mut self,
        env: &dyn Environment,
        tag: String,
        mut exchange: sasl::Exchange,
        mut step: sasl::Step,
    ) -> Result<Progress, Answer> {
        let mechanism = exchange.mechanism().name();
        loop {
            return match step {
                sasl::Step::Challenge(challenge) => {
                    self.out.extend_from_slice(format!("+ {}\r\n", sasl::encode(&challenge)).as_bytes());
                    self.pending = Some(Pending::Sasl { tag, exchange });
                    Ok(Progress::SaslLine)
                }
                sasl::Step::Lookup { username } => {
                    let keys = env.scram_keys(&username).await;
                    step = exchange.keys(keys);
                    continue;
                }
                sasl::Step::Attempt(attempt) => self.login(env, &tag, mechanism, attempt).await,
                sasl::Step::Failed(sasl::SaslError::Cancelled) => Err(bad("Authentication cancelled")),
                sasl::Step::Failed(_) => {
                    self.auth_failures += 1;
                    Err(bad("Invalid SASL response"))
                }
            };
        }
    }

    /// The client's answer to a SASL challenge.
    pub async fn sasl_line(&mut self, env: &dyn Environment, line: &[u8]) -> Progress {
        let Some(Pending::Sasl { tag, mut exchange }) = self.pending.take() else {
            return Progress::Ready;
        };
        let step = exchange.step(line);
        match self.sasl_step(env, tag.clone(), exchange, step).await {
            Ok(progress) => progress,
            Err(Answer::No(text)) => {
                self.tagged(&tag, &format!("NO {text}"));
                Progress::Ready
            }
            Err(Answer::Bad(text)) => {
                self.tagged(&tag, &format!("BAD {text}"));
                self.count_error(env)
            }
        }
    }

    fn enable(&mut self, capabilities: Vec<String>, selected: bool) -> Done {
        if selected {
            return Err(bad("ENABLE is only valid before a mailbox is selected"));
        }
        let mut enabled = Vec::new();
        for capability in capabilities {
            let newly = match capability.as_str() {
                "IMAP4REV2" => !std::mem::replace(&mut self.rev2, true) | !std::mem::replace(&mut self.utf8, true),
                "UTF8=ACCEPT" => !std::mem::replace(&mut self.utf8, true),
                "CONDSTORE" => !std::mem::replace(&mut self.condstore, true),
                "QRESYNC" => {
                    self.condstore = true;
                    !std::mem::replace(&mut self.qresync, true)
                }
                _ => false,
            };
            if newly {
                enabled.push(match capability.as_str() {
                    "IMAP4REV2" => "IMAP4rev2".to_string(),
                    other => other.to_string(),
                });
            }
        }
        self.untagged(&format!("ENABLED{}", enabled.iter().map(|c| format!(" {c}")).collect::<String>()));
        Ok(())
    }

    /// The client is idling: tell it what changed.
    pub async fn idle_sync(&mut self, env: &dyn Environment) {
        let _ = self.sync(env, true, false).await;
    }

    /// A line the client sent while idling: DONE ends IDLE.
    pub async fn idle_line(&mut self, env: &dyn Environment, line: &[u8]) -> Progress {
        let Some(Pending::Idle { tag }) = self.pending.take() else {
            return Progress::Ready;
        };
        if line.eq_ignore_ascii_case(b"DONE") {
            let _ = self.sync(env, true, false).await;
            self.tagged(&tag, "OK IDLE terminated");
            Progress::Ready
        } else {
            self.tagged(&tag, "BAD Expected DONE");
            self.count_error(env)
        }
    }

    /// Whether the session is waiting in IDLE.
    pub fn idling(&self) -> bool {
        matches!(self.pending, Some(Pending::Idle { .. }))
    }
}

#[cfg(test)]
mod tests;
