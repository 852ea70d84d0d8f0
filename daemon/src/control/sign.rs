//! Client side of the signed control plane: a tower layer that buffers each outgoing call, signs
//! it (`btauth/1`: POST, the gRPC method path, sha256 of the body bytes as sent) for one receiver
//! hotkey, and adds the `x-bittensor-*` metadata.

use crate::wallet::Keypair;
use crate::wallet::btauth::{NonceSource, SystemClock, sign_request};
use http_body_util::{BodyExt, Full};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tonic::body::Body;
use tonic::transport::{Channel, Endpoint};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Signs calls as `key`, addressed to `receiver` (ss58).
#[derive(Clone)]
pub struct SigningLayer {
    key: Arc<Keypair>,
    receiver: Arc<str>,
    nonces: Arc<NonceSource>,
}

impl SigningLayer {
    pub fn new(key: Arc<Keypair>, receiver: &str) -> Self {
        SigningLayer {
            key,
            receiver: receiver.into(),
            nonces: process_nonces(),
        }
    }
}

/// One nonce sequence for the whole process: channels signing with the same hotkey at the same
/// moment (ranks of one job in one process) must never send the same nonce, or the receiver
/// refuses the second as a replay.
fn process_nonces() -> Arc<NonceSource> {
    static NONCES: std::sync::OnceLock<Arc<NonceSource>> = std::sync::OnceLock::new();
    Arc::clone(NONCES.get_or_init(|| Arc::new(NonceSource::new())))
}

impl<S> tower::Layer<S> for SigningLayer {
    type Service = SigningService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SigningService {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct SigningService<S> {
    inner: S,
    layer: SigningLayer,
}

/// A channel whose calls are signed; pass it to the generated `MinerClient::new` /
/// `ValidatorClient::new`.
pub type SignedChannel = SigningService<Channel>;

impl<S> tower::Service<http::Request<Body>> for SigningService<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
{
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let bytes = body.collect().await?.to_bytes();
            let nonce = layer.nonces.next(&SystemClock);
            let signed = sign_request(
                &layer.key,
                "POST",
                parts.uri.path(),
                &bytes,
                Some(&layer.receiver),
                nonce,
            )?;
            for (name, value) in signed.to_pairs() {
                parts
                    .headers
                    .insert(name, http::HeaderValue::from_str(&value)?);
            }
            let req = http::Request::from_parts(parts, Body::new(Full::new(bytes)));
            inner.call(req).await.map_err(Into::into)
        })
    }
}

/// Connects to `endpoint` (`http://host:port` or `host:port`) and signs every call as `key` for
/// `receiver` (the server's hotkey ss58).
pub async fn connect(
    endpoint: &str,
    key: Arc<Keypair>,
    receiver: &str,
    timeout: Duration,
) -> Result<SignedChannel, tonic::transport::Error> {
    let uri = if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    };
    let channel = Endpoint::from_shared(uri)?
        .connect_timeout(timeout)
        .timeout(timeout)
        .connect()
        .await?;
    Ok(SigningLayer::new(key, receiver).layer_channel(channel))
}

impl SigningLayer {
    /// Wraps an existing channel.
    pub fn layer_channel(&self, channel: Channel) -> SignedChannel {
        tower::Layer::layer(self, channel)
    }
}
