//! GetConfig and UpdateConfig: the effective configuration key by key, and edits of the config
//! file that are validated whole (with the daemon's own loader: same environment and flags) and
//! written atomically (temp file, fsync, rename, fsync of the folder). On any problem the file
//! is left byte for byte as it was. Edits keep the file's comments and layout (toml_edit).

use crate::config::{Config, ConfigError, EXAMPLE, Loader};
use mr_proto::v1::{ConfigEntry, ConfigProblem, UpdateConfigRequest};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use toml_edit::{DocumentMut, Item, Table, Value};

/// Keys the admin server applies live whatever the role (the log level, through the reload handle).
pub const LOGGING_LIVE: &[&str] = &["logging.debug", "logging.trace"];

/// Every key with a value, dotted, the value as TOML.
pub fn flatten(config: &Config) -> BTreeMap<String, String> {
    fn walk(prefix: &str, v: &toml::Value, out: &mut BTreeMap<String, String>) {
        match v {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            leaf => {
                out.insert(prefix.to_string(), leaf.to_string());
            }
        }
    }
    let mut out = BTreeMap::new();
    if let Ok(v) = toml::Value::try_from(config) {
        walk("", &v, &mut out);
    }
    out
}

/// The documentation of each key, from the comment block above it in `config.toml.example`
/// (keys without a default appear there commented out: `# key = value`).
pub fn docs() -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut section = String::new();
    let mut comment: Vec<&str> = Vec::new();
    for line in EXAMPLE.lines() {
        let t = line.trim();
        if t.is_empty() {
            comment.clear();
        } else if let Some(s) = t.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = s.to_string();
            comment.clear();
        } else if let Some(key) = key_of(t) {
            let full = if section.is_empty() {
                key.to_string()
            } else {
                format!("{section}.{key}")
            };
            if !comment.is_empty() {
                out.insert(full, comment.join(" "));
            }
        } else if let Some(c) = t.strip_prefix('#') {
            comment.push(c.trim());
        }
    }
    out
}

/// `name = ...` or `# name = ...` → name.
fn key_of(line: &str) -> Option<&str> {
    let l = line.strip_prefix('#').map_or(line, str::trim_start);
    let (k, _) = l.split_once(" = ")?;
    (!k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')).then_some(k)
}

/// Entries for GetConfig: every key with a value, then documented keys that are unset.
pub fn entries(
    config: &Config,
    origin: impl Fn(&str) -> String,
    live: &[&str],
) -> Vec<ConfigEntry> {
    let docs = docs();
    let values = flatten(config);
    let mut keys: Vec<&String> = values.keys().chain(docs.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .map(|k| ConfigEntry {
            key: k.clone(),
            value: values.get(k).cloned().unwrap_or_default(),
            origin: if values.contains_key(k) {
                origin(k)
            } else {
                "unset".into()
            },
            live: live.contains(&k.as_str()),
            doc: docs.get(k).cloned().unwrap_or_default(),
        })
        .collect()
}

fn problem(key: &str, message: impl Into<String>) -> ConfigProblem {
    ConfigProblem {
        key: key.into(),
        message: message.into(),
    }
}

/// A value as TOML when it parses (numbers, booleans, arrays, quoted strings), else a string.
fn parse_value(text: &str) -> Value {
    format!("v = {text}")
        .parse::<DocumentMut>()
        .ok()
        .and_then(|d| d.get("v")?.as_value().cloned())
        .unwrap_or_else(|| Value::from(text))
}

/// Sets a dotted key in the document, keeping the comments around an existing value.
fn set_key(doc: &mut DocumentMut, key: &str, mut value: Value) -> Result<(), ConfigProblem> {
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(problem(
            key,
            "not a key (expected e.g. validator.ema_alpha)",
        ));
    }
    let (leaf, path) = parts
        .split_last()
        .ok_or_else(|| problem(key, "empty key"))?;
    let mut table: &mut Table = doc.as_table_mut();
    for (i, p) in path.iter().enumerate() {
        let item = table.entry(p).or_insert_with(|| {
            let mut t = Table::new();
            t.set_implicit(i + 1 < path.len());
            Item::Table(t)
        });
        table = item.as_table_mut().ok_or_else(|| {
            problem(
                key,
                format!("`{}` is a value, not a section", path[..=i].join(".")),
            )
        })?;
    }
    match table.get_mut(leaf) {
        Some(Item::Value(old)) => {
            let decor = old.decor().clone();
            *value.decor_mut() = decor;
            *old = value;
        }
        Some(Item::Table(_)) => {
            return Err(problem(key, "is a section, not a value"));
        }
        _ => {
            table.insert(leaf, Item::Value(value));
        }
    }
    Ok(())
}

/// The leaves of a TOML fragment as (dotted key, value).
fn leaves(prefix: &str, t: &dyn toml_edit::TableLike, out: &mut Vec<(String, Value)>) {
    for (k, item) in t.iter() {
        let key = if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        };
        if let Some(sub) = item.as_table_like() {
            leaves(&key, sub, out);
        } else if let Some(v) = item.as_value() {
            let mut v = v.clone();
            v.decor_mut().clear();
            out.push((key, v));
        }
    }
}

