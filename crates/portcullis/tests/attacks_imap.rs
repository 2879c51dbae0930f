//! The IMAP attacks of the outside review (issue 13, items 1 and 3), each performed by a
//! logged-in client against the real server: what one FETCH or SEARCH may make the server hold
//! (the same body named hundreds of times, a mailbox of large messages to a client that stops
//! reading, BODY searched over large messages), and what one command may make it compute on the
//! threads that serve everybody (LIST patterns, sequence sets named thousands of times, QRESYNC's
//! known UIDs, a mailbox count without end).
//!
//! Memory is the server's VmRSS, sampled every few milliseconds while the attack runs; time is
//! what the attacker waits for its answers and, meanwhile, the longest NOOP of another account
//! (bob) on another connection: the measure of what the attack costs everybody else, asserted
//! as the server's CPU time spent while bob waited (his wall time, printed, also grows with
//! whatever else the machine runs). The figures are printed (`--nocapture`);
//! docs/benchmarks.md keeps a release build's.

mod common;

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;

// ---- the IMAP client ------------------------------------------------------------------------

/// An IMAPS session from `source`, logged in as `user`.
fn login(server: &TestServer, source: &str, user: &str) -> Client {
    let mut c = server.connect_from(source, "imaps").upgrade(server.client_config(rustls::ALL_VERSIONS));
    assert!(c.line().starts_with("* OK"));
    let (_, ok) = command(&mut c, "l", &format!("LOGIN {user} {PASSWORD}"));
    assert!(ok.starts_with("l OK"), "{ok}");
    c
}

/// What the server answered to one command.
#[derive(Default)]
struct Answer {
    /// The untagged lines, each literal replaced by `{n}` and its size.
    lines: Vec<String>,
    /// Bytes of literal data received.
    literal_bytes: usize,
    /// The literals themselves, when asked for.
    literals: Vec<Vec<u8>>,
}

/// Sends a command and reads its answer (literals followed); the tagged line is returned apart.
fn command(c: &mut Client, tag: &str, text: &str) -> (Answer, String) {
    c.send_raw(format!("{tag} {text}\r\n").as_bytes());
    answer(c, tag, false)
}

/// Reads up to the line tagged `tag` ("" if the connection ends first), following literals
/// (`{n}` and `~{n}` at a line's end), keeping them if `keep`.
fn answer(c: &mut Client, tag: &str, keep: bool) -> (Answer, String) {
    let mut answer = Answer::default();
    let mut line = String::new();
    loop {
        let piece = c.try_line().unwrap_or_default();
        if piece.is_empty() && line.is_empty() {
            // The connection ended (a message's blank lines come inside literals).
            return (answer, String::new());
        }
        line.push_str(&piece);
        if let Some(size) = literal_size(&piece) {
            let data = c.bytes(size);
            assert_eq!(data.len(), size, "the connection ended inside a literal");
            answer.literal_bytes += size;
            if keep {
                answer.literals.push(data);
            }
            continue;
        }
        if line.starts_with(&format!("{tag} ")) {
            return (answer, line);
        }
        answer.lines.push(std::mem::take(&mut line));
    }
}

/// The size of the literal announced at the end of `line`, if any.
fn literal_size(line: &str) -> Option<usize> {
    let open = line.strip_suffix('}')?.rfind('{')?;
    line[open + 1..line.len() - 1].parse().ok()
}

/// APPENDs `message` to `mailbox`; the tagged answer.
fn append(c: &mut Client, mailbox: &str, message: &[u8]) -> String {
    c.send(&format!("ap APPEND {mailbox} {{{}}}", message.len()));
    assert!(c.line().starts_with('+'), "no continuation for APPEND");
    c.send_raw(message);
    c.send_raw(b"\r\n");
    answer(c, "ap", false).1
}

/// A message of about `size` bytes: a text part and a base64 attachment that makes up the
/// rest, so that BODY[part] and BINARY[part] have something large to cut.
fn large_message(size: usize) -> Vec<u8> {
    let head = "From: alice@example.test\r\nTo: bob@example.test\r\nSubject: large\r\nMIME-Version: 1.0\r\n\
                Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n\
                the needle is not here\r\n--b\r\nContent-Type: application/octet-stream\r\n\
                Content-Transfer-Encoding: base64\r\n\r\n";
    let mut out = head.as_bytes().to_vec();
    let line = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0\r\n";
    while out.len() + line.len() + 8 < size {
        out.extend_from_slice(line.as_bytes());
    }
    out.extend_from_slice(b"--b--\r\n");
    out
}

