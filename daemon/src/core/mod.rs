//! Pure domain types shared by every room: no I/O here.

pub mod job;
pub mod refusals;
pub mod sample;
pub mod scoring;
pub mod shards;
pub mod testhook;
pub mod traffic;
pub mod version;

pub use job::{Collective, Dtype, Op};
pub use shards::{Layout, LayoutError, ShardPlan};
pub use version::Version;
