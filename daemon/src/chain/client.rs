//! The connection to subtensor: connect with backoff, reconnect on failure, a watchdog that
//! reconnects when no block arrives for a while, and a timeout on every call.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex, Weak};
use std::time::{Duration, Instant};

use subxt::backend::LegacyBackend;
use subxt::client::{ClientAtBlock, OnlineClientAtBlockImpl};
use subxt::config::RpcConfigFor;
use subxt::rpcs::methods::LegacyRpcMethods;
use subxt::rpcs::{RpcClient, rpc_params};
use subxt::{OnlineClient, SubstrateConfig};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use super::error::ChainError;
use super::types::{ChainInfo, RuntimeVersion};
use crate::config::SubtensorConfig;

/// subxt's view of a block.
pub(crate) type AtBlock = ClientAtBlock<SubstrateConfig, OnlineClientAtBlockImpl<SubstrateConfig>>;
type Legacy = LegacyRpcMethods<RpcConfigFor<SubstrateConfig>>;

/// How to reach the chain and how patient to be.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainOptions {
    /// ws:// or wss:// URL.
    pub endpoint: String,
    /// Bound on every read and on submitting a transaction.
    pub call_timeout: Duration,
    /// Bound on waiting for a submitted transaction to be included in a block.
    pub inclusion_timeout: Duration,
    /// Reconnect when no new block arrives for this long; `None` disables the watchdog.
    pub watchdog: Option<Duration>,
    /// Longest pause between two connection attempts.
    pub max_backoff: Duration,
}

impl ChainOptions {
    /// Defaults for `endpoint`: 30 s calls, 120 s inclusion, 120 s watchdog.
    pub fn new(endpoint: impl Into<String>) -> Self {
        ChainOptions {
            endpoint: endpoint.into(),
            call_timeout: Duration::from_secs(30),
            inclusion_timeout: Duration::from_secs(120),
            watchdog: Some(Duration::from_secs(120)),
            max_backoff: Duration::from_secs(30),
        }
    }

    /// From the `[subtensor]` section (endpoint, timeouts, watchdog).
    pub fn from_config(c: &SubtensorConfig) -> Self {
        ChainOptions {
            endpoint: c.endpoint(),
            call_timeout: Duration::from_secs(c.call_timeout_secs.max(1)),
            inclusion_timeout: Duration::from_secs(c.inclusion_timeout_secs.max(1)),
            watchdog: (c.watchdog_secs > 0).then(|| Duration::from_secs(c.watchdog_secs)),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// One live connection.
pub(crate) struct Conn {
    pub(crate) api: OnlineClient<SubstrateConfig>,
    pub(crate) rpc: RpcClient,
    pub(crate) legacy: Legacy,
    pub(crate) spec_name: String,
    generation: u64,
}

struct Inner {
    opts: ChainOptions,
    conn: StdMutex<Option<Arc<Conn>>>,
    connecting: Mutex<()>,
    /// Serializes this client's extrinsics so nonces never collide.
    submitting: Mutex<()>,
    generation: AtomicU64,
    reconnects: AtomicU64,
    last_block: AtomicU64,
    last_block_at: StdMutex<Instant>,
    watchdog: StdMutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Ok(mut w) = self.watchdog.lock()
            && let Some(h) = w.take()
        {
            h.abort();
        }
    }
}

/// A subtensor client: cheap to clone, shared by all tasks of a process.
#[derive(Clone)]
pub struct ChainClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ChainClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainClient")
            .field("endpoint", &self.inner.opts.endpoint)
            .field("reconnects", &self.reconnects())
            .finish()
    }
}

impl ChainClient {
    /// Connects (retrying with backoff within the call timeout) and starts the watchdog.
    pub async fn connect(opts: ChainOptions) -> Result<Self, ChainError> {
        let client = ChainClient {
            inner: Arc::new(Inner {
                opts,
                conn: StdMutex::new(None),
                connecting: Mutex::new(()),
                submitting: Mutex::new(()),
                generation: AtomicU64::new(0),
                reconnects: AtomicU64::new(0),
                last_block: AtomicU64::new(0),
                last_block_at: StdMutex::new(Instant::now()),
                watchdog: StdMutex::new(None),
            }),
        };
        client.conn().await?;
        if let Some(period) = client.inner.opts.watchdog {
            let weak = Arc::downgrade(&client.inner);
            let handle = tokio::spawn(watchdog(weak, period));
            if let Ok(mut w) = client.inner.watchdog.lock() {
                *w = Some(handle);
            }
        }
        Ok(client)
    }

    /// Connects to the endpoint of a `[subtensor]` config section.
    pub async fn from_config(c: &SubtensorConfig) -> Result<Self, ChainError> {
        Self::connect(ChainOptions::from_config(c)).await
    }

