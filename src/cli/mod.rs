//! The command-line interface: argument parsing and one module per subcommand.

pub mod convert;
pub mod decode;
pub mod demo;
pub mod run;
pub mod simulate;
pub mod worker;
