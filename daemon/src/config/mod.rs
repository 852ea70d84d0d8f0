//! Typed configuration, layering (defaults < file < environment < flags) and validation.
//!
//! `config.toml.example` at the repository root documents every key; [`EXAMPLE`] embeds it so
//! `mrctl config print-default` prints exactly what is checked in.

mod error;
pub mod flags;
pub mod legacy;
mod load;
mod model;
mod validate;

pub use error::{ConfigError, ConfigErrors, nearest};
pub use load::{Loaded, Loader, default_files};
pub use model::*;
pub use validate::{Problem, validate};

/// The commented example configuration, every key with its default.
pub const EXAMPLE: &str = include_str!("../../../config.toml.example");