    pub fn endpoint(&self) -> &str {
        &self.inner.opts.endpoint
    }

    pub fn options(&self) -> &ChainOptions {
        &self.inner.opts
    }

    /// How many times the connection was re-established since `connect`.
    pub fn reconnects(&self) -> u64 {
        self.inner.reconnects.load(Ordering::Relaxed)
    }

    /// The last block number the watchdog saw, and how long ago.
    pub fn last_block_seen(&self) -> (u64, Duration) {
        let at = self
            .inner
            .last_block_at
            .lock()
            .map(|t| t.elapsed())
            .unwrap_or_default();
        (self.inner.last_block.load(Ordering::Relaxed), at)
    }

    /// Drops the current connection; the next call (or the watchdog) connects again.
    pub fn disconnect(&self) {
        if let Ok(mut c) = self.inner.conn.lock() {
            *c = None;
        }
    }

    /// Held while an extrinsic is signed and submitted, so this client's nonces never collide.
    pub(crate) async fn submit_lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.inner.submitting.lock().await
    }

    fn invalidate(&self, generation: u64) {
        invalidate(&self.inner, generation);
    }

    /// The live connection, connecting (with backoff, within the call timeout) when there is none.
    pub(crate) async fn conn(&self) -> Result<Arc<Conn>, ChainError> {
        connect_inner(&self.inner).await
    }

    pub(crate) fn timeout_err(&self, what: &str, d: Duration) -> ChainError {
        ChainError::Timeout {
            what: what.to_string(),
            endpoint: self.inner.opts.endpoint.clone(),
            secs: d.as_secs().max(1),
        }
    }

    /// Maps a subxt (or RPC) error: connection failures become [`ChainError::Disconnected`].
    pub(crate) fn rpc_err(&self, what: &str, e: impl std::fmt::Display) -> ChainError {
        classify(what, &self.inner.opts.endpoint, e)
    }

    /// Runs a read against the current connection with the call timeout. A connection failure
    /// drops the connection and the read is tried once more on a new one.
    pub(crate) async fn read<R, F, Fut>(&self, what: &str, f: F) -> Result<R, ChainError>
    where
        F: Fn(Arc<Conn>) -> Fut,
        Fut: Future<Output = Result<R, ChainError>>,
    {
        let limit = self.inner.opts.call_timeout;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let conn = self.conn().await?;
            let generation = conn.generation;
            match tokio::time::timeout(limit, f(conn)).await {
                Ok(Ok(r)) => return Ok(r),
                Ok(Err(e)) if e.is_connection() => {
                    self.invalidate(generation);
                    if attempt >= 2 {
                        return Err(e);
                    }
                    tracing::info!(endpoint = %self.endpoint(), "{what}: {e}; retrying on a new connection");
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    // A call that hangs is the sign of a frozen connection: start afresh next time.
                    self.invalidate(generation);
                    return Err(self.timeout_err(what, limit));
                }
            }
        }
    }

    /// subxt's client at the latest finalized block, with the runtime version it runs.
    pub(crate) async fn at_latest(
        &self,
        conn: &Conn,
    ) -> Result<(AtBlock, RuntimeVersion), ChainError> {
        let at = conn
            .api
            .at_current_block()
            .await
            .map_err(|e| self.rpc_err("reading the latest block", e))?;
        let runtime = RuntimeVersion {
            spec_name: conn.spec_name.clone(),
            spec_version: at.spec_version(),
            transaction_version: at.transaction_version(),
        };
        Ok((at, runtime))
    }

    /// The best block number.
    pub async fn block_number(&self) -> Result<u64, ChainError> {
        self.read("reading the block number", |c| async move {
            let header = c
                .legacy
                .chain_get_header(None)
                .await
                .map_err(|e| self.rpc_err("chain_getHeader", e))?
                .ok_or_else(|| ChainError::Rpc {
                    what: "chain_getHeader".into(),
                    reason: "the node returned no header".into(),
                })?;
            Ok(header.number)
        })
        .await
    }

    /// The runtime version of the best block.
    pub async fn runtime_version(&self) -> Result<RuntimeVersion, ChainError> {
        self.read("reading the runtime version", |c| async move {
            runtime_version(&c.legacy)
                .await
                .map_err(|e| self.rpc_err("state_getRuntimeVersion", e))
        })
        .await
    }

    /// Endpoint, chain name, runtime version, block.
    pub async fn info(&self) -> Result<ChainInfo, ChainError> {
        self.read("reading chain info", |c| async move {
            let chain = c
                .legacy
                .system_chain()
                .await
                .map_err(|e| self.rpc_err("system_chain", e))?;
            let rv = runtime_version(&c.legacy)
                .await
                .map_err(|e| self.rpc_err("state_getRuntimeVersion", e))?;
            let props = c.legacy.system_properties().await.unwrap_or_default();
            let header = c
                .legacy
                .chain_get_header(None)
                .await
                .map_err(|e| self.rpc_err("chain_getHeader", e))?;
            let token_symbol = props
                .get("tokenSymbol")
                .and_then(|v| v.as_str().map(str::to_string).or_else(|| first_str(v)));
            let token_decimals = props.get("tokenDecimals").and_then(|v| {
                v.as_u64()
                    .or_else(|| {
                        v.as_array()
                            .and_then(|a| a.first())
                            .and_then(|x| x.as_u64())
                    })
                    .and_then(|d| u32::try_from(d).ok())
            });
            Ok(ChainInfo {
                endpoint: self.endpoint().to_string(),
                chain,
                spec_name: rv.spec_name,
                spec_version: rv.spec_version,
                transaction_version: rv.transaction_version,
                block: header.map(|h| h.number).unwrap_or_default(),
                genesis_hash: format!("0x{}", hex::encode(c.api.genesis_hash().as_ref())),
                token_symbol,
                token_decimals,
            })
        })
        .await
    }

    /// A raw JSON-RPC request (e.g. chopsticks' `dev_newBlock`).
    pub async fn rpc_request<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        params: Vec<serde_json::Value>,
    ) -> Result<T, ChainError> {
        self.read(method, |c| {
            let params = params.clone();
            async move {
                let mut p = rpc_params![];
                for v in params {
                    p.push(v)
                        .map_err(|e| ChainError::Invalid(format!("{method}: {e}")))?;
                }
                c.rpc
                    .request::<T>(method, p)
                    .await
                    .map_err(|e| self.rpc_err(method, e))
            }
        })
        .await
    }
}

