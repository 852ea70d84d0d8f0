//! Binding, authentication and serving: what a daemon calls to mount the admin API.

use super::listen::{self, Bound, Listener};
use super::service::{AdminContext, AdminService, ContextParts};
use crate::core::traffic::Traffic;
use mr_proto::v1::admin_server::AdminServer;
use std::sync::Arc;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::metadata::MetadataValue;
use tonic::transport::Server;
use tonic::{Request, Status};

/// Checks `authorization: Bearer <token>`; anything else is UNAUTHENTICATED with no detail.
#[derive(Clone)]
pub struct BearerCheck {
    expected: Arc<[u8]>,
}

impl BearerCheck {
    pub fn new(token: &str) -> BearerCheck {
        BearerCheck {
            expected: format!("Bearer {token}").into_bytes().into(),
        }
    }
}

/// Compares without an early exit, so timing does not tell how much of a guess was right.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl tonic::service::Interceptor for BearerCheck {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        let given: Option<&MetadataValue<_>> = req.metadata().get("authorization");
        match given {
            Some(v) if same(v.as_bytes(), &self.expected) => Ok(req),
            _ => Err(Status::unauthenticated("missing or wrong admin token")),
        }
    }
}

/// What a daemon passes to [`Admin::start`].
pub struct AdminSetup {
    pub parts: ContextParts,
    pub admin: crate::config::AdminConfig,
    /// Socket name for the default path (`<runtime dir>/<socket_name>.sock`): the role.
    pub socket_name: String,
    /// Byte counters sampled each second for WatchMetrics.
    pub traffic: Vec<Traffic>,
}

/// A running admin server.
pub struct Admin {
    pub ctx: Arc<AdminContext>,
    pub endpoint: listen::Endpoint,
    pub token_file: std::path::PathBuf,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    sampler: JoinHandle<()>,
    /// The Prometheus exporter, when `[metrics] enabled`.
    pub exporter: Option<super::prometheus::Exporter>,
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Listen(#[from] listen::ListenError),
    #[error("metrics.addr {addr}: cannot serve Prometheus metrics there: {source}")]
    Metrics {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

impl Admin {
    /// Binds (a refused address, a live socket or a loose token file is an error: the daemon
    /// should not start), starts the metrics sampler and serves. Health says NOT_SERVING until
    /// [`Admin::set_ready`].
    pub async fn start(mut setup: AdminSetup) -> Result<Admin, AdminError> {
        let Bound {
            listener,
            endpoint,
            token,
            token_file,
        } = listen::bind(&setup.admin, &setup.socket_name).await?;
        setup.parts.endpoint = endpoint.to_string();
        let (reporter, health) = tonic_health::server::health_reporter();
        reporter
            .set_not_serving::<AdminServer<AdminService>>()
            .await;
        reporter
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
        let ctx = AdminContext::new(setup.parts, reporter);
        let metrics_cfg = ctx.config.borrow().metrics.clone();
        let exporter = if metrics_cfg.enabled {
            let addr = metrics_cfg.addr;
            Some(
                super::prometheus::Exporter::start(Arc::clone(&ctx), addr)
                    .await
                    .map_err(|source| AdminError::Metrics { addr, source })?,
            )
        } else {
            None
        };
        let role = Arc::clone(&ctx.role);
        let sampler = ctx
            .metrics
            .spawn_sampler(setup.traffic, Arc::new(move || role.gauges()));
        let svc = AdminServer::with_interceptor(
            AdminService {
                ctx: Arc::clone(&ctx),
            },
            BearerCheck::new(&token),
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async {
            let _ = stopped.await;
        };
        let router = Server::builder().add_service(health).add_service(svc);
        let where_ = endpoint.to_string();
        let server = tokio::spawn(async move {
            let res = match listener {
                Listener::Unix { listener, _file } => {
                    let r = router
                        .serve_with_incoming_shutdown(
                            tokio_stream::wrappers::UnixListenerStream::new(listener),
                            shutdown,
                        )
                        .await;
                    drop(_file);
                    r
                }
                Listener::Tcp(l) => {
                    router
                        .serve_with_incoming_shutdown(
                            tokio_stream::wrappers::TcpListenerStream::new(l),
                            shutdown,
                        )
                        .await
                }
            };
            if let Err(e) = res {
                tracing::error!("admin API on {where_} stopped: {e}");
            }
        });
        tracing::info!(endpoint = %endpoint, token_file = %token_file.display(), "admin API listening");
        Ok(Admin {
            ctx,
            endpoint,
            token_file,
            stop: Some(stop),
            server: Some(server),
            sampler,
            exporter,
        })
    }

    /// The daemon serves: GetStatus says ready, health says SERVING.
    pub async fn set_ready(&self) {
        self.ctx.mark_ready();
        self.ctx
            .health
            .set_serving::<AdminServer<AdminService>>()
            .await;
        self.ctx
            .health
            .set_service_status("", tonic_health::ServingStatus::Serving)
            .await;
    }

    /// The live configuration: changes applied by UpdateConfig arrive here.
    pub fn config_watch(&self) -> tokio::sync::watch::Receiver<crate::config::Config> {
        self.ctx.config.subscribe()
    }

    /// Stops serving (streams end) and removes the socket file.
    pub async fn stop(mut self) {
        self.sampler.abort();
        if let Some(e) = self.exporter.take() {
            e.stop();
        }
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(h) = self.server.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(3), h).await;
        }
    }
}

impl Drop for Admin {
    fn drop(&mut self) {
        self.sampler.abort();
        if let Some(h) = &self.server {
            h.abort();
        }
    }
}
