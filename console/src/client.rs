//! Finding and connecting to a daemon's admin API: used by every `mrctl` command that talks to a
//! daemon, and by `mrctl tui`.
//!
//! Which daemon: `--connect` (a socket path, or host:port), else every `*.sock` in the runtime
//! folders ([`mapreduce::admin::paths::search_dirs`]); when several answer, `--role` picks by
//! asking each its GetStatus. The token is read from `--token-file`, else beside the socket
//! (`x.sock` → `x.token`), else for host:port `<runtime dir>/admin-<port>.token`.
//!
//! ```ignore
//! let conn = client::connect(&args.connect).await?;   // Connection: client + status + target
//! let miners = conn.client.clone().list_miners(ListMinersRequest {}).await?;
//! ```
//! Errors carry the exit code `mrctl` uses ([`ClientError::exit_code`]): 3 when no daemon could
//! be reached (naming what was tried), 2 when the choice is ambiguous, 1 otherwise.

use hyper_util::rt::TokioIo;
use mapreduce::admin::{paths, token};
use mr_proto::v1::admin_client::AdminClient;
use mr_proto::v1::{GetStatusRequest, Role, Status as DaemonStatus};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint, Uri};

/// Time to open a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Time for the first GetStatus of a connection.
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);

/// The generated admin client with the bearer token on every call.
pub type Client = AdminClient<InterceptedService<Channel, Bearer>>;

/// Adds `authorization: Bearer <token>` to every request.
#[derive(Clone)]
pub struct Bearer(MetadataValue<tonic::metadata::Ascii>);

impl Bearer {
    pub fn new(token: &str) -> Result<Bearer, ClientError> {
        format!("Bearer {token}")
            .parse()
            .map(Bearer)
            .map_err(|_| ClientError::Token {
                path: PathBuf::new(),
                reason: "the token is not printable ASCII".into(),
            })
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

/// The role names `--role` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RoleArg {
    Miner,
    Validator,
    Bench,
}

impl RoleArg {
    pub fn role(self) -> Role {
        match self {
            RoleArg::Miner => Role::Miner,
            RoleArg::Validator => Role::Validator,
            RoleArg::Bench => Role::Bench,
        }
    }
}

/// How to find the daemon (flags shared by every daemon-facing command).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConnectArgs {
    /// The daemon's admin socket path, or host:port [default: the sockets in the runtime folder].
    /// `mrctl tui` takes it repeated, one per daemon to watch.
    #[arg(long, global = true, value_name = "SOCKET|HOST:PORT", action = clap::ArgAction::Append)]
    pub connect: Vec<String>,
    /// Which daemon, when several run on this machine.
    #[arg(long, global = true, value_enum)]
    pub role: Option<RoleArg>,
    /// Admin token file [default: beside the socket].
    #[arg(long = "token-file", global = true, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

/// Where a daemon listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Unix(PathBuf),
    Tcp(String),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Unix(p) => write!(f, "{}", p.display()),
            Target::Tcp(a) => write!(f, "{a}"),
        }
    }
}

impl Target {
    /// A socket path when it contains `/` or ends in `.sock`, else host:port.
    pub fn parse(s: &str) -> Target {
        if s.contains('/') || s.ends_with(".sock") {
            Target::Unix(PathBuf::from(s))
        } else {
            Target::Tcp(s.to_string())
        }
    }

