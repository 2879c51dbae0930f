//! The session against a real SQLite store in a temp dir, driven through the framer the way
//! the server drives it.

use std::sync::{Arc, Mutex};

use portcullis_store::{Delivery, FlagOp, Flags, PasswordSecrets, Quota, Store};

use super::*;
use crate::frame::{Frame, Framer, Limits};

const PASSWORD: &str = "correct-horse-battery";

struct TestEnv {
    store: Arc<dyn Store>,
    facts: Mutex<Vec<Fact>>,
    _dir: tempfile::TempDir,
}

#[async_trait]
impl Environment for TestEnv {
    fn store(&self) -> &dyn Store {
        &*self.store
    }

    async fn authenticate(&self, _mechanism: &'static str, attempt: Attempt) -> Result<Principal, AuthFailure> {
        let found = self.store.credentials(attempt.username()).await.map_err(|_| AuthFailure::Temporary)?;
        let ok = match &attempt {
            Attempt::Password(c) => &c.password[..] == PASSWORD.as_bytes(),
            Attempt::Scram { proof, .. } => *proof == sasl::ScramProof::Valid,
        };
        match found {
            Some(c) if ok => Ok(Principal { account: c.account, address: c.address }),
            _ => Err(AuthFailure::InvalidCredentials),
        }
    }

    async fn scram_keys(&self, username: &str) -> ScramKeys {
        ScramKeys::decoy(username, b"test", 4096)
    }

    fn report(&self, fact: Fact) {
        self.facts.lock().unwrap().push(fact);
    }
}

async fn env() -> Arc<TestEnv> {
    let dir = tempfile::tempdir().unwrap();
    let store = portcullis_store_backends::temporary(dir.path(), Some(1 << 20)).unwrap();
    store.add_domain("example.org").await.unwrap();
    for user in ["alice@example.org", "bob@example.org"] {
        store.add_account(user, &PasswordSecrets::hash_only("unused"), Quota::Default).await.unwrap();
    }
    Arc::new(TestEnv { store, facts: Mutex::default(), _dir: dir })
}

fn config() -> Config {
    Config {
        hostname: "mail.example.org".into(),
        max_message_size: 100_000,
        max_auth_failures: 3,
        max_sessions_per_account: 3,
        max_commands: 1000,
        max_errors: 10,
    }
}

struct Client {
    env: Arc<TestEnv>,
    session: Session,
    framer: Framer,
    progress: Progress,
}

impl Client {
    fn new(env: &Arc<TestEnv>) -> Client {
        let mut session = Session::new(config(), None);
        let greeting = String::from_utf8(session.take_output()).unwrap();
        assert!(greeting.starts_with("* OK [CAPABILITY IMAP4rev1 IMAP4rev2 "), "{greeting}");
        Client {
            env: env.clone(),
            session,
            framer: Framer::new(Limits { max_command: 4096, max_append: 100_000 }),
            progress: Progress::Ready,
        }
    }

    async fn logged_in(env: &Arc<TestEnv>, user: &str) -> Client {
        let mut c = Client::new(env);
        let out = c.send(&format!("l LOGIN {user} {PASSWORD}\r\n")).await;
        assert!(out.starts_with("l OK [CAPABILITY "), "{out}");
        c
    }

    async fn selected(env: &Arc<TestEnv>, user: &str, mailbox: &str) -> Client {
        let mut c = Client::logged_in(env, user).await;
        let out = c.send(&format!("s SELECT {mailbox}\r\n")).await;
        assert!(out.contains("s OK [READ-WRITE]"), "{out}");
        c
    }

    /// Feeds input, runs every complete command, returns everything the server said.
    async fn send(&mut self, input: &str) -> String {
        self.send_bytes(input.as_bytes()).await
    }

    async fn send_bytes(&mut self, input: &[u8]) -> String {
        let env: &dyn Environment = &*self.env;
        match self.progress {
            Progress::Idle => {
                self.framer.push(input);
                while let Some(Ok(line)) = self.framer.next_line() {
                    self.progress = self.session.idle_line(env, &line).await;
                    if self.progress != Progress::Idle {
                        break;
                    }
                }
            }
            Progress::SaslLine => {
                self.framer.push(input);
                if let Some(Ok(line)) = self.framer.next_line() {
                    self.progress = self.session.sasl_line(env, &line).await;
                }
            }
            _ => self.framer.push(input),
        }
        while self.progress == Progress::Ready {
            // As the server's driver does: APPEND's big literal only once logged in.
            if self.session.principal().is_some() {
                self.framer.logged_in();
            }
            match self.framer.next_frame() {
                Some(Frame::Command(c)) => {
                    self.progress = self.session.command(env, &c).await;
                    while self.progress == Progress::More {
                        self.progress = self.session.resume(env).await;
                    }
                }
                Some(Frame::Continue) => self.session.continue_literal(),
                Some(Frame::Refused { tag, reason, close }) => {
                    self.progress = self.session.refused(env, tag, reason, close)
                }
                None => break,
            }
        }
        String::from_utf8_lossy(&self.session.take_output()).into_owned()
    }

    async fn idle_wake(&mut self) -> String {
        self.session.mailbox_changed();
        self.session.idle_sync(&*self.env).await;
        String::from_utf8_lossy(&self.session.take_output()).into_owned()
    }
}

async fn deliver(env: &TestEnv, to: &str, raw: &str) {
    let account = env.store.account(to).await.unwrap().unwrap().id;
    env.store
        .deliver(Delivery { recipients: vec![account], raw: raw.as_bytes().to_vec(), internal_date: 1_764_291_600 })
        .await
        .unwrap();
}

const MESSAGE: &str = "From: Alice <alice@example.org>\r\nTo: bob@example.org\r\nSubject: Lunch\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\nMessage-ID: <m1@example.org>\r\n\r\nSee you at noon.\r\n";

