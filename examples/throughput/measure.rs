//! What one measurement records and how: CPU time and peak RSS of a process from /proc, time spent
//! runnable but waiting for a CPU (the machine is shared), pinning to a core, the latency
//! histogram, and the result printed as one JSON line.

use std::time::Instant;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Clock ticks per second of /proc/PID/stat (USER_HZ, 100 on Linux).
const USER_HZ: f64 = 100.0;

/// CPU seconds (user + system) of `pid` so far; `None` once it is gone.
pub fn cpu_s(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields count from after its closing parenthesis.
    let (_, rest) = stat.rsplit_once(')')?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

/// (ns on a CPU, ns runnable but waiting for one) summed over the threads of `pid` alive now
/// (`/proc/PID/task/*/schedstat`).
pub fn sched_ns(pid: u32) -> Option<(u64, u64)> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = (0u64, 0u64);
    for t in tasks.flatten() {
        let Ok(text) = std::fs::read_to_string(t.path().join("schedstat")) else {
            continue;
        };
        let mut f = text
            .split_whitespace()
            .map(|v| v.parse::<u64>().unwrap_or(0));
        total.0 += f.next().unwrap_or(0);
        total.1 += f.next().unwrap_or(0);
    }
    Some(total)
}

/// Peak resident memory (`VmHWM`) of `pid` in MB.
pub fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Pins the calling thread (and every thread and child process it creates later) to `core`.
pub fn pin_to(core: usize) -> Result<(), String> {
    use nix::sched::{sched_setaffinity, CpuSet};
    use nix::unistd::Pid;
    let mut set = CpuSet::new();
    set.set(core).map_err(|e| format!("core {core}: {e}"))?;
    sched_setaffinity(Pid::from_raw(0), &set).map_err(|e| format!("pin to core {core}: {e}"))
}

/// A latency histogram in ns (1 ns to 60 s, 3 significant digits).
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("static bounds are valid")
}

/// One measurement: a consumer mode at a rate, over a window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measurement {
    /// `raw`, `drain`, `in-process` or `process`.
    pub mode: String,
    /// Paced rate asked of the generator (msg/s); 0 = saturation.
    pub rate: f64,
    /// Length of the window (s).
    pub seconds: f64,
    /// Market messages delivered to the consumer in the window.
    pub messages: u64,
    /// Delivered msg/s.
    pub msg_per_s: f64,
    /// Send -> consumer latency percentiles (µs), paced runs only.
    pub p50_us: Option<f64>,
    /// 99th percentile (µs).
    pub p99_us: Option<f64>,
    /// 99.9th percentile (µs).
    pub p999_us: Option<f64>,
    /// Largest latency (µs).
    pub max_us: Option<f64>,
    /// CPU seconds of the consumer (and its worker) per million delivered messages.
    pub cpu_s_per_million: f64,
    /// Peak RSS of the consumer process (MB).
    pub rss_mb: f64,
    /// Peak RSS of the worker process (MB), process mode only.
    pub worker_rss_mb: Option<f64>,
    /// The generator's CPU use over the window (% of one core).
    pub gen_cpu_pct: Option<f64>,
    /// Time the generator was runnable but waited for a CPU (% of the window): on a shared machine,
    /// on-CPU plus waiting far below 100 means the generator was idle, waiting for the consumer.
    pub gen_wait_pct: Option<f64>,
    /// What the generator could send with a whole core: messages per second of its CPU time.
    pub gen_capacity_msg_per_s: Option<f64>,
    /// The consumer's (and worker's) CPU use over the window (% of one core).
    pub consumer_cpu_pct: f64,
    /// Time the consumer's (and worker's) threads were runnable but waited for a CPU (%): the share
    /// of the core other work on the machine took.
    pub consumer_wait_pct: f64,
}

/// Counts messages and latencies over a window, with CPU readings at both ends.
pub struct Window {
    start: Instant,
    cpu0: f64,
    sched0: (u64, u64),
    gen0: Option<(u64, u64)>,
    gen_pid: Option<u32>,
    worker: Option<u32>,
    /// Messages so far.
    pub messages: u64,
    /// Latencies (ns), when paced.
    pub hist: Option<Histogram<u64>>,
}

impl Window {
    /// Starts a window now; `worker` is the worker's pid in process mode.
    pub fn start(paced: bool, gen_pid: Option<u32>, worker: Option<u32>) -> Self {
        let me = std::process::id();
        Window {
            cpu0: cpu_s(me).unwrap_or(0.0) + worker.and_then(cpu_s).unwrap_or(0.0),
            sched0: consumer_sched(me, worker),
            gen0: gen_pid.and_then(sched_ns),
            gen_pid,
            worker,
            start: Instant::now(),
            messages: 0,
            hist: paced.then(histogram),
        }
    }

