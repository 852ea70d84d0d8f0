//! The control plane on the axon port: gRPC services for miners and validators, every call signed
//! with the caller's hotkey (`btauth/1`).
//!
//! [`auth`] is the server-side tower layer that checks a call before any handler runs and hands
//! the handler a [`Caller`]; [`sign`] is the client-side layer that signs outgoing calls;
//! [`registry`] answers "is this hotkey on the subnet, with what stake"; [`ratelimit`] bounds
//! calls per hotkey; [`miner`] and [`validator`] are the services.

pub mod auth;
pub mod benchmark;
pub mod miner;
pub mod ratelimit;
pub mod registry;
pub mod server;
pub mod sign;
pub mod validator;

pub use auth::{Admission, AuthLayer, AuthOptions, Caller};
pub use registry::{Member, Registry, StaticRegistry};
pub use sign::{SignedChannel, SigningLayer, connect};

use crate::core::Version;

/// Refuses a request version whose major differs from ours, naming the version to run.
pub fn check_version(theirs: Option<Version>) -> Result<Version, tonic::Status> {
    let ours = Version::CURRENT;
    let Some(v) = theirs else {
        return Err(tonic::Status::failed_precondition(format!(
            "request carries no version; run mapreduce {}.x (this node runs {ours})",
            ours.major
        )));
    };
    if !ours.compatible_with(&v) {
        return Err(tonic::Status::failed_precondition(format!(
            "version {v} is not compatible with this node's {ours}: run mapreduce {}.x",
            ours.major
        )));
    }
    Ok(v)
}