#[tokio::test]
async fn login_and_authenticate() {
    let env = env().await;
    let mut c = Client::new(&env);
    assert!(c.send("a CAPABILITY\r\n").await.contains("AUTH=PLAIN"));
    assert_eq!(c.send("b SELECT INBOX\r\n").await, "b BAD Log in first\r\n");
    assert_eq!(
        c.send("c LOGIN alice@example.org wrong\r\n").await,
        "c NO [AUTHENTICATIONFAILED] Authentication failed (accounts with two-factor authentication log in with an app password)\r\n"
    );
    assert_eq!(c.send("d AUTHENTICATE CRAM-MD5\r\n").await, "d NO Unsupported authentication mechanism\r\n");
    let ir = sasl::encode(format!("\0alice@example.org\0{PASSWORD}").as_bytes());
    let out = c.send(&format!("e AUTHENTICATE PLAIN {ir}\r\n")).await;
    assert!(out.starts_with("e OK [CAPABILITY IMAP4rev1 IMAP4rev2") && out.contains("QRESYNC"), "{out}");
    assert_eq!(c.send("f LOGIN x y\r\n").await, "f BAD Already authenticated\r\n");

    let mut c = Client::new(&env);
    assert_eq!(c.send("a AUTHENTICATE PLAIN\r\n").await, "+ \r\n");
    let out = c.send(&format!("{ir}\r\n")).await;
    assert!(out.starts_with("a OK [CAPABILITY"), "{out}");

    let mut c = Client::new(&env);
    c.send("a AUTHENTICATE PLAIN\r\n").await;
    assert_eq!(c.send("*\r\n").await, "a BAD Authentication cancelled\r\n");
}

#[tokio::test]
async fn too_many_auth_failures_end_the_connection() {
    let env = env().await;
    let mut c = Client::new(&env);
    c.send("a LOGIN alice@example.org x\r\n").await;
    c.send("b LOGIN alice@example.org y\r\n").await;
    let out = c.send("c LOGIN alice@example.org z\r\n").await;
    assert!(out.ends_with("* BYE Too many authentication failures\r\n"), "{out}");
    assert_eq!(c.progress, Progress::Close);
    assert_eq!(env.facts.lock().unwrap().as_slice(), &[Fact::TooManyAuthFailures]);
}

#[tokio::test]
async fn sessions_per_account_are_bounded() {
    let env = env().await;
    let _a = Client::logged_in(&env, "alice@example.org").await;
    let _b = Client::logged_in(&env, "alice@example.org").await;
    let _c = Client::logged_in(&env, "alice@example.org").await;
    let mut d = Client::new(&env);
    let out = d.send(&format!("a LOGIN alice@example.org {PASSWORD}\r\n")).await;
    assert_eq!(out, "a NO [LIMIT] Too many sessions for this account; close some\r\n");
    drop(_a);
    assert!(d.send(&format!("b LOGIN alice@example.org {PASSWORD}\r\n")).await.starts_with("b OK"));
}

#[tokio::test]
async fn list_shows_special_use_and_extended_options() {
    let env = env().await;
    let mut c = Client::logged_in(&env, "alice@example.org").await;
    assert_eq!(c.send("a LIST \"\" \"\"\r\n").await, "* LIST (\\Noselect) \"/\" \"\"\r\na OK LIST completed\r\n");
    let out = c.send("b LIST \"\" *\r\n").await;
    assert!(out.starts_with("* LIST (\\HasNoChildren) \"/\" \"INBOX\"\r\n"), "{out}");
    for line in [
        "* LIST (\\HasNoChildren \\Sent) \"/\" \"Sent\"",
        "* LIST (\\HasNoChildren \\Drafts) \"/\" \"Drafts\"",
        "* LIST (\\HasNoChildren \\Trash) \"/\" \"Trash\"",
        "* LIST (\\HasNoChildren \\Junk) \"/\" \"Junk\"",
        "* LIST (\\HasNoChildren \\Archive) \"/\" \"Archive\"",
    ] {
        assert!(out.contains(line), "{line} in {out}");
    }
    let out = c.send("c LIST (SPECIAL-USE) \"\" * RETURN (STATUS (MESSAGES UIDNEXT))\r\n").await;
    assert!(!out.contains("INBOX"), "{out}");
    assert!(out.contains("* STATUS \"Sent\" (MESSAGES 0 UIDNEXT 1)"), "{out}");
    let out = c.send("d LIST \"\" % RETURN (SUBSCRIBED)\r\n").await;
    assert!(out.contains("(\\HasNoChildren \\Subscribed) \"/\" \"INBOX\""), "{out}");
    let out = c.send("e LSUB \"\" *\r\n").await;
    assert!(out.contains("* LSUB () \"/\" \"Drafts\""), "{out}");
}

#[tokio::test]
async fn create_rename_delete_and_subscriptions() {
    let env = env().await;
    let mut c = Client::logged_in(&env, "alice@example.org").await;
    assert_eq!(c.send("a CREATE Projects/2026/Q4\r\n").await, "a OK CREATE completed\r\n");
    let out = c.send("b LIST \"\" Projects*\r\n").await;
    assert!(out.contains("* LIST (\\HasChildren) \"/\" \"Projects\"") && out.contains("\"Projects/2026/Q4\""), "{out}");
    assert_eq!(c.send("c CREATE Projects\r\n").await, "c NO [ALREADYEXISTS] Mailbox already exists\r\n");
    assert_eq!(c.send("d DELETE Projects\r\n").await, "d NO [HASCHILDREN] Mailbox has children; delete them first\r\n");
    assert_eq!(c.send("e RENAME Projects Work\r\n").await, "e OK RENAME completed\r\n");
    assert!(c.send("f LIST \"\" Work/%\r\n").await.contains("\"Work/2026\""));
    assert_eq!(c.send("g DELETE INBOX\r\n").await, "g NO [CANNOT] INBOX cannot be deleted\r\n");
    assert_eq!(c.send("h DELETE Nowhere\r\n").await, "h NO [NONEXISTENT] No such mailbox\r\n");
    assert_eq!(c.send("i CREATE Receipts (USE (\\Archive))\r\n").await, "i OK CREATE completed\r\n");
    assert!(c.send("j LIST \"\" Receipts\r\n").await.contains("\\Archive"));
    assert_eq!(c.send("k SUBSCRIBE Work\r\n").await, "k OK SUBSCRIBE completed\r\n");
    assert!(c.send("l LSUB \"\" Work\r\n").await.contains("* LSUB () \"/\" \"Work\""));
    c.send("m UNSUBSCRIBE Work\r\n").await;
    assert!(!c.send("n LSUB \"\" Work\r\n").await.contains("* LSUB"));
    // INBOX rename moves its messages and leaves INBOX empty.
    deliver(&env, "alice@example.org", MESSAGE).await;
    assert_eq!(c.send("o RENAME INBOX Old\r\n").await, "o OK RENAME completed\r\n");
    assert!(c.send("p STATUS INBOX (MESSAGES)\r\n").await.contains("(MESSAGES 0)"));
    assert!(c.send("q STATUS Old (MESSAGES)\r\n").await.contains("(MESSAGES 1)"));
}

