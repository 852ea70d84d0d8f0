//! The admin API every daemon serves to `mrctl` (proto `mapreduce.v1.Admin`): on a unix socket
//! (default `<runtime dir>/<role>.sock`, see [`paths`]) or a loopback TCP address, every call
//! authenticated by the bearer token of a 0600 file ([`token`]).
//!
//! A daemon mounts it in a few lines: implement [`RoleData`] for its state (the calls it does
//! not serve answer UNIMPLEMENTED), then
//! ```ignore
//! let admin = Admin::start(AdminSetup { parts: ContextParts { .. }, admin: cfg.admin.clone(),
//!     socket_name: "miner".into(), traffic: vec![relay.traffic.clone()] }).await?;
//! // ... once serving:
//! admin.set_ready().await;
//! // ... at shutdown:
//! admin.stop().await;
//! ```
//! Live configuration: [`Admin::config_watch`] gives a `watch::Receiver<Config>` that
//! UpdateConfig feeds; a role lists the keys it applies from it in [`RoleData::live_keys`], the
//! others are reported as needing a restart. The logging level is applied here.
//!
//! The health service (`grpc.health.v1`, tonic-health) is served without a token and reports
//! SERVING for "" and `mapreduce.v1.Admin` once the daemon calls [`Admin::set_ready`].

pub mod config_edit;
pub mod listen;
pub mod metrics;
pub mod paths;
pub mod prometheus;
pub mod role;
pub mod roles;
pub mod server;
pub mod service;
pub mod token;

pub use role::{BenchStream, RoleData, not_served, role_name};
pub use server::{Admin, AdminError, AdminSetup, BearerCheck};
pub use service::{AdminContext, AdminService, ContextParts};
