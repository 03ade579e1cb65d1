//! Values the configuration checks once, while it is read: a glob that
//! compiles, a regex that compiles, the Kafka settings librdkafka knows by
//! name. A bad one is a syntax error at its line and key; the stages take
//! the value as it is and never re-check it.

use std::fmt;

use serde::Deserialize;

/// A glob pattern (`checkout-*`, `/var/log/pods/*/*/*.log`), compiled.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct Glob(glob::Pattern);

impl Glob {
    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The compiled pattern.
    pub fn pattern(&self) -> &glob::Pattern {
        &self.0
    }

    /// `*`: everything.
    pub fn any() -> Glob {
        Glob(glob::Pattern::new("*").expect("`*` is a glob"))
    }

    /// Whether `s` matches.
    pub fn matches(&self, s: &str) -> bool {
        self.0.matches(s)
    }

    /// Whether the pattern names one thing only (no `*`, `?` or `[`): an
    /// exact name beats every glob.
    pub fn is_exact(&self) -> bool {
        !self.as_str().contains(['*', '?', '['])
    }
}

impl TryFrom<String> for Glob {
    type Error = String;
    fn try_from(s: String) -> Result<Glob, String> {
        glob::Pattern::new(&s)
            .map(Glob)
            .map_err(|e| format!("`{s}` is not a valid glob: {e}"))
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A regex in regex-automata's syntax that compiles; the stages compile it
/// again into their own (anchored, multi-pattern) automata.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct RegexPattern(String);

impl RegexPattern {
    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RegexPattern {
    type Error = String;
    fn try_from(s: String) -> Result<RegexPattern, String> {
        match regex_automata::meta::Regex::new(&s) {
            Ok(_) => Ok(RegexPattern(s)),
            // The syntax error's own text is several lines with a caret;
            // its last line says what is wrong.
            Err(e) => Err(match e.syntax_error() {
                Some(syntax) => {
                    let text = syntax.to_string();
                    let why = text.lines().last().unwrap_or("").trim_start_matches("error: ");
                    format!("invalid regex: {why}")
                }
                None => format!("invalid regex: {e}"),
            }),
        }
    }
}

/// The Kafka producer's compression codec.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KafkaCompression {
    /// zstd (the default: the best ratio for logs at low CPU).
    #[default]
    Zstd,
    /// lz4.
    Lz4,
    /// snappy.
    Snappy,
    /// gzip.
    Gzip,
    /// No compression.
    None,
}

impl KafkaCompression {
    /// librdkafka's `compression.type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            KafkaCompression::Zstd => "zstd",
            KafkaCompression::Lz4 => "lz4",
            KafkaCompression::Snappy => "snappy",
            KafkaCompression::Gzip => "gzip",
            KafkaCompression::None => "none",
        }
    }
}

/// Where a consumer group without committed offsets starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OffsetReset {
    /// At the oldest retained message.
    #[default]
    Earliest,
    /// At the next message produced.
    Latest,
}

impl OffsetReset {
    /// librdkafka's `auto.offset.reset` value.
    pub fn as_str(self) -> &'static str {
        match self {
            OffsetReset::Earliest => "earliest",
            OffsetReset::Latest => "latest",
        }
    }
}