#[tokio::test]
async fn mailbox_names_are_modified_utf7_until_utf8_is_enabled() {
    let env = env().await;
    let mut c = Client::logged_in(&env, "alice@example.org").await;
    assert_eq!(c.send("a CREATE Gr&APwA3w-e\r\n").await, "a OK CREATE completed\r\n");
    assert!(c.send("b LIST \"\" Gr*\r\n").await.contains("\"Gr&APwA3w-e\""));
    assert!(c.send("c CREATE \"Grüße2\"\r\n").await.starts_with("c NO [CANNOT]"));
    assert_eq!(c.send("d ENABLE UTF8=ACCEPT\r\n").await, "* ENABLED UTF8=ACCEPT\r\nd OK ENABLE completed\r\n");
    let out = c.send("e LIST \"\" Gr*\r\n").await;
    assert!(out.contains("Grüße"), "{out}");
}

#[tokio::test]
async fn append_select_and_status() {
    let env = env().await;
    let mut c = Client::logged_in(&env, "alice@example.org").await;
    let out = c
        .send(&format!("a APPEND Drafts (\\Draft $Todo) \"28-Nov-2026 10:00:00 +0100\" {{{}}}\r\n", MESSAGE.len()))
        .await;
    assert_eq!(out, "+ Ready for literal data\r\n");
    let out = c.send(&format!("{MESSAGE}\r\n")).await;
    assert!(out.starts_with("a OK [APPENDUID ") && out.ends_with(" 1] APPEND completed\r\n"), "{out}");
    assert_eq!(c.send("b APPEND Nowhere {3+}\r\nabc\r\n").await, "b NO [TRYCREATE] No such mailbox\r\n");
    let out = c.send("c STATUS Drafts (MESSAGES UNSEEN UIDNEXT SIZE DELETED HIGHESTMODSEQ)\r\n").await;
    assert!(
        out.starts_with(&format!(
            "* STATUS \"Drafts\" (MESSAGES 1 UNSEEN 1 UIDNEXT 2 SIZE {} DELETED 0 HIGHESTMODSEQ ",
            MESSAGE.len()
        )),
        "{out}"
    );
    let out = c.send("d SELECT Drafts\r\n").await;
    for expect in [
        "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Todo)\r\n",
        "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Todo \\*)] Flags permitted\r\n",
        "* 1 EXISTS\r\n",
        "* 1 RECENT\r\n",
        "* OK [UNSEEN 1] First unseen\r\n",
        "* OK [UIDNEXT 2] Predicted next UID\r\n",
        "d OK [READ-WRITE] SELECT completed\r\n",
    ] {
        assert!(out.contains(expect), "{expect} in {out}");
    }
    let out = c.send("e FETCH 1 (FLAGS INTERNALDATE RFC822.SIZE)\r\n").await;
    assert_eq!(out, format!("* 1 FETCH (FLAGS (\\Recent \\Draft $Todo) INTERNALDATE \"28-Nov-2026 09:00:00 +0000\" RFC822.SIZE {})\r\ne OK FETCH completed\r\n", MESSAGE.len()));
    let out = c.send("f EXAMINE Drafts\r\n").await;
    assert!(out.contains("[PERMANENTFLAGS ()]") && out.ends_with("f OK [READ-ONLY] EXAMINE completed\r\n"), "{out}");
    assert!(c.send("g STORE 1 +FLAGS (\\Seen)\r\n").await.starts_with("g NO [READ-ONLY]"));
}

#[tokio::test]
async fn fetch_bodies_sections_and_the_seen_flag() {
    let env = env().await;
    deliver(&env, "alice@example.org", MESSAGE).await;
    let mut c = Client::selected(&env, "alice@example.org", "INBOX").await;
    let out = c.send("a FETCH 1 (ENVELOPE BODYSTRUCTURE)\r\n").await;
    assert!(
        out.contains(
            "ENVELOPE (\"Sat, 28 Nov 2026 10:00:00 +0000\" \"Lunch\" ((\"Alice\" NIL \"alice\" \"example.org\"))"
        ),
        "{out}"
    );
    assert!(out.contains("BODYSTRUCTURE (\"TEXT\" \"PLAIN\""), "{out}");
    let out = c.send("b FETCH 1 (BODY.PEEK[HEADER.FIELDS (Subject)] FLAGS)\r\n").await;
    assert_eq!(
        out,
        "* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {18}\r\nSubject: Lunch\r\n\r\n FLAGS (\\Recent))\r\nb OK FETCH completed\r\n"
    );
    let out = c.send("c FETCH 1 BODY[TEXT]<4.3>\r\n").await;
    assert_eq!(
        out, "* 1 FETCH (BODY[TEXT]<4> {3}\r\nyou FLAGS (\\Recent \\Seen))\r\nc OK FETCH completed\r\n",
        "a non-PEEK fetch sets \\Seen"
    );
    let out = c.send("d UID FETCH 1:* (BODY[])\r\n").await;
    assert!(out.starts_with("* 1 FETCH (UID 1 BODY[] {"), "{out}");
    assert!(out.contains("See you at noon."));
    let out = c.send("e FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[1])\r\n").await;
    assert_eq!(out, "* 1 FETCH (BINARY[1] {18}\r\nSee you at noon.\r\n BINARY.SIZE[1] 18)\r\ne OK FETCH completed\r\n");
    assert_eq!(c.send("f FETCH 2 FLAGS\r\n").await, "f BAD Invalid message sequence number\r\n");
    assert_eq!(c.send("g UID FETCH 99 FLAGS\r\n").await, "g OK FETCH completed\r\n");
    let out = c.send("h FETCH 1 RFC822.HEADER\r\n").await;
    assert!(out.starts_with("* 1 FETCH (RFC822.HEADER {"), "{out}");
}

