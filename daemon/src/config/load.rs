//! Layering: defaults < file < `BT_*` environment < `MR_*` environment < flags, with figment.

use super::error::{ConfigError, ConfigErrors, DEFAULTS, describe, from_figment, nearest};
use super::model::*;
use super::validate::validate;
use crate::wallet::expand_tilde;
use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use std::path::{Path, PathBuf};

/// Files tried in order when neither `--config` nor `MR_CONFIG` names one; the first that exists wins.
pub fn default_files() -> Vec<PathBuf> {
    let mut files = vec![PathBuf::from("/etc/mapreduce/config.toml")];
    if let Some(dir) = dirs::config_dir() {
        files.push(dir.join("mapreduce").join("config.toml"));
    }
    files
}

/// Bittensor's own variables, honoured below our `MR_*` ones.
const BT_VARS: &[(&str, &str)] = &[
    ("BT_WALLET_NAME", "wallet.name"),
    ("BT_WALLET_HOTKEY", "wallet.hotkey"),
    ("BT_WALLET_PATH", "wallet.path"),
    ("BT_SUBTENSOR_NETWORK", "subtensor.network"),
    ("BT_SUBTENSOR_CHAIN_ENDPOINT", "subtensor.chain_endpoint"),
];

/// `MR_*` variables that are not config keys (a name ending in `_` reserves the prefix): the
/// config file; the devnet scripts' own; what tests and CI set (`MR_REQUIRE_*` turns a skip into a
/// failure, `MR_BIN_DIR`, `MR_PY_VENV`, `MR_SUBTENSOR_SPEC_DIR`); and the Python package's client settings
/// (`MR_VALIDATOR`, `MR_VALIDATOR_HOTKEY`, `MR_JOB`), which may sit in a shell that also runs `mrd`.
const MR_RESERVED: &[&str] = &[
    "MR_CONFIG",
    "MR_DEVNET_",
    "MR_REQUIRE_",
    "MR_BIN_DIR",
    "MR_PY_VENV",
    "MR_SUBTENSOR_SPEC_DIR",
    "MR_VALIDATOR",
    "MR_VALIDATOR_HOTKEY",
    "MR_JOB",
];

/// A configuration and where it came from.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    /// The file that was read, if any.
    pub file: Option<PathBuf>,
    figment: Figment,
}

impl Loaded {
    /// Where the current value of a dotted key came from ("default", a file path, an env var, a flag).
    pub fn origin_of(&self, key: &str) -> String {
        origin_in(&self.figment, key).unwrap_or_else(|| "default".into())
    }
}

/// Builds a configuration from its layers.
#[derive(Debug, Default, Clone)]
pub struct Loader {
    explicit_file: Option<PathBuf>,
    search: Vec<PathBuf>,
    env: Vec<(String, String)>,
    flags: Vec<(String, Value)>,
}

impl Loader {
    pub fn new() -> Self {
        Self::default()
    }

    /// The whole process environment and the standard file locations: what the binaries use.
    pub fn from_process() -> Self {
        Self::new().search(default_files()).env(std::env::vars())
    }

    /// A file named by `--config`: it must exist.
    pub fn file(mut self, file: Option<PathBuf>) -> Self {
        self.explicit_file = file;
        self
    }

    /// Files tried when none is named.
    pub fn search(mut self, files: Vec<PathBuf>) -> Self {
        self.search = files;
        self
    }

    /// Environment variables (only `MR_*` and Bittensor's `BT_*` ones are looked at).
    pub fn env(mut self, vars: impl IntoIterator<Item = (String, String)>) -> Self {
        self.env = vars.into_iter().collect();
        self
    }

    /// Values from command-line flags, as dotted keys.
    pub fn flags(mut self, flags: Vec<(String, Value)>) -> Self {
        self.flags = flags;
        self
    }

