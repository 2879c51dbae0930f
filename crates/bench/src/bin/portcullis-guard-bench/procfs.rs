//! What the server process holds, read from /proc every so often: resident memory (VmRSS), its
//! high-water mark (VmHWM), threads, open file descriptors and CPU time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// Since the benchmark's start.
    pub at: Duration,
    pub rss_kib: u64,
    pub hwm_kib: u64,
    pub threads: u64,
    /// Open descriptors (sockets mostly); 0 when /proc/PID/fd is not readable.
    pub fds: u64,
    /// User + system CPU time of the whole process.
    pub cpu: Duration,
    /// The same for this load generator (it shares the machine's cores with the server).
    pub generator_cpu: Duration,
}

/// Reads one sample of `pid`; `None` once the process is gone.
pub fn sample(pid: u32, at: Duration) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count() as u64).unwrap_or(0);
    Some(Sample {
        at,
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
        threads: field("Threads:"),
        fds,
        cpu: cpu_time(pid).unwrap_or_default(),
        generator_cpu: cpu_time(std::process::id()).unwrap_or_default(),
    })
}

/// utime + stime from /proc/PID/stat (fields 14 and 15, after the parenthesised name).
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state), so utime (14) is index 11 and stime (15) index 12.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_secs_f64(ticks as f64 / USER_HZ))
}

/// The unit of the times in /proc/PID/stat: fixed at 100 by the kernel's ABI on Linux.
const USER_HZ: f64 = 100.0;

/// Samples `pid` every `every` on a thread of its own until stopped.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    pub fn start(pid: u32, start: Instant, every: Duration) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (stop2, samples2) = (stop.clone(), samples.clone());
        let thread = std::thread::Builder::new()
            .name("proc-sampler".into())
            .spawn(move || {
                while !stop2.load(Ordering::Relaxed) {
                    match sample(pid, start.elapsed()) {
                        Some(s) => samples2.lock().expect("sampler lock").push(s),
                        None => return,
                    }
                    std::thread::sleep(every);
                }
            })
            .expect("spawning the /proc sampler");
        Sampler { stop, samples, thread: Some(thread) }
    }

    /// Stops sampling (after one last sample) and returns the samples.
    pub fn finish(mut self, pid: u32, start: Instant) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let mut samples = std::mem::take(&mut *self.samples.lock().expect("sampler lock"));
        if let Some(last) = sample(pid, start.elapsed()) {
            samples.push(last);
        }
        samples
    }
}

/// The sample nearest to `at` (the samples are in time order).
pub fn at(samples: &[Sample], at: Duration) -> Option<Sample> {
    samples.iter().min_by_key(|s| s.at.abs_diff(at)).copied()
}

/// The largest of `f` over the samples in `[from, to]`.
pub fn peak(samples: &[Sample], from: Duration, to: Duration, f: impl Fn(&Sample) -> u64) -> u64 {
    samples.iter().filter(|s| s.at >= from && s.at <= to).map(f).max().unwrap_or(0)
}
