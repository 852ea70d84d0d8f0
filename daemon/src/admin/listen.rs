//! Where the admin server listens: a unix socket (default) or a loopback TCP address, and the
//! token file that goes with it.

use super::paths;
use super::token::{self, TokenError};
use crate::config::AdminConfig;
use std::net::SocketAddr;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use tokio::net::{TcpListener, UnixListener};

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error(
        "admin.addr {0} is not a loopback address: the admin API can reconfigure this daemon; set admin.allow_remote = true (--admin.allow_remote) if you mean it"
    )]
    Remote(SocketAddr),
    #[error("admin socket {} is in use by a running daemon; stop it or choose another admin.socket", .0.display())]
    InUse(PathBuf),
    #[error("admin socket path {} exists and is not a socket; remove it or choose another admin.socket", .0.display())]
    NotASocket(PathBuf),
    #[error("admin socket {}: {source}", path.display())]
    Socket {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("admin address {addr}: {source}")]
    Tcp {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Token(#[from] TokenError),
}

/// A bound admin listener.
pub enum Listener {
    Unix {
        listener: UnixListener,
        /// Removes the socket file when the server stops.
        _file: SocketFile,
    },
    Tcp(TcpListener),
}

/// What the daemon listens on, for messages and GetStatus.
#[derive(Debug, Clone, PartialEq)]
pub enum Endpoint {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "{}", p.display()),
            Endpoint::Tcp(a) => write!(f, "{a}"),
        }
    }
}

/// Deletes the socket file on drop, if it is still ours (same inode).
pub struct SocketFile {
    path: PathBuf,
    ino: u64,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        use std::os::unix::fs::MetadataExt;
        if std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.ino() == self.ino) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A bound listener, its endpoint and the token.
pub struct Bound {
    pub listener: Listener,
    pub endpoint: Endpoint,
    pub token: String,
    pub token_file: PathBuf,
}

/// Binds as the config says: `addr` (loopback unless `allow_remote`) or `socket` (default
/// `<runtime dir>/<role>.sock`); loads or creates the token file.
pub async fn bind(cfg: &AdminConfig, role: &str) -> Result<Bound, ListenError> {
    if let Some(addr) = cfg.addr {
        if !addr.ip().is_loopback() && !cfg.allow_remote {
            return Err(ListenError::Remote(addr));
        }
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ListenError::Tcp { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| ListenError::Tcp { addr, source })?;
        let token_file = cfg
            .token_file
            .clone()
            .unwrap_or_else(|| paths::token_for_port(local.port()));
        let token = token::load_or_create(&token_file)?;
        return Ok(Bound {
            listener: Listener::Tcp(listener),
            endpoint: Endpoint::Tcp(local),
            token,
            token_file,
        });
    }
    let path = cfg
        .socket
        .clone()
        .unwrap_or_else(|| paths::default_socket(role));
    let token_file = cfg
        .token_file
        .clone()
        .unwrap_or_else(|| paths::token_beside(&path));
    // The token first: a refused token file must not leave a socket behind.
    let token = token::load_or_create(&token_file)?;
    let (listener, file) = bind_unix(&path)?;
    Ok(Bound {
        listener: Listener::Unix {
            listener,
            _file: file,
        },
        endpoint: Endpoint::Unix(path),
        token,
        token_file,
    })
}

fn sock_err(path: &Path) -> impl FnOnce(std::io::Error) -> ListenError + '_ {
    move |source| ListenError::Socket {
        path: path.to_path_buf(),
        source,
    }
}

/// Binds a unix socket, replacing a stale one (nobody answers on it) and refusing a live one.
fn bind_unix(path: &Path) -> Result<(UnixListener, SocketFile), ListenError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        token::create_private_dir(dir).map_err(sock_err(dir))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(ListenError::InUse(path.to_path_buf()));
            }
            tracing::info!(socket = %path.display(), "replacing a stale admin socket");
            std::fs::remove_file(path).map_err(sock_err(path))?;
        }
        Ok(_) => return Err(ListenError::NotASocket(path.to_path_buf())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(sock_err(path)(e)),
    }
    let listener = UnixListener::bind(path).map_err(sock_err(path))?;
    // The token guards the API; the socket's mode keeps other users from even connecting.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(sock_err(path))?;
    let ino = std::fs::symlink_metadata(path)
        .map_err(sock_err(path))?
        .ino();
    Ok((
        listener,
        SocketFile {
            path: path.to_path_buf(),
            ino,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dir: &Path) -> AdminConfig {
        AdminConfig {
            socket: Some(dir.join("x.sock")),
            ..AdminConfig::default()
        }
    }

    #[tokio::test]
    async fn stale_socket_replaced_live_one_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        // A socket file nobody listens on: what a killed daemon leaves.
        drop(std::os::unix::net::UnixListener::bind(dir.path().join("x.sock")).expect("bind"));
        let b = bind(&cfg(dir.path()), "miner")
            .await
            .expect("stale replaced");
        assert_eq!(b.endpoint, Endpoint::Unix(dir.path().join("x.sock")));
        assert!(dir.path().join("x.token").is_file());
        match bind(&cfg(dir.path()), "miner").await {
            Err(ListenError::InUse(p)) => assert_eq!(p, dir.path().join("x.sock")),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("bound a live socket twice"),
        }
        drop(b);
        assert!(
            !dir.path().join("x.sock").exists(),
            "socket removed on stop"
        );
    }

    #[tokio::test]
    async fn remote_address_needs_allow_remote() {
        let c = AdminConfig {
            addr: Some("192.0.2.1:7070".parse().expect("addr")),
            ..AdminConfig::default()
        };
        assert!(matches!(
            bind(&c, "miner").await,
            Err(ListenError::Remote(_))
        ));
    }
}
