//! The throughput and latency benchmark (`scripts/bench.sh`): starts the Bybit-shaped load
//! generator on one core, then runs each consumer in its own process on another core, one after the
//! other: the generator's ceiling (`raw`), a plain WebSocket drain (`drain`, the baseline), and
//! hft-feed in-process and in process isolation, at saturation and paced. Prints one JSON line per
//! measurement and a markdown table at the end.
//!
//! ```text
//! cargo build --release --bin hft-connector --example throughput
//! target/release/examples/throughput [--seconds 5] [--warmup 1] [--rates 10000,100000]
//!                                    [--before OTHER_TARGET/release]
//! ```
//!
//! `--before DIR` also measures, in the same run and right before each of this build's feed
//! consumers, the same mode of another build (`DIR/examples/throughput` with `DIR/hft-connector`
//! as its worker, e.g. main's), labelled `(before)`.

mod consume;
mod frames;
mod loadgen;
mod measure;
mod report;

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};

use loadgen::GenOptions;

/// The allocator of the `hft-connector` binary (mimalloc without transparent huge pages), so that
/// the in-process consumer and the supervisor are measured as the service runs them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use measure::Measurement;

#[derive(Parser, Debug)]
#[command(about = "hft-connector throughput and latency benchmark")]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    bench: BenchArgs,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the load generator (used by the benchmark itself).
    Loadgen {
        #[command(flatten)]
        gen: GenArgs,
        /// Core to pin to.
        #[arg(long, default_value_t = 0)]
        core: usize,
    },
    /// Run one consumer measurement and print its JSON line (used by the benchmark itself).
    Consume {
        /// raw, drain, in-process, process, in-process-main, process-main, in-process-busy or
        /// process-busy.
        #[arg(long)]
        mode: String,
        /// Generator address.
        #[arg(long)]
        addr: String,
        /// Paced rate in msg/s (0: saturation).
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
        #[arg(long)]
        gen_pid: Option<u32>,
        #[arg(long)]
        core: Option<usize>,
        #[arg(long)]
        warmup: f64,
        #[arg(long)]
        seconds: f64,
        #[arg(long)]
        worker: PathBuf,
        #[arg(long, default_value_t = 1000)]
        busy_poll_us: u64,
    },
}

#[derive(Args, Debug, Clone)]
struct GenArgs {
    /// Frames in the generator's pre-serialized ring.
    #[arg(long, default_value_t = 4096)]
    ring: usize,
    /// One publicTrade frame every N frames, the others orderbook.50 deltas (0: no trades).
    #[arg(long, default_value_t = 4)]
    trade_every: usize,
    /// Most frames per socket write.
    #[arg(long, default_value_t = 64)]
    batch: usize,
}

#[derive(Args, Debug, Clone)]
struct BenchArgs {
    /// Measurement window per run (s).
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Warm-up after the first market message (s).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Paced rates for the latency runs (msg/s, comma separated; empty: none).
    #[arg(long, value_parser = parse_rates, default_value = "10000,100000")]
    rates: Rates,
    /// Consumers to measure, in order.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "raw,drain,in-process,in-process-main,process,process-main,in-process-busy,process-busy"
    )]
    modes: Vec<String>,
    /// Another build's profile directory (with `examples/throughput` and `hft-connector`) whose
    /// feed consumers are measured too, each right before this build's, labelled `(before)`.
    #[arg(long)]
    before: Option<PathBuf>,
    /// Core of the generator.
    #[arg(long, default_value_t = 0)]
    gen_core: usize,
    /// Core of the consumer (and of its worker process).
    #[arg(long, default_value_t = 1)]
    consumer_core: usize,
    /// `feed.busy_poll_us` of the `in-process-busy` and `process-busy` consumers.
    #[arg(long, default_value_t = 1000)]
    busy_poll_us: u64,
    /// The hft-connector executable run as the worker (default: next to target/*/examples/).
    #[arg(long, env = "HFT_CONNECTOR_BIN")]
    worker: Option<PathBuf>,
    #[command(flatten)]
    gen: GenArgs,
}

/// Paced rates (msg/s).
#[derive(Debug, Clone)]
struct Rates(Vec<f64>);

fn parse_rates(s: &str) -> Result<Rates, String> {
    s.split(',')
        .filter(|r| !r.trim().is_empty())
        .map(|r| match r.trim().parse::<f64>() {
            Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
            _ => Err(format!("{r:?} is not a positive rate in msg/s")),
        })
        .collect::<Result<Vec<f64>, String>>()
        .map(Rates)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Some(Cmd::Loadgen { gen, core }) => run_loadgen(&gen, core),
        Some(Cmd::Consume {
            mode,
            addr,
            rate,
            gen_pid,
            core,
            warmup,
            seconds,
            worker,
            busy_poll_us,
        }) => {
            // Unpinned (e.g. the core is outside this container's CPU set) still measures, noisier.
            if let Some(Err(e)) = core.map(measure::pin_to) {
                eprintln!("consumer: not pinned: {e}");
            }
            let plan = consume::Plan {
                mode,
                addr,
                rate,
                warmup,
                seconds,
                gen_pid,
                worker,
                busy_poll_us,
            };
            let m = consume::run(&plan)?;
            println!("{}", serde_json::to_string(&m)?);
            Ok(())
        }
        None => bench(&cli.bench),
    }
}

fn run_loadgen(gen: &GenArgs, core: usize) -> anyhow::Result<()> {
    if let Err(e) = measure::pin_to(core) {
        eprintln!("loadgen: not pinned: {e}");
    }
    let listener = TcpListener::bind("127.0.0.1:0")?;
    // The benchmark reads the address from the first line.
    println!("{}", listener.local_addr()?);
    loadgen::serve(
        listener,
        GenOptions {
            ring: gen.ring,
            trade_every: gen.trade_every,
            batch: gen.batch.max(1),
            seed: 1,
        },
    );
    Ok(())
}

