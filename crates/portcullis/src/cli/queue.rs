//! `portcullis queue list|show|retry|hold|release|remove`: the outbound queue, on the store
//! directly (beside a running server, whose runner looks at the queue every second, so a retry
//! or a release takes effect at once). `flush` is kept as another name for `retry` with no
//! argument, as earlier builds had it.

use clap::Subcommand;
use portcullis_config::Config;
use portcullis_store::{QueueSelection, QueueSummary, QueuedMessage, RecipientState};

use crate::cli::runtime::block_on;
use crate::cli::store_access::{explain, open};
use crate::cli::units::{date, human_size, now};
use crate::cli::Failure;

#[derive(Subcommand)]
pub enum QueueAction {
    /// List the queued messages with each recipient's state and last answer
    List,
    /// Show one queued message: envelope, recipients, attempts, headers (the body with --body)
    Show {
        /// Its id, as `queue list` shows it
        id: i64,
        /// Print the body too
        #[arg(long)]
        body: bool,
    },
    /// Try queued messages now, whatever their retry time: one, those for a domain, or all
    #[command(alias = "flush")]
    Retry {
        /// One message's id (all messages when neither this nor --domain is given)
        #[arg(conflicts_with = "domain")]
        id: Option<i64>,
        /// Every message with a recipient still pending at this domain
        #[arg(long)]
        domain: Option<String>,
    },
    /// Hold a queued message: it is not tried until released
    Hold {
        /// Its id, as `queue list` shows it
        id: i64,
    },
    /// Release a held message: it is tried at its retry time (at once if that has passed)
    Release {
        /// Its id, as `queue list` shows it
        id: i64,
    },
    /// Remove a queued message, without a notice to its sender
    Remove {
        /// Its id, as `queue list` shows it
        id: i64,
    },
}

fn no_such(id: i64) -> Failure {
    Failure(format!("there is no queued message #{id}; see `portcullis queue list`"))
}

pub fn run(config: &Config, action: QueueAction) -> Result<(), Failure> {
    let store = open(config)?;
    let result = block_on(async {
        match action {
            QueueAction::List => {
                let queued = store.queued().await.map_err(explain)?;
                if queued.is_empty() {
                    println!("The queue is empty.");
                    return Ok(());
                }
                let summary = QueueSummary::of(&queued);
                println!(
                    "{} message(s), {}, {} held, oldest queued {}",
                    summary.messages,
                    human_size(summary.size),
                    summary.held,
                    summary.oldest_queued_at.map(date).unwrap_or_default()
                );
                for m in queued {
                    println!("{}", headline(&m));
                    print_recipients(&m);
                }
            }
            QueueAction::Show { id, body } => {
                let m = store.queued_message(id).await.map_err(explain)?.ok_or_else(|| no_such(id))?;
                print_message(&m, body);
            }
            QueueAction::Retry { id, domain } => {
                let selection = match (id, domain) {
                    (Some(id), _) => QueueSelection::Message(id),
                    (None, Some(domain)) => QueueSelection::Domain(domain),
                    (None, None) => QueueSelection::All,
                };
                let n = store.retry_queued(selection.clone(), now()).await.map_err(explain)?;
                if let QueueSelection::Message(id) = selection {
                    if n == 0 {
                        return match store.queued_message(id).await.map_err(explain)? {
                            Some(m) if m.held => Err(Failure(format!(
                                "queued message #{id} is held; release it with `portcullis queue release {id}`"
                            ))),
                            _ => Err(no_such(id)),
                        };
                    }
                }
                println!("{n} message(s) made due now (held messages are left alone).");
            }
            QueueAction::Hold { id } => {
                if !store.set_held(id, true).await.map_err(explain)? {
                    return Err(no_such(id));
                }
                println!("Held queued message #{id}: it is not tried until `portcullis queue release {id}`.");
            }
            QueueAction::Release { id } => {
                if !store.set_held(id, false).await.map_err(explain)? {
                    return Err(no_such(id));
                }
                println!("Released queued message #{id}.");
            }
            QueueAction::Remove { id } => {
                if !store.remove_queued(id).await.map_err(explain)? {
                    return Err(no_such(id));
                }
                println!("Removed queued message #{id}.");
            }
        }
        Ok(())
    });
    store.close();
    result
}

