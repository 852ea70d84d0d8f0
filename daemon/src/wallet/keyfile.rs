//! One keyfile: btcli's JSON, encryption detection, and reading/writing it on disk.
//!
//! Reading follows the Python package: the key is rebuilt from the first field present of
//! `secretPhrase`, `secretSeed`, `privateKey`, `ss58Address`. Writing is compact JSON without a trailing
//! newline, mode 0600, atomic, and never replaces an existing file unless asked.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::ansible::{self, VaultError};
use super::fs as wfs;
use super::keypair::{CryptoType, KeyError, Keypair, parse_hex};
use super::nacl::{self, NaclError, NaclKey};

/// Keyfiles are a few hundred bytes; anything much larger is not a keyfile (and is not read whole).
const MAX_KEYFILE_LEN: u64 = 64 * 1024;
const FERNET_PREFIX: &[u8] = b"gAAAAA";

/// How a keyfile's content is protected, told by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encryption {
    /// Plain JSON.
    None,
    /// `$NACL`: the current format.
    Nacl,
    /// `$ANSIBLE_VAULT`: legacy, still readable.
    AnsibleVault,
    /// `gAAAAA`: old Fernet, unreadable (the Python package dropped it too).
    Fernet,
}

impl Encryption {
    /// True for every format that needs a password.
    pub fn is_encrypted(self) -> bool {
        self != Encryption::None
    }
}

/// Classifies keyfile content by its prefix.
pub fn detect_encryption(data: &[u8]) -> Encryption {
    if nacl::is_nacl(data) {
        Encryption::Nacl
    } else if ansible::is_vault(data) {
        Encryption::AnsibleVault
    } else if data.starts_with(FERNET_PREFIX) {
        Encryption::Fernet
    } else {
        Encryption::None
    }
}

/// Why keyfile JSON could not be turned into a key.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    #[error("not keyfile JSON: {0}")]
    Syntax(String),
    #[error("no secretPhrase, secretSeed, privateKey or ss58Address field")]
    NoKey,
    #[error("unsupported cryptoType {0} (only 1 = sr25519 is supported)")]
    UnsupportedCrypto(u64),
    #[error("field {field}: {source}")]
    Field {
        field: &'static str,
        source: KeyError,
    },
    #[error("field {0} does not match the key rebuilt from the file")]
    Mismatch(&'static str),
}

/// The JSON of a keyfile. Field names are btcli's; absent fields are omitted when written.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyfileJson {
    #[serde(skip_serializing_if = "Option::is_none")]
    account_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    public_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    private_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_phrase: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_seed: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ss58_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    crypto_type: Option<u64>,
}

impl Drop for KeyfileJson {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        for s in [
            &mut self.private_key,
            &mut self.secret_phrase,
            &mut self.secret_seed,
        ]
        .into_iter()
        .flatten()
        {
            s.zeroize();
        }
    }
}

