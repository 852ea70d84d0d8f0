//! Typed configuration, layering (defaults < file < environment < flags) and validation.