    /// The token file that goes with this target by default.
    pub fn default_token_file(&self) -> PathBuf {
        match self {
            Target::Unix(p) => paths::token_beside(p),
            Target::Tcp(a) => {
                let port = a
                    .rsplit_once(':')
                    .and_then(|(_, p)| p.parse::<u16>().ok())
                    .unwrap_or(0);
                paths::token_for_port(port)
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the daemon at {target}: {reason}")]
    Unreachable { target: String, reason: String },
    #[error("no daemon found: no admin socket answers in {} (start one, or give --connect SOCKET|HOST:PORT)", list(.searched))]
    NoDaemon { searched: Vec<PathBuf> },
    #[error("no {role} daemon among the ones running: {}", .found.join(", "))]
    NoMatch { role: String, found: Vec<String> },
    #[error("several daemons run: {}; choose one with {hint}", .found.join(", "))]
    Ambiguous { found: Vec<String>, hint: String },
    #[error("admin token {}: {reason}", path.display())]
    Token { path: PathBuf, reason: String },
    #[error("the daemon at {target} refused the admin token from {} (unauthenticated); use the token file the daemon wrote (--token-file)", token_file.display())]
    Unauthenticated { target: String, token_file: PathBuf },
    #[error("{0}")]
    Rpc(#[from] tonic::Status),
}

fn list(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl ClientError {
    /// `mrctl`'s exit code for this error: 3 unreachable, 2 ambiguous choice, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Unreachable { .. }
            | ClientError::NoDaemon { .. }
            | ClientError::NoMatch { .. } => 3,
            ClientError::Ambiguous { .. } => 2,
            ClientError::Rpc(s) if s.code() == tonic::Code::Unavailable => 3,
            _ => 1,
        }
    }
}

/// A connected daemon: the client, what it said about itself, and where it is.
#[derive(Clone)]
pub struct Connection {
    pub client: Client,
    pub status: DaemonStatus,
    pub target: Target,
    pub token_file: PathBuf,
    /// The raw channel (e.g. for `grpc.health.v1`, which needs no token).
    pub channel: Channel,
}

impl Connection {
    pub fn role(&self) -> Role {
        self.status.role()
    }
}

/// Opens a channel to a target (it reconnects by itself when the daemon restarts).
pub async fn channel(target: &Target) -> Result<Channel, ClientError> {
    let unreachable = |reason: String| ClientError::Unreachable {
        target: target.to_string(),
        reason,
    };
    match target {
        Target::Unix(path) => {
            if !path.exists() {
                return Err(unreachable(
                    "no such socket (is the daemon running?)".into(),
                ));
            }
            let path = path.clone();
            Endpoint::from_static("http://admin.sock")
                .connect_timeout(CONNECT_TIMEOUT)
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        let s = tokio::net::UnixStream::connect(path).await?;
                        Ok::<_, std::io::Error>(TokioIo::new(s))
                    }
                }))
                .await
                .map_err(|e| unreachable(source_chain(&e)))
        }
        Target::Tcp(addr) => Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| unreachable(format!("not host:port: {e}")))?
            .connect_timeout(CONNECT_TIMEOUT)
            .connect()
            .await
            .map_err(|e| unreachable(source_chain(&e))),
    }
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Reads a token file (it must be private to its owner, as the daemon writes it).
pub fn read_token(path: &Path) -> Result<String, ClientError> {
    token::read(path).map_err(|e| ClientError::Token {
        path: path.to_path_buf(),
        reason: match e {
            token::TokenError::Io { source, .. }
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                "not found (the daemon writes it when it starts; --token-file names another)".into()
            }
            token::TokenError::Io { source, .. }
                if source.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                "permission denied (run as the daemon's user, or with sudo)".into()
            }
            other => other.to_string(),
        },
    })
}

/// Connects to one target and asks its status (which also checks the token).
pub async fn connect_to(
    target: Target,
    token_file: Option<&Path>,
) -> Result<Connection, ClientError> {
    let token_file = token_file.map_or_else(|| target.default_token_file(), Path::to_path_buf);
    let ch = channel(&target).await?;
    let token = read_token(&token_file)?;
    let mut client = AdminClient::with_interceptor(
        ch.clone(),
        Bearer::new(&token).map_err(|_| ClientError::Token {
            path: token_file.clone(),
            reason: "not printable ASCII".into(),
        })?,
    );
    let status =
        match tokio::time::timeout(STATUS_TIMEOUT, client.get_status(GetStatusRequest {})).await {
            Err(_) => {
                return Err(ClientError::Unreachable {
                    target: target.to_string(),
                    reason: format!("no answer within {} s", STATUS_TIMEOUT.as_secs()),
                });
            }
            Ok(Err(s)) if s.code() == tonic::Code::Unauthenticated => {
                return Err(ClientError::Unauthenticated {
                    target: target.to_string(),
                    token_file,
                });
            }
            Ok(Err(s)) if s.code() == tonic::Code::Unavailable => {
                return Err(ClientError::Unreachable {
                    target: target.to_string(),
                    reason: s.message().to_string(),
                });
            }
            Ok(Err(s)) => return Err(ClientError::Rpc(s)),
            Ok(Ok(r)) => r.into_inner(),
        };
    Ok(Connection {
        client,
        status,
        target,
        token_file,
        channel: ch,
    })
}

