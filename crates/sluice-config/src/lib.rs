//! sluice's configuration: the TOML file an operator writes, as typed `serde`
//! structs that refuse unknown keys, with `${VAR}` / `${VAR:-default}`
//! environment interpolation and errors that name the file, line and key.
//! This crate owns the *shape* and validity of a configuration; it must not
//! build components or touch the files a configuration names.

mod duration;
mod endpoint;
mod fleet;
mod interpolate;
mod model;
pub mod secret_names;
mod sinks;
mod sources;
mod stages;
mod typed;

use std::path::{Path, PathBuf};

pub use bytesize::ByteSize;

pub use endpoint::{mask_urls, Endpoint};
pub use fleet::{BudgetScope, FleetConfig};
pub use interpolate::interpolate;
pub use model::*;
pub use secret_names::is_secret_key;
pub use sinks::*;
/// The keys the file source writes into every event from its log file's
/// Kubernetes path; their home is [`sluice_core::added_fields::ORIGIN`].
pub use sluice_core::added_fields::ORIGIN as ORIGIN_FIELDS;
pub use sources::*;
pub use stages::*;
pub use typed::{Glob, KafkaCompression, OffsetReset, RegexPattern};

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An environment reference without a value or default.
    #[error("{path}:{line}: environment variable `{var}` is not set (write ${{{var}:-default}} to give a default)")]
    MissingVar {
        /// The file.
        path: PathBuf,
        /// 1-based line of the reference.
        line: usize,
        /// The variable.
        var: String,
    },
    /// A malformed `${...}` reference.
    #[error("{path}:{line}: malformed environment reference `{text}` (expected ${{NAME}} or ${{NAME:-default}}; write $$ for a literal $)")]
    BadReference {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The offending text.
        text: String,
    },
    /// TOML syntax, an unknown key, a missing key or a wrong type.
    #[error("{path}:{line}:{column}: {message}\n    {line_text}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong, naming the key.
        message: String,
        /// The offending line, for the operator's eye.
        line_text: String,
    },
    /// Well-formed but inconsistent.
    #[error("{path}: `{key}`: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Dotted path of the key at fault.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// Read, interpolate, parse and validate a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path, &|name| std::env::var(name).ok())
}

/// Interpolate, parse and validate configuration `text` (`origin` names it
/// in errors); `env` looks variables up.
pub fn parse(text: &str, origin: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let text = interpolate(text, env).map_err(|e| e.into_config_error(origin))?;
    let config: Config = toml::from_str(&text).map_err(|e| {
        // serde reads a tagged component (`type = "file"`) through a buffer
        // that forgets positions, so such errors point at the table header;
        // re-reading the component alone finds the exact line and key.
        let precise = model::component_error(&text).unwrap_or(e);
        syntax_error(&text, origin, &precise)
    })?;
    config
        .validate()
        .map_err(|Invalid { key, message }| ConfigError::Invalid {
            path: origin.to_owned(),
            key,
            message: mask_urls(&message),
        })?;
    Ok(config)
}

fn syntax_error(text: &str, origin: &Path, e: &toml::de::Error) -> ConfigError {
    let offset = e.span().map_or(0, |s| s.start).min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    let line_text = text[line_start..].lines().next().unwrap_or("");
    let (mut message, line_text) = echo_safely(e.message().trim(), line_text);
    if let Some(key) = key_at(text, line_start) {
        // toml names an unknown key itself (`unknown field `x``).
        if !message.starts_with("unknown field") {
            message = format!("`{key}`: {message}");
        }
    }
    ConfigError::Syntax {
        path: origin.to_owned(),
        line,
        column,
        message,
        line_text,
    }
}

/// The dotted key set on the line starting at `line_start`, with the table
/// header above it (`[[budget.overrides]]` counted: `budget.overrides[1]`),
/// so an error names the key as well as the line. `None` where the line
/// sets no key (a header, a continued array).
fn key_at(text: &str, line_start: usize) -> Option<String> {
    let line = text[line_start..].lines().next()?;
    if line.trim_start().starts_with('[') {
        return None;
    }
    let (key, _) = line.split_once('=')?;
    let clean = |k: &str| -> String {
        k.split('.')
            .map(|p| p.trim().trim_matches(['"', '\'']))
            .collect::<Vec<_>>()
            .join(".")
    };
    let key = clean(key);
    if key.is_empty() || key.contains(['{', '#']) {
        return None;
    }
    let mut header: Option<String> = None;
    let mut arrays: Vec<(String, usize)> = Vec::new();
    for l in text[..line_start].lines().map(str::trim) {
        if let Some(name) = l
            .strip_prefix("[[")
            .and_then(|r| r.split_once("]]"))
            .map(|(n, _)| clean(n))
        {
            let n = match arrays.iter_mut().find(|(a, _)| *a == name) {
                Some((_, count)) => {
                    *count += 1;
                    *count
                }
                None => {
                    arrays.push((name.clone(), 0));
                    0
                }
            };
            header = Some(format!("{name}[{n}]"));
        } else if let Some(name) = l
            .strip_prefix('[')
            .and_then(|r| r.split_once(']'))
            .map(|(n, _)| clean(n))
        {
            header = Some(name);
        }
    }
    Some(match header {
        Some(h) => format!("{h}.{key}"),
        None => key,
    })
}

/// The message and line of a syntax error as they may be printed: the
/// value of a key whose name looks secret, or of a key the configuration
/// does not know (a typo'd `pasword`), is never echoed, in the line or in
/// the message; URLs lose their credentials. The text is interpolated, so
/// a `${VAR}` holding a secret would otherwise be printed too.
fn echo_safely(message: &str, line_text: &str) -> (String, String) {
    let (mut message, mut line_text) = (mask_urls(message), mask_urls(line_text));
    let Some((keys, value)) = line_text.split_once('=') else {
        return (message, line_text);
    };
    let unknown = message.starts_with("unknown field");
    let secret = keys
        .split('.')
        .map(|k| k.trim().trim_matches(['"', '\'']))
        .any(is_secret_key)
        || (value.contains('{')
            && value
                .split(['{', ',', '='])
                .any(|k| is_secret_key(k.trim().trim_matches(['"', '\'']))));
    if unknown || secret {
        let raw = value.trim().trim_matches(['"', '\'']);
        if !raw.is_empty() {
            message = message.replace(raw, "****");
        }
        line_text = format!("{}= ****", keys);
    }
    (message, line_text)
}

#[cfg(test)]
mod tests;