/// The file text after the request's fragment and single sets.
pub fn edit(old: &str, req: &UpdateConfigRequest) -> Result<String, Vec<ConfigProblem>> {
    let replacing = !req.replace.is_empty();
    let base = if replacing { req.replace.as_str() } else { old };
    let mut doc: DocumentMut = base.parse().map_err(|e| {
        let what = if replacing {
            "the new file"
        } else {
            "the config file"
        };
        vec![problem("", format!("{what} is not valid TOML: {e}"))]
    })?;
    let mut sets: Vec<(String, Value)> = Vec::new();
    if !req.toml.trim().is_empty() {
        let frag: DocumentMut = req
            .toml
            .parse()
            .map_err(|e| vec![problem("", format!("the fragment is not valid TOML: {e}"))])?;
        leaves("", frag.as_table(), &mut sets);
    }
    sets.extend(
        req.set
            .iter()
            .map(|s| (s.key.trim().to_string(), parse_value(s.value.trim()))),
    );
    if sets.is_empty() {
        if replacing {
            return Ok(req.replace.clone());
        }
        return Err(vec![problem(
            "",
            "nothing to change: give a fragment or KEY VALUE",
        )]);
    }
    let mut problems = Vec::new();
    for (k, v) in sets {
        if let Err(p) = set_key(&mut doc, &k, v) {
            problems.push(p);
        }
    }
    if problems.is_empty() {
        Ok(doc.to_string())
    } else {
        Err(problems)
    }
}

/// Problems of a configuration as the loader reports them, naming the real file, not the temp one.
pub fn problems_of(
    errors: &crate::config::ConfigErrors,
    tmp: &Path,
    real: &Path,
) -> Vec<ConfigProblem> {
    let fix = |s: String| s.replace(&tmp.display().to_string(), &real.display().to_string());
    errors
        .0
        .iter()
        .map(|e| {
            let key = match e {
                ConfigError::InvalidValue { key, .. } | ConfigError::UnknownKey { key, .. } => {
                    key.clone()
                }
                _ => String::new(),
            };
            problem(&key, fix(e.to_string()))
        })
        .collect()
}

