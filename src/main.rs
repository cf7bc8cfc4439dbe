//! The `hft-connector` binary: parses the command line and dispatches to a subcommand.

use std::fs::File;
use std::io::{self, BufReader};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc rather than the system allocator: the live path still allocates per event (level
/// vectors, trade ids), and glibc's malloc/free were 19 % of a saturated feed's time, with its
/// per-thread arenas holding tens of MB. Built without transparent huge pages (`no_thp`): with
/// them a saturated feed's resident memory was 27 MB instead of 18 (BENCHMARKS.md, issue 12).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A live, exact, self-healing Bybit V5 market-data connector.
#[derive(Parser)]
#[command(name = "hft-connector", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Decode captured Bybit frames (one per line) into normalized JSON events on stdout.
    Decode {
        /// Capture file, or `-` for stdin.
        #[arg(default_value = "-")]
        file: PathBuf,
        /// Add the top N levels of each book after each book event.
        #[arg(long, value_name = "N")]
        top: Option<usize>,
    },
    /// Convert recordings into hftbacktest's `.npz` or normalized JSON lines.
    Convert(hft_connector::cli::convert::ConvertArgs),
    /// The demo: simulator + service + a fault every ~30 s, with the dashboard to watch.
    Demo(hft_connector::cli::demo::DemoArgs),
    /// Run the service: live feeds, kline backfill, store, status API, metrics and dashboard.
    Run(hft_connector::cli::run::RunArgs),
    /// Run the Bybit V5 exchange simulator (WebSocket, REST, ground truth, fault injection).
    Simulate(hft_connector::cli::simulate::SimulateArgs),
    /// Show a running service's feeds: a table, or JSON; --watch refreshes in place.
    ///
    /// Exit code: 0 when every feed is connected, 1 when one is not, 3 when no service answers,
    /// 4 when the answer is not a service status.
    Status(hft_connector::cli::status::StatusArgs),
    /// The live feed without HTTP or store: normalized events as JSON lines on stdout (and NATS).
    Stream(hft_connector::cli::stream::StreamArgs),
    /// Read a NATS JetStream subject as JSON lines, from a sequence or a time, reporting gaps.
    Tail(hft_connector::cli::tail::TailArgs),
    /// Chaos soak: simulator + service, a random fault every S seconds, one JSON line of accounting.
    Soak(hft_connector::cli::soak::SoakArgs),
    /// Internal: a feed's worker process, run by hand (`run --isolation process` starts its
    /// workers itself).
    #[command(hide = true)]
    Worker(hft_connector::cli::worker::WorkerArgs),
}

fn main() -> ExitCode {
    // In a worker process (started by a feed in process isolation) this is all that runs.
    hft_connector::worker::main();
    let cli = Cli::parse();
    match cli.command {
        Command::Decode { file, top } => decode(file, top),
        Command::Convert(args) => hft_connector::cli::convert::main(args),
        Command::Demo(args) => hft_connector::cli::demo::main(args),
        Command::Run(args) => hft_connector::cli::run::main(args),
        Command::Simulate(args) => hft_connector::cli::simulate::main(args),
        Command::Status(args) => hft_connector::cli::status::main(args),
        Command::Stream(args) => hft_connector::cli::stream::main(args),
        Command::Tail(args) => hft_connector::cli::tail::main(args),
        Command::Soak(args) => hft_connector::cli::soak::main(args),
        Command::Worker(args) => hft_connector::cli::worker::main(args),
    }
}

fn decode(file: PathBuf, top: Option<usize>) -> ExitCode {
    let stdout = io::stdout();
    let stderr = io::stderr();
    let mut out = io::BufWriter::new(stdout.lock());
    let mut err = stderr.lock();
    let result = if file.as_os_str() == "-" {
        hft_connector::cli::decode::run(io::stdin().lock(), &mut out, &mut err, top)
    } else {
        match File::open(&file) {
            Ok(f) => hft_connector::cli::decode::run(BufReader::new(f), &mut out, &mut err, top),
            Err(e) => {
                eprintln!("hft-connector decode: cannot open {}: {e}", file.display());
                return ExitCode::from(2);
            }
        }
    };
    match result {
        Ok(summary) if summary.bad_lines == 0 => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hft-connector decode: {e}");
            ExitCode::FAILURE
        }
    }
}