    fn chosen_file(&self) -> Result<Option<PathBuf>, ConfigError> {
        let named = self.explicit_file.clone().or_else(|| {
            self.env
                .iter()
                .find(|(k, _)| k == "MR_CONFIG")
                .map(|(_, v)| PathBuf::from(v))
        });
        match named {
            Some(path) if path.is_file() => Ok(Some(path)),
            Some(path) => Err(ConfigError::FileNotFound(path)),
            None => Ok(self.search.iter().find(|p| p.is_file()).cloned()),
        }
    }

    /// The merged figment, before extraction (also used to read single keys).
    pub fn figment(&self) -> Result<(Figment, Option<PathBuf>), ConfigErrors> {
        let file = self.chosen_file()?;
        let mut fig = Figment::from(Layer::defaults()?);
        if let Some(path) = &file {
            check_toml(path)?;
            fig = fig.merge(Toml::file_exact(path));
        }
        fig = fig
            .merge(Layer::new("environment variable", "BT_", bt_env(&self.env)))
            .merge(Layer::new("environment variable", "MR_", mr_env(&self.env)))
            .merge(Layer::new("flag", "--", self.flags.clone()));
        Ok((fig, file))
    }

    /// Merge, extract, expand `~` and validate. Every problem is reported, not just the first.
    pub fn load(&self) -> Result<Loaded, ConfigErrors> {
        let (figment, file) = self.figment()?;
        check_sections(&figment)?;
        let mut config: Config = figment.extract().map_err(|e| from_figment(e, &figment))?;
        expand_paths(&mut config);
        let problems = validate(&config);
        if !problems.is_empty() {
            return Err(ConfigErrors(
                problems
                    .into_iter()
                    .map(|p| ConfigError::InvalidValue {
                        origin: origin_in(&figment, &p.key),
                        key: p.key,
                        value: p.value,
                        reason: format!("expected {}", p.expected),
                    })
                    .collect(),
            ));
        }
        Ok(Loaded {
            config,
            file,
            figment,
        })
    }
}

/// serde stops at the first error; checking each section on its own reports one per section,
/// so an operator fixes a broken file in one pass rather than one error per run.
fn check_sections(figment: &Figment) -> Result<(), ConfigErrors> {
    fn section<T: serde::de::DeserializeOwned>(
        fig: &Figment,
        key: &str,
        errs: &mut Vec<ConfigError>,
    ) {
        if let Err(e) = fig.extract_inner::<T>(key) {
            // extract_inner appends the section to the end of each error's path; put it first.
            let fixed = e.into_iter().map(|mut e| {
                if e.path.last().map(String::as_str) == Some(key) {
                    e.path.pop();
                    e.path.insert(0, key.to_string());
                }
                e
            });
            for e in fixed {
                errs.extend(from_figment(e, fig).0);
            }
        }
    }
    let mut errs = Vec::new();
    if let Ok(top) = figment.data()
        && let Some(dict) = top.get(&Profile::Default)
    {
        for key in dict.keys() {
            if key != "netuid" && !SECTIONS.contains(&key.as_str()) {
                let valid: Vec<&str> = SECTIONS.iter().copied().chain(["netuid"]).collect();
                errs.push(ConfigError::UnknownKey {
                    key: key.clone(),
                    origin: origin_in(figment, key),
                    suggestion: nearest(key, valid.iter().copied()),
                    valid: valid.iter().map(|s| s.to_string()).collect(),
                });
            }
        }
    }
    section::<u16>(figment, "netuid", &mut errs);
    section::<WalletConfig>(figment, "wallet", &mut errs);
    section::<SubtensorConfig>(figment, "subtensor", &mut errs);
    section::<AxonConfig>(figment, "axon", &mut errs);
    section::<RelayConfig>(figment, "relay", &mut errs);
    section::<MinerConfig>(figment, "miner", &mut errs);
    section::<ValidatorConfig>(figment, "validator", &mut errs);
    section::<BenchConfig>(figment, "bench", &mut errs);
    section::<AdminConfig>(figment, "admin", &mut errs);
    section::<LoggingConfig>(figment, "logging", &mut errs);
    section::<MetricsConfig>(figment, "metrics", &mut errs);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors(errs))
    }
}

