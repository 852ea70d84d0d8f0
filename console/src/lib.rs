//! `mrctl` as a library: the parts of the console that tests and benchmarks reach directly.
//! The binary (`src/main.rs`) adds the clap commands and the daemon discovery around them.

pub mod tui;
