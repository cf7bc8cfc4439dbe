//! The command-line interface: argument parsing and one module per subcommand.

pub mod convert;
pub mod decode;
pub mod demo;
pub mod nats_args;
pub mod run;
pub mod simulate;
pub mod soak;
pub mod soak_account;
pub mod soak_sim;
pub mod status;
pub mod status_table;
pub mod stream;
pub mod tail;
pub mod worker;

/// How long a command waits, after its (bounded) stop, for tasks it abandoned before the process
/// exits anyway.
pub const EXIT_GRACE: std::time::Duration = std::time::Duration::from_millis(200);
