//! Private files and folders: 0600 files written atomically, 0700 folders.
//!
//! Keys are written to a temporary file in the target folder, fsynced, then linked (no overwrite)
//! or renamed (overwrite) into place, and the folder is fsynced: a crash leaves either the old file
//! or the new one, never half a key, and "don't overwrite" holds even against a concurrent writer.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rand::RngCore;

#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};

/// Mode of key files.
pub const FILE_MODE: u32 = 0o600;
/// Mode of folders we create.
pub const DIR_MODE: u32 = 0o700;

/// Creates `dir` and missing parents with mode 0700. Existing folders are left as they are.
pub fn create_private_dir_all(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    builder.mode(DIR_MODE);
    builder.create(dir)?;
    // umask may have removed bits we want; it can never have added any, so only set when needed.
    #[cfg(unix)]
    fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))?;
    Ok(())
}

fn temp_path(path: &Path) -> io::Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut tmp = std::ffi::OsString::from(".");
    tmp.push(name);
    tmp.push(format!(
        ".tmp-{}-{:016x}",
        std::process::id(),
        rand::rngs::OsRng.next_u64()
    ));
    Ok(path.with_file_name(tmp))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    // Persist the new directory entry; not every platform lets a folder be opened, so best effort.
    match File::open(dir) {
        Ok(f) => f.sync_all().or(Ok(())),
        Err(_) => Ok(()),
    }
}

/// Writes `data` to `path` with mode 0600, atomically. Without `overwrite`, an existing file is an
/// `io::ErrorKind::AlreadyExists` error and is left untouched. The parent folder must exist.
pub fn write_private_atomic(path: &Path, data: &[u8], overwrite: bool) -> io::Result<()> {
    if !overwrite && path.symlink_metadata().is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "file already exists",
        ));
    }
    let tmp = temp_path(path)?;
    let result = write_then_place(&tmp, path, data, overwrite);
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn write_then_place(tmp: &Path, path: &Path, data: &[u8], overwrite: bool) -> io::Result<()> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    opts.mode(FILE_MODE);
    let mut f = opts.open(tmp)?;
    #[cfg(unix)]
    f.set_permissions(fs::Permissions::from_mode(FILE_MODE))?;
    f.write_all(data)?;
    f.sync_all()?;
    drop(f);
    if overwrite {
        fs::rename(tmp, path)?;
    } else {
        // A hard link fails if the target exists, closing the check-then-write race.
        match fs::hard_link(tmp, path) {
            Ok(()) => fs::remove_file(tmp)?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(e),
            // Filesystems without hard links: fall back to rename after the check above.
            Err(_) => fs::rename(tmp, path)?,
        }
    }
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn mode(p: &Path) -> u32 {
        fs::metadata(p).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn writes_private_and_refuses_overwrite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sub = dir.path().join("a/b");
        create_private_dir_all(&sub).expect("mkdir");
        let f = sub.join("key");
        write_private_atomic(&f, b"one", false).expect("write");
        assert_eq!(fs::read(&f).expect("read"), b"one");
        let err = write_private_atomic(&f, b"two", false).expect_err("must refuse");
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&f).expect("read"), b"one");
        write_private_atomic(&f, b"two", true).expect("overwrite");
        assert_eq!(fs::read(&f).expect("read"), b"two");
        // No temporary files left behind.
        assert_eq!(fs::read_dir(&sub).expect("ls").count(), 1);
        #[cfg(unix)]
        {
            assert_eq!(mode(&f), 0o600);
            assert_eq!(mode(&sub), 0o700);
            assert_eq!(mode(&dir.path().join("a")), 0o700);
        }
    }
}
