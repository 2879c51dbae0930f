//! What the server process holds, read from /proc every so often: resident memory (VmRSS), its
//! high-water mark (VmHWM), threads, open file descriptors and CPU time.
//!
//! A server made of many processes (Dovecot: a master, login processes, auth) is sampled as a
//! tree: the process and all its descendants, summed. Its memory is then the sum of each
//! process's proportional share (Pss, from smaps_rollup), since summing VmRSS would count the
//! pages the processes share once per process; there is no high-water mark for a tree.

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
    /// Processes counted (1 unless sampling a tree).
    pub processes: u64,
}

/// What one process holds.
struct Usage {
    rss_kib: u64,
    hwm_kib: u64,
    threads: u64,
    fds: u64,
    cpu: Duration,
}

/// Reads one sample of `pid` (and its descendants, with `tree`); `None` once it is gone.
pub fn sample(pid: u32, tree: bool, at: Duration) -> Option<Sample> {
    let generator_cpu = cpu_time(std::process::id()).map(|(own, _)| own).unwrap_or_default();
    if !tree {
        let u = usage(pid, false)?;
        return Some(Sample {
            at,
            rss_kib: u.rss_kib,
            hwm_kib: u.hwm_kib,
            threads: u.threads,
            fds: u.fds,
            cpu: u.cpu,
            generator_cpu,
            processes: 1,
        });
    }
    // The root first: if it is gone, so is the server.
    let root = usage(pid, true)?;
    // Children that have exited and been reaped leave their CPU time in the root's.
    let reaped = cpu_time(pid).map(|(_, children)| children).unwrap_or_default();
    let mut s = Sample {
        at,
        rss_kib: root.rss_kib,
        hwm_kib: 0,
        threads: root.threads,
        fds: root.fds,
        cpu: root.cpu + reaped,
        generator_cpu,
        processes: 1,
    };
    for child in descendants(pid) {
        // A process that exits between the listing and the reading is simply not counted.
        if let Some(u) = usage(child, true) {
            s.rss_kib += u.rss_kib;
            s.threads += u.threads;
            s.fds += u.fds;
            s.cpu += u.cpu;
            s.processes += 1;
        }
    }
    Some(s)
}

/// One process's usage; memory as Pss when `proportional`, else VmRSS and VmHWM.
fn usage(pid: u32, proportional: bool) -> Option<Usage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |text: &str, name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let rss_kib = if proportional {
        // Kernel threads and zombies have no smaps: they hold no user memory.
        std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).map(|t| field(&t, "Pss:")).unwrap_or(0)
    } else {
        field(&status, "VmRSS:")
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count() as u64).unwrap_or(0);
    Some(Usage {
        rss_kib,
        hwm_kib: field(&status, "VmHWM:"),
        threads: field(&status, "Threads:"),
        fds,
        cpu: cpu_time(pid).map(|(own, _)| own).unwrap_or_default(),
    })
}

/// Every process whose chain of parents leads to `root` (not `root` itself).
fn descendants(root: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    let parents: Vec<(u32, u32)> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, parent(pid)?)))
        .collect();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(parents.iter().filter(|(_, pp)| *pp == p).map(|(pid, _)| *pid));
        i += 1;
    }
    found.remove(0);
    found
}

/// The parent's pid: field 4 of /proc/PID/stat, the second after the parenthesised name.
fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.get(stat.rfind(')')? + 2..)?.split_whitespace().nth(1)?.parse().ok()
}

/// From /proc/PID/stat: utime + stime (fields 14 and 15, after the parenthesised name), and
/// cutime + cstime (16 and 17: the children it has waited for).
fn cpu_time(pid: u32) -> Option<(Duration, Duration)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state), so field n is at index n - 3.
    let ticks = |a: usize, b: usize| -> Option<Duration> {
        let t = fields.get(a)?.parse::<u64>().ok()? + fields.get(b)?.parse::<u64>().ok()?;
        Some(Duration::from_secs_f64(t as f64 / USER_HZ))
    };
    Some((ticks(11, 12)?, ticks(13, 14)?))
}

/// The unit of the times in /proc/PID/stat: fixed at 100 by the kernel's ABI on Linux.
const USER_HZ: f64 = 100.0;

/// Samples `pid` every `every` on a thread of its own until stopped.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    thread: Option<std::thread::JoinHandle<()>>,
    pid: u32,
    tree: bool,
}

impl Sampler {
    pub fn start(pid: u32, tree: bool, start: Instant, every: Duration) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (stop2, samples2) = (stop.clone(), samples.clone());
        let thread = std::thread::Builder::new()
            .name("proc-sampler".into())
            .spawn(move || {
                while !stop2.load(Ordering::Relaxed) {
                    match sample(pid, tree, start.elapsed()) {
                        Some(s) => samples2.lock().expect("sampler lock").push(s),
                        None => return,
                    }
                    std::thread::sleep(every);
                }
            })
            .expect("spawning the /proc sampler");
        Sampler { stop, samples, thread: Some(thread), pid, tree }
    }

    /// Stops sampling (after one last sample) and returns the samples.
    pub fn finish(mut self, start: Instant) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let mut samples = std::mem::take(&mut *self.samples.lock().expect("sampler lock"));
        if let Some(last) = sample(self.pid, self.tree, start.elapsed()) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_this_process_and_finds_a_child_in_its_tree() {
        let own = sample(std::process::id(), false, Duration::ZERO).expect("this process is alive");
        assert!(own.rss_kib > 0 && own.hwm_kib >= own.rss_kib && own.threads >= 1 && own.fds >= 1);
        assert_eq!(own.processes, 1);

        let mut child = std::process::Command::new("sleep").arg("5").spawn().expect("spawning sleep");
        let found = descendants(std::process::id()).contains(&child.id());
        let tree = sample(std::process::id(), true, Duration::ZERO).expect("this process is alive");
        let _ = child.kill();
        let _ = child.wait();
        assert!(found, "the child is among the descendants");
        assert!(tree.processes >= 2 && tree.hwm_kib == 0 && tree.rss_kib > 0);
        assert_eq!(parent(std::process::id()), Some(std::os::unix::process::parent_id()));
    }
}