fn present(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Serializes a key as btcli does. With `include_private` false (or a public-only key) only
/// `publicKey`, `accountId`, `ss58Address`, `cryptoType` are written: the `*pub.txt` form.
pub fn keypair_to_json(kp: &Keypair, include_private: bool) -> Zeroizing<Vec<u8>> {
    let public = format!("0x{}", hex::encode(kp.public_key()));
    let mut json = KeyfileJson {
        account_id: Some(public.clone()),
        public_key: Some(public),
        ss58_address: Some(kp.ss58_address().to_string()),
        crypto_type: Some(u64::from(kp.crypto_type().code())),
        private_key: None,
        secret_phrase: None,
        secret_seed: None,
    };
    if include_private {
        if let Some(pk) = kp.private_key() {
            json.private_key = Some(format!("0x{}", hex::encode(pk.as_ref())));
        }
        json.secret_phrase = kp.mnemonic().map(str::to_string);
        json.secret_seed = kp.mini_secret().map(|s| format!("0x{}", hex::encode(s)));
    }
    // Serializing plain strings and numbers into a Vec cannot fail.
    Zeroizing::new(serde_json::to_vec(&json).unwrap_or_default())
}

/// Rebuilds a key from keyfile JSON (first of secretPhrase, secretSeed, privateKey, ss58Address),
/// and checks that `publicKey`/`ss58Address`, when present, belong to it.
pub fn keypair_from_json(data: &[u8]) -> Result<Keypair, JsonError> {
    let json: KeyfileJson =
        serde_json::from_slice(data).map_err(|e| JsonError::Syntax(e.to_string()))?;
    if let Some(code) = json.crypto_type
        && CryptoType::from_code(code) != Some(CryptoType::Sr25519)
    {
        return Err(JsonError::UnsupportedCrypto(code));
    }
    let field = |field: &'static str| move |source| JsonError::Field { field, source };
    let kp = if let Some(phrase) = present(&json.secret_phrase) {
        Keypair::from_mnemonic(phrase).map_err(field("secretPhrase"))?
    } else if let Some(seed) = present(&json.secret_seed) {
        Keypair::from_seed_hex(seed).map_err(field("secretSeed"))?
    } else if let Some(private) = present(&json.private_key) {
        let bytes =
            Zeroizing::new(parse_hex::<64>("private key", private).map_err(field("privateKey"))?);
        Keypair::from_private_key(bytes.as_ref()).map_err(field("privateKey"))?
    } else if let Some(address) = present(&json.ss58_address) {
        Keypair::from_ss58(address).map_err(field("ss58Address"))?
    } else {
        return Err(JsonError::NoKey);
    };
    if let Some(address) = present(&json.ss58_address)
        && address != kp.ss58_address()
    {
        return Err(JsonError::Mismatch("ss58Address"));
    }
    for (name, value) in [
        ("publicKey", &json.public_key),
        ("accountId", &json.account_id),
    ] {
        if let Some(v) = present(value) {
            let bytes = parse_hex::<32>("public key", v).map_err(field(name))?;
            if bytes != kp.public_key() {
                return Err(JsonError::Mismatch(name));
            }
        }
    }
    Ok(kp)
}

/// Why a keyfile could not be read or written. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum KeyfileError {
    #[error("{}: keyfile does not exist", path.display())]
    NotFound { path: PathBuf },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: already exists; refusing to overwrite it (use --overwrite to replace it)", path.display())]
    AlreadyExists { path: PathBuf },
    #[error("{}: is encrypted; a password is needed", path.display())]
    PasswordRequired { path: PathBuf },
    #[error("{}: wrong password (or the file is corrupted)", path.display())]
    WrongPassword { path: PathBuf },
    #[error(
        "{}: encrypted in the old Fernet format (starts with gAAAAA), which the Python bittensor-wallet \
         package cannot decrypt any more either; regenerate this key from its mnemonic",
        path.display()
    )]
    Fernet { path: PathBuf },
    #[error("{}: corrupt keyfile: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("{}: {source}", path.display())]
    Json { path: PathBuf, source: JsonError },
    #[error("{}: cannot encrypt: {source}", path.display())]
    Encrypt { path: PathBuf, source: NaclError },
}

impl KeyfileError {
    /// The file this error is about.
    pub fn path(&self) -> &Path {
        match self {
            KeyfileError::NotFound { path }
            | KeyfileError::Io { path, .. }
            | KeyfileError::AlreadyExists { path }
            | KeyfileError::PasswordRequired { path }
            | KeyfileError::WrongPassword { path }
            | KeyfileError::Fernet { path }
            | KeyfileError::Corrupt { path, .. }
            | KeyfileError::Json { path, .. }
            | KeyfileError::Encrypt { path, .. } => path,
        }
    }
}

/// A keyfile on disk. Cheap to build; nothing is read until asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyfile {
    path: PathBuf,
}

impl Keyfile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Keyfile { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn exists(&self) -> bool {
        self.path.is_file()
    }

    fn io_err(&self, source: io::Error) -> KeyfileError {
        if source.kind() == io::ErrorKind::NotFound {
            KeyfileError::NotFound {
                path: self.path.clone(),
            }
        } else {
            KeyfileError::Io {
                path: self.path.clone(),
                source,
            }
        }
    }

