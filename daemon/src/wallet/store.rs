//! A btcli wallet on disk: `<path>/<name>/coldkey`, `coldkeypub.txt`, `hotkeys/<hotkey>`,
//! `hotkeys/<hotkey>pub.txt`; creating, regenerating, reading and listing them.
//!
//! Coldkeys are `$NACL`-encrypted unless the caller asks otherwise; hotkeys are plaintext, like btcli
//! writes them, because daemons must load them unattended.

use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::keyfile::{Keyfile, KeyfileError};
use super::keypair::{KeyError, Keypair};
use crate::config::WalletConfig;

const COLDKEY: &str = "coldkey";
const COLDKEYPUB: &str = "coldkeypub.txt";
const HOTKEYS: &str = "hotkeys";
const PUB_SUFFIX: &str = "pub.txt";

/// Why a wallet operation failed.
#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    #[error("wallet {name:?} not found: {} does not exist", path.display())]
    WalletNotFound { name: String, path: PathBuf },
    #[error("hotkey {hotkey:?} of wallet {name:?} not found: {} does not exist", path.display())]
    HotkeyNotFound {
        name: String,
        hotkey: String,
        path: PathBuf,
    },
    #[error("invalid {what} name {name:?}: {reason}")]
    InvalidName {
        what: &'static str,
        name: String,
        reason: &'static str,
    },
    #[error(transparent)]
    Keyfile(#[from] KeyfileError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// Expands a leading `~` (alone or followed by `/`) to the home folder; other paths are returned
/// unchanged, and so is `~` when no home folder is known.
pub fn expand_tilde(path: &Path) -> PathBuf {
    let Ok(rest) = path.strip_prefix("~") else {
        return path.to_path_buf();
    };
    match dirs::home_dir() {
        Some(home) if rest.as_os_str().is_empty() => home,
        Some(home) => home.join(rest),
        None => path.to_path_buf(),
    }
}

/// Wallet and hotkey names become file names: refuse anything that would escape the folder.
fn check_name(what: &'static str, name: &str) -> Result<(), WalletError> {
    let reason = if name.is_empty() {
        "empty"
    } else if name == "." || name == ".." {
        "not a file name"
    } else if name.contains(['/', '\\', '\0']) {
        "contains a path separator"
    } else {
        return Ok(());
    };
    Err(WalletError::InvalidName {
        what,
        name: name.to_string(),
        reason,
    })
}

/// One hotkey as listed: its name and address (None when it cannot be read without a password).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HotkeyInfo {
    pub name: String,
    pub ss58: Option<String>,
}

/// A wallet as listed: name, folder, coldkey address, hotkeys sorted by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WalletInfo {
    pub name: String,
    pub path: PathBuf,
    pub coldkeypub: Option<String>,
    pub hotkeys: Vec<HotkeyInfo>,
}

/// A named wallet under a folder, with the hotkey this process uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wallet {
    path: PathBuf,
    name: String,
    hotkey: String,
}

impl Wallet {
    /// `path` is the folder holding wallets, already `~`-expanded (see [`expand_tilde`]).
    /// Names are validated when files are touched.
    pub fn new(
        path: impl Into<PathBuf>,
        name: impl Into<String>,
        hotkey: impl Into<String>,
    ) -> Self {
        Wallet {
            path: path.into(),
            name: name.into(),
            hotkey: hotkey.into(),
        }
    }

    /// From the `[wallet]` config section, expanding `~` in its path.
    pub fn from_config(cfg: &WalletConfig) -> Self {
        Wallet::new(
            expand_tilde(&cfg.path),
            cfg.name.clone(),
            cfg.hotkey.clone(),
        )
    }

