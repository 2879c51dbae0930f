//! `portcullis queue list|flush|remove`: the outbound queue, on the store directly (beside a
//! running server, whose runner looks at the queue every second, so a flush takes effect at
//! once).

use clap::Subcommand;
use portcullis_config::Config;
use portcullis_store::{QueueStore, RecipientState, Store};

use crate::cli::runtime::block_on;
use crate::cli::store_access::{explain, open};
use crate::cli::units::{date, human_size, now};
use crate::cli::Failure;

#[derive(Subcommand)]
pub enum QueueAction {
    /// List the queued messages with each recipient's state and last answer
    List,
    /// Try every queued message now, whatever its retry time
    Flush,
    /// Remove a queued message, without a notice to its sender
    Remove {
        /// Its id, as `queue list` shows it
        id: i64,
    },
}

pub fn run(config: &Config, action: QueueAction) -> Result<(), Failure> {
    let store = open(config)?;
    let result = block_on(async {
        match action {
            QueueAction::List => {
                let queued = store.queued().await.map_err(explain)?;
                if queued.is_empty() {
                    println!("The queue is empty.");
                }
                for m in queued {
                    let sender = if m.sender.is_empty() { "<>" } else { m.sender.as_str() };
                    println!(
                        "#{} from {sender}, {}, queued {}, {} attempt(s), next {}",
                        m.id,
                        human_size(m.size),
                        date(m.queued_at),
                        m.attempts,
                        date(m.next_attempt)
                    );
                    for r in m.recipients {
                        let last = r.last_reply.map(|reply| format!(": {reply}")).unwrap_or_default();
                        println!("    {} {}{last}", r.address, state(r.state));
                    }
                }
            }
            QueueAction::Flush => {
                let n = store.flush_queue(now()).await.map_err(explain)?;
                println!("{n} message(s) made due now.");
            }
            QueueAction::Remove { id } => {
                if !store.remove_queued(id).await.map_err(explain)? {
                    return Err(Failure(format!("there is no queued message #{id}; see `portcullis queue list`")));
                }
                println!("Removed queued message #{id}.");
            }
        }
        Ok(())
    });
    store.close();
    result
}

fn state(state: RecipientState) -> &'static str {
    match state {
        RecipientState::Pending => "(pending)",
        RecipientState::Delivered => "(delivered)",
        RecipientState::Failed => "(failed)",
    }
}
