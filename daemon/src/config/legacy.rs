//! `mrd config import-legacy`: the original subnet's `validator.config.json` into our TOML.

use serde_json::Value as Json;

/// The TOML text and what could not be carried over.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    pub toml: String,
    pub notes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum LegacyError {
    #[error("not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("expected a JSON object at the top level, found {0}")]
    NotObject(&'static str),
    #[error("`{key}` must be {expected}, found {found}")]
    Type {
        key: String,
        expected: &'static str,
        found: String,
    },
}

fn kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "an object",
    }
}

/// Flatten `{"wallet": {"name": x}}` and `{"wallet.name": x}` alike into dotted keys.
fn flatten(prefix: &str, v: &Json, out: &mut Vec<(String, Json)>) {
    match v {
        Json::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        other => out.push((prefix.to_string(), other.clone())),
    }
}

fn string(key: &str, v: &Json) -> Result<String, LegacyError> {
    v.as_str().map(str::to_string).ok_or(LegacyError::Type {
        key: key.into(),
        expected: "a string",
        found: kind(v).into(),
    })
}

fn integer(key: &str, v: &Json) -> Result<u64, LegacyError> {
    v.as_u64().ok_or(LegacyError::Type {
        key: key.into(),
        expected: "a non-negative integer",
        found: v.to_string(),
    })
}

/// Convert the legacy JSON. Unknown or unmappable keys become notes, never silent drops.
pub fn import(json: &str) -> Result<Imported, LegacyError> {
    let root: Json = serde_json::from_str(json)?;
    if !root.is_object() {
        return Err(LegacyError::NotObject(kind(&root)));
    }
    let mut pairs = Vec::new();
    flatten("", &root, &mut pairs);

    let mut doc = toml::Table::new();
    let mut notes = Vec::new();
    let mut set = |section: Option<&str>, key: &str, value: toml::Value| match section {
        None => {
            doc.insert(key.into(), value);
        }
        Some(s) => {
            let table = doc
                .entry(s)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(t) = table {
                t.insert(key.into(), value);
            }
        }
    };

    for (key, v) in &pairs {
        match key.as_str() {
            "netuid" => {
                let n = integer(key, v)?;
                let n = u16::try_from(n).map_err(|_| LegacyError::Type {
                    key: key.clone(),
                    expected: "a netuid (0 to 65535)",
                    found: n.to_string(),
                })?;
                set(None, "netuid", toml::Value::Integer(n.into()));
            }
            "subtensor.network" => set(Some("subtensor"), "network", string(key, v)?.into()),
            "subtensor.chain_endpoint" => {
                set(Some("subtensor"), "chain_endpoint", string(key, v)?.into())
            }
            "wallet.name" => set(Some("wallet"), "name", string(key, v)?.into()),
            "wallet.hotkey" => set(Some("wallet"), "hotkey", string(key, v)?.into()),
            "wallet.path" => set(Some("wallet"), "path", string(key, v)?.into()),
            "max_bandwidth" => {
                let bytes = integer(key, v)?;
                let mib = bytes.div_ceil(1 << 20).max(1);
                if bytes % (1 << 20) != 0 {
                    notes.push(format!(
                        "max_bandwidth = {bytes} bytes is not a whole number of MiB; rounded up to {mib} MiB"
                    ));
                }
                set(Some("validator"), "max_job_mib", toml::Value::Integer(mib as i64));
            }
            "benchmark_hotkeys" => {
                let list = v.as_array().ok_or(LegacyError::Type {
                    key: key.clone(),
                    expected: "a list of hotkey addresses",
                    found: kind(v).into(),
                })?;
                let mut hotkeys = Vec::new();
                let mut empty = 0;
                for h in list {
                    let h = string(key, h)?;
                    if h.trim().is_empty() {
                        empty += 1;
                    } else {
                        hotkeys.push(toml::Value::String(h.trim().to_string()));
                    }
                }
                if empty > 0 {
                    notes.push(format!("benchmark_hotkeys: dropped {empty} empty entries"));
                }
                set(Some("validator"), "benchmark_hotkeys", toml::Value::Array(hotkeys));
            }
            "auto_update" => notes.push(format!(
                "auto_update = {v}: not mapped; mapreduce never updates itself (upgrade the package and restart the systemd unit)"
            )),
            other => notes.push(format!("{other} = {v}: unknown to mapreduce, not mapped")),
        }
    }

    let body = toml::to_string_pretty(&doc).unwrap_or_default();
    let mut text = String::from(
        "# Imported from the original subnet's validator.config.json by `mrd config import-legacy`.\n",
    );
    for n in &notes {
        text.push_str(&format!("# not carried over: {n}\n"));
    }
    text.push('\n');
    text.push_str(&body);
    Ok(Imported { toml: text, notes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Loader;

    const ORIGINAL: &str = r#"{
        "subtensor.network": "local",
        "netuid": 10,
        "wallet.name": "validator",
        "wallet.hotkey": "default",
        "max_bandwidth": 10737418240,
        "auto_update": "yes",
        "benchmark_hotkeys": ["5DDFLijdzh8Jt7kHyd9zgE8fMDgxpyabGfD7x2NuEC5aQFKg", "", ""]
    }"#;

    #[test]
    fn maps_every_known_key_and_loads_back() {
        let out = import(ORIGINAL).unwrap();
        assert_eq!(out.notes.len(), 2, "{:?}", out.notes);
        assert!(out.notes.iter().any(|n| n.starts_with("auto_update")));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, &out.toml).unwrap();
        let loaded = Loader::new().file(Some(path)).load().unwrap().config;
        assert_eq!(loaded.subtensor.network, "local");
        assert_eq!(loaded.netuid, 10);
        assert_eq!(loaded.wallet.name, "validator");
        assert_eq!(loaded.validator.max_job_mib, 10240);
        assert_eq!(
            loaded.validator.benchmark_hotkeys,
            ["5DDFLijdzh8Jt7kHyd9zgE8fMDgxpyabGfD7x2NuEC5aQFKg"]
        );
    }

    #[test]
    fn nested_objects_and_unknown_keys() {
        let out = import(r#"{"wallet": {"name": "v"}, "foo": 1}"#).unwrap();
        assert!(out.toml.contains("name = \"v\""));
        assert_eq!(out.notes, ["foo = 1: unknown to mapreduce, not mapped"]);
    }

    #[test]
    fn bad_types_are_named() {
        let err = import(r#"{"netuid": "ten"}"#).unwrap_err().to_string();
        assert!(err.contains("`netuid`"), "{err}");
        assert!(import("[1]").unwrap_err().to_string().contains("a list"));
        assert!(import("{").is_err());
    }
}