/// The hft-connector executable: `--worker`, else the one Cargo built for this package.
fn worker_path(arg: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let path = match arg {
        Some(p) => p.clone(),
        None => match option_env!("CARGO_BIN_EXE_hft-connector") {
            Some(p) => PathBuf::from(p),
            None => std::env::current_exe()?
                .parent()
                .and_then(|examples| examples.parent())
                .map(|profile| profile.join("hft-connector"))
                .context("cannot locate the target directory")?,
        },
    };
    if !path.exists() {
        bail!(
            "{} not found: build it first (cargo build --release --bin hft-connector) or pass --worker",
            path.display()
        );
    }
    Ok(path)
}

/// Waits for `child` up to `limit` (killing it then) and returns its status (`None`: killed) and
/// its stdout.
fn finish_within(
    mut child: Child,
    limit: Duration,
) -> anyhow::Result<(Option<std::process::ExitStatus>, String)> {
    let mut stdout = child.stdout.take().context("consumer stdout")?;
    // The reader ends when the child's stdout closes (it exits or is killed).
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break Some(st);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = reader.join().unwrap_or_default();
    Ok((status, text))
}

/// Kills the generator when the benchmark ends, however it ends.
struct Generator(Child);

impl Drop for Generator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn bench(args: &BenchArgs) -> anyhow::Result<()> {
    if !(args.seconds > 0.0 && args.warmup >= 0.0) {
        bail!("--seconds must be positive and --warmup not negative");
    }
    let worker = worker_path(&args.worker)?;
    let me = std::env::current_exe()?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (gen_core, consumer_core) = if args.gen_core.max(args.consumer_core) < cores {
        (args.gen_core, args.consumer_core)
    } else {
        eprintln!("only {cores} core(s): generator and consumer share core 0");
        (0, 0)
    };
    let g = &args.gen;
    let mut child = Command::new(&me)
        .args(["loadgen", "--core", &gen_core.to_string()])
        .args([
            "--ring",
            &g.ring.to_string(),
            "--trade-every",
            &g.trade_every.to_string(),
        ])
        .args(["--batch", &g.batch.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the load generator")?;
    let mut first = String::new();
    if let Some(out) = child.stdout.take() {
        BufReader::new(out).read_line(&mut first)?;
    }
    let gen = Generator(child);
    let addr = first.trim().to_string();
    if addr.is_empty() {
        bail!("the load generator did not report its address");
    }
    eprintln!(
        "generator {addr} on core {gen_core} (pid {}), consumers on core {consumer_core}, {} s per run after {} s warm-up, worker {}",
        gen.0.id(),
        args.seconds,
        args.warmup,
        worker.display()
    );
    // (consumer executable, its worker, label suffix): this build, and `--before`'s if given.
    let this = (me.clone(), worker.clone(), "");
    let before = match &args.before {
        Some(dir) => {
            let (exe, w) = (dir.join("examples/throughput"), dir.join("hft-connector"));
            if !exe.exists() || !w.exists() {
                bail!(
                    "--before {}: needs examples/throughput and hft-connector",
                    dir.display()
                );
            }
            Some((exe, w, " (before)"))
        }
        None => None,
    };
    let mut runs = Vec::new();
    let rates = std::iter::once(0.0).chain(args.rates.0.iter().copied());
    for rate in rates {
        for m in &args.modes {
            if m == "raw" && rate > 0.0 {
                continue;
            }
            let feed = m != "raw" && m != "drain";
            if let (true, Some(b)) = (feed, &before) {
                runs.push((m.clone(), rate, b.clone()));
            }
            runs.push((m.clone(), rate, this.clone()));
        }
    }
    let mut results: Vec<Result<Measurement, String>> = Vec::new();
    for (mode, rate, (exe, worker, label)) in runs {
        let out = Command::new(&exe)
            .args(["consume", "--mode", &mode, "--addr", &addr])
            .args([
                "--rate",
                &rate.to_string(),
                "--gen-pid",
                &gen.0.id().to_string(),
            ])
            .args(["--core", &consumer_core.to_string()])
            .args([
                "--warmup",
                &args.warmup.to_string(),
                "--seconds",
                &args.seconds.to_string(),
            ])
            .arg("--worker")
            .arg(&worker)
            .args(["--busy-poll-us", &args.busy_poll_us.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("running the {mode} consumer"))?;
        // A consumer that does not finish in time is killed and reported, never waited for forever.
        let limit = Duration::from_secs_f64(args.warmup + args.seconds + 60.0);
        let (status, text) = finish_within(out, limit)?;
        let parsed = text
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str::<Measurement>(l).ok());
        match parsed {
            Some(mut m) if status.is_some_and(|s| s.success()) => {
                m.mode.push_str(label);
                println!("{}", serde_json::to_string(&m)?);
                results.push(Ok(m));
            }
            _ => {
                let e = match status {
                    Some(st) => format!("{mode}{label} at rate {rate}: failed ({st})"),
                    None => format!("{mode}{label} at rate {rate}: killed after {limit:?}"),
                };
                eprintln!("{e}");
                results.push(Err(e));
            }
        }
    }
    drop(gen);
    println!();
    print!("{}", report::table(&results));
    print!("{}", report::main_vs_spawned(&results));
    if results.iter().any(Result::is_err) {
        bail!("some measurements failed");
    }
    Ok(())
}
