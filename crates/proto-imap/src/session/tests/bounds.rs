//! What one command may make the session hold or compute (issue 13, items 1 and 3), in the
//! sans-IO session: FETCH output handed over in bounded steps with large bodies read a piece at
//! a time, items named twice answered once, a message removed in the middle of its literal, the
//! caps on sections, search keys and LIST patterns, and SEARCH over messages larger than what
//! is read at a time.

use super::*;

/// As `env`, without a quota: the messages here are large.
async fn roomy_env() -> Arc<TestEnv> {
    let dir = tempfile::tempdir().unwrap();
    let store = portcullis_store_backends::temporary(dir.path(), None).unwrap();
    store.add_domain("example.org").await.unwrap();
    store.add_account("alice@example.org", &PasswordSecrets::hash_only("unused"), Quota::Default).await.unwrap();
    Arc::new(TestEnv { store, facts: Mutex::default(), _dir: dir })
}

/// A selected session that takes commands as long as the server does (64 KiB).
async fn selected(env: &Arc<TestEnv>) -> Client {
    let mut c = Client::selected(env, "alice@example.org", "INBOX").await;
    c.framer = Framer::new(Limits { max_command: 64 * 1024, max_append: 100_000 });
    c
}

/// The output of one step may exceed the flush threshold by at most one piece and a line.
const STEP_BOUND: usize = 256 * 1024 + 256 * 1024 + 4096;

/// A message of about `size` bytes: a short text part and a base64 attachment.
fn large_message(size: usize) -> String {
    let mut out = String::from(
        "From: alice@example.org\r\nSubject: large\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
         --b\r\nContent-Type: text/plain\r\n\r\nsmall text\r\n\
         --b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n",
    );
    let line = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4\r\n";
    while out.len() + line.len() < size {
        out.push_str(line);
    }
    out.push_str("--b--\r\n");
    out
}

/// Runs one command to its end as the driver does, taking the output at each step: the steps'
/// sizes, everything said, and how the command ended.
async fn stepwise(c: &mut Client, command: &str) -> (Vec<usize>, Vec<u8>, Progress) {
    let env: &dyn Environment = &*c.env;
    c.framer.push(command.as_bytes());
    let Some(Frame::Command(command)) = c.framer.next_frame() else { panic!("not a command") };
    let mut progress = c.session.command(env, &command).await;
    let mut steps = Vec::new();
    let mut all = Vec::new();
    loop {
        let out = c.session.take_output();
        steps.push(out.len());
        all.extend_from_slice(&out);
        if progress != Progress::More {
            return (steps, all, progress);
        }
        progress = c.session.resume(env).await;
    }
}

fn literal(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{{{}}}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out
}

#[tokio::test]
async fn large_bodies_go_out_a_piece_at_a_time_and_whole() {
    let env = roomy_env().await;
    let raw = large_message(1_500_000);
    deliver(&env, "alice@example.org", &raw).await;
    deliver(&env, "alice@example.org", MESSAGE).await;
    let mut c = selected(&env).await;
    let bytes = raw.as_bytes();
    let part = |p: &[u32]| portcullis_mime::section(bytes, &Section { part: p.to_vec(), text: None }).unwrap();
    let decoded = portcullis_mime::binary(bytes, &[2]).unwrap().unwrap();

    let (steps, out, progress) = stepwise(
        &mut c,
        "a FETCH 1 (BODY.PEEK[] BODY.PEEK[]<10.20> BINARY.PEEK[2] BODY.PEEK[2]<5.100> BINARY.SIZE[2] \
         BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[1] BODY.PEEK[TEXT]<1400000.999999>)\r\n",
    )
    .await;
    assert_eq!(progress, Progress::Ready);
    assert!(steps.len() > 4, "handed over in steps: {steps:?}");
    assert!(steps.iter().all(|&s| s <= STEP_BOUND), "{steps:?}");
    let header_len = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let mut expected = b"* 1 FETCH (BODY[] ".to_vec();
    expected.extend(literal(bytes));
    expected.extend(b" BODY[]<10> ");
    expected.extend(literal(&bytes[10..30]));
    // The attachment holds NUL: a literal8 (RFC 3516).
    expected.extend(b" BINARY[2] ~");
    expected.extend(literal(&decoded));
    expected.extend(b" BODY[2]<5> ");
    expected.extend(literal(&part(&[2])[5..105]));
    expected.extend(format!(" BINARY.SIZE[2] {}", decoded.len()).as_bytes());
    expected.extend(b" BODY[HEADER.FIELDS (SUBJECT)] ");
    expected.extend(literal(b"Subject: large\r\n\r\n"));
    expected.extend(b" BODY[1] ");
    expected.extend(literal(b"small text"));
    expected.extend(b" BODY[TEXT]<1400000> ");
    expected.extend(literal(&bytes[header_len + 1_400_000..]));
    expected.extend(b")\r\na OK FETCH completed\r\n");
    let same = out.iter().zip(&expected).take_while(|(a, b)| a == b).count();
    assert!(
        out == expected,
        "they differ from byte {same} of {} (expected {}): {:?} where {:?} was expected",
        out.len(),
        expected.len(),
        String::from_utf8_lossy(&out[same.saturating_sub(40)..(same + 60).min(out.len())]),
        String::from_utf8_lossy(&expected[same.saturating_sub(40)..(same + 60).min(expected.len())]),
    );

    // Both messages, a small one among them, in one answer.
    let (steps, out, _) = stepwise(&mut c, "b FETCH 1:* (UID RFC822.SIZE BODY.PEEK[])\r\n").await;
    assert!(steps.iter().all(|&s| s <= STEP_BOUND), "{steps:?}");
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with(&format!("* 1 FETCH (UID 1 RFC822.SIZE {} BODY[] {{{}}}\r\n", raw.len(), raw.len())));
    assert!(text.ends_with(&format!(
        "* 2 FETCH (UID 2 RFC822.SIZE {0} BODY[] {{{0}}}\r\n{MESSAGE})\r\nb OK FETCH completed\r\n",
        MESSAGE.len()
    )));
}

