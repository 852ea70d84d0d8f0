//! Typed configuration, layering (defaults < file < environment < flags) and validation.

mod model;

pub use model::*;