#[tokio::test]
async fn store_and_conditional_store() {
    let env = env().await;
    for _ in 0..3 {
        deliver(&env, "alice@example.org", MESSAGE).await;
    }
    let mut c = Client::selected(&env, "alice@example.org", "INBOX").await;
    assert_eq!(
        c.send("a STORE 1:2 +FLAGS (\\Flagged)\r\n").await,
        "* 1 FETCH (UID 1 FLAGS (\\Recent \\Flagged))\r\n* 2 FETCH (UID 2 FLAGS (\\Recent \\Flagged))\r\na OK STORE completed\r\n"
    );
    assert_eq!(c.send("b STORE 1 -FLAGS.SILENT (\\Flagged)\r\n").await, "b OK STORE completed\r\n");
    assert_eq!(
        c.send("c UID STORE 3 FLAGS ($Important)\r\n").await,
        "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Important)\r\n\
         * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Important \\*)] Flags permitted\r\n\
         * 3 FETCH (UID 3 FLAGS (\\Recent $Important))\r\nc OK STORE completed\r\n"
    );
    let out = c.send("d FETCH 1:3 (UID MODSEQ)\r\n").await;
    assert!(out.starts_with("* OK [HIGHESTMODSEQ "), "FETCH MODSEQ enables CONDSTORE: {out}");
    let modseq = |n: usize| -> u64 {
        let line = out.lines().filter(|l| l.contains(" FETCH ")).nth(n).unwrap();
        line.split("MODSEQ (").nth(1).unwrap().split(')').next().unwrap().parse().unwrap()
    };
    let (m1, m2) = (modseq(0), modseq(1));
    assert!(m1 > 0 && m2 > 0);
    let out = c.send(&format!("e STORE 1,2 (UNCHANGEDSINCE {m1}) +FLAGS (\\Seen)\r\n")).await;
    if m2 > m1 {
        assert!(out.ends_with("e OK [MODIFIED 2] Conditional STORE failed for some messages\r\n"), "{out}");
    }
    assert!(out.contains("* 1 FETCH (UID 1 FLAGS (\\Recent \\Seen) MODSEQ ("), "{out}");
    let out = c.send("f STORE 1 +FLAGS (\\Recent)\r\n").await;
    assert!(out.ends_with("f OK STORE completed\r\n"), "\\Recent is ignored, not stored: {out}");
    assert!(c.send("g STORE 1 +FLAGS (\\Frob)\r\n").await.starts_with("g BAD"));
}

#[tokio::test]
async fn search_keys_esearch_and_saved_results() {
    let env = env().await;
    deliver(&env, "alice@example.org", MESSAGE).await;
    deliver(&env, "alice@example.org", &MESSAGE.replace("Lunch", "Dinner").replace("noon", "eight")).await;
    deliver(&env, "alice@example.org", "From: carol@example.net\r\nSubject: =?UTF-8?B?R3LDvMOfZQ==?=\r\n\r\nbody\r\n")
        .await;
    let mut c = Client::selected(&env, "alice@example.org", "INBOX").await;
    c.send("a STORE 2 +FLAGS (\\Seen)\r\n").await;
    assert_eq!(c.send("b SEARCH SUBJECT lunch\r\n").await, "* SEARCH 1\r\nb OK SEARCH completed\r\n");
    assert_eq!(c.send("c SEARCH UNSEEN\r\n").await, "* SEARCH 1 3\r\nc OK SEARCH completed\r\n");
    assert_eq!(c.send("d UID SEARCH BODY eight\r\n").await, "* SEARCH 2\r\nd OK SEARCH completed\r\n");
    assert_eq!(c.send("e SEARCH OR FROM carol TEXT noon\r\n").await, "* SEARCH 1 3\r\ne OK SEARCH completed\r\n");
    assert_eq!(c.send("f SEARCH CHARSET UTF-8 SUBJECT {6}\r\n").await, "+ Ready for literal data\r\n");
    assert_eq!(c.send("grüß\r\n").await, "* SEARCH 3\r\nf OK SEARCH completed\r\n");
    assert_eq!(c.send("f2 SEARCH CHARSET UTF-8 SUBJECT \"GRÜSS\"\r\n").await, "* SEARCH\r\nf2 OK SEARCH completed\r\n");
    assert!(c.send("g SEARCH CHARSET KOI8-R ALL\r\n").await.starts_with("g NO [BADCHARSET"));
    assert_eq!(c.send("h SEARCH SENTON 28-Nov-2026 NOT 2\r\n").await, "* SEARCH 1\r\nh OK SEARCH completed\r\n");
    assert_eq!(c.send("i SEARCH LARGER 1000\r\n").await, "* SEARCH\r\ni OK SEARCH completed\r\n");
    assert_eq!(
        c.send("j UID SEARCH RETURN (MIN MAX COUNT ALL) ALL\r\n").await,
        "* ESEARCH (TAG \"j\") UID MIN 1 MAX 3 ALL 1:3 COUNT 3\r\nj OK SEARCH completed\r\n"
    );
    assert_eq!(c.send("k SEARCH RETURN (SAVE) UNSEEN\r\n").await, "k OK SEARCH completed\r\n");
    assert_eq!(
        c.send("l FETCH $ (UID)\r\n").await,
        "* 1 FETCH (UID 1)\r\n* 3 FETCH (UID 3)\r\nl OK FETCH completed\r\n"
    );
    assert_eq!(c.send("m SEARCH HEADER Message-ID m1@example\r\n").await, "* SEARCH 1 2\r\nm OK SEARCH completed\r\n");
    let out = c.send("o SEARCH MODSEQ 1\r\n").await;
    // The first CONDSTORE-enabling command in the selected state tells the HIGHESTMODSEQ
    // (RFC 7162 §3.1).
    assert!(out.starts_with("* OK [HIGHESTMODSEQ ") && out.contains("\r\n* SEARCH 1 2 3 (MODSEQ "), "{out}");
    let out = c.send("p SEARCH MODSEQ 1\r\n").await;
    assert!(out.starts_with("* SEARCH 1 2 3 (MODSEQ "), "once: {out}");
}

