//! The bearer token file: created once with mode 0600 and kept across restarts (so `mrctl` and
//! scripts keep working); a file that others can read is refused, since anyone who can read it
//! can reconfigure the daemon.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(
        "admin token file {} has mode {mode:04o}; it must be readable by its owner only (chmod 600 {}) or removed so a new one is made",
        path.display(), path.display()
    )]
    LoosePermissions { path: PathBuf, mode: u32 },
    #[error("admin token file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("admin token file {} is empty or not one line of text", path.display())]
    Malformed { path: PathBuf },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TokenError + '_ {
    move |source| TokenError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads the token, checking the file is private (mode without group/other bits).
pub fn read(path: &Path) -> Result<String, TokenError> {
    let meta = std::fs::metadata(path).map_err(io(path))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(TokenError::LoosePermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let token = text.trim();
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Err(TokenError::Malformed {
            path: path.to_path_buf(),
        });
    }
    Ok(token.to_string())
}

/// The daemon's token: the existing file's (checked like [`read`]), or a new random one written
/// to a new 0600 file (its folder created 0700 when missing).
pub fn load_or_create(path: &Path) -> Result<String, TokenError> {
    match read(path) {
        Ok(t) => return Ok(t),
        Err(TokenError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir).map_err(io(dir))?;
    }
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    let token = hex::encode(bytes);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    f.write_all(format!("{token}\n").as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(io(path))?;
    Ok(token)
}

/// Creates a folder (and parents) with mode 0700; an existing one is left as it is.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_private_and_kept() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("sub").join("x.token");
        let t = load_or_create(&p).expect("create");
        assert_eq!(t.len(), 64);
        let mode = std::fs::metadata(&p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load_or_create(&p).expect("again"), t);
        assert_eq!(read(&p).expect("read"), t);
    }

    #[test]
    fn loose_file_is_refused_and_named() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("x.token");
        std::fs::write(&p, "abc\n").expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = load_or_create(&p).expect_err("loose");
        let msg = e.to_string();
        assert!(msg.contains("0644") && msg.contains("chmod 600"), "{msg}");
        assert_eq!(std::fs::read_to_string(&p).expect("read"), "abc\n");
    }
}
