//! Configuration errors that name the key, the value, where it came from, and the fix.

use figment::error::Kind;
use std::fmt;
use std::path::PathBuf;

/// One problem found in the configuration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {} not found", .0.display())]
    FileNotFound(PathBuf),
    #[error("cannot read config file {}: {reason}", path.display())]
    FileUnreadable { path: PathBuf, reason: String },
    #[error("config file {} is not valid TOML: {reason}", path.display())]
    Syntax { path: PathBuf, reason: String },
    #[error("unknown key `{key}`{}{}", origin_suffix(.origin), suggestion_suffix(.suggestion, .valid))]
    UnknownKey {
        key: String,
        origin: Option<String>,
        suggestion: Option<String>,
        valid: Vec<String>,
    },
    #[error("invalid value for `{key}`: {value}{}: {reason}", origin_suffix(.origin))]
    InvalidValue {
        key: String,
        value: String,
        origin: Option<String>,
        /// What is wrong, usually "expected ...".
        reason: String,
    },
    #[error("{message}")]
    Other { message: String },
}

fn origin_suffix(origin: &Option<String>) -> String {
    origin
        .as_ref()
        .map(|o| format!(" (from {o})"))
        .unwrap_or_default()
}

fn suggestion_suffix(suggestion: &Option<String>, valid: &[String]) -> String {
    match suggestion {
        Some(s) => format!("; did you mean `{s}`?"),
        None if !valid.is_empty() => format!("; valid keys here: {}", valid.join(", ")),
        None => String::new(),
    }
}

/// Every problem found, so an operator can fix them all in one go.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [one] => write!(f, "invalid configuration: {one}"),
            many => {
                write!(f, "invalid configuration ({} problems):", many.len())?;
                for e in many {
                    write!(f, "\n  - {e}")?;
                }
                Ok(())
            }
        }
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

/// The closest valid name to a mistyped one, if it is close enough to be a plausible typo.
pub fn nearest<'a>(wrong: &str, valid: impl IntoIterator<Item = &'a str>) -> Option<String> {
    valid
        .into_iter()
        .map(|v| (strsim::jaro_winkler(wrong, v), v))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, v)| v.to_string())
}

/// serde names Rust types; operators want ranges.
fn humanize(expected: &str) -> String {
    match expected {
        "u8" => "a whole number from 0 to 255".into(),
        "u16" => "a whole number from 0 to 65535".into(),
        "u32" => "a whole number from 0 to 4294967295".into(),
        "u64" | "usize" => "a whole number, 0 or more".into(),
        "f32" | "f64" => "a number".into(),
        "a boolean" => "true or false".into(),
        other => other.into(),
    }
}

/// The name the defaults layer goes by, so an origin can say "not set anywhere".
pub(super) const DEFAULTS: &str = "default";

/// Where a value came from, said the way an operator would look for it (a file path, "environment
/// variable MR_X", "flag --x"); None when it is a default.
pub(super) fn describe(md: &figment::Metadata, keys: &[&str]) -> Option<String> {
    if md.name == DEFAULTS {
        return None;
    }
    Some(match &md.source {
        Some(figment::Source::File(p)) => p.display().to_string(),
        _ => format!(
            "{} {}",
            md.name,
            md.interpolate(&figment::Profile::Default, keys)
        ),
    })
}

fn origin(err: &figment::Error) -> Option<String> {
    let keys: Vec<&str> = err.path.iter().map(String::as_str).collect();
    describe(err.metadata.as_ref()?, &keys)
}

/// Translate figment's errors (all of them) into ours; `figment` supplies the offending values.
pub fn from_figment(err: figment::Error, figment: &figment::Figment) -> ConfigErrors {
    ConfigErrors(err.into_iter().map(|e| translate(&e, figment)).collect())
}

fn translate(err: &figment::Error, figment: &figment::Figment) -> ConfigError {
    let key = err.path.join(".");
    let origin = origin(err);
    match &err.kind {
        Kind::UnknownField(field, expected) => {
            // The path ends with the unknown field itself; what precedes it is its section.
            let section = err.path[..err.path.len().saturating_sub(1)].join(".");
            let prefix = if section.is_empty() {
                String::new()
            } else {
                format!("{section}.")
            };
            ConfigError::UnknownKey {
                key: format!("{prefix}{field}"),
                origin,
                suggestion: nearest(field, expected.iter().copied())
                    .map(|s| format!("{prefix}{s}")),
                valid: expected.iter().map(|s| format!("{prefix}{s}")).collect(),
            }
        }
        Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected) => {
            ConfigError::InvalidValue {
                key,
                value: actual.to_string(),
                origin,
                reason: format!("expected {}", humanize(expected)),
            }
        }
        Kind::Message(msg) => ConfigError::InvalidValue {
            value: figment
                .find_value(&key)
                .ok()
                .and_then(|v| v.into_string())
                .map(|s| format!("{s:?}"))
                .unwrap_or_else(|| "this value".into()),
            key,
            origin,
            reason: msg.clone(),
        },
        other => ConfigError::Other {
            message: if key.is_empty() {
                other.to_string()
            } else {
                format!("`{key}`: {other}")
            },
        },
    }
}
