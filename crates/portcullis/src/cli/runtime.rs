//! [`block_on`]: the CLI is synchronous, the store and the admin client are async; each command
//! runs its async part on a single-threaded runtime of its own.

pub fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a single-threaded runtime")
        .block_on(future)
}
