//! Mounting the services behind the auth layer on a listener.

use super::auth::AuthLayer;
use super::miner::MinerService;
use super::validator::ValidatorService;
use mr_proto::v1::miner_server::MinerServer;
use mr_proto::v1::validator_server::ValidatorServer;
use std::future::Future;
use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

/// Serves the miner service until `shutdown` completes.
pub async fn serve_miner(
    listener: TcpListener,
    auth: AuthLayer,
    svc: MinerService,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    Server::builder()
        .layer(auth)
        .add_service(MinerServer::new(svc))
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown)
        .await
}

/// Serves the validator service until `shutdown` completes.
pub async fn serve_validator(
    listener: TcpListener,
    auth: AuthLayer,
    svc: ValidatorService,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    Server::builder()
        .layer(auth)
        .add_service(ValidatorServer::new(svc))
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown)
        .await
}