#[tokio::test]
async fn rev2_answers_search_with_esearch() {
    let env = env().await;
    deliver(&env, "alice@example.org", MESSAGE).await;
    let mut c = Client::logged_in(&env, "alice@example.org").await;
    assert_eq!(c.send("a ENABLE IMAP4rev2\r\n").await, "* ENABLED IMAP4rev2\r\na OK ENABLE completed\r\n");
    let out = c.send("b SELECT INBOX\r\n").await;
    assert!(!out.contains("RECENT") && out.contains("* LIST () \"/\" \"INBOX\""), "{out}");
    assert_eq!(c.send("c SEARCH ALL\r\n").await, "* ESEARCH (TAG \"c\") ALL 1\r\nc OK SEARCH completed\r\n");
    assert_eq!(c.send("d ENABLE CONDSTORE\r\n").await, "d BAD ENABLE is only valid before a mailbox is selected\r\n");
}

#[tokio::test]
async fn copy_move_and_expunge() {
    let env = env().await;
    for _ in 0..4 {
        deliver(&env, "alice@example.org", MESSAGE).await;
    }
    let mut c = Client::selected(&env, "alice@example.org", "INBOX").await;
    let out = c.send("a COPY 1:2 Archive\r\n").await;
    assert!(out.starts_with("a OK [COPYUID ") && out.ends_with(" 1:2 1:2] COPY completed\r\n"), "{out}");
    assert_eq!(c.send("b COPY 1 Nowhere\r\n").await, "b NO [TRYCREATE] No such mailbox\r\n");
    let out = c.send("c UID MOVE 3 Trash\r\n").await;
    assert!(
        out.starts_with("* OK [COPYUID ") && out.contains(" 3 1] Moved\r\n* 3 EXPUNGE\r\nc OK MOVE completed\r\n"),
        "{out}"
    );
    c.send("d STORE 1 +FLAGS.SILENT (\\Deleted)\r\n").await;
    c.send("e STORE 3 +FLAGS.SILENT (\\Deleted)\r\n").await;
    assert_eq!(c.send("f UID EXPUNGE 4\r\n").await, "* 3 EXPUNGE\r\nf OK EXPUNGE completed\r\n");
    assert_eq!(c.send("g EXPUNGE\r\n").await, "* 1 EXPUNGE\r\ng OK EXPUNGE completed\r\n");
    assert_eq!(c.send("h FETCH 1:* UID\r\n").await, "* 1 FETCH (UID 2)\r\nh OK FETCH completed\r\n");
    c.send("i STORE 1 +FLAGS.SILENT (\\Deleted)\r\n").await;
    assert_eq!(c.send("j CLOSE\r\n").await, "j OK CLOSE completed\r\n");
    assert!(c.send("k STATUS INBOX (MESSAGES)\r\n").await.contains("(MESSAGES 0)"));
    assert_eq!(c.send("l FETCH 1 FLAGS\r\n").await, "l BAD Select a mailbox first\r\n");
}

#[tokio::test]
async fn another_sessions_changes_arrive_without_renumbering_mid_command() {
    let env = env().await;
    for _ in 0..3 {
        deliver(&env, "alice@example.org", MESSAGE).await;
    }
    let mut a = Client::selected(&env, "alice@example.org", "INBOX").await;
    let mut b = Client::selected(&env, "alice@example.org", "INBOX").await;
    b.send("x STORE 2 +FLAGS.SILENT (\\Deleted \\Seen)\r\n").await;
    b.send("y EXPUNGE\r\n").await;
    a.session.mailbox_changed();
    // FETCH must not renumber: no EXPUNGE, though it may say what it knows of flags.
    let out = a.send("f FETCH 1:3 (UID)\r\n").await;
    assert!(!out.contains("EXPUNGE"), "{out}");
    assert!(out.contains("* 1 FETCH (UID 1)") && out.contains("* 3 FETCH (UID 3)"), "{out}");
    // NOOP tells.
    let out = a.send("n NOOP\r\n").await;
    assert!(out.contains("* 2 EXPUNGE\r\n"), "{out}");
    deliver(&env, "alice@example.org", MESSAGE).await;
    a.session.mailbox_changed();
    // The first session to hear of a message has it as \Recent, and no other (RFC 3501
    // §2.3.2): `a` selected first and took all three, and now the new one.
    assert_eq!(a.send("o NOOP\r\n").await, "* 3 EXISTS\r\n* 3 RECENT\r\no OK NOOP completed\r\n");
    b.session.mailbox_changed();
    assert_eq!(b.send("o NOOP\r\n").await, "* 3 EXISTS\r\n* 0 RECENT\r\no OK NOOP completed\r\n");
    b.send("z STORE 1 +FLAGS (\\Answered)\r\n").await;
    a.session.mailbox_changed();
    assert!(a.send("p NOOP\r\n").await.contains("* 1 FETCH (UID 1 FLAGS (\\Recent \\Answered))"));
    assert_eq!(b.send("q SEARCH RECENT\r\n").await, "* SEARCH\r\nq OK SEARCH completed\r\n");
    assert_eq!(a.send("q SEARCH RECENT\r\n").await, "* SEARCH 1 2 3\r\nq OK SEARCH completed\r\n");
}