fn first_str(v: &serde_json::Value) -> Option<String> {
    v.as_array()
        .and_then(|a| a.first())
        .and_then(|x| x.as_str())
        .map(str::to_string)
}

async fn runtime_version(legacy: &Legacy) -> Result<RuntimeVersion, subxt::rpcs::Error> {
    let rv = legacy.state_get_runtime_version(None).await?;
    let spec_name = rv
        .other
        .get("specName")
        .and_then(|v| v.as_str())
        .unwrap_or("unknown")
        .to_string();
    Ok(RuntimeVersion {
        spec_name,
        spec_version: rv.spec_version,
        transaction_version: rv.transaction_version,
    })
}

/// Errors of the transport (as opposed to errors the node answered with). subxt does not chain
/// error sources, so this reads the rendered message: jsonrpsee transport failures are rendered
/// by subxt-rpcs as "client error", dropped subscriptions as "subscription dropped".
pub(crate) fn classify(what: &str, endpoint: &str, e: impl std::fmt::Display) -> ChainError {
    let reason = e.to_string();
    let lower = reason.to_ascii_lowercase();
    let transport = lower.contains("client error")
        || lower.contains("subscription dropped")
        || lower.contains("connection was lost")
        || lower.contains("restart")
        || lower.contains("background task")
        || lower.contains("transport");
    if transport {
        ChainError::Disconnected {
            what: what.to_string(),
            endpoint: endpoint.to_string(),
            reason,
        }
    } else {
        ChainError::Rpc {
            what: what.to_string(),
            reason,
        }
    }
}

fn invalidate(inner: &Inner, generation: u64) {
    if let Ok(mut c) = inner.conn.lock()
        && c.as_ref().is_some_and(|c| c.generation == generation)
    {
        *c = None;
    }
}

async fn connect_once(opts: &ChainOptions, generation: u64) -> Result<Conn, ChainError> {
    let endpoint = &opts.endpoint;
    let err = |reason: String| ChainError::Connect {
        endpoint: endpoint.clone(),
        reason,
    };
    let rpc = RpcClient::from_insecure_url(endpoint)
        .await
        .map_err(|e| err(e.to_string()))?;
    let backend = LegacyBackend::<SubstrateConfig>::builder().build(rpc.clone());
    let api = OnlineClient::from_backend_with_config(SubstrateConfig::new(), Arc::new(backend))
        .await
        .map_err(|e| err(e.to_string()))?;
    let legacy = Legacy::new(rpc.clone());
    let rv = runtime_version(&legacy)
        .await
        .map_err(|e| err(e.to_string()))?;
    Ok(Conn {
        api,
        rpc,
        legacy,
        spec_name: rv.spec_name,
        generation,
    })
}