#[tokio::test]
async fn items_named_again_are_answered_once() {
    let env = roomy_env().await;
    deliver(&env, "alice@example.org", MESSAGE).await;
    let mut c = selected(&env).await;
    let items = ["BODY.PEEK[TEXT]"; 400].join(" ");
    let out = c.send(&format!("a FETCH 1 (FLAGS {items} BODY[TEXT] FLAGS UID UID)\r\n")).await;
    assert_eq!(
        out,
        "* 1 FETCH (FLAGS (\\Recent \\Seen) BODY[TEXT] {18}\r\nSee you at noon.\r\n UID 1)\r\na OK FETCH completed\r\n",
        "BODY[TEXT] was asked without PEEK too: \\Seen is set first"
    );
}

#[tokio::test]
async fn sections_per_fetch_are_capped() {
    let env = roomy_env().await;
    deliver(&env, "alice@example.org", MESSAGE).await;
    let mut c = selected(&env).await;
    let many: Vec<String> = (1..=101).map(|n| format!("BODY.PEEK[{n}]")).collect();
    let out = c.send(&format!("a FETCH 1 ({})\r\n", many.join(" "))).await;
    assert_eq!(out, "a NO [LIMIT] At most 100 distinct sections in one FETCH\r\n");
    let out = c.send(&format!("b FETCH 1 ({})\r\n", many[..100].join(" "))).await;
    assert!(out.ends_with("b OK FETCH completed\r\n"), "{out}");
}

/// A literal announced cannot be taken back: when its message goes in the middle of it, the
/// only honest answer is to close the connection.
#[tokio::test]
async fn a_message_removed_in_the_middle_of_its_literal_ends_the_connection() {
    let env = roomy_env().await;
    deliver(&env, "alice@example.org", &large_message(2_000_000)).await;
    let mut c = selected(&env).await;
    let envr: &dyn Environment = &*c.env;
    c.framer.push(b"a FETCH 1 BODY.PEEK[]\r\n");
    let Some(Frame::Command(command)) = c.framer.next_frame() else { panic!() };
    assert_eq!(c.session.command(envr, &command).await, Progress::More);
    let first = c.session.take_output();
    assert!(first.starts_with(b"* 1 FETCH (BODY[] {"));
    let alice = env.store.account("alice@example.org").await.unwrap().unwrap().id;
    let inbox = env.store.mailbox(alice, "INBOX").await.unwrap().unwrap();
    env.store.expunge(inbox.id, &[1]).await.unwrap();
    let mut progress = Progress::More;
    while progress == Progress::More {
        progress = c.session.resume(envr).await;
        c.session.take_output();
    }
    assert_eq!(progress, Progress::Close);
}

#[tokio::test]
async fn search_keys_and_list_patterns_are_capped() {
    let env = roomy_env().await;
    deliver(&env, "alice@example.org", MESSAGE).await;
    let mut c = selected(&env).await;
    let keys = vec!["ALL"; 1001].join(" ");
    let out = c.send(&format!("a SEARCH {keys}\r\n")).await;
    assert!(out.starts_with("a BAD "), "{out}");
    let keys = vec!["ALL"; 1000].join(" ");
    assert_eq!(c.send(&format!("b SEARCH {keys}\r\n")).await, "* SEARCH 1\r\nb OK SEARCH completed\r\n");
    let out = c.send(&format!("c LIST \"\" \"{}\"\r\n", "a".repeat(4097))).await;
    assert!(out.starts_with("c NO [LIMIT] "), "{out}");
    let out = c.send(&format!("d LIST \"\" \"{}\"\r\n", "*a".repeat(17))).await;
    assert!(out.starts_with("d NO [LIMIT] "), "{out}");
    let out = c.send(&format!("e LIST \"\" \"{}\"\r\n", "*%a".repeat(16))).await;
    assert_eq!(out, "e OK LIST completed\r\n", "runs of wildcards count once");
    let out = c.send(&format!("f LSUB \"\" \"{}\"\r\n", "*a".repeat(17))).await;
    assert!(out.starts_with("f NO [LIMIT] "), "{out}");
}

/// SEARCH reads bodies a few at a time: a mailbox of messages larger than that still finds
/// every match, the first message and the last.
#[tokio::test]
async fn search_reads_large_bodies_a_few_at_a_time() {
    let env = roomy_env().await;
    let large = large_message(700_000).replace("small text", "needle text");
    for i in 0..5 {
        deliver(&env, "alice@example.org", if i % 2 == 0 { &large } else { MESSAGE }).await;
    }
    let mut c = selected(&env).await;
    assert_eq!(c.send("a SEARCH BODY needle\r\n").await, "* SEARCH 1 3 5\r\na OK SEARCH completed\r\n");
    assert_eq!(c.send("b SEARCH TEXT noon\r\n").await, "* SEARCH 2 4\r\nb OK SEARCH completed\r\n");
    assert_eq!(
        c.send("c SEARCH OR TEXT large SUBJECT lunch\r\n").await,
        "* SEARCH 1 2 3 4 5\r\nc OK SEARCH completed\r\n"
    );
    assert_eq!(c.send("d SEARCH HEADER Subject large\r\n").await, "* SEARCH 1 3 5\r\nd OK SEARCH completed\r\n");
    assert_eq!(c.send("e SEARCH NOT BODY needle LARGER 100\r\n").await, "* SEARCH 2 4\r\ne OK SEARCH completed\r\n");
}
