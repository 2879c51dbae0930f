//! `large`: the commands a client sends to a large mailbox, each timed from sending it to its
//! tagged OK, and each answer checked:
//!
//! - `SELECT INBOX`: `* N EXISTS` with N the expected count;
//! - `FETCH 1:* (FLAGS)`: N FETCH responses, each with FLAGS;
//! - `UID FETCH <last 100 UIDs> (ENVELOPE BODYSTRUCTURE)`: 100 responses, in order, each with
//!   both items and the Message-ID the corpus has there;
//! - `UID SEARCH HEADER Message-ID <id>`: exactly one UID, whose message has that Message-ID;
//! - `SELECT INBOX` again, as the first command of a new session (connect and LOGIN are not
//!   timed): what a client that connects, selects and idles waits for.
//!
//! One round is the four commands in that order on one connection, then the new session's
//! SELECT; `--repeat` rounds.

use std::time::{Duration, Instant};

use clap::Args;
use portcullis_bench::imap::{fetch_uid, find, numbered, search_result, show, Imap};
use portcullis_bench::stats::{median, ms};

use crate::corpus;
use crate::ServerArgs;

#[derive(Args)]
pub struct LargeArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The account with the large INBOX
    #[arg(long)]
    user: String,
    /// Messages the INBOX holds (the corpus was written with this --count)
    #[arg(long)]
    messages: usize,
    /// The corpus seed
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Rounds of the four commands
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    /// How many of the newest messages UID FETCH asks for
    #[arg(long, default_value_t = 100)]
    last: usize,
    /// Corpus index of the message the SEARCH looks for [default: the middle one]
    #[arg(long)]
    search_index: Option<usize>,
}

const STEPS: [&str; 5] = ["select", "fetch_flags", "uid_fetch_envelope", "search_header", "select_new_session"];