async fn connect_inner(inner: &Inner) -> Result<Arc<Conn>, ChainError> {
    if let Some(c) = inner.conn.lock().ok().and_then(|c| c.clone()) {
        return Ok(c);
    }
    let _guard = inner.connecting.lock().await;
    if let Some(c) = inner.conn.lock().ok().and_then(|c| c.clone()) {
        return Ok(c);
    }
    let opts = &inner.opts;
    let deadline = tokio::time::Instant::now() + opts.call_timeout;
    let mut delay = Duration::from_millis(250);
    loop {
        let generation = inner.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let attempt = tokio::time::timeout_at(deadline, connect_once(opts, generation)).await;
        match attempt {
            Ok(Ok(conn)) => {
                let conn = Arc::new(conn);
                if generation > 1 {
                    inner.reconnects.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(endpoint = %opts.endpoint, "reconnected to subtensor");
                }
                if let Ok(mut c) = inner.conn.lock() {
                    *c = Some(conn.clone());
                }
                if let Ok(mut t) = inner.last_block_at.lock() {
                    *t = Instant::now();
                }
                return Ok(conn);
            }
            Ok(Err(e)) => {
                if tokio::time::Instant::now() + delay >= deadline {
                    return Err(e);
                }
                tracing::debug!(endpoint = %opts.endpoint, "connect failed: {e}; retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(opts.max_backoff);
            }
            Err(_) => {
                return Err(ChainError::Connect {
                    endpoint: opts.endpoint.clone(),
                    reason: format!(
                        "no connection within {} s",
                        opts.call_timeout.as_secs().max(1)
                    ),
                });
            }
        }
    }
}

/// Follows new block headers; reconnects when none arrives within `period`, when the
/// subscription ends, or when the connection is gone (retrying with backoff). Ends when the
/// client is dropped.
async fn watchdog(weak: Weak<Inner>, period: Duration) {
    let mut backoff = Duration::from_millis(250);
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let conn = match connect_inner(&inner).await {
            Ok(c) => {
                backoff = Duration::from_millis(250);
                c
            }
            Err(e) => {
                let max = inner.opts.max_backoff;
                drop(inner);
                tracing::warn!("subtensor watchdog: {e}; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(max);
                continue;
            }
        };
        let endpoint = inner.opts.endpoint.clone();
        // Hold only a weak reference while waiting, so dropping the client ends the task.
        let inner_weak = Arc::downgrade(&inner);
        drop(inner);
        let sub = tokio::time::timeout(period, conn.legacy.chain_subscribe_new_heads()).await;
        let mut sub = match sub {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::warn!(%endpoint, "subtensor watchdog: cannot follow blocks: {e}; reconnecting");
                if let Some(inner) = inner_weak.upgrade() {
                    invalidate(&inner, conn.generation);
                }
                tokio::time::sleep(backoff).await;
                continue;
            }
            Err(_) => {
                tracing::warn!(%endpoint, "subtensor watchdog: no answer subscribing to blocks; reconnecting");
                if let Some(inner) = inner_weak.upgrade() {
                    invalidate(&inner, conn.generation);
                }
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        loop {
            match tokio::time::timeout(period, sub.next()).await {
                Ok(Some(Ok(header))) => {
                    let Some(inner) = inner_weak.upgrade() else {
                        return;
                    };
                    inner.last_block.store(header.number, Ordering::Relaxed);
                    if let Ok(mut t) = inner.last_block_at.lock() {
                        *t = Instant::now();
                    }
                    // The connection may have been replaced by a failing call: follow the new one.
                    let replaced = inner
                        .conn
                        .lock()
                        .ok()
                        .and_then(|c| c.as_ref().map(|c| c.generation))
                        != Some(conn.generation);
                    if replaced {
                        break;
                    }
                }
                Ok(Some(Err(e))) => {
                    tracing::warn!(%endpoint, "subtensor watchdog: block subscription failed: {e}; reconnecting");
                    break;
                }
                Ok(None) => {
                    tracing::warn!(%endpoint, "subtensor watchdog: block subscription ended; reconnecting");
                    break;
                }
                Err(_) => {
                    tracing::warn!(%endpoint,
                        "subtensor watchdog: no new block for {} s; reconnecting", period.as_secs());
                    break;
                }
            }
        }
        if let Some(inner) = inner_weak.upgrade() {
            invalidate(&inner, conn.generation);
        } else {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_errors_are_connection_errors() {
        let e = classify(
            "x",
            "ws://h",
            "RPC error: client error: The background task closed",
        );
        assert!(e.is_connection());
        let e = classify("x", "ws://h", "User error: Invalid Transaction (1010)");
        assert!(!e.is_connection());
    }

    #[test]
    fn options_from_config() {
        let c = SubtensorConfig {
            chain_endpoint: Some("ws://127.0.0.1:1234".into()),
            watchdog_secs: 0,
            ..Default::default()
        };
        let o = ChainOptions::from_config(&c);
        assert_eq!(o.endpoint, "ws://127.0.0.1:1234");
        assert_eq!(o.watchdog, None);
        assert_eq!(o.call_timeout, Duration::from_secs(c.call_timeout_secs));
    }
}