    /// The folder holding wallets.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn hotkey_name(&self) -> &str {
        &self.hotkey
    }

    /// `<path>/<name>`.
    pub fn dir(&self) -> PathBuf {
        self.path.join(&self.name)
    }

    pub fn hotkeys_dir(&self) -> PathBuf {
        self.dir().join(HOTKEYS)
    }

    pub fn coldkey_file(&self) -> Keyfile {
        Keyfile::new(self.dir().join(COLDKEY))
    }

    pub fn coldkeypub_file(&self) -> Keyfile {
        Keyfile::new(self.dir().join(COLDKEYPUB))
    }

    /// The configured hotkey's file.
    pub fn hotkey_file(&self) -> Keyfile {
        self.hotkey_file_named(&self.hotkey)
    }

    pub fn hotkeypub_file(&self) -> Keyfile {
        self.hotkeypub_file_named(&self.hotkey)
    }

    pub fn hotkey_file_named(&self, hotkey: &str) -> Keyfile {
        Keyfile::new(self.hotkeys_dir().join(hotkey))
    }

    pub fn hotkeypub_file_named(&self, hotkey: &str) -> Keyfile {
        Keyfile::new(self.hotkeys_dir().join(format!("{hotkey}{PUB_SUFFIX}")))
    }

    fn check_names(&self, with_hotkey: bool) -> Result<(), WalletError> {
        check_name("wallet", &self.name)?;
        if with_hotkey {
            check_name("hotkey", &self.hotkey)?;
        }
        Ok(())
    }

    fn missing_wallet(&self) -> WalletError {
        WalletError::WalletNotFound {
            name: self.name.clone(),
            path: self.dir(),
        }
    }

    // ---- writing ----

    /// Writes `kp` as this wallet's coldkey (`$NACL` with `password`, else plaintext) and
    /// `coldkeypub.txt`. Both files are checked before anything is written.
    pub fn set_coldkey(
        &self,
        kp: &Keypair,
        password: Option<&str>,
        overwrite: bool,
    ) -> Result<(), WalletError> {
        self.check_names(false)?;
        let (cold, public) = (self.coldkey_file(), self.coldkeypub_file());
        cold.check_overwrite(overwrite)?;
        public.check_overwrite(overwrite)?;
        cold.write_private(kp, password, overwrite)?;
        public.write_public(kp, overwrite)?;
        Ok(())
    }

    /// Writes only `coldkeypub.txt` (a watch-only wallet, as btcli `regen_coldkeypub`).
    pub fn set_coldkeypub(&self, kp: &Keypair, overwrite: bool) -> Result<(), WalletError> {
        self.check_names(false)?;
        self.coldkeypub_file().write_public(kp, overwrite)?;
        Ok(())
    }

    /// Writes `kp` as the configured hotkey (plaintext) and its `pub.txt`.
    pub fn set_hotkey(&self, kp: &Keypair, overwrite: bool) -> Result<(), WalletError> {
        self.check_names(true)?;
        let (hot, public) = (self.hotkey_file(), self.hotkeypub_file());
        hot.check_overwrite(overwrite)?;
        public.check_overwrite(overwrite)?;
        hot.write_private(kp, None, overwrite)?;
        public.write_public(kp, overwrite)?;
        Ok(())
    }

    /// A new coldkey from a fresh mnemonic of `n_words`; the returned key holds the mnemonic,
    /// which the caller must show to the user once.
    pub fn create_coldkey(
        &self,
        n_words: usize,
        password: Option<&str>,
        overwrite: bool,
    ) -> Result<Keypair, WalletError> {
        let kp = Keypair::generate(n_words)?;
        self.set_coldkey(&kp, password, overwrite)?;
        Ok(kp)
    }

    /// A new plaintext hotkey from a fresh mnemonic (returned inside the key, as above).
    pub fn create_hotkey(&self, n_words: usize, overwrite: bool) -> Result<Keypair, WalletError> {
        let kp = Keypair::generate(n_words)?;
        self.set_hotkey(&kp, overwrite)?;
        Ok(kp)
    }

    /// Rebuilds the coldkey from its mnemonic.
    pub fn regen_coldkey(
        &self,
        mnemonic: &str,
        password: Option<&str>,
        overwrite: bool,
    ) -> Result<Keypair, WalletError> {
        let kp = Keypair::from_mnemonic(mnemonic)?;
        self.set_coldkey(&kp, password, overwrite)?;
        Ok(kp)
    }

    /// Rebuilds the coldkey from its "0x" hex mini secret (`secretSeed`).
    pub fn regen_coldkey_from_seed(
        &self,
        seed_hex: &str,
        password: Option<&str>,
        overwrite: bool,
    ) -> Result<Keypair, WalletError> {
        let kp = Keypair::from_seed_hex(seed_hex)?;
        self.set_coldkey(&kp, password, overwrite)?;
        Ok(kp)
    }

    /// Rebuilds the configured hotkey from its mnemonic.
    pub fn regen_hotkey(&self, mnemonic: &str, overwrite: bool) -> Result<Keypair, WalletError> {
        let kp = Keypair::from_mnemonic(mnemonic)?;
        self.set_hotkey(&kp, overwrite)?;
        Ok(kp)
    }

    /// Rebuilds the configured hotkey from its "0x" hex mini secret.
    pub fn regen_hotkey_from_seed(
        &self,
        seed_hex: &str,
        overwrite: bool,
    ) -> Result<Keypair, WalletError> {
        let kp = Keypair::from_seed_hex(seed_hex)?;
        self.set_hotkey(&kp, overwrite)?;
        Ok(kp)
    }

    // ---- reading ----

    fn read(&self, file: &Keyfile, password: Option<&str>) -> Result<Keypair, WalletError> {
        match file.read_keypair(password) {
            Err(KeyfileError::NotFound { .. }) if !self.dir().is_dir() => {
                Err(self.missing_wallet())
            }
            other => Ok(other?),
        }
    }

    /// The coldkey's public key, from `coldkeypub.txt` (no password needed).
    pub fn coldkeypub(&self) -> Result<Keypair, WalletError> {
        self.check_names(false)?;
        self.read(&self.coldkeypub_file(), None)
    }

    /// The coldkey with its secret. Encrypted coldkeys take seconds and 512 MiB to decrypt:
    /// async callers must use `spawn_blocking`.
    pub fn coldkey(&self, password: Option<&str>) -> Result<Keypair, WalletError> {
        self.check_names(false)?;
        self.read(&self.coldkey_file(), password)
    }

    /// The configured hotkey with its secret (plaintext files; see [`Wallet::hotkey_with_password`]).
    pub fn hotkey(&self) -> Result<Keypair, WalletError> {
        self.hotkey_with_password(None)
    }

    /// The configured hotkey, decrypting it when it was written with a password.
    pub fn hotkey_with_password(&self, password: Option<&str>) -> Result<Keypair, WalletError> {
        self.check_names(true)?;
        match self.hotkey_file().read_keypair(password) {
            Err(KeyfileError::NotFound { path }) => {
                if self.dir().is_dir() {
                    Err(WalletError::HotkeyNotFound {
                        name: self.name.clone(),
                        hotkey: self.hotkey.clone(),
                        path,
                    })
                } else {
                    Err(self.missing_wallet())
                }
            }
            other => Ok(other?),
        }
    }

    /// The public key of hotkey `hotkey`: from its `pub.txt`, else from a plaintext hotkey file.
    pub fn hotkey_public(&self, hotkey: &str) -> Result<Keypair, WalletError> {
        check_name("hotkey", hotkey)?;
        let public = self.hotkeypub_file_named(hotkey);
        if public.exists() {
            return Ok(public.read_keypair(None)?.to_public());
        }
        Ok(self
            .hotkey_file_named(hotkey)
            .read_keypair(None)?
            .to_public())
    }

    /// Names of this wallet's hotkeys (private files, and `pub.txt` files without one), sorted.
    pub fn hotkey_names(&self) -> Result<Vec<String>, WalletError> {
        let dir = self.hotkeys_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(WalletError::Io { path: dir, source }),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| WalletError::Io {
                path: dir.clone(),
                source,
            })?;
            if !entry.path().is_file() {
                continue;
            }
            let Some(file) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            // Skip our own temporary files and other dotfiles.
            if file.starts_with('.') {
                continue;
            }
            let name = match file.strip_suffix(PUB_SUFFIX) {
                Some(base) if !base.is_empty() && dir.join(base).is_file() => continue,
                Some(base) if !base.is_empty() => base.to_string(),
                _ => file,
            };
            names.push(name);
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Name, folder, coldkey address and hotkeys, for `list`/`show`. Unreadable keys are `None`.
    pub fn info(&self) -> Result<WalletInfo, WalletError> {
        self.check_names(false)?;
        if !self.dir().is_dir() {
            return Err(self.missing_wallet());
        }
        let coldkeypub = self.coldkeypub().ok().map(|k| k.ss58_address().to_string());
        let hotkeys = self
            .hotkey_names()?
            .into_iter()
            .map(|name| HotkeyInfo {
                ss58: self
                    .hotkey_public(&name)
                    .ok()
                    .map(|k| k.ss58_address().to_string()),
                name,
            })
            .collect();
        Ok(WalletInfo {
            name: self.name.clone(),
            path: self.dir(),
            coldkeypub,
            hotkeys,
        })
    }
}

