//! The command-line interface: argument parsing and one module per subcommand.

pub mod decode;
pub mod demo;
pub mod run;
pub mod simulate;
pub mod soak;
pub mod soak_account;
pub mod soak_sim;
pub mod worker;
