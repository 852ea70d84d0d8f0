//! Server side of the signed control plane: a tower layer in front of the tonic services.
//!
//! Why a layer and not a tonic interceptor: `btauth/1` signs the sha256 of the request body, and
//! an interceptor never sees the body. The layer buffers the body (at most `max_body` bytes, so
//! buffering is bounded), verifies the signature over the exact bytes received (no re-encoding,
//! so fields unknown to an older build still verify), then checks, in order: registration or the
//! client allowlist, the per-hotkey rate limit, and the version (field 1 of every request). The
//! handler finds a [`Caller`] in the request extensions; an unchecked request never reaches it.

use super::ratelimit::RateLimiter;
use super::registry::{Member, Registry};
use crate::core::Version;
use crate::wallet::btauth::{AuthError, SignedHeaders, Verifier};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::Status;
use tonic::body::Body;

/// The verified identity of a call, put into the request extensions.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    /// ss58.
    pub hotkey: String,
    /// Set when the hotkey is registered on the subnet.
    pub member: Option<Member>,
    pub version: Version,
}

impl Caller {
    /// The caller of a request that went through [`AuthLayer`]. Missing means the service was
    /// mounted without the layer: a server bug, not the caller's fault.
    pub fn of<T>(req: &tonic::Request<T>) -> Result<Caller, Status> {
        req.extensions()
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| Status::internal("no authenticated caller (auth layer missing)"))
    }
}

/// Who may call a service.
#[derive(Debug, Clone)]
pub enum Admission {
    /// Hotkeys registered on the netuid with at least this stake (TAO): the miner service.
    Registered { min_stake_tao: f64 },
    /// Hotkeys in the list, registered or not; `"*"` admits anyone: the validator service.
    Clients { allow: Vec<String> },
}

/// What the layer enforces.
#[derive(Clone)]
pub struct AuthOptions {
    pub admission: Admission,
    /// Largest request body, in bytes.
    pub max_body: usize,
    /// Calls per second per hotkey, and the burst allowed.
    pub rate_per_sec: f64,
    pub rate_burst: u32,
    /// Name used in refusals ("miner", "validator").
    pub role: &'static str,
}

struct Shared {
    verifier: Verifier,
    registry: Arc<dyn Registry>,
    limiter: RateLimiter,
    options: AuthOptions,
}

/// The layer; clone it into `tonic::transport::Server::builder().layer(..)`.
#[derive(Clone)]
pub struct AuthLayer {
    shared: Arc<Shared>,
}

impl AuthLayer {
    /// `verifier` checks requests addressed to this node's hotkey.
    pub fn new(verifier: Verifier, registry: Arc<dyn Registry>, options: AuthOptions) -> Self {
        AuthLayer {
            shared: Arc::new(Shared {
                verifier,
                registry,
                limiter: RateLimiter::new(options.rate_per_sec, options.rate_burst),
                options,
            }),
        }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    shared: Arc<Shared>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S> tower::Service<http::Request<Body>> for AuthService<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        // The clone that was polled ready serves this call (tower's usual swap).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = Arc::clone(&self.shared);
        Box::pin(async move {
            match check(&shared, req).await {
                Ok(req) => inner.call(req).await,
                Err(status) => {
                    tracing::debug!(code = ?status.code(), "refused: {}", status.message());
                    crate::core::refusals::record("axon", refusal_reason(status.code()));
                    Ok(status.into_http())
                }
            }
        })
    }
}

/// A stable label for the metrics: what kind of refusal a status is.
fn refusal_reason(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::Unauthenticated => "unauthenticated",
        tonic::Code::PermissionDenied => "permission_denied",
        tonic::Code::ResourceExhausted => "resource_exhausted",
        tonic::Code::FailedPrecondition => "version",
        tonic::Code::InvalidArgument => "invalid_argument",
        _ => "other",
    }
}