    /// Records one delivered message stamped at `sent_ns` (Unix ns).
    #[inline]
    pub fn record(&mut self, sent_ns: Option<u64>) {
        self.messages += 1;
        if let (Some(h), Some(sent)) = (self.hist.as_mut(), sent_ns) {
            let lat = crate::loadgen::now_ns().saturating_sub(sent).max(1);
            h.saturating_record(lat);
        }
    }

    /// Ends the window (call before the worker is stopped: its peak RSS is read here).
    pub fn finish(self, mode: &str, rate: f64) -> Measurement {
        let seconds = self.start.elapsed().as_secs_f64();
        let me = std::process::id();
        let cpu1 = cpu_s(me).unwrap_or(0.0) + self.worker.and_then(cpu_s).unwrap_or(0.0);
        let pct = |ns: u64| ns as f64 / 1e9 / seconds * 100.0;
        let gen = match (self.gen0, self.gen_pid.and_then(sched_ns)) {
            (Some(a), Some(b)) => Some((b.0.saturating_sub(a.0), b.1.saturating_sub(a.1))),
            _ => None,
        };
        let sched1 = consumer_sched(me, self.worker);
        let us = |q: f64| {
            self.hist
                .as_ref()
                .filter(|h| !h.is_empty())
                .map(|h| h.value_at_quantile(q) as f64 / 1000.0)
        };
        Measurement {
            mode: mode.to_string(),
            rate,
            seconds,
            messages: self.messages,
            msg_per_s: self.messages as f64 / seconds,
            p50_us: us(0.5),
            p99_us: us(0.99),
            p999_us: us(0.999),
            max_us: us(1.0),
            cpu_s_per_million: (cpu1 - self.cpu0) / self.messages.max(1) as f64 * 1e6,
            rss_mb: peak_rss_mb(me).unwrap_or(0.0),
            worker_rss_mb: self.worker.and_then(peak_rss_mb),
            gen_cpu_pct: gen.map(|g| pct(g.0)),
            gen_wait_pct: gen.map(|g| pct(g.1)),
            gen_capacity_msg_per_s: gen
                .filter(|g| g.0 > 0)
                .map(|g| self.messages as f64 / (g.0 as f64 / 1e9)),
            consumer_cpu_pct: pct(sched1.0.saturating_sub(self.sched0.0)),
            consumer_wait_pct: pct(sched1.1.saturating_sub(self.sched0.1)),
        }
    }
}

fn consumer_sched(me: u32, worker: Option<u32>) -> (u64, u64) {
    let a = sched_ns(me).unwrap_or_default();
    let b = worker.and_then(sched_ns).unwrap_or_default();
    (a.0 + b.0, a.1 + b.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_cpu_and_peak_rss() {
        let me = std::process::id();
        let (run0, _) = sched_ns(me).expect("own schedstat");
        // Burn 30 ms of CPU (however long the shared machine takes to grant it; the wall-clock
        // cap only keeps a broken reading from hanging the test).
        let t = Instant::now();
        let mut x = 0u64;
        let mut run = run0;
        while run < run0 + 30_000_000 && t.elapsed().as_secs() < 120 {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(1));
            }
            run = sched_ns(me).expect("own schedstat").0;
        }
        assert!(
            run >= run0 + 30_000_000,
            "schedstat did not advance: {run0} -> {run}"
        );
        assert!(cpu_s(me).expect("own stat") >= 0.02);
        let rss = peak_rss_mb(me).expect("own status");
        assert!(rss > 0.5 && rss < 10_000.0, "{rss}");
        assert_eq!(cpu_s(u32::MAX), None);
        assert_eq!(sched_ns(u32::MAX), None);
    }

    #[test]
    fn latency_percentiles_come_from_the_histogram() {
        let mut w = Window::start(true, None, None);
        let now = crate::loadgen::now_ns();
        for _ in 0..99 {
            w.record(Some(now));
        }
        // One message stamped a second in the past lands in the top percentile only.
        w.record(Some(now - 1_000_000_000));
        let m = w.finish("drain", 10.0);
        assert_eq!(m.messages, 100);
        let (p50, max) = (m.p50_us.expect("p50"), m.max_us.expect("max"));
        assert!(p50 < 1_000_000.0 * 0.5, "{p50}");
        assert!(max >= 999_000.0, "{max}");
    }
}