    /// The raw bytes (size-capped so a wrong path to a big file fails fast).
    pub fn read_raw(&self) -> Result<Zeroizing<Vec<u8>>, KeyfileError> {
        use std::io::Read;
        let f = std::fs::File::open(&self.path).map_err(|e| self.io_err(e))?;
        let mut buf = Zeroizing::new(Vec::new());
        f.take(MAX_KEYFILE_LEN + 1)
            .read_to_end(&mut buf)
            .map_err(|e| self.io_err(e))?;
        if buf.len() as u64 > MAX_KEYFILE_LEN {
            return Err(KeyfileError::Corrupt {
                path: self.path.clone(),
                reason: format!("larger than {MAX_KEYFILE_LEN} bytes, not a keyfile"),
            });
        }
        Ok(buf)
    }

    /// How the file is protected.
    pub fn encryption(&self) -> Result<Encryption, KeyfileError> {
        Ok(detect_encryption(&self.read_raw()?))
    }

    /// The decrypted JSON bytes. `password` is ignored for plaintext files. `$NACL` takes seconds
    /// and 512 MiB (see [`nacl`]): async callers must use `spawn_blocking`.
    pub fn read_plaintext(
        &self,
        password: Option<&str>,
    ) -> Result<Zeroizing<Vec<u8>>, KeyfileError> {
        let raw = self.read_raw()?;
        let path = || self.path.clone();
        match detect_encryption(&raw) {
            Encryption::None => Ok(raw),
            Encryption::Fernet => Err(KeyfileError::Fernet { path: path() }),
            Encryption::Nacl => {
                let pw = password.ok_or_else(|| KeyfileError::PasswordRequired { path: path() })?;
                nacl::decrypt_with_password(pw.as_bytes(), &raw).map_err(|e| match e {
                    NaclError::Decrypt => KeyfileError::WrongPassword { path: path() },
                    other => KeyfileError::Corrupt {
                        path: path(),
                        reason: other.to_string(),
                    },
                })
            }
            Encryption::AnsibleVault => {
                let pw = password.ok_or_else(|| KeyfileError::PasswordRequired { path: path() })?;
                ansible::decrypt(&raw, pw.as_bytes()).map_err(|e| match e {
                    VaultError::WrongPassword => KeyfileError::WrongPassword { path: path() },
                    other => KeyfileError::Corrupt {
                        path: path(),
                        reason: other.to_string(),
                    },
                })
            }
        }
    }

    /// Decrypts with an already derived `$NACL` key (derive once, read many).
    pub fn read_plaintext_with_key(
        &self,
        key: &NaclKey,
    ) -> Result<Zeroizing<Vec<u8>>, KeyfileError> {
        let raw = self.read_raw()?;
        match detect_encryption(&raw) {
            Encryption::Nacl => nacl::decrypt(key, &raw).map_err(|e| match e {
                NaclError::Decrypt => KeyfileError::WrongPassword {
                    path: self.path.clone(),
                },
                other => KeyfileError::Corrupt {
                    path: self.path.clone(),
                    reason: other.to_string(),
                },
            }),
            Encryption::None => Ok(raw),
            Encryption::Fernet => Err(KeyfileError::Fernet {
                path: self.path.clone(),
            }),
            // The vault needs the password itself, not a derived key.
            Encryption::AnsibleVault => Err(KeyfileError::PasswordRequired {
                path: self.path.clone(),
            }),
        }
    }

    /// Reads the key (see [`Keyfile::read_plaintext`] for the cost of encrypted files).
    pub fn read_keypair(&self, password: Option<&str>) -> Result<Keypair, KeyfileError> {
        let plain = self.read_plaintext(password)?;
        self.parse(&plain)
    }

    /// Reads the key with an already derived `$NACL` key.
    pub fn read_keypair_with_key(&self, key: &NaclKey) -> Result<Keypair, KeyfileError> {
        let plain = self.read_plaintext_with_key(key)?;
        self.parse(&plain)
    }

    fn parse(&self, plain: &[u8]) -> Result<Keypair, KeyfileError> {
        keypair_from_json(plain).map_err(|source| KeyfileError::Json {
            path: self.path.clone(),
            source,
        })
    }

    /// Writes the public form (`publicKey`, `accountId`, `ss58Address`, `cryptoType`), plaintext.
    pub fn write_public(&self, kp: &Keypair, overwrite: bool) -> Result<(), KeyfileError> {
        self.write_bytes(&keypair_to_json(kp, false), overwrite)
    }