fn sender(m: &QueuedMessage) -> &str {
    if m.sender.is_empty() {
        "<>"
    } else {
        m.sender.as_str()
    }
}

fn headline(m: &QueuedMessage) -> String {
    let held = if m.held { "HELD, " } else { "" };
    format!(
        "#{} {held}from {}, {}, queued {}, {} attempt(s), next {}",
        m.id,
        sender(m),
        human_size(m.size),
        date(m.queued_at),
        m.attempts,
        if m.held { "when released".to_string() } else { date(m.next_attempt) }
    )
}

fn print_recipients(m: &QueuedMessage) {
    for r in &m.recipients {
        let last = r.last_reply.as_ref().map(|reply| format!(": {reply}")).unwrap_or_default();
        println!("    {} {}{last}", r.address, state(r.state));
    }
}

fn print_message(m: &QueuedMessage, with_body: bool) {
    println!("Queued message #{}{}", m.id, if m.held { " (HELD)" } else { "" });
    println!("From:         {}", sender(m));
    println!("Size:         {} ({} bytes)", human_size(m.size), m.size);
    println!("Queued:       {}", date(m.queued_at));
    println!("Attempts:     {}", m.attempts);
    let next = if m.held { "when released".to_string() } else { date(m.next_attempt) };
    println!("Next attempt: {next}");
    // The envelope parameters as the submission gave them (RFC 3461, 6531, 6152, 8689).
    let params: Vec<String> = [
        m.ret.as_ref().map(|r| format!("RET={r}")),
        m.envid.as_ref().map(|e| format!("ENVID={e}")),
        m.smtputf8.then(|| "SMTPUTF8".to_string()),
        m.eight_bit.then(|| "BODY=8BITMIME".to_string()),
        // RFC 8689: handed on only over validated TLS, else returned.
        m.requiretls.then(|| "REQUIRETLS".to_string()),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !params.is_empty() {
        println!("Parameters:   {}", params.join(" "));
    }
    println!("Recipients:");
    for r in &m.recipients {
        let extra: Vec<String> =
            [r.notify.as_ref().map(|n| format!("NOTIFY={n}")), r.orcpt.as_ref().map(|o| format!("ORCPT={o}"))]
                .into_iter()
                .flatten()
                .collect();
        let extra = if extra.is_empty() { String::new() } else { format!(" [{}]", extra.join(" ")) };
        println!("    {} {}{extra}", r.address, state(r.state));
        if let Some(reply) = &r.last_reply {
            println!("        last answer: {reply}");
        }
    }
    let (headers, body) = split_message(&m.content);
    println!();
    print!("{}", String::from_utf8_lossy(headers));
    if with_body {
        println!();
        print!("{}", String::from_utf8_lossy(body));
    } else {
        println!("\n({} bytes of body not shown; add --body to see it)", body.len());
    }
}

/// The header section (with its line ends) and the body, split at the first empty line
/// (RFC 5322 §2.1); a message with no empty line is all header.
fn split_message(content: &[u8]) -> (&[u8], &[u8]) {
    let crlf = content.windows(4).position(|w| w == b"\r\n\r\n").map(|i| (i + 2, i + 4));
    let lf = content.windows(2).position(|w| w == b"\n\n").map(|i| (i + 1, i + 2));
    match crlf.into_iter().chain(lf).min_by_key(|(end, _)| *end) {
        Some((end, start)) => (&content[..end], &content[start..]),
        None => (content, &[]),
    }
}

fn state(state: RecipientState) -> &'static str {
    match state {
        RecipientState::Pending => "(pending)",
        RecipientState::Delivered => "(delivered)",
        RecipientState::Failed => "(failed)",
    }
}

#[cfg(test)]
mod tests {
    use super::split_message;

    #[test]
    fn a_message_splits_at_its_first_empty_line() {
        let (h, b) = split_message(b"A: 1\r\nB: 2\r\n\r\nbody\r\n\r\nmore");
        assert_eq!((h, b), (&b"A: 1\r\nB: 2\r\n"[..], &b"body\r\n\r\nmore"[..]));
        let (h, b) = split_message(b"A: 1\n\nbody");
        assert_eq!((h, b), (&b"A: 1\n"[..], &b"body"[..]));
        let (h, b) = split_message(b"A: 1\r\n");
        assert_eq!((h, b), (&b"A: 1\r\n"[..], &b""[..]));
    }
}