/// Every check, in order; the request comes back rebuilt around the buffered body.
async fn check(s: &Shared, req: http::Request<Body>) -> Result<http::Request<Body>, Status> {
    let (mut parts, body) = req.into_parts();
    let headers =
        SignedHeaders::from_lookup(|name| parts.headers.get(name).and_then(|v| v.to_str().ok()))
            .map_err(|e| {
                Status::unauthenticated(format!(
                    "{e}: every call must be signed with the caller's hotkey (btauth/1 metadata)"
                ))
            })?;
    let max = s.options.max_body;
    let bytes = Limited::new(body, max)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                Status::resource_exhausted(format!("request body over {max} bytes"))
            } else {
                Status::cancelled(format!("reading the request body: {e}"))
            }
        })?
        .to_bytes();
    let path = parts.uri.path().to_string();
    let verified = s
        .verifier
        .verify(&headers, "POST", &path, &bytes)
        .map_err(|e| match e {
            AuthError::ReplayStoreFull => Status::resource_exhausted(e.to_string()),
            AuthError::WrongReceiver { .. } => Status::permission_denied(e.to_string()),
            _ => Status::unauthenticated(e.to_string()),
        })?;
    let hotkey = verified.hotkey;
    let member = s.registry.member(&hotkey);
    admit(s, &hotkey, member.as_ref())?;
    if !s.limiter.allow(&hotkey) {
        return Err(Status::resource_exhausted(format!(
            "rate limit: at most {} calls/s (burst {}) per hotkey; slow down",
            s.options.rate_per_sec, s.options.rate_burst
        )));
    }
    let version = super::check_version(request_version(&bytes))?;
    parts.extensions.insert(Caller {
        hotkey,
        member,
        version,
    });
    Ok(http::Request::from_parts(
        parts,
        Body::new(Full::new(bytes)),
    ))
}

fn admit(s: &Shared, hotkey: &str, member: Option<&Member>) -> Result<(), Status> {
    let role = s.options.role;
    match &s.options.admission {
        Admission::Registered { min_stake_tao } => {
            let netuid = s.registry.netuid();
            let Some(m) = member else {
                return Err(Status::permission_denied(format!(
                    "hotkey {hotkey} is not registered on netuid {netuid}; this {role} serves \
                     registered validators only (register with `mrctl register --netuid {netuid} \
                     --wallet.name <name> --wallet.hotkey <hotkey>`)"
                )));
            };
            if m.stake_tao < *min_stake_tao {
                return Err(Status::permission_denied(format!(
                    "hotkey {hotkey} (uid {}) has {:.3} TAO staked, below this {role}'s \
                     miner.min_validator_stake of {min_stake_tao}",
                    m.uid, m.stake_tao
                )));
            }
            Ok(())
        }
        Admission::Clients { allow } => {
            if allow.iter().any(|a| a == "*" || a == hotkey) {
                Ok(())
            } else {
                Err(Status::permission_denied(format!(
                    "hotkey {hotkey} is not a client of this {role}: ask its operator to add it \
                     to validator.clients"
                )))
            }
        }
    }
}

/// Field 1 of the request message, read from the gRPC frame without knowing the message type.
fn request_version(body: &[u8]) -> Option<Version> {
    #[derive(Clone, PartialEq, prost::Message)]
    struct Head {
        #[prost(message, optional, tag = "1")]
        version: Option<mr_proto::v1::Version>,
    }
    // gRPC frame: 1 byte compressed flag (we never compress), 4 bytes big-endian length.
    let (&flag, rest) = body.split_first()?;
    if flag != 0 || rest.len() < 4 {
        return None;
    }
    let (len, msg) = rest.split_at(4);
    let len = u32::from_be_bytes(len.try_into().ok()?) as usize;
    let msg = msg.get(..len)?;
    <Head as prost::Message>::decode(Bytes::copy_from_slice(msg))
        .ok()?
        .version
        .map(Version::from)
}