#[tokio::test]
async fn idle_hears_deliveries() {
    let env = env().await;
    let mut a = Client::selected(&env, "alice@example.org", "INBOX").await;
    assert_eq!(a.send("i IDLE\r\n").await, "+ idling\r\n");
    assert_eq!(a.progress, Progress::Idle);
    deliver(&env, "alice@example.org", MESSAGE).await;
    // The EXISTS at once; the \Recent claim (a write) waits for DONE.
    assert_eq!(a.idle_wake().await, "* 1 EXISTS\r\n");
    assert_eq!(a.send("DONE\r\n").await, "* 1 RECENT\r\ni OK IDLE terminated\r\n");
    assert_eq!(a.progress, Progress::Ready);
    assert_eq!(a.send("f FETCH 1 FLAGS\r\n").await, "* 1 FETCH (FLAGS (\\Recent))\r\nf OK FETCH completed\r\n");
}

#[tokio::test]
async fn condstore_and_qresync() {
    let env = env().await;
    for _ in 0..3 {
        deliver(&env, "alice@example.org", MESSAGE).await;
    }
    let mut c = Client::logged_in(&env, "alice@example.org").await;
    assert_eq!(c.send("a ENABLE QRESYNC\r\n").await, "* ENABLED QRESYNC\r\na OK ENABLE completed\r\n");
    let out = c.send("b SELECT INBOX (CONDSTORE)\r\n").await;
    let highest: u64 = out.split("[HIGHESTMODSEQ ").nth(1).unwrap().split(']').next().unwrap().parse().unwrap();
    let validity: u32 = out.split("[UIDVALIDITY ").nth(1).unwrap().split(']').next().unwrap().parse().unwrap();
    c.send("c STORE 1 +FLAGS.SILENT (\\Deleted)\r\n").await;
    assert_eq!(c.send("d EXPUNGE\r\n").await, "* VANISHED 1\r\nd OK EXPUNGE completed\r\n");
    c.send("e STORE 1 +FLAGS.SILENT (\\Seen)\r\n").await;
    let out = c.send(&format!("f UID FETCH 1:* (FLAGS) (CHANGEDSINCE {highest} VANISHED)\r\n")).await;
    assert!(out.starts_with("* VANISHED (EARLIER) 1\r\n* 1 FETCH (UID 2 FLAGS (\\Recent \\Seen) MODSEQ ("), "{out}");
    c.send("g UNSELECT\r\n").await;
    let out = c.send(&format!("h SELECT INBOX (QRESYNC ({validity} {highest} 1:3))\r\n")).await;
    assert!(out.contains("* VANISHED (EARLIER) 1\r\n"), "{out}");
    assert!(out.contains("FETCH (UID 2 FLAGS (\\Seen) MODSEQ ("), "{out}");
    let out = c.send("i SELECT Sent\r\n").await;
    assert!(out.starts_with("* OK [CLOSED]"), "{out}");
}

#[tokio::test]
async fn quota() {
    let env = env().await;
    deliver(&env, "alice@example.org", MESSAGE).await;
    let mut c = Client::logged_in(&env, "alice@example.org").await;
    let out = c.send("a GETQUOTAROOT INBOX\r\n").await;
    assert_eq!(out, "* QUOTAROOT \"INBOX\" \"\"\r\n* QUOTA \"\" (STORAGE 1 1024)\r\na OK GETQUOTAROOT completed\r\n");
    assert!(c.send("b SETQUOTA \"\" (STORAGE 1)\r\n").await.starts_with("b NO [NOPERM]"));
    let big = "x".repeat(99_000);
    for _ in 0..12 {
        let out = c.send(&format!("c APPEND INBOX {{{}+}}\r\n{big}\r\n", big.len())).await;
        if out.starts_with("c NO [OVERQUOTA]") {
            return;
        }
    }
    panic!("the quota was never reached");
}

#[tokio::test]
async fn garbage_and_limits() {
    let env = env().await;
    let mut c = Client::logged_in(&env, "alice@example.org").await;
    assert!(c.send("a FROB\r\n").await.starts_with("a BAD Syntax error"));
    assert!(c.send("\r\n").await.starts_with("* BAD Syntax error"));
    assert!(c.send(&format!("b NOOP {}\r\n", "x".repeat(5000))).await.starts_with("b BAD Command line too long"));
    assert_eq!(c.send("c APPEND INBOX {200000}\r\n").await, "c NO [TOOBIG] Literal too large\r\n");
    assert_eq!(c.send("d NOOP\r\n").await, "d OK NOOP completed\r\n");
    let out = c.send_bytes(b"e SELECT \xff\xfe\r\n").await;
    assert!(out.starts_with("e BAD"), "{out}");
    let out = c.send_bytes(b"e2 SELECT \"\xff\xfe\"\r\n").await;
    assert!(out.starts_with("e2 NO [CANNOT]"), "{out}");
    let mut last = String::new();
    for i in 0..20 {
        last = c.send(&format!("t{i} BOGUS\r\n")).await;
        if c.progress == Progress::Close {
            break;
        }
    }
    assert!(last.ends_with("* BYE Too many errors\r\n"), "{last}");
    assert_eq!(c.send("").await, "");
    let mut c = Client::new(&env);
    assert!(c.send("a APPEND INBOX {99999999+}\r\n").await.starts_with("* BYE"));
    assert_eq!(c.progress, Progress::Close);
}

#[tokio::test]
async fn logout_and_namespace_and_id() {
    let env = env().await;
    let mut c = Client::logged_in(&env, "alice@example.org").await;
    assert_eq!(c.send("a NAMESPACE\r\n").await, "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\na OK NAMESPACE completed\r\n");
    assert_eq!(c.send("b ID (\"name\" \"test\")\r\n").await, "* ID (\"name\" \"Portcullis\")\r\nb OK ID completed\r\n");
    assert_eq!(c.send("c LOGOUT\r\n").await, "* BYE Logging out\r\nc OK LOGOUT completed\r\n");
    assert_eq!(c.progress, Progress::Close);
}

