//! argon2 runs on a few long-lived threads of its own. That bounds how many hashes run at once
//! (each holds the configured memory, 19 MiB by default), and keeps the memory reused: on
//! tokio's blocking pool every burst of logins lands on fresh threads whose allocator arenas
//! keep their 19 MiB each (measured: 790 MB resident after 48 parallel failed logins).

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

type Job = Box<dyn FnOnce() + Send>;

pub struct HashPool {
    jobs: Mutex<Sender<Job>>,
}

impl HashPool {
    pub fn new(threads: usize) -> HashPool {
        let (tx, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("portcullis-argon2-{i}"))
                .spawn(move || work(&rx))
                .expect("spawning a password hashing thread");
        }
        HashPool { jobs: Mutex::new(tx) }
    }

    /// Runs `f` on a pool thread; `None` if the pool is gone.
    pub async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = reply.send(f());
        });
        self.jobs.lock().ok()?.send(job).ok()?;
        answer.await.ok()
    }
}

fn work(jobs: &Mutex<Receiver<Job>>) {
    loop {
        // Hold the lock only to take a job, not while running it.
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}