/// Doubles the selected mailbox (COPY 1:* into itself) until it holds at least `count`
/// messages; the count.
fn grow(c: &mut Client, count: usize) -> usize {
    let mut have = exists(c);
    while have < count {
        let (_, ok) = command(c, "g", "COPY 1:* INBOX");
        assert!(ok.starts_with("g OK"), "{ok}");
        have *= 2;
    }
    have
}

/// SELECTs INBOX; the number of messages.
fn exists(c: &mut Client) -> usize {
    let (answer, ok) = command(c, "s", "SELECT INBOX");
    assert!(ok.starts_with("s OK"), "{ok}");
    answer.lines.iter().find_map(|l| l.strip_prefix("* ")?.strip_suffix(" EXISTS")?.parse().ok()).unwrap()
}

/// How many numbers the `* SEARCH` line of an answer holds.
fn search_results(answer: &Answer) -> Option<usize> {
    answer.lines.iter().find(|l| l.starts_with("* SEARCH")).map(|l| l.split(' ').count() - 2)
}

// ---- what the attacks cost --------------------------------------------------------------------

fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap_or("VmRSS: 0 kB");
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// The server's VmRSS once it has stopped falling (freed memory can take a moment to go).
fn settled_rss(pid: i32) -> u64 {
    let mut last = rss_kib(pid);
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(100));
        let now = rss_kib(pid);
        if now >= last {
            return now;
        }
        last = now;
    }
    last
}

/// Samples the server's VmRSS every few milliseconds until stopped; the highest seen.
struct Sampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<u64>,
}

impl Sampler {
    fn start(pid: i32) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut peak = 0;
            while !flag.load(Ordering::Relaxed) {
                peak = peak.max(rss_kib(pid));
                std::thread::sleep(Duration::from_millis(3));
            }
            peak.max(rss_kib(pid))
        });
        Sampler { stop, handle }
    }

    fn peak(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap()
    }
}

/// The CPU time the process has used (user and system), from `/proc/PID/stat`, whose clock
/// ticks are USER_HZ, 100 a second on Linux whatever the kernel's own tick.
fn cpu_time(pid: i32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name, in parentheses, may hold spaces: fields are counted after it.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<u64> = after.split_whitespace().map(|f| f.parse().unwrap_or(0)).collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// How long bob waited for his slowest NOOP: in wall time (printed: it grows with whatever
/// else the machine runs) and in the server's CPU time spent meanwhile (asserted on).
#[derive(Debug, Clone, Copy, Default)]
struct BystanderWait {
    wall: Duration,
    /// The server's CPU time during bob's costliest round trip: what the attack made him wait
    /// for. A NOOP queued behind work that holds the workers waits while that work runs, so
    /// this grows with the work ahead of it (seconds, before the fixes) but not with the load
    /// other processes put on the machine, which only stretches the wall time (on a busy
    /// 2-core CI machine, shared with other test binaries, bob's wall time went past any bound
    /// that still meant something).
    server_cpu: Duration,
}

/// Bob, on a connection of his own, sending NOOP after NOOP until stopped: his longest wait,
/// and how many NOOPs he made.
struct Bystander {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<(BystanderWait, usize)>,
}

impl Bystander {
    fn start(server: &TestServer) -> Bystander {
        let pid = server.pid().as_raw();
        let mut c = login(server, "127.0.0.9", BOB);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut worst = BystanderWait::default();
            let mut count = 0;
            while !flag.load(Ordering::Relaxed) {
                let (sent, cpu_before) = (Instant::now(), cpu_time(pid));
                let (_, ok) = command(&mut c, "n", "NOOP");
                assert!(ok.starts_with("n OK"), "bob's NOOP: {ok:?}");
                worst.wall = worst.wall.max(sent.elapsed());
                worst.server_cpu = worst.server_cpu.max(cpu_time(pid).saturating_sub(cpu_before));
                count += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            (worst, count)
        });
        Bystander { stop, handle }
    }

    fn worst(self) -> (BystanderWait, usize) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap()
    }
}

