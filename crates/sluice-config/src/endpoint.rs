//! An HTTP target's base URL as the operator wrote it. It is parsed once,
//! joined with the API path and parameters a sink needs (keeping the
//! operator's own query string), and only ever printed with its secrets
//! masked: the userinfo's password and any parameter whose name looks
//! secret (`?user=admin&password=****`).

use std::fmt;

use percent_encoding::{percent_decode_str, utf8_percent_encode, NON_ALPHANUMERIC};
use serde::{Deserialize, Deserializer};
use url::Url;

use crate::secret_names::is_secret_key;

/// See the module docs.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    url: Url,
}

impl Endpoint {
    /// Parse an `http://` or `https://` URL with a host.
    pub fn parse(text: &str) -> Result<Endpoint, String> {
        let url = Url::parse(text.trim()).map_err(|e| format!("`{}` is not a URL: {e}", mask_urls(text)))?;
        if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
            return Err(format!("`{}` is not an http:// or https:// URL", mask_urls(text)));
        }
        if url.fragment().is_some() {
            return Err(format!("`{}`: an endpoint has no #fragment", mask_urls(text)));
        }
        Ok(Endpoint { url })
    }

    /// The URL to send to: `path` appended to the endpoint's own path, and
    /// `params` (percent-encoded here) after the endpoint's own query.
    /// Userinfo stays in it: the HTTP client turns it into basic auth.
    pub fn request_url(&self, path: &str, params: &[(&str, &str)]) -> String {
        let mut url = self.url.clone();
        let base = url.path().trim_end_matches('/');
        let path = path.trim_start_matches('/');
        let joined = if path.is_empty() {
            format!("{base}/")
        } else {
            format!("{base}/{path}")
        };
        url.set_path(&joined);
        let mut query = url.query().unwrap_or("").to_string();
        for (k, v) in params {
            if !query.is_empty() {
                query.push('&');
            }
            query.push_str(k);
            query.push('=');
            query.extend(utf8_percent_encode(v, NON_ALPHANUMERIC));
        }
        url.set_query((!query.is_empty()).then_some(query.as_str()));
        url.into()
    }
}

impl fmt::Display for Endpoint {
    /// The URL with its secrets masked (see the module docs).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&mask_urls(self.url.as_str()))
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Endpoint({self})")
    }
}

impl<'de> Deserialize<'de> for Endpoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Endpoint::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// `text` with the secrets of every URL in it masked: a userinfo password
/// (`http://user:****@host`) and the values of query parameters whose
/// (percent-decoded) names look secret. Text that holds no URL comes back
/// unchanged. For messages and echoed configuration lines, not hot paths.
pub fn mask_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, url) = rest.split_at(at + 3);
        out.push_str(head);
        let end = url
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>' | ')'))
            .unwrap_or(url.len());
        out.push_str(&mask_one(&url[..end]));
        rest = &url[end..];
    }
    out.push_str(rest);
    out
}

/// Mask what follows a scheme's `://` up to the end of the URL.
fn mask_one(url: &str) -> String {
    let authority_end = url.find(['/', '?', '#']).unwrap_or(url.len());
    let (authority, tail) = url.split_at(authority_end);
    let mut out = String::with_capacity(url.len());
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            match userinfo.find(':') {
                Some(colon) => {
                    out.push_str(&userinfo[..colon]);
                    out.push_str(":****");
                }
                None => out.push_str(userinfo),
            }
            out.push_str(&authority[at..]);
        }
        None => out.push_str(authority),
    }
    match tail.find('?') {
        Some(q) => {
            out.push_str(&tail[..=q]);
            let (query, fragment) = match tail[q + 1..].find('#') {
                Some(h) => tail[q + 1..].split_at(h),
                None => (&tail[q + 1..], ""),
            };
            for (i, pair) in query.split('&').enumerate() {
                if i > 0 {
                    out.push('&');
                }
                match pair.split_once('=') {
                    Some((name, _)) if is_secret_key(&percent_decode_str(name).decode_utf8_lossy()) => {
                        out.push_str(name);
                        out.push_str("=****");
                    }
                    _ => out.push_str(pair),
                }
            }
            out.push_str(fragment);
        }
        None => out.push_str(tail),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printing_masks_userinfo_and_secret_parameters() {
        let e =
            Endpoint::parse("http://admin:S3cret@ch.internal:8123/?user=admin&password=S3cret&Api%5FKey=k1").unwrap();
        assert_eq!(
            e.to_string(),
            "http://admin:****@ch.internal:8123/?user=admin&password=****&Api%5FKey=****"
        );
        assert_eq!(format!("{e:?}"), format!("Endpoint({e})"));
        assert_eq!(
            mask_urls("error sending to https://u:p@h/x?token=abc&n=1 (retry)"),
            "error sending to https://u:****@h/x?token=****&n=1 (retry)"
        );
        assert_eq!(mask_urls("no url here: a=b"), "no url here: a=b");
        assert_eq!(mask_urls("http://user@h/"), "http://user@h/");
    }

    #[test]
    fn the_operators_query_is_kept_when_a_sink_adds_its_own() {
        let e = Endpoint::parse("http://h:8123/?user=admin&password=pw").unwrap();
        assert_eq!(
            e.request_url("", &[("query", "INSERT INTO `a`.`b` FORMAT JSONEachRow")]),
            "http://h:8123/?user=admin&password=pw&query=INSERT%20INTO%20%60a%60%2E%60b%60%20FORMAT%20JSONEachRow"
        );
        let loki = Endpoint::parse("https://gw.example/loki-prefix/?tenant=x").unwrap();
        assert_eq!(
            loki.request_url("/loki/api/v1/push", &[]),
            "https://gw.example/loki-prefix/loki/api/v1/push?tenant=x"
        );
        let es = Endpoint::parse("http://es:9200").unwrap();
        assert_eq!(es.request_url("_bulk", &[]), "http://es:9200/_bulk");
        assert_eq!(es.request_url("", &[]), "http://es:9200/");
    }

    #[test]
    fn only_http_urls_are_endpoints_and_errors_mask_them() {
        for bad in ["ftp://h/", "localhost:8123", "http://", "http://h/#frag"] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
        let err = Endpoint::parse("htp://admin:S3cret@h/?password=S3cret").unwrap_err();
        assert!(!err.contains("S3cret"), "{err}");
    }
}
