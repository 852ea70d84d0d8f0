//! Pure domain types shared by every room: no I/O here.

pub mod version;