/// The server CPU time bob's NOOP may wait through while others attack. A NOOP takes well
/// under a millisecond; while three attackers keep both workers busy, bob's turn comes after
/// their current slices (each yields often), so he waits through tens of milliseconds of
/// their CPU time at most; the bound leaves room for a debug build, and is far below the
/// seconds each attack held the workers before its fix.
const BYSTANDER_WORST: Duration = Duration::from_millis(750);

fn settings() -> Settings {
    // What is measured is what the code holds, not what glibc's malloc keeps of it once freed:
    // after the first large block is freed, malloc raises its mmap threshold, and later large
    // blocks come from per-thread arenas that are not trimmed, so each blocking thread that
    // once read a large message may keep a copy resident (up to two extra 16 MiB messages seen
    // in `searching_a_large_text_part_holds_one_message_and_a_window`). A fixed threshold keeps
    // large blocks mapped and returned when freed. The servers these tests start inherit it.
    static FIXED_MMAP_THRESHOLD: std::sync::Once = std::sync::Once::new();
    FIXED_MMAP_THRESHOLD.call_once(|| std::env::set_var("MALLOC_MMAP_THRESHOLD_", "131072"));
    Settings { store: vec!["default_quota = \"unlimited\"".into()], ..Settings::default() }
}

/// Runs `attack` on `connections` sessions of alice at once while bob sends NOOPs; the
/// attacker's longest wait, and bob's longest.
fn under_attack(
    server: &TestServer,
    connections: usize,
    prepare: impl Fn(&mut Client),
    attack: impl Fn(&mut Client) + Sync,
) -> (Duration, BystanderWait) {
    let mut clients: Vec<Client> = (0..connections)
        .map(|i| {
            let mut c = login(server, &format!("127.0.0.{}", 20 + i), ALICE);
            prepare(&mut c);
            c
        })
        .collect();
    let bob = Bystander::start(server);
    std::thread::sleep(Duration::from_millis(100));
    let waits: Vec<Duration> = std::thread::scope(|scope| {
        let handles: Vec<_> = clients
            .iter_mut()
            .map(|c| {
                let attack = &attack;
                scope.spawn(move || {
                    let started = Instant::now();
                    attack(c);
                    started.elapsed()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let (worst, noops) = bob.worst();
    assert!(noops > 0, "bob never got an answer");
    (waits.into_iter().max().unwrap_or_default(), worst)
}

// ---- item 1: memory -----------------------------------------------------------------------------

/// What one attacker's FETCH or SEARCH may add to the server's memory. A session's output is
/// flushed every 256 KiB, bodies come from the store in chunks of as much, and no more than one
/// message is ever read whole; the rest is allocator slack. Before the fix the review measured
/// the first attack adding 812 MiB on a release build (docs/benchmarks.md has the figures).
const MEMORY_BOUND_KIB: u64 = 24 * 1024;

/// Item 1: `FETCH 1 (BODY.PEEK[] BODY.PEEK[] ...)` asked for the whole message once per item,
/// all of it built before anything was sent, and kept while the client did not read. The same
/// item named 400 times is answered once; 64 distinct parts of the message are answered in
/// full, but streamed.
#[test]
fn one_fetch_naming_a_large_body_many_times_holds_little() {
    let server = TestServer::start_with(settings());
    let pid = server.pid().as_raw();
    let mut c = login(&server, "127.0.0.2", ALICE);
    let message = large_message(1 << 20);
    assert!(append(&mut c, "INBOX", &message).starts_with("ap OK"));
    exists(&mut c);

    let identical = vec!["BODY.PEEK[]"; 400].join(" ");
    let distinct: Vec<String> = (0..64).map(|i| format!("BODY.PEEK[]<{}.{}>", i * 1000, message.len())).collect();
    for (what, items, expected) in [
        ("400 times BODY.PEEK[]", identical, message.len()),
        ("64 distinct partials", distinct.join(" "), (0..64).map(|i| message.len() - i * 1000).sum()),
    ] {
        let baseline = settled_rss(pid);
        let sampler = Sampler::start(pid);
        c.send(&format!("f FETCH 1 ({items})"));
        // The client does not read for a while: what the server holds meanwhile.
        std::thread::sleep(Duration::from_millis(1500));
        let stalled = rss_kib(pid);
        let (answer, ok) = answer(&mut c, "f", false);
        let peak = sampler.peak();
        eprintln!(
            "FETCH 1 ({what}): {} bytes of literals; server VmRSS {baseline} KiB before, {stalled} KiB while \
             the client did not read, {peak} KiB at most",
            answer.literal_bytes
        );
        assert!(ok.starts_with("f OK"), "{ok}");
        assert_eq!(answer.literal_bytes, expected, "{what}: the answer's size");
        assert!(peak.saturating_sub(baseline) < MEMORY_BOUND_KIB, "{what}: the server grew by {} KiB", peak - baseline);
    }
}

/// Item 1: `FETCH 1:* BODY[]` (and its siblings: RFC822, BINARY, a part, UID FETCH) read 250
/// whole messages and built their answers before sending any, and a client that stopped reading
/// kept all of it for the idle timeout. Each is sent to a client that never reads, then the
/// connection is dropped.
#[test]
fn fetching_a_mailbox_of_large_messages_to_a_client_that_stops_reading_holds_little() {
    let server = TestServer::start_with(settings());
    let pid = server.pid().as_raw();
    let mut c = login(&server, "127.0.0.2", ALICE);
    assert!(append(&mut c, "INBOX", &large_message(1 << 20)).starts_with("ap OK"));
    exists(&mut c);
    let count = grow(&mut c, 128);
    for fetch in [
        "FETCH 1:* BODY.PEEK[]",
        "FETCH 1:* RFC822",
        "UID FETCH 1:* BODY.PEEK[TEXT]",
        "FETCH 1:* BINARY.PEEK[2]",
        "FETCH 1:* BODY.PEEK[2]<10.900000>",
        "FETCH 1:* (BODY.PEEK[1] BINARY.SIZE[2] BODY.PEEK[2.MIME] BODY.PEEK[HEADER.FIELDS (SUBJECT)])",
    ] {
        let mut reader = login(&server, "127.0.0.3", ALICE);
        exists(&mut reader);
        let baseline = settled_rss(pid);
        let sampler = Sampler::start(pid);
        reader.send(&format!("f {fetch}"));
        std::thread::sleep(Duration::from_millis(2000));
        let peak = sampler.peak();
        drop(reader);
        eprintln!(
            "{fetch} on {count} messages of 1 MiB, never read: server VmRSS {baseline} KiB before, {peak} KiB at most"
        );
        assert!(
            peak.saturating_sub(baseline) < MEMORY_BOUND_KIB,
            "{fetch}: the server grew by {} KiB",
            peak - baseline
        );
    }
    // And read to the end, the answers are whole.
    // BINARY.SIZE decodes all 128 MiB: 8 s in a debug build on an idle SQLite run, over 20 s
    // on PostgreSQL (whose server shares the cores) on a busy machine. This checks the answer,
    // not its time: the client waits longer than its usual 20 s.
    c.set_read_timeout(Some(Duration::from_secs(120)));
    let (answer, ok) = command(&mut c, "r", "FETCH 1:* (BINARY.SIZE[2] BODY.PEEK[2]<0.100>)");
    assert!(ok.starts_with("r OK"), "{ok}");
    // (After the flags the other session's RFC822 set.)
    assert_eq!(answer.lines.iter().filter(|l| l.contains("BINARY.SIZE[2] ")).count(), count);
    assert_eq!(answer.literal_bytes, count * 100);
}

/// Item 1: SEARCH BODY read the bodies of 1000 messages at a time, whatever their size.
#[test]
fn searching_the_bodies_of_large_messages_holds_little() {
    let server = TestServer::start_with(settings());
    let pid = server.pid().as_raw();
    let mut c = login(&server, "127.0.0.2", ALICE);
    assert!(append(&mut c, "INBOX", &large_message(1 << 20)).starts_with("ap OK"));
    exists(&mut c);
    let count = grow(&mut c, 128);
    for search in ["SEARCH BODY needle", "UID SEARCH TEXT haystack", "SEARCH OR BODY x HEADER X-Nothing y"] {
        let baseline = settled_rss(pid);
        let sampler = Sampler::start(pid);
        let started = Instant::now();
        let (answer, ok) = command(&mut c, "q", search);
        let peak = sampler.peak();
        eprintln!(
            "{search} over {count} messages of 1 MiB: {:.2} s; server VmRSS {baseline} KiB before, {peak} KiB at most",
            started.elapsed().as_secs_f64()
        );
        assert!(ok.starts_with("q OK"), "{ok}");
        assert!(answer.lines.iter().any(|l| l.starts_with("* SEARCH")), "{:?}", answer.lines);
        assert!(
            peak.saturating_sub(baseline) < MEMORY_BOUND_KIB,
            "{search}: the server grew by {} KiB",
            peak - baseline
        );
    }
    let (answer, _) = command(&mut c, "q", "SEARCH BODY \"needle is not\"");
    assert_eq!(search_results(&answer), Some(count), "every message matches");
}

/// A message of about `size` bytes that is one base64 text/plain part, "needle at the end"
/// on its last line: SEARCH BODY and TEXT must decode all of it.
fn large_text_message(size: usize) -> Vec<u8> {
    let head = "From: alice@example.test\r\nTo: bob@example.test\r\nSubject: long text\r\nMIME-Version: 1.0\r\n\
                Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n";
    let lines = size / 4 * 3 / 64;
    let mut text = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do.\n".repeat(lines);
    text.push_str("needle at the end\n");
    let encoded = base64(text.as_bytes());
    let mut out = head.as_bytes().to_vec();
    for line in encoded.as_bytes().chunks(76) {
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for k in 0..4 {
            out.push(if k <= chunk.len() { char::from(ALPHABET[(n >> (18 - 6 * k) & 63) as usize]) } else { '=' });
        }
    }
    out
}

/// Item 1, the per-message half: SEARCH BODY and TEXT decoded a text part whole, converted it,
/// joined it to the rest of the text and lower-cased the lot: four copies of a 16 MiB part
/// beside the message. The text is now searched 64 KiB at a time: the server holds the
/// message it reads and little more.
#[test]
fn searching_a_large_text_part_holds_one_message_and_a_window() {
    const SIZE: usize = 16 << 20;
    let server = TestServer::start_with(settings());
    let pid = server.pid().as_raw();
    let mut c = login(&server, "127.0.0.2", ALICE);
    let message = large_text_message(SIZE);
    assert!(append(&mut c, "INBOX", &message).starts_with("ap OK"));
    drop(message);
    exists(&mut c);
    let count = grow(&mut c, 4);
    // The message itself, read whole from the store, and slack (see `settings` on malloc).
    // The old code made 3 x 12 MiB of text besides the message: it grew by 97 MiB (debug
    // build, threshold not fixed).
    let bound = (SIZE as u64 / 1024) + 8 * 1024;
    for (search, expected) in [
        ("SEARCH BODY \"NEEDLE at the end\"", count),
        ("SEARCH TEXT absent", 0),
        ("SEARCH OR BODY x BODY dolor", count),
    ] {
        let baseline = settled_rss(pid);
        let sampler = Sampler::start(pid);
        let started = Instant::now();
        let (answer, ok) = command(&mut c, "q", search);
        let peak = sampler.peak();
        eprintln!(
            "{search} over {count} messages of 16 MiB of text: {:.2} s; server VmRSS {baseline} KiB before, {peak} KiB \
             at most",
            started.elapsed().as_secs_f64()
        );
        assert!(ok.starts_with("q OK"), "{ok}");
        assert_eq!(search_results(&answer), Some(expected), "{search}: {:?}", answer.lines);
        assert!(peak.saturating_sub(baseline) < bound, "{search}: the server grew by {} KiB", peak - baseline);
    }
}

// ---- item 3: CPU ----------------------------------------------------------------------------

/// Item 3: LIST patterns were matched in O(pattern x name) per mailbox, with an allocation per
/// pattern character: a pattern of tens of KiB over a few hundred mailboxes held a worker for
/// tens of seconds. Patterns past the cap are refused at once; patterns at the cap, as many as a
/// LIST may hold, answer quickly, and bob does not notice either.
#[test]
fn list_patterns_cost_little() {
    let server = TestServer::start_with(settings());
    let mut c = login(&server, "127.0.0.2", ALICE);
    // 200 mailboxes with names of 50 characters.
    for i in 0..200 {
        let (_, ok) = command(&mut c, "c", &format!("CREATE {i:03}-{}", "xy".repeat(23)));
        assert!(ok.starts_with("c OK"), "{ok}");
    }

    // Far past the cap: 60,000 bytes of wildcards and letters.
    let huge = "%*a".repeat(20_000);
    let (waited, bob) = under_attack(
        &server,
        3,
        |_| {},
        |c| {
            let (_, answer) = command(c, "l", &format!("LIST \"\" \"{huge}\""));
            assert!(answer.starts_with("l NO [LIMIT]"), "{answer}");
        },
    );
    eprintln!("LIST with a 60,000-byte pattern over 206 mailboxes, 3 at once: {waited:?}; bob's worst NOOP {bob:?}");
    assert!(bob.server_cpu < BYSTANDER_WORST, "bob waited {bob:?}");

    // At the cap, against long names: 40 more mailboxes of 1,000 characters (and their
    // parents), and 4 patterns of about 1,000 bytes with 16 wildcards each, which match them.
    for i in 0..40 {
        let (_, ok) = command(&mut c, "c", &format!("CREATE L{i:02}/{}", "ab".repeat(496)));
        assert!(ok.starts_with("c OK"), "{ok}");
    }
    let pattern = format!("*{}", "ab".repeat(30)).repeat(16);
    let patterns = vec![format!("\"{pattern}\""); 4].join(" ");
    let (waited, bob) = under_attack(
        &server,
        3,
        |_| {},
        |c| {
            for round in 0..3 {
                let (answer, ok) = command(c, "l", &format!("LIST \"\" ({patterns})"));
                assert!(ok.starts_with("l OK"), "round {round}: {ok}");
                assert_eq!(answer.lines.len(), 40, "round {round}");
            }
        },
    );
    eprintln!(
        "LIST with 4 patterns of {} bytes and 16 wildcards each over 286 mailboxes, 3 rounds, 3 at once: \
         {waited:?}; bob's worst NOOP {bob:?}",
        pattern.len()
    );
    assert!(bob.server_cpu < BYSTANDER_WORST, "bob waited {bob:?}");
    assert!(waited < Duration::from_secs(10), "the attacker waited {waited:?}");
    // Wildcards past the cap are refused too.
    let (_, answer) = command(&mut c, "l", &format!("LIST \"\" \"{}\"", "a%".repeat(40)));
    assert!(answer.starts_with("l NO [LIMIT]"), "{answer}");
    // And patterns still match what they should.
    let (answer, ok) = command(&mut c, "l", "LIST \"\" \"00%-*\"");
    assert!(ok.starts_with("l OK"), "{ok}");
    assert_eq!(answer.lines.len(), 10, "{:?}", answer.lines);
    let (answer, ok) = command(&mut c, "l", "LIST \"\" L0%");
    assert!(ok.starts_with("l OK"), "{ok}");
    assert_eq!(answer.lines.len(), 10, "{:?}", answer.lines);
    assert!(answer.lines.iter().all(|l| l.contains("\\HasChildren")), "{:?}", answer.lines);
}

/// Item 3: a sequence set like `1:*,1:*,...` was expanded once per range, for each command
/// and, in SEARCH, for each message; now ranges are merged once, when the command is parsed.
#[test]
fn sequence_sets_named_thousands_of_times_cost_little() {
    let server = TestServer::start_with(settings());
    let mut c = login(&server, "127.0.0.2", ALICE);
    assert!(append(&mut c, "INBOX", b"Subject: tiny\r\n\r\nbody\r\n").starts_with("ap OK"));
    exists(&mut c);
    let count = grow(&mut c, 32768);
    // `1:*` fifteen thousand times: expanded once per range. Ten thousand even numbers: for
    // each odd message, SEARCH went through every range. Ten thousand UIDs past the last:
    // every message went through every range.
    let stars = vec!["1:*"; 15_000].join(",");
    let evens: Vec<String> = (1..=10_000).map(|n| (2 * n).to_string()).collect();
    let evens = evens.join(",");
    let beyond: Vec<String> = (0..10_000).map(|n| (40_000 + 2 * n).to_string()).collect();
    let beyond = beyond.join(",");
    let (waited, bob) = under_attack(
        &server,
        3,
        |c| {
            exists(c);
        },
        |c| {
            for (tag, text) in [
                ("f", format!("FETCH {stars} (FLAGS)")),
                ("s", format!("SEARCH {evens}")),
                ("u", format!("UID SEARCH UID {beyond}")),
                ("t", format!("STORE {stars} +FLAGS.SILENT (\\Flagged)")),
                ("v", format!("SEARCH NOT {evens}")),
            ] {
                let (answer, ok) = command(c, tag, &text);
                assert!(ok.starts_with(&format!("{tag} OK")), "{ok}");
                // The others' STOREs come as untagged FETCHes too.
                let found = search_results(&answer);
                match tag {
                    "f" => assert!(answer.lines.len() >= count, "{}", answer.lines.len()),
                    "s" => assert_eq!(found, Some(10_000)),
                    "v" => assert_eq!(found, Some(count - 10_000)),
                    "u" => assert_eq!(found, Some(0)),
                    _ => {}
                }
            }
        },
    );
    eprintln!(
        "FETCH and STORE with 15,000 ranges, SEARCH twice and UID SEARCH with 10,000, over {count} messages, 3 at \
         once: {waited:?}; bob's worst NOOP {bob:?}"
    );
    assert!(bob.server_cpu < BYSTANDER_WORST, "bob waited {bob:?}");

    // As many search keys: refused past the cap.
    let keys = vec!["1:*"; 15_000].join(" ");
    let (_, answer) = command(&mut c, "k", &format!("SEARCH {keys}"));
    assert!(answer.starts_with("k BAD") || answer.starts_with("k NO [LIMIT]"), "{answer}");
    let (waited, bob) = under_attack(
        &server,
        3,
        |c| {
            exists(c);
        },
        |c| {
            let keys = vec!["ALL"; 900].join(" ");
            let (_, ok) = command(c, "k", &format!("SEARCH {keys}"));
            assert!(ok.starts_with("k OK"), "{ok}");
        },
    );
    eprintln!("SEARCH with 900 keys over {count} messages, 3 at once: {waited:?}; bob's worst NOOP {bob:?}");
    assert!(bob.server_cpu < BYSTANDER_WORST, "bob waited {bob:?}");
}

/// Item 3: QRESYNC's known UIDs (SELECT) and a UID FETCH's set (VANISHED) were checked range by
/// range for every expunged UID.
#[test]
fn qresync_known_uids_cost_little() {
    let server = TestServer::start_with(settings());
    let mut c = login(&server, "127.0.0.2", ALICE);
    assert!(append(&mut c, "INBOX", b"Subject: tiny\r\n\r\nbody\r\n").starts_with("ap OK"));
    exists(&mut c);
    let count = grow(&mut c, 16384);
    let (_, ok) = command(&mut c, "x", "UNSELECT");
    assert!(ok.starts_with("x OK"), "{ok}");
    let (answer, ok) = command(&mut c, "v", "ENABLE QRESYNC");
    assert!(ok.starts_with("v OK"), "{ok} {:?}", answer.lines);
    let (answer, _) = command(&mut c, "s", "SELECT INBOX");
    let uidvalidity: u32 = answer
        .lines
        .iter()
        .find_map(|l| l.strip_prefix("* OK [UIDVALIDITY ")?.split(']').next()?.parse().ok())
        .unwrap();
    // Every UID below the last 1000 goes.
    let (_, ok) = command(&mut c, "d", &format!("STORE 1:{} +FLAGS.SILENT (\\Deleted)", count - 1000));
    assert!(ok.starts_with("d OK"), "{ok}");
    let (_, ok) = command(&mut c, "e", "EXPUNGE");
    assert!(ok.starts_with("e OK"), "{ok}");
    // Known UIDs: every other one, as many as fit in a command.
    let known: Vec<String> = (1..).step_by(2).take(11_000).map(|u: u32| u.to_string()).collect();
    let known = known.join(",");
    let (waited, bob) = under_attack(
        &server,
        3,
        |c| {
            command(c, "v", "ENABLE QRESYNC");
        },
        |c| {
            let (answer, ok) = command(c, "q", &format!("SELECT INBOX (QRESYNC ({uidvalidity} 1 {known}))"));
            assert!(ok.starts_with("q OK"), "{ok}");
            assert!(answer.lines.iter().any(|l| l.starts_with("* VANISHED (EARLIER) ")), "{:?}", &answer.lines[..5]);
            let (_, ok) = command(c, "w", &format!("UID FETCH {known} (FLAGS) (CHANGEDSINCE 1 VANISHED)"));
            assert!(ok.starts_with("w OK"), "{ok}");
        },
    );
    eprintln!("SELECT (QRESYNC) and UID FETCH (VANISHED) with 11,000 known UIDs, {} expunged, 3 at once: {waited:?}; bob's worst NOOP {bob:?}", count - 1000);
    assert!(bob.server_cpu < BYSTANDER_WORST, "bob waited {bob:?}");
}

/// Item 3: an account could create mailboxes (and subscriptions) without end, and every LIST
/// matched all of them. Past `limits.max_mailboxes_per_account` CREATE, RENAME and SUBSCRIBE
/// are refused with `NO [LIMIT]`, parents counted, nothing half done.
#[test]
fn mailboxes_per_account_are_capped() {
    let mut settings = settings();
    settings.limits.push("max_mailboxes_per_account = 12".into());
    let server = TestServer::start_with(settings);
    let mut c = login(&server, "127.0.0.2", ALICE);
    // Six come with the account.
    for i in 0..5 {
        let (_, ok) = command(&mut c, "c", &format!("CREATE box{i}"));
        assert!(ok.starts_with("c OK"), "{ok}");
    }
    // "a/b" would make two: one too many.
    let (_, no) = command(&mut c, "c", "CREATE a/b");
    assert!(no.starts_with("c NO [LIMIT]"), "{no}");
    let (answer, _) = command(&mut c, "l", "LIST \"\" a*");
    assert!(answer.lines.is_empty(), "a half-made CREATE: {:?}", answer.lines);
    let (_, ok) = command(&mut c, "c", "CREATE box5");
    assert!(ok.starts_with("c OK"), "{ok}");
    let (_, no) = command(&mut c, "c", "CREATE box6");
    assert!(no.starts_with("c NO [LIMIT]"), "{no}");
    // A RENAME that would create a parent, too.
    let (_, no) = command(&mut c, "r", "RENAME box5 parent/box5");
    assert!(no.starts_with("r NO [LIMIT]"), "{no}");
    let (_, ok) = command(&mut c, "r", "RENAME box5 box7");
    assert!(ok.starts_with("r OK"), "{ok}");
    // Subscriptions (which may name mailboxes that do not exist) under the same cap.
    for i in 0..6 {
        let (_, ok) = command(&mut c, "u", &format!("SUBSCRIBE box{i}"));
        assert!(ok.starts_with("u OK") || ok.starts_with("u NO [LIMIT]"), "{ok}");
    }
    let (_, no) = command(&mut c, "u", "SUBSCRIBE elsewhere");
    assert!(no.starts_with("u NO [LIMIT]"), "{no}");
    let (_, ok) = command(&mut c, "u", "UNSUBSCRIBE box0");
    assert!(ok.starts_with("u OK"), "{ok}");
    let (_, ok) = command(&mut c, "u", "SUBSCRIBE elsewhere");
    assert!(ok.starts_with("u OK"), "{ok}");
    // Room again once one is deleted.
    let (_, ok) = command(&mut c, "d", "DELETE box0");
    assert!(ok.starts_with("d OK"), "{ok}");
    let (_, ok) = command(&mut c, "c", "CREATE box6");
    assert!(ok.starts_with("c OK"), "{ok}");
    let mut bob = login(&server, "127.0.0.3", BOB);
    let (_, ok) = command(&mut bob, "c", "CREATE mine");
    assert!(ok.starts_with("c OK"), "the cap is per account: {ok}");
    bob.send_raw(b"z LOGOUT\r\n");
    let _ = std::io::stdout().flush();
}
