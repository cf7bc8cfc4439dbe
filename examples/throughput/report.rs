//! The markdown table printed at the end of a benchmark run: every measurement with its ratio to
//! the plain WebSocket drain at the same rate.

use std::fmt::Write;

use crate::measure::Measurement;

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}"))
}

/// Thousands separated with commas.
fn int(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (n, c) in digits.chars().enumerate() {
        if n > 0 && (digits.len() - n) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The table; failed measurements get a row saying so.
pub fn table(results: &[Result<Measurement, String>]) -> String {
    let mut s = String::new();
    s.push_str("| consumer | load | delivered msg/s | vs drain | p50 µs | p99 µs | p99.9 µs | CPU s / M msgs | peak RSS MB | consumer on-CPU / waiting % | generator on-CPU / waiting % | generator msg/s per CPU-s |\n");
    s.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in results {
        let m = match r {
            Ok(m) => m,
            Err(e) => {
                let _ = writeln!(s, "| {e} | | | | | | | | | | | |");
                continue;
            }
        };
        let drain = results
            .iter()
            .flatten()
            .find(|d| d.mode == "drain" && d.rate == m.rate);
        let ratio = drain
            .filter(|d| d.msg_per_s > 0.0)
            .map_or("-".to_string(), |d| {
                format!("{:.2}x", m.msg_per_s / d.msg_per_s)
            });
        let load = if m.rate > 0.0 {
            format!("{} msg/s paced", int(m.rate))
        } else {
            "saturation".to_string()
        };
        let rss = match m.worker_rss_mb {
            Some(w) => format!("{:.1} + {w:.1} worker = {:.1}", m.rss_mb, m.rss_mb + w),
            None => format!("{:.1}", m.rss_mb),
        };
        let _ = writeln!(
            s,
            "| {} | {load} | {} | {ratio} | {} | {} | {} | {:.2} | {rss} | {:.0} / {:.0} | {} | {} |",
            m.mode,
            int(m.msg_per_s),
            opt(m.p50_us),
            opt(m.p99_us),
            opt(m.p999_us),
            m.cpu_s_per_million,
            m.consumer_cpu_pct,
            m.consumer_wait_pct,
            match (m.gen_cpu_pct, m.gen_wait_pct) {
                (Some(c), Some(w)) => format!("{c:.0} / {w:.0}"),
                _ => "-".to_string(),
            },
            m.gen_capacity_msg_per_s.map_or("-".to_string(), int),
        );
    }
    s
}

/// For each README-shaped consumer (`X-main`: the loop in `block_on`) at saturation, its delivered
/// rate against the spawned loop (`X`) of the same build: the issue-22 target is >= 0.95x. (Paced,
/// both deliver the pace.)
pub fn main_vs_spawned(results: &[Result<Measurement, String>]) -> String {
    let mut s = String::new();
    for m in results.iter().flatten().filter(|m| m.rate == 0.0) {
        let Some((isolation, label)) = m.mode.split_once("-main") else {
            continue;
        };
        let spawned = format!("{isolation}{label}");
        let Some(base) = results
            .iter()
            .flatten()
            .find(|b| b.mode == spawned && b.rate == m.rate && b.msg_per_s > 0.0)
        else {
            continue;
        };
        let _ = writeln!(
            s,
            "{} vs {spawned}, saturation: {:.2}x",
            m.mode,
            m.msg_per_s / base.msg_per_s
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(mode: &str, rate: f64, msg_per_s: f64) -> Measurement {
        Measurement {
            mode: mode.into(),
            rate,
            seconds: 1.0,
            messages: msg_per_s as u64,
            msg_per_s,
            p50_us: (rate > 0.0).then_some(12.0),
            p99_us: (rate > 0.0).then_some(40.0),
            p999_us: (rate > 0.0).then_some(90.0),
            max_us: None,
            cpu_s_per_million: 2.5,
            rss_mb: 20.0,
            worker_rss_mb: (mode == "process").then_some(30.0),
            gen_cpu_pct: Some(55.0),
            gen_wait_pct: Some(5.0),
            gen_capacity_msg_per_s: Some(3_000_000.0),
            consumer_cpu_pct: 60.0,
            consumer_wait_pct: 40.0,
        }
    }

    #[test]
    fn rows_carry_the_ratio_to_the_drain_at_the_same_rate() {
        let t = table(&[
            Ok(m("drain", 0.0, 800_000.0)),
            Ok(m("in-process", 0.0, 200_000.0)),
            Ok(m("process", 10_000.0, 9_990.0)),
            Ok(m("drain", 10_000.0, 10_000.0)),
            Err("raw at rate 0: failed".into()),
        ]);
        let rows: Vec<&str> = t.lines().collect();
        assert_eq!(rows.len(), 7, "{t}");
        assert!(
            rows[2].starts_with("| drain | saturation | 800,000 | 1.00x |"),
            "{}",
            rows[2]
        );
        assert!(rows[3].contains("| 200,000 | 0.25x |"), "{}", rows[3]);
        assert!(
            rows[4].contains("10,000 msg/s paced | 9,990 | 1.00x | 12.0 | 40.0 | 90.0 |"),
            "{}",
            rows[4]
        );
        assert!(
            rows[4].contains("20.0 + 30.0 worker = 50.0 | 60 / 40 | 55 / 5 | 3,000,000 |"),
            "{}",
            rows[4]
        );
        assert!(rows[6].contains("failed"));
    }

    #[test]
    fn the_readme_shaped_loop_is_compared_with_the_spawned_one_of_its_build() {
        let s = main_vs_spawned(&[
            Ok(m("in-process (before)", 0.0, 500_000.0)),
            Ok(m("in-process-main (before)", 0.0, 250_000.0)),
            Ok(m("in-process", 0.0, 500_000.0)),
            Ok(m("in-process-main", 0.0, 490_000.0)),
            Ok(m("process-main", 0.0, 300_000.0)),
            Ok(m("in-process", 10_000.0, 10_000.0)),
            Ok(m("in-process-main", 10_000.0, 10_000.0)),
        ]);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(
            lines,
            [
                "in-process-main (before) vs in-process (before), saturation: 0.50x",
                "in-process-main vs in-process, saturation: 0.98x",
            ]
        );
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(int(1_234_567.4), "1,234,567");
        assert_eq!(int(999.0), "999");
        assert_eq!(int(0.0), "0");
    }
}
