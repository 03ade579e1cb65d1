//! Kubernetes metadata from a log file's path, derived once per file (never
//! per event) and attached to its events as a pre-serialized origin.
//!
//! * `/var/log/pods/<namespace>_<pod>_<uid>/<container>/<n>.log[.<suffix>]`
//! * `/var/log/containers/<pod>_<namespace>_<container>-<id>.log`

use std::path::Path;
use std::sync::Arc;

use sluice_core::encode::write_json_string;
use sluice_core::Origin;

use crate::decode::Stream;

/// What a path says about the container that wrote it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathMeta {
    /// Kubernetes namespace.
    pub namespace: Option<String>,
    /// Pod name.
    pub pod: Option<String>,
    /// Pod UID (only in `/var/log/pods` paths).
    pub pod_uid: Option<String>,
    /// Container name.
    pub container: Option<String>,
}

impl PathMeta {
    /// Read the metadata off a path; empty for paths outside both layouts.
    pub fn from_path(path: &Path) -> PathMeta {
        let parts: Vec<&str> = path.iter().filter_map(|p| p.to_str()).collect();
        // .../pods/<ns>_<pod>_<uid>/<container>/<file>
        if parts.len() >= 4 && parts[parts.len() - 4] == "pods" {
            let dir = parts[parts.len() - 3];
            let mut it = dir.splitn(3, '_');
            if let (Some(ns), Some(pod), Some(uid)) = (it.next(), it.next(), it.next()) {
                return PathMeta {
                    namespace: Some(ns.into()),
                    pod: Some(pod.into()),
                    pod_uid: Some(uid.into()),
                    container: Some(parts[parts.len() - 2].into()),
                };
            }
        }
        // .../containers/<pod>_<ns>_<container>-<64 hex id>.log
        if parts.len() >= 2 && parts[parts.len() - 2] == "containers" {
            let name = parts[parts.len() - 1].trim_end_matches(".log");
            let mut it = name.splitn(3, '_');
            if let (Some(pod), Some(ns), Some(rest)) = (it.next(), it.next(), it.next()) {
                if let Some((container, id)) = rest.rsplit_once('-') {
                    if id.len() >= 12 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return PathMeta {
                            namespace: Some(ns.into()),
                            pod: Some(pod.into()),
                            pod_uid: None,
                            container: Some(container.into()),
                        };
                    }
                }
            }
        }
        PathMeta::default()
    }

    /// `namespace/pod/container`, what `service_map` globs match against.
    pub fn service_key(&self) -> String {
        format!(
            "{}/{}/{}",
            self.namespace.as_deref().unwrap_or(""),
            self.pod.as_deref().unwrap_or(""),
            self.container.as_deref().unwrap_or("")
        )
    }

    /// The origin events of `stream` from `path` carry.
    pub fn origin(&self, path: &Path, stream: Stream, stream_key: u64, service: Option<&str>) -> Arc<Origin> {
        let path = path.to_string_lossy();
        // In the order of `added_fields::ORIGIN`, which names them.
        let values = [
            self.namespace.as_deref(),
            self.pod.as_deref(),
            self.pod_uid.as_deref(),
            self.container.as_deref(),
            Some(stream.name()),
            Some(&*path),
        ];
        let mut json = Vec::new();
        for (key, value) in sluice_core::added_fields::ORIGIN.into_iter().zip(values) {
            let Some(value) = value else { continue };
            if !json.is_empty() {
                json.push(b',');
            }
            json.push(b'"');
            json.extend_from_slice(key.as_bytes());
            json.extend_from_slice(b"\":");
            write_json_string(value.as_bytes(), &mut json);
        }
        let inner = String::from_utf8(json).expect("JSON built from str is UTF-8");
        Arc::new(Origin {
            stream_key,
            fields_json: inner.into(),
            default_service: service.map(Into::into),
            namespace: self.namespace.as_deref().map(Into::into),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_layout() {
        let m = PathMeta::from_path(Path::new(
            "/var/log/pods/payments_api-7d9f_0a1b2c3d-1111-2222-3333-444455556666/api/0.log.20261125-010203",
        ));
        assert_eq!(m.namespace.as_deref(), Some("payments"));
        assert_eq!(m.pod.as_deref(), Some("api-7d9f"));
        assert_eq!(m.pod_uid.as_deref(), Some("0a1b2c3d-1111-2222-3333-444455556666"));
        assert_eq!(m.container.as_deref(), Some("api"));
        assert_eq!(m.service_key(), "payments/api-7d9f/api");
    }

    #[test]
    fn containers_layout() {
        let m = PathMeta::from_path(Path::new(
            "/var/log/containers/web-1_shop_nginx-0123456789abcdef0123456789abcdef.log",
        ));
        assert_eq!(
            m,
            PathMeta {
                namespace: Some("shop".into()),
                pod: Some("web-1".into()),
                pod_uid: None,
                container: Some("nginx".into()),
            }
        );
    }

    #[test]
    fn other_paths_have_no_metadata() {
        assert_eq!(PathMeta::from_path(Path::new("/var/log/syslog")), PathMeta::default());
    }

    #[test]
    fn origin_is_serialized_once_with_escaping() {
        let m = PathMeta::from_path(Path::new("/var/log/pods/ns_p_u/c/0.log"));
        let o = m.origin(
            Path::new("/var/log/pods/ns_p_u/c/0.log"),
            Stream::Stderr,
            7,
            Some("svc"),
        );
        assert_eq!(
            &*o.fields_json,
            r#""namespace":"ns","pod":"p","pod_uid":"u","container":"c","stream":"stderr","file":"/var/log/pods/ns_p_u/c/0.log""#
        );
        assert_eq!(o.default_service.as_deref(), Some("svc"));
        assert_eq!(o.namespace.as_deref(), Some("ns"));
        let q = PathMeta::default().origin(Path::new("/tmp/we\"ird.log"), Stream::Stdout, 1, None);
        assert_eq!(&*q.fields_json, r#""stream":"stdout","file":"/tmp/we\"ird.log""#);
    }
}
