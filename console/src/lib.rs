//! `mrctl` as a library: the parts of the console that tests and benchmarks reach directly.
//! The binary (`src/main.rs`) adds the clap commands and the daemon discovery around them.

/// Connecting to a daemon's admin API: targets, channels, token files (the binary and tests).
pub mod client;
pub mod tui;
