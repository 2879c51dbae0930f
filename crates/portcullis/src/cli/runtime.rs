//! [`block_on`]: the CLI is synchronous, the store and the admin client are async; a command
//! runs its async parts on one single-threaded runtime kept for the whole process, because a
//! store opened in one `block_on` is used in later ones and a PostgreSQL store's connection
//! tasks live on the runtime it was opened on (they run whenever the CLI waits on the store).

use std::sync::OnceLock;

use tokio::runtime::Runtime;

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

pub fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a single-threaded runtime")
        })
        .block_on(future)
}