/// Header keys on cached fields are answered from the header caches; the same keys beside an
/// uncached field (read from the headers, with the quick look first) or beside a body key
/// (read from the whole messages) must give the same answers on awkward headers.
#[tokio::test]
async fn header_search_answers_alike_from_caches_headers_and_messages() {
    let env = env().await;
    let messages = [
        MESSAGE.to_string(),
        "Message-Id:<dup@example.org>\r\nmessage-id: <m1@example.org>\r\nSubject: a long\r\n  folded\r\n\tsubject line\r\nX-Tag: two words\r\n\r\nx\r\n".into(),
        "Subject: =?utf-8?q?Caf=C3=A9?= =?utf-8?q?_cr=C3=A8me?=\r\nFrom: =?iso-8859-1?q?Andr=E9?= <andre@example.org>\r\nCc:\r\nX-Tag: =?utf-8?q?hidden?=\r\n\r\nx\r\n".into(),
        "Subject: Caf\u{e9} cr\u{e8}me 5 \u{212a}m\r\nTo: a@example.org,\r\n b@example.org\r\nReferences: <r1@x> <r2@x>\r\n <m1@example.org>\r\nIn-Reply-To: <m1@example.org>\r\n\r\nx\r\n".into(),
        "Subject : spaced\nBcc: hidden@example.org\nX-Other: v\n\nx\n".into(),
        "X-Nothing: here\r\n\r\nx\r\n".into(),
        // Too long to be cached: read from the header even where the caches answer.
        format!("References:{} <m1@example.org>\r\n\r\nx\r\n", (0..300).map(|i| format!("\r\n <r{i}@x>")).collect::<String>()),
    ];
    for raw in &messages {
        deliver(&env, "alice@example.org", raw).await;
    }
    let mut c = Client::selected(&env, "alice@example.org", "INBOX").await;
    let fields = ["Message-ID", "Subject", "From", "To", "Cc", "Bcc", "In-Reply-To", "References"];
    let needles = [
        "",
        "m1@example",
        "<M1@EXAMPLE.ORG>",
        "dup",
        "folded subject",
        "long folded",
        "café",
        "CRÈME",
        "café crème",
        "andré",
        "k",
        "km",
        "b@example.org",
        "<r2@x> <m1",
        "spaced",
        "hidden",
        "nothing",
        "lunch",
        "alice",
        "<",
    ];
    let mut matched = 0;
    for field in fields {
        for needle in needles {
            let cached = c.send(&format!("a SEARCH CHARSET UTF-8 HEADER {field} \"{needle}\"\r\n")).await;
            let headers = c
                .send(&format!("b SEARCH CHARSET UTF-8 OR HEADER {field} \"{needle}\" HEADER X-Never \"{needle}\"\r\n"))
                .await;
            let whole =
                c.send(&format!("c SEARCH CHARSET UTF-8 OR HEADER {field} \"{needle}\" BODY \"qqzzqq\"\r\n")).await;
            let answer = cached.strip_suffix("a OK SEARCH completed\r\n").unwrap_or_else(|| panic!("{cached}"));
            assert_eq!(headers.strip_suffix("b OK SEARCH completed\r\n"), Some(answer), "{field} {needle:?}");
            assert_eq!(whole.strip_suffix("c OK SEARCH completed\r\n"), Some(answer), "{field} {needle:?}");
            matched += usize::from(answer != "* SEARCH\r\n");
        }
    }
    assert!(matched > 20, "{matched}");
    // Some answers spelled out.
    assert_eq!(
        c.send("z SEARCH CHARSET UTF-8 HEADER Message-ID <m1@example.org>\r\n").await,
        "* SEARCH 1 2\r\nz OK SEARCH completed\r\n"
    );
    assert_eq!(c.send("z SEARCH CHARSET UTF-8 HEADER Cc \"\"\r\n").await, "* SEARCH 3\r\nz OK SEARCH completed\r\n");
    assert_eq!(
        c.send("z SEARCH CHARSET UTF-8 SUBJECT \"café crème\"\r\n").await,
        "* SEARCH 3 4\r\nz OK SEARCH completed\r\n"
    );
    assert_eq!(
        c.send("z SEARCH CHARSET UTF-8 SUBJECT \"folded subject\"\r\n").await,
        "* SEARCH 2\r\nz OK SEARCH completed\r\n"
    );
    assert_eq!(c.send("z SEARCH CHARSET UTF-8 SUBJECT k\r\n").await, "* SEARCH 4\r\nz OK SEARCH completed\r\n");
    assert_eq!(
        c.send("z SEARCH CHARSET UTF-8 HEADER X-Tag hidden\r\n").await,
        "* SEARCH 3\r\nz OK SEARCH completed\r\n"
    );
    assert_eq!(
        c.send("z SEARCH CHARSET UTF-8 HEADER X-Tag \"two words\"\r\n").await,
        "* SEARCH 2\r\nz OK SEARCH completed\r\n"
    );
    assert_eq!(
        c.send("z SEARCH CHARSET UTF-8 HEADER x-nothing \"\"\r\n").await,
        "* SEARCH 6\r\nz OK SEARCH completed\r\n"
    );
    assert_eq!(
        c.send("z SEARCH CHARSET UTF-8 NOT HEADER Subject \"\"\r\n").await,
        "* SEARCH 6 7\r\nz OK SEARCH completed\r\n"
    );
    assert_eq!(
        c.send("z SEARCH HEADER References <m1@example.org>\r\n").await,
        "* SEARCH 4 7\r\nz OK SEARCH completed\r\n"
    );
    assert_eq!(
        c.send("z SEARCH HEADER References \"<r299@x> <m1@\"\r\n").await,
        "* SEARCH 7\r\nz OK SEARCH completed\r\n"
    );
}

/// What SELECT and a FETCH of every message's flags say in a new session on a store opened
/// afresh on the same file: no shared message list, every row read from the database.
async fn select_from_the_database(env: &TestEnv, mailbox: &str) -> String {
    let fresh = Arc::new(TestEnv {
        store: portcullis_store_backends::temporary(env._dir.path(), Some(1 << 20)).unwrap(),
        facts: Mutex::default(),
        _dir: tempfile::tempdir().unwrap(),
    });
    let mut c = Client::logged_in(&fresh, "alice@example.org").await;
    let selected = c.send(&format!("s SELECT {mailbox} (CONDSTORE)\r\n")).await;
    without_recent(selected + &c.send("f FETCH 1:* (UID FLAGS MODSEQ)\r\n").await)
}