    /// Writes the full key; `$NACL`-encrypted when a password is given (slow, see [`nacl`]).
    pub fn write_private(
        &self,
        kp: &Keypair,
        password: Option<&str>,
        overwrite: bool,
    ) -> Result<(), KeyfileError> {
        match password {
            None => self.write_private_with_key(kp, None, overwrite),
            Some(pw) => {
                // Check before the slow derivation so a refusal is instant.
                self.check_overwrite(overwrite)?;
                let key =
                    NaclKey::derive(pw.as_bytes()).map_err(|source| KeyfileError::Encrypt {
                        path: self.path.clone(),
                        source,
                    })?;
                self.write_private_with_key(kp, Some(&key), overwrite)
            }
        }
    }

    /// Writes the full key, encrypted with an already derived key when one is given.
    pub fn write_private_with_key(
        &self,
        kp: &Keypair,
        key: Option<&NaclKey>,
        overwrite: bool,
    ) -> Result<(), KeyfileError> {
        let json = keypair_to_json(kp, true);
        match key {
            None => self.write_bytes(&json, overwrite),
            Some(key) => {
                let sealed = nacl::encrypt(key, &json).map_err(|source| KeyfileError::Encrypt {
                    path: self.path.clone(),
                    source,
                })?;
                self.write_bytes(&sealed, overwrite)
            }
        }
    }

    /// Fails with `AlreadyExists` when the file exists and `overwrite` is false.
    pub fn check_overwrite(&self, overwrite: bool) -> Result<(), KeyfileError> {
        if !overwrite && self.path.symlink_metadata().is_ok() {
            return Err(KeyfileError::AlreadyExists {
                path: self.path.clone(),
            });
        }
        Ok(())
    }