/// Every wallet (a folder with a coldkey, coldkeypub.txt or hotkeys/) under `path`, sorted by
/// name. A missing `path` means no wallets, not an error.
pub fn list_wallets(path: &Path) -> Result<Vec<WalletInfo>, WalletError> {
    let entries = match std::fs::read_dir(path) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(WalletError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| WalletError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let dir = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let looks_like_wallet = dir.join(COLDKEY).is_file()
            || dir.join(COLDKEYPUB).is_file()
            || dir.join(HOTKEYS).is_dir();
        if name.starts_with('.') || !dir.is_dir() || !looks_like_wallet {
            continue;
        }
        out.push(Wallet::new(path, name, "default").info()?);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tilde_expansion() {
        let home = dirs::home_dir().expect("home");
        assert_eq!(expand_tilde(Path::new("~")), home);
        assert_eq!(
            expand_tilde(Path::new("~/.bittensor/wallets")),
            home.join(".bittensor/wallets")
        );
        assert_eq!(expand_tilde(Path::new("/abs/~")), PathBuf::from("/abs/~"));
        assert_eq!(expand_tilde(Path::new("~user/x")), PathBuf::from("~user/x"));
        assert_eq!(expand_tilde(Path::new("rel")), PathBuf::from("rel"));
    }

    #[test]
    fn layout() {
        let w = Wallet::new("/w", "alice", "miner1");
        assert_eq!(w.coldkey_file().path(), Path::new("/w/alice/coldkey"));
        assert_eq!(
            w.coldkeypub_file().path(),
            Path::new("/w/alice/coldkeypub.txt")
        );
        assert_eq!(w.hotkey_file().path(), Path::new("/w/alice/hotkeys/miner1"));
        assert_eq!(
            w.hotkeypub_file().path(),
            Path::new("/w/alice/hotkeys/miner1pub.txt")
        );
        let cfg = WalletConfig::default();
        let w = Wallet::from_config(&cfg);
        assert!(!w.path().starts_with("~"));
        assert_eq!((w.name(), w.hotkey_name()), ("default", "default"));
    }

    #[test]
    fn refuses_path_escapes() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, hotkey) in [
            ("..", "h"),
            ("a/b", "h"),
            ("", "h"),
            ("w", "../x"),
            ("w", ""),
        ] {
            let w = Wallet::new(dir.path(), name, hotkey);
            let kp = Keypair::generate(12).expect("gen");
            assert!(
                matches!(
                    w.set_hotkey(&kp, false),
                    Err(WalletError::InvalidName { .. })
                ),
                "{name:?}/{hotkey:?}"
            );
        }
    }

    #[test]
    fn missing_wallet_and_hotkey_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let w = Wallet::new(dir.path(), "ghost", "default");
        assert!(matches!(
            w.coldkeypub(),
            Err(WalletError::WalletNotFound { .. })
        ));
        assert!(matches!(
            w.hotkey(),
            Err(WalletError::WalletNotFound { .. })
        ));
        let kp = Keypair::generate(12).expect("gen");
        w.set_coldkeypub(&kp, false).expect("pub");
        let err = w.hotkey().expect_err("no hotkey");
        assert!(matches!(err, WalletError::HotkeyNotFound { .. }), "{err}");
        assert!(err.to_string().contains("hotkeys/default"));
        assert!(matches!(
            w.coldkey(None),
            Err(WalletError::Keyfile(KeyfileError::NotFound { .. }))
        ));
        assert!(
            list_wallets(&dir.path().join("nowhere"))
                .expect("list")
                .is_empty()
        );
    }

    #[test]
    fn plaintext_wallet_and_listing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let w = Wallet::new(dir.path(), "bob", "h1");
        let cold = w.create_coldkey(12, None, false).expect("coldkey");
        let h1 = w.create_hotkey(12, false).expect("hotkey");
        let w2 = Wallet::new(dir.path(), "bob", "h0");
        let h0 = w2.create_hotkey(24, false).expect("hotkey");
        // A watch-only hotkey: only its pub file.
        Wallet::new(dir.path(), "bob", "watch")
            .hotkeypub_file()
            .write_public(&h0, false)
            .expect("pub only");
        std::fs::create_dir(dir.path().join("not-a-wallet")).expect("mkdir");

        assert_eq!(
            w.coldkey(None).expect("read").public_key(),
            cold.public_key()
        );
        assert_eq!(w.hotkey().expect("read").mnemonic(), h1.mnemonic());
        let infos = list_wallets(dir.path()).expect("list");
        assert_eq!(infos.len(), 1);
        let info = &infos[0];
        assert_eq!(info.name, "bob");
        assert_eq!(info.path, dir.path().join("bob"));
        assert_eq!(info.coldkeypub.as_deref(), Some(cold.ss58_address()));
        let names: Vec<_> = info.hotkeys.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["h0", "h1", "watch"]);
        assert_eq!(info.hotkeys[1].ss58.as_deref(), Some(h1.ss58_address()));
        assert_eq!(info.hotkeys[2].ss58.as_deref(), Some(h0.ss58_address()));
    }
}