/// The temp file beside `path` an edit is written to before it replaces `path`.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map_or_else(
        || "config.toml".into(),
        |n| n.to_string_lossy().into_owned(),
    );
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Writes `text` to `tmp` and syncs it.
pub fn write_synced(tmp: &Path, text: &str) -> std::io::Result<()> {
    let mut f = std::fs::File::create(tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// Moves `tmp` over `path` and syncs the folder, so the rename survives a crash. The new file
/// keeps the old one's permissions (a config may hold paths an operator keeps private).
pub fn replace(tmp: &Path, path: &Path) -> std::io::Result<()> {
    if let Ok(m) = std::fs::metadata(path) {
        std::fs::set_permissions(tmp, m.permissions())?;
    }
    std::fs::rename(tmp, path)?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::File::open(dir)?.sync_all()
}

/// Unified diff, old to new.
pub fn diff(path: &Path, old: &str, new: &str) -> String {
    let p = path.display().to_string();
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .header(&p, &p)
        .to_string()
}

/// Keys whose effective value differs.
pub fn changed(old: &Config, new: &Config) -> Vec<String> {
    let (a, b) = (flatten(old), flatten(new));
    let mut keys: Vec<String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// The outcome of validating an edit (before anything is written over the file).
pub struct Checked {
    pub old_text: String,
    pub new_text: String,
    pub config: Config,
    pub tmp: PathBuf,
}

/// Applies the request to the file's text and validates the result with `loader` (the daemon's
/// layers); the new text is left in a synced temp file beside `path` for [`replace`].
pub fn check(
    loader: &Loader,
    path: &Path,
    req: &UpdateConfigRequest,
) -> Result<Checked, Vec<ConfigProblem>> {
    let old_text = std::fs::read_to_string(path).map_err(|e| {
        vec![problem(
            "",
            format!("reading the config file {}: {e}", path.display()),
        )]
    })?;
    let new_text = edit(&old_text, req)?;
    let tmp = temp_path(path);
    if let Err(e) = write_synced(&tmp, &new_text) {
        let _ = std::fs::remove_file(&tmp);
        return Err(vec![problem("", format!("writing {}: {e}", tmp.display()))]);
    }
    match loader.clone().file(Some(tmp.clone())).load() {
        Ok(l) => Ok(Checked {
            old_text,
            new_text,
            config: l.config,
            tmp,
        }),
        Err(errs) => {
            let _ = std::fs::remove_file(&tmp);
            Err(problems_of(&errs, &tmp, path))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mr_proto::v1::ConfigSet;

    fn set(k: &str, v: &str) -> UpdateConfigRequest {
        UpdateConfigRequest {
            set: vec![ConfigSet {
                key: k.into(),
                value: v.into(),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn edit_keeps_comments_and_adds_sections() {
        let old = "# top\nnetuid = 3\n\n[validator]\n# the rate\nsample_rate = 0.01 # inline\n";
        let new = edit(old, &set("validator.sample_rate", "0.5")).expect("edit");
        assert!(
            new.contains("# the rate\nsample_rate = 0.5 # inline"),
            "{new}"
        );
        let new = edit(&new, &set("wallet.name", "alice")).expect("edit");
        assert!(new.contains("[wallet]\nname = \"alice\""), "{new}");
        let frag = UpdateConfigRequest {
            toml: "netuid = 7\n[logging]\ndebug = true\n".into(),
            ..Default::default()
        };
        let new = edit(&new, &frag).expect("fragment");
        assert!(new.starts_with("# top\nnetuid = 7\n"), "{new}");
        assert!(new.contains("[logging]\ndebug = true"), "{new}");
        assert!(edit(old, &set("netuid.x", "1")).is_err());
    }

    #[test]
    fn invalid_value_names_the_key_and_leaves_the_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("c.toml");
        let text = "netuid = 3\n[validator]\nsample_rate = 0.01\n";
        std::fs::write(&path, text).expect("write");
        let loader = Loader::new();
        let errs = check(&loader, &path, &set("validator.sample_rate", "5"))
            .err()
            .expect("invalid");
        assert_eq!(errs[0].key, "validator.sample_rate", "{:?}", errs);
        let errs = check(&loader, &path, &set("validator.sample_rat", "0.5"))
            .err()
            .expect("unknown");
        assert!(errs[0].message.contains("sample_rate"), "{:?}", errs);
        assert!(!errs[0].message.contains(".c.toml."), "{:?}", errs);
        assert_eq!(std::fs::read_to_string(&path).expect("read"), text);
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("ls").count(),
            1,
            "no temp left"
        );

        let ok = check(&loader, &path, &set("validator.sample_rate", "0.5")).expect("valid");
        assert_eq!(ok.config.validator.sample_rate, 0.5);
        replace(&ok.tmp, &path).expect("replace");
        assert!(
            std::fs::read_to_string(&path)
                .expect("read")
                .contains("sample_rate = 0.5")
        );
    }

    #[test]
    fn every_example_key_is_documented() {
        let d = docs();
        for k in flatten(&Config::default()).keys() {
            assert!(d.contains_key(k), "no doc for {k}");
        }
        assert!(d.contains_key("admin.token_file"));
    }
}