/// \Recent goes to whichever session sees a message first (see `recent_goes_to_one_session`),
/// so two sessions' views of the same mailbox are compared without it.
fn without_recent(out: String) -> String {
    out.lines()
        .filter(|l| !(l.starts_with("* ") && l.ends_with(" RECENT")))
        .map(|l| l.replace("\\Recent ", "").replace("(\\Recent)", "()") + "\r\n")
        .collect()
}

/// SELECT is served from the store's shared message list, brought forward by MODSEQ: what
/// another connection (STORE, EXPUNGE, APPEND) or another process on the same file (the
/// admin CLI; it tells this store nothing) changed since must show, byte for byte as a
/// store that reads everything from the database shows it, and a mailbox deleted and
/// created again (a new UIDVALIDITY) must show none of the old list.
#[tokio::test]
async fn select_sees_what_other_connections_and_processes_changed() {
    let env = env().await;
    for _ in 0..5 {
        deliver(&env, "alice@example.org", MESSAGE).await;
    }
    let mut a = Client::logged_in(&env, "alice@example.org").await;
    let mut b = Client::selected(&env, "alice@example.org", "INBOX").await;
    async fn reselect(a: &mut Client, mailbox: &str) -> String {
        let selected = a.send(&format!("s SELECT {mailbox} (CONDSTORE)\r\n")).await;
        without_recent(selected + &a.send("f FETCH 1:* (UID FLAGS MODSEQ)\r\n").await)
    }
    let first = reselect(&mut a, "INBOX").await;
    assert_eq!(first, select_from_the_database(&env, "INBOX").await);
    assert!(first.contains("* 5 EXISTS\r\n"), "{first}");

    // Another connection changes flags and keywords.
    b.send("x STORE 1:2 +FLAGS (\\Flagged $Work)\r\n").await;
    let after_store = reselect(&mut a, "INBOX").await;
    assert_eq!(after_store, select_from_the_database(&env, "INBOX").await);
    assert!(after_store.contains("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work)\r\n"), "{after_store}");
    assert!(after_store.contains("* 2 FETCH (UID 2 FLAGS (\\Flagged $Work) MODSEQ ("), "{after_store}");

    // ... expunges ...
    b.send("y STORE 3 +FLAGS.SILENT (\\Deleted)\r\n").await;
    b.send("z EXPUNGE\r\n").await;
    let after_expunge = reselect(&mut a, "INBOX").await;
    assert_eq!(after_expunge, select_from_the_database(&env, "INBOX").await);
    assert!(after_expunge.contains("* 4 EXISTS\r\n") && !after_expunge.contains("(UID 3 "), "{after_expunge}");

    // ... and appends.
    let raw = MESSAGE.replace("Lunch", "Appended");
    let out = b.send(&format!("w APPEND INBOX (\\Seen) {{{}+}}\r\n{raw}\r\n", raw.len())).await;
    assert!(out.contains("w OK [APPENDUID "), "{out}");
    let after_append = reselect(&mut a, "INBOX").await;
    assert_eq!(after_append, select_from_the_database(&env, "INBOX").await);
    assert!(
        after_append.contains("* 5 EXISTS\r\n") && after_append.contains("(UID 6 FLAGS (\\Seen)"),
        "{after_append}"
    );

    // Another process: all three at once, announced to no one.
    let other = portcullis_store_backends::temporary(env._dir.path(), Some(1 << 20)).unwrap();
    let alice = other.account("alice@example.org").await.unwrap().unwrap().id;
    let inbox = other.mailbox(alice, "INBOX").await.unwrap().unwrap().id;
    other.store_flags(inbox, &[1], FlagOp::Replace, &Flags::system(Flags::DRAFT), None).await.unwrap();
    other.expunge(inbox, &[2]).await.unwrap();
    other.append(inbox, raw.as_bytes().to_vec(), Flags::default(), 0).await.unwrap();
    let after_cli = reselect(&mut a, "INBOX").await;
    assert_eq!(after_cli, select_from_the_database(&env, "INBOX").await);
    assert!(after_cli.contains("* 1 FETCH (UID 1 FLAGS (\\Draft) MODSEQ ("), "{after_cli}");
    assert!(after_cli.contains("* 5 EXISTS\r\n") && !after_cli.contains("(UID 2 "), "{after_cli}");
    assert!(after_cli.contains("(UID 7 FLAGS () "), "{after_cli}");

    // Deleted and created again under the same name, with one message: a new UIDVALIDITY and
    // nothing of the old list.
    b.send("c CREATE Archive\r\n").await;
    b.send("d COPY 1:* Archive\r\n").await;
    let archive = reselect(&mut a, "Archive").await;
    assert_eq!(archive, select_from_the_database(&env, "Archive").await);
    assert!(archive.contains("* 4 EXISTS\r\n"), "{archive}");
    a.send("u UNSELECT\r\n").await;
    other.delete_mailbox(alice, "Archive").await.unwrap();
    other.create_mailbox(alice, "Archive", None).await.unwrap();
    let archive_id = other.mailbox(alice, "Archive").await.unwrap().unwrap().id;
    other.append(archive_id, raw.as_bytes().to_vec(), Flags::default(), 0).await.unwrap();
    let recreated = reselect(&mut a, "Archive").await;
    assert_eq!(recreated, select_from_the_database(&env, "Archive").await);
    assert!(
        recreated.contains("* 1 EXISTS\r\n") && recreated.contains("* 1 FETCH (UID 1 FLAGS () MODSEQ"),
        "{recreated}"
    );
    let validity = |out: &str| out.split("[UIDVALIDITY ").nth(1).and_then(|s| s.split(']').next()).map(str::to_owned);
    assert_ne!(validity(&recreated), validity(&archive));
    assert!(validity(&archive).is_some());
}

mod bounds;
mod compliance;