    fn write_bytes(&self, data: &[u8], overwrite: bool) -> Result<(), KeyfileError> {
        self.check_overwrite(overwrite)?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            wfs::create_private_dir_all(dir).map_err(|source| KeyfileError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        wfs::write_private_atomic(&self.path, data, overwrite).map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                KeyfileError::AlreadyExists {
                    path: self.path.clone(),
                }
            } else {
                self.io_err(e)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PHRASE: &str =
        "burger village spare shield tattoo waste breeze beyond decrease ugly steak rescue";
    const SS58: &str = "5EZpCAj2ByEiTUCwacXcwh4eC5MfBA9iZQkEWXm2NKGzirgb";

    #[test]
    fn detects_prefixes() {
        assert_eq!(detect_encryption(b"$NACL..."), Encryption::Nacl);
        assert_eq!(
            detect_encryption(b"$ANSIBLE_VAULT;1.1"),
            Encryption::AnsibleVault
        );
        assert_eq!(detect_encryption(b"gAAAAABk..."), Encryption::Fernet);
        assert_eq!(detect_encryption(b"{\"a\":1}"), Encryption::None);
        assert!(!Encryption::None.is_encrypted());
        assert!(Encryption::Fernet.is_encrypted());
    }

    #[test]
    fn json_roundtrip_private_and_public() {
        let kp = Keypair::from_mnemonic(PHRASE).expect("phrase");
        let json = keypair_to_json(&kp, true);
        assert!(!json.ends_with(b"\n"));
        assert!(
            !json.windows(2).any(|w| w == b": " || w == b", "),
            "compact"
        );
        let v: serde_json::Value = serde_json::from_slice(&json).expect("json");
        for k in [
            "accountId",
            "publicKey",
            "privateKey",
            "secretPhrase",
            "secretSeed",
            "ss58Address",
            "cryptoType",
        ] {
            assert!(v.get(k).is_some(), "missing {k}");
        }
        assert_eq!(v["cryptoType"], 1);
        let back = keypair_from_json(&json).expect("parse");
        assert_eq!(back.ss58_address(), SS58);
        assert_eq!(back.mnemonic(), Some(PHRASE));

        let public = keypair_to_json(&kp, false);
        let v: serde_json::Value = serde_json::from_slice(&public).expect("json");
        let mut keys: Vec<_> = v.as_object().expect("object").keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            ["accountId", "cryptoType", "publicKey", "ss58Address"]
        );
        let back = keypair_from_json(&public).expect("parse");
        assert!(!back.has_private());
        assert_eq!(back.ss58_address(), SS58);
    }

    #[test]
    fn field_precedence_and_fallbacks() {
        let kp = Keypair::from_mnemonic(PHRASE).expect("phrase");
        let seed = format!("0x{}", hex::encode(kp.mini_secret().expect("seed")));
        let private = format!("0x{}", hex::encode(kp.private_key().expect("pk").as_ref()));
        let from_seed =
            keypair_from_json(format!(r#"{{"secretSeed":"{seed}"}}"#).as_bytes()).expect("seed");
        assert_eq!(from_seed.ss58_address(), SS58);
        assert!(from_seed.mnemonic().is_none());
        let from_private = keypair_from_json(
            format!(r#"{{"privateKey":"{private}","secretPhrase":null}}"#).as_bytes(),
        )
        .expect("private");
        assert_eq!(from_private.ss58_address(), SS58);
        assert!(from_private.has_private());
        let from_addr =
            keypair_from_json(format!(r#"{{"ss58Address":"{SS58}"}}"#).as_bytes()).expect("ss58");
        assert!(!from_addr.has_private());
    }

    #[test]
    fn bad_json_is_a_clear_error() {
        assert!(matches!(
            keypair_from_json(b"nope"),
            Err(JsonError::Syntax(_))
        ));
        assert!(matches!(keypair_from_json(b"{}"), Err(JsonError::NoKey)));
        assert!(matches!(
            keypair_from_json(format!(r#"{{"ss58Address":"{SS58}","cryptoType":0}}"#).as_bytes()),
            Err(JsonError::UnsupportedCrypto(0))
        ));
        assert!(matches!(
            keypair_from_json(br#"{"secretSeed":"0x1234"}"#),
            Err(JsonError::Field {
                field: "secretSeed",
                ..
            })
        ));
        let other = Keypair::generate(12).expect("generate");
        let mismatched = format!(
            r#"{{"secretPhrase":"{PHRASE}","ss58Address":"{}"}}"#,
            other.ss58_address()
        );
        assert!(matches!(
            keypair_from_json(mismatched.as_bytes()),
            Err(JsonError::Mismatch("ss58Address"))
        ));
    }

    #[test]
    fn keyfile_errors_name_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = Keyfile::new(dir.path().join("nope"));
        let err = missing.read_keypair(None).expect_err("missing");
        assert!(matches!(err, KeyfileError::NotFound { .. }));
        assert!(err.to_string().contains("nope"));

        let fernet = Keyfile::new(dir.path().join("old"));
        std::fs::write(fernet.path(), b"gAAAAABkexample").expect("write");
        let err = fernet.read_keypair(Some("pw")).expect_err("fernet");
        assert!(matches!(err, KeyfileError::Fernet { .. }));
        assert!(err.to_string().contains("old"));
        assert!(err.to_string().contains("Fernet"));

        let nacl = Keyfile::new(dir.path().join("enc"));
        std::fs::write(nacl.path(), b"$NACL").expect("write");
        assert!(matches!(
            nacl.read_keypair(None),
            Err(KeyfileError::PasswordRequired { .. })
        ));
        assert!(matches!(
            nacl.read_keypair(Some("pw")),
            Err(KeyfileError::Corrupt { .. })
        ));

        let garbage = Keyfile::new(dir.path().join("garbage"));
        std::fs::write(garbage.path(), b"{not json").expect("write");
        let err = garbage.read_keypair(None).expect_err("garbage");
        assert!(matches!(err, KeyfileError::Json { .. }));
        assert_eq!(err.path(), garbage.path());
    }

    #[test]
    fn plaintext_write_read_and_overwrite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kf = Keyfile::new(dir.path().join("w/hotkeys/h"));
        let kp = Keypair::from_mnemonic(PHRASE).expect("phrase");
        kf.write_private(&kp, None, false).expect("write");
        assert_eq!(kf.encryption().expect("enc"), Encryption::None);
        assert_eq!(kf.read_keypair(None).expect("read").ss58_address(), SS58);
        assert!(matches!(
            kf.write_private(&kp, Some("pw"), false),
            Err(KeyfileError::AlreadyExists { .. })
        ));
        let other = Keypair::generate(12).expect("generate");
        kf.write_private(&other, None, true).expect("overwrite");
        assert_eq!(
            kf.read_keypair(None).expect("read").ss58_address(),
            other.ss58_address()
        );
    }
}