/// Read and parse the file ourselves first, for an error with line and column.
fn check_toml(path: &Path) -> Result<(), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::FileUnreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    text.parse::<toml::Table>()
        .map(|_| ())
        .map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            reason: e.to_string().trim_end().to_string(),
        })
}

fn bt_env(env: &[(String, String)]) -> Vec<(String, Value)> {
    env.iter()
        .filter_map(|(k, v)| {
            BT_VARS
                .iter()
                .find(|(var, _)| var == k)
                .map(|(_, key)| ((*key).to_string(), parse_env_value(v)))
        })
        .collect()
}

/// `MR_SUBTENSOR_CHAIN_ENDPOINT` → `subtensor.chain_endpoint`: the first word names the section.
fn mr_env(env: &[(String, String)]) -> Vec<(String, Value)> {
    env.iter()
        .filter(|(k, _)| {
            k.starts_with("MR_")
                && !MR_RESERVED
                    .iter()
                    .any(|r| k.starts_with(r) && (r.ends_with('_') || k == r))
        })
        .map(|(k, v)| {
            let rest = k["MR_".len()..].to_ascii_lowercase();
            let key = SECTIONS
                .iter()
                .find_map(|s| {
                    rest.strip_prefix(s)
                        .and_then(|r| r.strip_prefix('_'))
                        .map(|field| format!("{s}.{field}"))
                })
                .unwrap_or(rest);
            (key, parse_env_value(v))
        })
        .collect()
}

/// Environment values are TOML-ish: numbers, booleans and `[a, b]` lists parse, anything else is a string.
fn parse_env_value(v: &str) -> Value {
    v.parse().unwrap_or_else(|_| Value::from(v.to_string()))
}

/// A provider for flat `section.key` pairs, named so errors can say "flag --wallet.name".
struct Layer {
    kind: &'static str,
    prefix: &'static str,
    dict: Dict,
}

impl Layer {
    fn defaults() -> Result<Self, ConfigErrors> {
        let data = Serialized::defaults(Config::default())
            .data()
            .map_err(|e| {
                ConfigErrors(vec![ConfigError::Other {
                    message: e.to_string(),
                }])
            })?;
        Ok(Layer {
            kind: DEFAULTS,
            prefix: "",
            dict: data.into_values().next().unwrap_or_default(),
        })
    }

    fn new(kind: &'static str, prefix: &'static str, pairs: Vec<(String, Value)>) -> Self {
        let mut dict = Dict::new();
        for (key, value) in pairs {
            if let Some(nested) = figment::util::nest(&key, value).into_dict() {
                dict = merge_dicts(dict, nested);
            }
        }
        Layer { kind, prefix, dict }
    }
}

fn merge_dicts(mut a: Dict, b: Dict) -> Dict {
    for (k, v) in b {
        let merged = match (a.remove(&k), v) {
            (Some(Value::Dict(_, x)), Value::Dict(tag, y)) => Value::Dict(tag, merge_dicts(x, y)),
            (_, v) => v,
        };
        a.insert(k, merged);
    }
    a
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        let prefix = self.prefix;
        Metadata::named(self.kind).interpolater(move |_: &Profile, keys: &[&str]| {
            if prefix == "--" {
                format!("--{}", keys.join("."))
            } else {
                format!("{prefix}{}", keys.join("_").to_ascii_uppercase())
            }
        })
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

/// Where a key's value came from, or None for a default.
fn origin_in(figment: &Figment, key: &str) -> Option<String> {
    let keys: Vec<&str> = key.split('.').collect();
    describe(figment.find_metadata(key)?, &keys)
}

fn expand_paths(c: &mut Config) {
    c.wallet.path = expand_tilde(&c.wallet.path);
    for p in [
        &mut c.admin.socket,
        &mut c.admin.token_file,
        &mut c.logging.logging_dir,
    ]
    .into_iter()
    .flatten()
    {
        *p = expand_tilde(p);
    }
}
