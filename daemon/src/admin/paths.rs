//! Where admin sockets and token files live, shared by the daemons (to listen) and `mrctl` (to
//! find them).
//!
//! A daemon listens on `admin.socket`, else `<runtime dir>/<role>.sock`; its token is
//! `admin.token_file`, else beside the socket with the extension `.token` (`miner1.sock` →
//! `miner1.token`). On TCP (`admin.addr`) the default token is `<runtime dir>/admin-<port>.token`.

use std::path::{Path, PathBuf};

/// Folder name under the runtime directory.
const DIR: &str = "mapreduce";

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Overrides the runtime folder for daemons and `mrctl` alike (tests, several devnets on one
/// machine). Not an `MR_` variable: those are configuration keys.
pub const RUNTIME_DIR_VAR: &str = "MAPREDUCE_RUNTIME_DIR";

/// The folder a daemon puts its socket in: `$MAPREDUCE_RUNTIME_DIR` when set, else
/// `/run/mapreduce` as root, else `$XDG_RUNTIME_DIR/mapreduce`, else `<tmp>/mapreduce-<uid>`
/// (no runtime dir, e.g. a bare ssh session without systemd-logind).
pub fn runtime_dir() -> PathBuf {
    if let Some(d) = std::env::var_os(RUNTIME_DIR_VAR).filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if is_root() {
        return PathBuf::from("/run").join(DIR);
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join(DIR),
        // SAFETY: getuid has no preconditions and cannot fail.
        _ => std::env::temp_dir().join(format!("{DIR}-{}", unsafe { libc::getuid() })),
    }
}

/// Every folder `mrctl` looks in for sockets, most specific first, without duplicates: the
/// user's runtime dir, then `/run/mapreduce` (daemons run as root under systemd). With
/// `$MAPREDUCE_RUNTIME_DIR` set, only that folder.
pub fn search_dirs() -> Vec<PathBuf> {
    if std::env::var_os(RUNTIME_DIR_VAR).is_some_and(|d| !d.is_empty()) {
        return vec![runtime_dir()];
    }
    let mut dirs = vec![runtime_dir()];
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        dirs.push(PathBuf::from(d).join(DIR));
    }
    dirs.push(PathBuf::from("/run").join(DIR));
    let mut out: Vec<PathBuf> = Vec::new();
    for d in dirs {
        if !out.contains(&d) {
            out.push(d);
        }
    }
    out
}

/// `<runtime dir>/<role>.sock`.
pub fn default_socket(role: &str) -> PathBuf {
    runtime_dir().join(format!("{role}.sock"))
}

/// The token file that goes with a socket: same folder and name, extension `.token`.
pub fn token_beside(socket: &Path) -> PathBuf {
    socket.with_extension("token")
}

/// The default token file of a daemon listening on TCP port `port`.
pub fn token_for_port(port: u16) -> PathBuf {
    runtime_dir().join(format!("admin-{port}.token"))
}

/// Sockets (`*.sock`) in the folders, sorted by path; unreadable folders are skipped.
pub fn find_sockets(dirs: &[PathBuf]) -> Vec<PathBuf> {
    use std::os::unix::fs::FileTypeExt;
    let mut out = Vec::new();
    for d in dirs {
        let Ok(entries) = std::fs::read_dir(d) else {
            continue;
        };
        let mut here: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_socket()))
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "sock"))
            .collect();
        here.sort();
        out.extend(here);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_sits_beside_the_socket() {
        assert_eq!(
            token_beside(Path::new("/run/mapreduce/miner1.sock")),
            PathBuf::from("/run/mapreduce/miner1.token")
        );
    }

    #[test]
    fn finds_only_sockets() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("fake.sock"), b"not a socket").expect("write");
        let _l = std::os::unix::net::UnixListener::bind(dir.path().join("a.sock")).expect("bind");
        let _m = std::os::unix::net::UnixListener::bind(dir.path().join("b.other")).expect("bind");
        assert_eq!(
            find_sockets(&[dir.path().to_path_buf(), dir.path().join("missing")]),
            vec![dir.path().join("a.sock")]
        );
    }
}