/// Finds and connects to the daemon the flags designate.
pub async fn connect(args: &ConnectArgs) -> Result<Connection, ClientError> {
    if args.connect.len() > 1 {
        return Err(ClientError::Ambiguous {
            found: args.connect.clone(),
            hint: "one --connect (several are for mrctl tui)".into(),
        });
    }
    if let Some(c) = args.connect.first() {
        let conn = connect_to(Target::parse(c), args.token_file.as_deref()).await?;
        if let Some(r) = args.role
            && conn.role() != r.role()
        {
            return Err(ClientError::NoMatch {
                role: mapreduce::admin::role_name(r.role()).into(),
                found: vec![describe(&conn)],
            });
        }
        return Ok(conn);
    }
    connect_discovered(&paths::search_dirs(), args).await
}

fn describe(c: &Connection) -> String {
    format!("{} ({})", c.target, mapreduce::admin::role_name(c.role()))
}

/// Discovery in the given folders (split out for tests).
pub async fn connect_discovered(
    dirs: &[PathBuf],
    args: &ConnectArgs,
) -> Result<Connection, ClientError> {
    let sockets = paths::find_sockets(dirs);
    let mut found: Vec<Connection> = Vec::new();
    let mut last_err: Option<ClientError> = None;
    for s in sockets {
        match connect_to(Target::Unix(s), args.token_file.as_deref()).await {
            Ok(c) => found.push(c),
            // A stale socket from a killed daemon: not a candidate.
            Err(e @ ClientError::Unreachable { .. }) => {
                last_err.get_or_insert(e);
            }
            Err(e) => last_err = Some(e),
        }
    }
    if found.is_empty() {
        return Err(match last_err {
            Some(e @ (ClientError::Token { .. } | ClientError::Unauthenticated { .. })) => e,
            _ => ClientError::NoDaemon {
                searched: dirs.to_vec(),
            },
        });
    }
    let all: Vec<String> = found.iter().map(describe).collect();
    let chosen: Vec<Connection> = match args.role {
        Some(r) => found.into_iter().filter(|c| c.role() == r.role()).collect(),
        None => found,
    };
    match chosen.len() {
        1 => Ok(chosen.into_iter().next().expect("one")),
        0 => Err(ClientError::NoMatch {
            role: args
                .role
                .map(|r| mapreduce::admin::role_name(r.role()))
                .unwrap_or("any")
                .into(),
            found: all,
        }),
        _ => Err(ClientError::Ambiguous {
            found: chosen.iter().map(describe).collect(),
            hint: if args.role.is_some() {
                "--connect SOCKET".into()
            } else {
                "--role miner|validator|bench or --connect SOCKET".into()
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!(
            Target::parse("/run/mapreduce/miner1.sock"),
            Target::Unix("/run/mapreduce/miner1.sock".into())
        );
        assert_eq!(
            Target::parse("127.0.0.1:7070"),
            Target::Tcp("127.0.0.1:7070".into())
        );
        assert_eq!(
            Target::parse("/run/mapreduce/miner1.sock").default_token_file(),
            PathBuf::from("/run/mapreduce/miner1.token")
        );
        assert!(
            Target::parse("127.0.0.1:7070")
                .default_token_file()
                .ends_with("admin-7070.token")
        );
    }

    #[tokio::test]
    async fn nothing_running_is_exit_3_naming_the_folders() {
        let dir = tempfile::tempdir().expect("tmp");
        // A stale socket: bound then closed.
        drop(std::os::unix::net::UnixListener::bind(dir.path().join("miner.sock")).expect("bind"));
        let e = connect_discovered(&[dir.path().to_path_buf()], &ConnectArgs::default())
            .await
            .err()
            .expect("none");
        assert_eq!(e.exit_code(), 3, "{e}");
        assert!(
            e.to_string().contains(&dir.path().display().to_string()),
            "{e}"
        );
        let e = connect_to(Target::Unix(dir.path().join("gone.sock")), None)
            .await
            .err()
            .expect("gone");
        assert_eq!(e.exit_code(), 3);
        assert!(e.to_string().contains("gone.sock"), "{e}");
    }
}