pub async fn run(args: LargeArgs) -> Result<bool, String> {
    let n = args.messages;
    if n == 0 || args.last == 0 || args.last > n {
        return Err("--messages must be at least 1 and at least --last".into());
    }
    let target = args.server.target().await?;
    let mut imap = Imap::connect(&target, args.server.timeout()).await.map_err(|e| e.to_string())?;
    let login = Instant::now();
    imap.login(&args.user, &args.server.password).await.map_err(|e| e.to_string())?;
    let login = login.elapsed();

    // The UIDs of the newest messages, by sequence number (not timed).
    // (On a freshly loaded Maildir, this is where Dovecot builds its index.)
    let mut exists = 0;
    let examine = Instant::now();
    imap.expect_ok("EXAMINE INBOX", "EXAMINE", |r| exists = numbered(r, "EXISTS").unwrap_or(exists))
        .await
        .map_err(|e| e.to_string())?;
    let examine = examine.elapsed();
    if exists as usize != n {
        return Err(format!("INBOX holds {exists} messages, not {n}"));
    }
    let mut tail_uids = Vec::new();
    imap.expect_ok(&format!("FETCH {}:* (UID)", n - args.last + 1), "FETCH UID", |r| {
        if let Some(uid) = fetch_uid(r) {
            tail_uids.push(uid);
        }
    })
    .await
    .map_err(|e| e.to_string())?;
    tail_uids.sort_unstable();
    if tail_uids.len() != args.last {
        return Err(format!("FETCH {}:* (UID) gave {} UIDs", n - args.last + 1, tail_uids.len()));
    }
    let uid_set = compact(&tail_uids);
    let expected_ids: Vec<String> = (n - args.last..n).map(|i| corpus::message_id(args.seed, i)).collect();
    let search_index = args.search_index.unwrap_or(n / 2).min(n - 1);
    let search_id = corpus::message_id(args.seed, search_index);

    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); STEPS.len()];
    let mut found_uid = None;
    let mut problems: Vec<String> = Vec::new();
    for _ in 0..args.repeat.max(1) {
        // SELECT INBOX
        let mut exists = None;
        let t = Instant::now();
        imap.expect_ok("SELECT INBOX", "SELECT", |r| {
            if let Some(e) = numbered(r, "EXISTS") {
                exists = Some(e);
            }
        })
        .await
        .map_err(|e| e.to_string())?;
        samples[0].push(t.elapsed());
        if exists != Some(n as u32) {
            problems.push(format!("SELECT: EXISTS {exists:?}, expected {n}"));
        }

        // FETCH 1:* (FLAGS)
        let (mut lines, mut without_flags) = (0usize, 0usize);
        let t = Instant::now();
        imap.expect_ok("FETCH 1:* (FLAGS)", "FETCH FLAGS", |r| {
            if numbered(r, "FETCH").is_some() {
                lines += 1;
                if find(r, b"FLAGS (").is_none() {
                    without_flags += 1;
                }
            }
        })
        .await
        .map_err(|e| e.to_string())?;
        samples[1].push(t.elapsed());
        if lines != n || without_flags != 0 {
            problems.push(format!(
                "FETCH 1:* (FLAGS): {lines} FETCH responses ({without_flags} without FLAGS), expected {n}"
            ));
        }

        // UID FETCH <last 100> (ENVELOPE BODYSTRUCTURE)
        let mut responses: Vec<Vec<u8>> = Vec::with_capacity(args.last);
        let t = Instant::now();
        imap.expect_ok(&format!("UID FETCH {uid_set} (ENVELOPE BODYSTRUCTURE)"), "UID FETCH", |r| {
            if numbered(r, "FETCH").is_some() {
                responses.push(r.to_vec());
            }
        })
        .await
        .map_err(|e| e.to_string())?;
        samples[2].push(t.elapsed());
        if let Some(p) = check_envelopes(&responses, &expected_ids) {
            problems.push(p);
        }

        // UID SEARCH HEADER Message-ID <id>
        let mut result = None;
        let t = Instant::now();
        imap.expect_ok(&format!("UID SEARCH HEADER Message-ID \"{search_id}\""), "UID SEARCH", |r| {
            if let Some(uids) = search_result(r) {
                result = Some(uids);
            }
        })
        .await
        .map_err(|e| e.to_string())?;
        samples[3].push(t.elapsed());
        match result.as_deref() {
            Some([uid]) => {
                if found_uid.is_some_and(|f| f != *uid) {
                    problems.push(format!("SEARCH found UID {uid}, before that {found_uid:?}"));
                }
                found_uid = Some(*uid);
            }
            other => problems.push(format!("SEARCH HEADER Message-ID {search_id}: {other:?}, expected one UID")),
        }

        // SELECT INBOX in a new session
        let mut fresh = Imap::connect(&target, args.server.timeout()).await.map_err(|e| e.to_string())?;
        fresh.login(&args.user, &args.server.password).await.map_err(|e| e.to_string())?;
        let mut exists = None;
        let t = Instant::now();
        fresh
            .expect_ok("SELECT INBOX", "SELECT", |r| {
                if let Some(e) = numbered(r, "EXISTS") {
                    exists = Some(e);
                }
            })
            .await
            .map_err(|e| e.to_string())?;
        samples[4].push(t.elapsed());
        let _ = fresh.logout().await;
        if exists != Some(n as u32) {
            problems.push(format!("SELECT in a new session: EXISTS {exists:?}, expected {n}"));
        }
    }
    // The UID found is the message with that Message-ID.
    if let Some(uid) = found_uid {
        let mut header = Vec::new();
        imap.expect_ok(&format!("UID FETCH {uid} (BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])"), "UID FETCH", |r| {
            header.extend_from_slice(r)
        })
        .await
        .map_err(|e| e.to_string())?;
        if find(&header, search_id.as_bytes()).is_none() {
            problems.push(format!("SEARCH found UID {uid}, whose Message-ID is not {search_id}: {}", show(&header)));
        }
    }
    let _ = imap.logout().await;
    problems.dedup();

    let mut report = serde_json::json!({
        "user": args.user,
        "messages": n,
        "repeat": args.repeat,
        "login_ms": ms(login),
        "examine_ms": ms(examine),
        "search_uid": found_uid,
        "problems": problems,
    });
    let mut text = format!(
        "server {} · {} messages · {} rounds · first EXAMINE (untimed setup) {:.2} ms\n",
        args.server.server,
        n,
        args.repeat,
        ms(examine)
    );
    for (i, step) in STEPS.iter().enumerate() {
        let s = &samples[i];
        report[step] = serde_json::json!({
            "median_ms": ms(median(s)),
            "first_ms": ms(s[0]),
            "min_ms": ms(*s.iter().min().unwrap_or(&Duration::ZERO)),
            "samples_ms": s.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
        });
        text.push_str(&format!(
            "{step:<20} median {:>9.2} ms   first {:>9.2} ms   all {:?}\n",
            ms(median(s)),
            ms(s[0]),
            s.iter().map(|d| ms(*d)).collect::<Vec<_>>()
        ));
    }
    for p in &problems {
        text.push_str(&format!("PROBLEM {p}\n"));
    }
    crate::print_report(args.server.json, &report, text);
    Ok(problems.is_empty())
}

/// 100 responses in UID order, each with ENVELOPE and BODYSTRUCTURE and the expected Message-ID.
fn check_envelopes(responses: &[Vec<u8>], expected_ids: &[String]) -> Option<String> {
    if responses.len() != expected_ids.len() {
        return Some(format!("UID FETCH: {} responses, expected {}", responses.len(), expected_ids.len()));
    }
    for (r, id) in responses.iter().zip(expected_ids) {
        if find(r, b"ENVELOPE (").is_none() || find(r, b"BODYSTRUCTURE (").is_none() {
            return Some(format!("UID FETCH: a response without ENVELOPE or BODYSTRUCTURE: {}", show(r)));
        }
        if find(r, id.as_bytes()).is_none() {
            return Some(format!("UID FETCH: expected Message-ID {id} in {}", show(r)));
        }
    }
    None
}

/// Ascending UIDs as a compact set: 1,2,3,7 -> "1:3,7".
fn compact(uids: &[u32]) -> String {
    let mut out = Vec::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        while i + 1 < uids.len() && uids[i + 1] == uids[i] + 1 {
            i += 1;
        }
        out.push(if uids[i] == start { start.to_string() } else { format!("{start}:{}", uids[i]) });
        i += 1;
    }
    out.join(",")
}

#[cfg(test)]
mod tests {
    #[test]
    fn sets_are_compact() {
        assert_eq!(super::compact(&[1, 2, 3, 7, 9, 10]), "1:3,7,9:10");
        assert_eq!(super::compact(&[5]), "5");
    }
}
