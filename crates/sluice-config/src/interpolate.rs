//! `${VAR}` and `${VAR:-default}` substitution over the raw TOML text, before
//! parsing, so any value (a path, a port, a budget) can come from the
//! environment. `$$` is a literal `$`; a `$` not followed by `{` or `$` is
//! kept as it is.

use std::path::Path;

use crate::ConfigError;

/// An interpolation failure, before it learns the file name.
#[derive(Debug, PartialEq, Eq)]
pub enum InterpolationError {
    /// `${NAME}` with `NAME` unset and no default.
    Missing {
        /// 1-based line.
        line: usize,
        /// The variable.
        var: String,
    },
    /// An unterminated or empty reference.
    Malformed {
        /// 1-based line.
        line: usize,
        /// The text from `${`.
        text: String,
    },
}

impl InterpolationError {
    pub(crate) fn into_config_error(self, path: &Path) -> ConfigError {
        let path = path.to_owned();
        match self {
            InterpolationError::Missing { line, var } => ConfigError::MissingVar { path, line, var },
            InterpolationError::Malformed { line, text } => ConfigError::BadReference { path, line, text },
        }
    }
}

/// Where a TOML comment starts on `line`, if it has one (a `#` outside a
/// quoted string). References inside comments are left alone, so a
/// commented-out setting never needs its variable.
fn comment_start(line: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (Some('"'), '\\') if !escaped => {
                escaped = true;
                continue;
            }
            (Some(q), c) if c == q && !escaped => quote = None,
            (None, '"' | '\'') => quote = Some(c),
            (None, '#') => return Some(i),
            _ => {}
        }
        escaped = false;
    }
    None
}

/// Substitute environment references in `text` (not in comments). An empty
/// variable counts as unset for `:-`, as in the shell.
pub fn interpolate(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, InterpolationError> {
    let mut out = String::with_capacity(text.len());
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let code_end = comment_start(line).unwrap_or(line.len());
        out.push_str(&interpolate_code(&line[..code_end], n + 1, env)?);
        out.push_str(&line[code_end..]);
    }
    Ok(out)
}

fn interpolate_code(
    text: &str,
    line: usize,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, InterpolationError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let line_of = |_: &str| line;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let line = line_of(&rest[i..]);
            let Some(end) = body.find('}') else {
                let text = rest[i..].lines().next().unwrap_or("").to_string();
                return Err(InterpolationError::Malformed { line, text });
            };
            let reference = &body[..end];
            let (name, default) = match reference.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (reference, None),
            };
            let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                let text = format!("${{{reference}}}");
                return Err(InterpolationError::Malformed { line, text });
            }
            match (env(name).filter(|v| !v.is_empty() || default.is_none()), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(InterpolationError::Missing {
                        line,
                        var: name.to_string(),
                    })
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "DIR" => Some("/var/log/pods".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_values_and_defaults() {
        assert_eq!(
            interpolate(
                "a = \"${DIR}/x\"\nb = \"${NOPE:-./data}\"\nc = \"${EMPTY:-d}\" e = \"${EMPTY}\"",
                &env
            )
            .unwrap(),
            "a = \"/var/log/pods/x\"\nb = \"./data\"\nc = \"d\" e = \"\""
        );
    }

    #[test]
    fn comments_are_left_alone() {
        assert_eq!(
            interpolate(
                "a = \"#${DIR}\" # uses ${UNSET}\n# b = \"${UNSET}\"\nc = '#x' # ${UNSET}",
                &env
            )
            .unwrap(),
            "a = \"#/var/log/pods\" # uses ${UNSET}\n# b = \"${UNSET}\"\nc = '#x' # ${UNSET}"
        );
    }

    #[test]
    fn dollars_escape_and_pass_through() {
        assert_eq!(
            interpolate("p = \"$$HOME costs $5\"", &env).unwrap(),
            "p = \"$HOME costs $5\""
        );
    }

    #[test]
    fn missing_and_malformed_references_name_their_line() {
        assert_eq!(
            interpolate("x = 1\ny = \"${UNSET}\"", &env),
            Err(InterpolationError::Missing {
                line: 2,
                var: "UNSET".into()
            })
        );
        assert_eq!(
            interpolate("\n\nz = \"${BAD NAME}\"", &env),
            Err(InterpolationError::Malformed {
                line: 3,
                text: "${BAD NAME}".into()
            })
        );
        assert_eq!(
            interpolate("w = \"${OPEN", &env),
            Err(InterpolationError::Malformed {
                line: 1,
                text: "${OPEN".into()
            })
        );
    }
}
