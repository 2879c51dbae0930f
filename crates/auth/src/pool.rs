//! argon2 runs on a few long-lived threads of its own. That bounds how many hashes run at once
//! (each holds the configured memory, 19 MiB by default), and keeps the memory reused: on
//! tokio's blocking pool every burst of logins lands on fresh threads whose allocator arenas
//! keep their 19 MiB each (measured: 790 MB resident after 48 parallel failed logins).
//!
//! Two lanes, because hashing is what a credential-stuffing storm exhausts: with one queue, the
//! owner of an account logging in from an address it used before waited behind every queued
//! attacker hash (docs/benchmarks.md "Guard": p99 18 s under a 20 s storm). Jobs in the `Priority`
//! lane (known addresses, trusted networks, the operator setting a password) always run
//! first. The `Ordinary` lane holds at most a few dozen jobs per thread; beyond that an attempt is
//! refused as a temporary failure before any hashing, so a storm cannot build a backlog that
//! outlives it. Which lane a check takes never depends on whether the account exists, so
//! unknown users and wrong passwords stay alike.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};

type Job = Box<dyn FnOnce() + Send>;

/// Ordinary jobs waiting per hashing thread before more are refused: a wait of at most a few
/// dozen hashes (tens of milliseconds each) for a login from an address not known to the
/// account.
const ORDINARY_QUEUE_PER_THREAD: usize = 32;

/// Which queue a hash waits in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// Runs before any ordinary job; never refused.
    Priority,
    /// Refused when its queue is full.
    Ordinary,
}

#[derive(Default)]
struct Queues {
    priority: VecDeque<Job>,
    ordinary: VecDeque<Job>,
    /// The pool was dropped: the threads finish the jobs queued, then end.
    closing: bool,
}

struct Shared {
    queues: Mutex<Queues>,
    ready: Condvar,
}

pub struct HashPool {
    shared: Arc<Shared>,
    max_ordinary: usize,
}

impl HashPool {
    pub fn new(threads: usize) -> HashPool {
        let threads = threads.max(1);
        let shared = Arc::new(Shared { queues: Mutex::new(Queues::default()), ready: Condvar::new() });
        for i in 0..threads {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("portcullis-argon2-{i}"))
                .spawn(move || work(&shared))
                .expect("spawning a password hashing thread");
        }
        HashPool { shared, max_ordinary: threads * ORDINARY_QUEUE_PER_THREAD }
    }

    /// Runs `f` on a pool thread; `None` if the ordinary lane is full (or the pool is gone).
    pub async fn run<T: Send + 'static>(&self, lane: Lane, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = reply.send(f());
        });
        {
            let mut queues = self.shared.queues.lock().ok()?;
            match lane {
                Lane::Priority => queues.priority.push_back(job),
                Lane::Ordinary if queues.ordinary.len() < self.max_ordinary => queues.ordinary.push_back(job),
                Lane::Ordinary => return None,
            }
        }
        self.shared.ready.notify_one();
        answer.await.ok()
    }
}

impl Drop for HashPool {
    fn drop(&mut self) {
        if let Ok(mut queues) = self.shared.queues.lock() {
            queues.closing = true;
        }
        self.shared.ready.notify_all();
    }
}

fn work(shared: &Shared) {
    loop {
        // Hold the lock only to take a job, not while running it.
        let job = {
            let Ok(mut queues) = shared.queues.lock() else { return };
            loop {
                if let Some(job) = queues.priority.pop_front().or_else(|| queues.ordinary.pop_front()) {
                    break job;
                }
                if queues.closing {
                    return;
                }
                queues = match shared.ready.wait(queues) {
                    Ok(queues) => queues,
                    Err(_) => return,
                };
            }
        };
        job();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// One thread, held busy; then ordinary jobs fill their lane, one more is refused, and a
    /// priority job queued last runs before all of them.
    #[tokio::test]
    async fn priority_jumps_the_queue_and_ordinary_is_bounded() {
        let pool = Arc::new(HashPool::new(1));
        let (release, hold) = mpsc::channel::<()>();
        let (started, running) = mpsc::channel::<()>();
        let busy = tokio::spawn({
            let pool = pool.clone();
            async move {
                pool.run(Lane::Ordinary, move || {
                    started.send(()).unwrap();
                    hold.recv().is_ok()
                })
                .await
            }
        });
        // Wait until the thread is inside the blocking job.
        while running.try_recv().is_err() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }

        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiting = Vec::new();
        for n in 0..ORDINARY_QUEUE_PER_THREAD {
            let (pool, order) = (pool.clone(), order.clone());
            waiting.push(tokio::spawn(
                async move { pool.run(Lane::Ordinary, move || order.lock().unwrap().push(n)).await },
            ));
        }
        while pool.shared.queues.lock().unwrap().ordinary.len() < ORDINARY_QUEUE_PER_THREAD {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(pool.run(Lane::Ordinary, || ()).await, None, "a full ordinary lane refuses");
        let first = tokio::spawn({
            let (pool, order) = (pool.clone(), order.clone());
            async move { pool.run(Lane::Priority, move || order.lock().unwrap().push(usize::MAX)).await }
        });
        while pool.shared.queues.lock().unwrap().priority.is_empty() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }

        release.send(()).unwrap();
        assert_eq!(busy.await.unwrap(), Some(true));
        assert_eq!(first.await.unwrap(), Some(()));
        for job in waiting {
            assert_eq!(job.await.unwrap(), Some(()));
        }
        let order = order.lock().unwrap().clone();
        assert_eq!(order[0], usize::MAX, "{order:?}");
        assert_eq!(order[1..], (0..ORDINARY_QUEUE_PER_THREAD).collect::<Vec<_>>()[..]);
    }
}
