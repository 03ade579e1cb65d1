//! Durations in the configuration are humantime strings (`"1s"`,
//! `"250ms"`). A leaf: every config module may use it, it uses none.

pub(crate) mod humantime_serde_compat {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    /// Deserialize a humantime duration (`"1s"`, `"250ms"`).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(|e| serde::de::Error::custom(format!("invalid duration `{s}`: {e}")))
    }
}
