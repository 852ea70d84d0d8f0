//! Generated protobuf and gRPC code for mapreduce's control plane and admin API.

/// `mapreduce.v1`: the versioned wire types.
pub mod v1 {
    tonic::include_proto!("mapreduce.v1");
}
