//! Rebuilding a record under the redaction policy from its simd-json tape:
//! unlisted fields dropped (or hashed), objects opened field by field,
//! secret keys masked at any depth, allowed strings through the value
//! detectors. Every edit is recorded as (rule, field) and sets `changed`.

use simd_json::{Node, StaticNode};
use sluice_core::encode::write_json_string;

use crate::policy::{is_protected, is_secret_key, AllowList};
use crate::values::ValueDetectors;

/// What the policy says about one top-level key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyClass {
    pub secret: bool,
    pub allowed: bool,
    pub protected: bool,
    pub opens: bool,
}

/// The classes of the previous record's keys, by position: records of one
/// service repeat their schema, so a key is usually classified by one short
/// comparison instead of an automaton scan and a binary search.
#[derive(Default)]
pub(crate) struct KeyMemo {
    keys: Vec<(Box<str>, KeyClass)>,
    /// Which allow list the classes were made for.
    list: usize,
}

impl KeyMemo {
    /// [`KeyMemo::class`] for a key still in bytes; `None` if it is not
    /// UTF-8 (which a validated record never has).
    pub(crate) fn class_bytes(&mut self, i: usize, key: &[u8], allow: &AllowList) -> Option<KeyClass> {
        if allow as *const AllowList as usize == self.list {
            if let Some((k, c)) = self.keys.get(i) {
                if same_key(k.as_bytes(), key) {
                    return Some(*c);
                }
            }
        }
        Some(self.class(i, std::str::from_utf8(key).ok()?, allow))
    }

    pub(crate) fn class(&mut self, i: usize, key: &str, allow: &AllowList) -> KeyClass {
        let list = allow as *const AllowList as usize;
        if list != self.list {
            self.keys.clear();
            self.list = list;
        }
        if let Some((k, c)) = self.keys.get(i) {
            if &**k == key {
                return *c;
            }
        }
        let c = KeyClass {
            secret: is_secret_key(key),
            allowed: allow.allows(key),
            protected: is_protected(key),
            opens: allow.opens(key),
        };
        if i < 64 {
            if i < self.keys.len() {
                self.keys[i] = (key.into(), c);
            } else if i == self.keys.len() {
                self.keys.push((key.into(), c));
            }
        }
        c
    }
}

/// Byte equality for short keys (and memoized values) without a call to
/// `memcmp`: 8 to 32 bytes are two or four overlapping 8-byte compares,
/// shorter ones a loop.
#[inline]
pub(crate) fn same_key(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let n = a.len();
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().expect("8 bytes"));
    match n {
        0..8 => a.iter().zip(b).all(|(x, y)| x == y),
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        17..=32 => {
            word(a, 0) == word(b, 0)
                && word(a, 8) == word(b, 8)
                && word(a, n - 16) == word(b, n - 16)
                && word(a, n - 8) == word(b, n - 8)
        }
        _ => a == b,
    }
}

pub(crate) struct Walk<'a> {
    pub detectors: &'a ValueDetectors,
    pub allow: &'a AllowList,
    pub hmac: &'a dyn Fn(&[u8]) -> Option<String>,
    pub hits: &'a mut Vec<(String, String)>,
    pub changed: bool,
}

/// Number of tape nodes a value occupies.
fn width(node: &Node<'_>) -> usize {
    match node {
        Node::Object { count, .. } | Node::Array { count, .. } => count + 1,
        _ => 1,
    }
}

/// The `(key, value nodes)` members of the object at `nodes[0]`; a key that
/// is not a string (never produced by simd-json) yields `None` for it.
fn members<'t, 'i>(nodes: &'t [Node<'i>]) -> impl Iterator<Item = Option<(&'i str, &'t [Node<'i>])>> + 't {
    let len = match nodes.first() {
        Some(Node::Object { len, .. }) => *len,
        _ => 0,
    };
    let mut i = 1;
    (0..len).map(move |_| {
        let Node::String(key) = nodes[i] else { return None };
        let value = &nodes[i + 1..];
        i += 1 + width(&value[0]);
        Some((key, value))
    })
}

/// The element nodes of the array at `nodes[0]`.
fn elements<'t, 'i>(nodes: &'t [Node<'i>]) -> impl Iterator<Item = &'t [Node<'i>]> + 't {
    let len = match nodes.first() {
        Some(Node::Array { len, .. }) => *len,
        _ => 0,
    };
    let mut i = 1;
    (0..len).map(move |_| {
        let value = &nodes[i..];
        i += width(&value[0]);
        value
    })
}

fn key_out(key: &str, first: &mut bool, out: &mut Vec<u8>) {
    if !std::mem::take(first) {
        out.push(b',');
    }
    write_json_string(key.as_bytes(), out);
    out.push(b':');
}

/// Write the value at `nodes[0]` unchanged.
fn copy_value(nodes: &[Node<'_>], out: &mut Vec<u8>) {
    match nodes[0] {
        Node::String(s) => write_json_string(s.as_bytes(), out),
        Node::Static(st) => write_static(st, out),
        Node::Object { .. } => {
            out.push(b'{');
            let mut first = true;
            for (key, value) in members(nodes).flatten() {
                key_out(key, &mut first, out);
                copy_value(value, out);
            }
            out.push(b'}');
        }
        Node::Array { .. } => {
            out.push(b'[');
            for (k, value) in elements(nodes).enumerate() {
                if k > 0 {
                    out.push(b',');
                }
                copy_value(value, out);
            }
            out.push(b']');
        }
    }
}

fn write_static(st: StaticNode, out: &mut Vec<u8>) {
    match st {
        StaticNode::I64(n) => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
        StaticNode::U64(n) => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
        StaticNode::F64(f) => out.extend_from_slice(ryu::Buffer::new().format(f).as_bytes()),
        StaticNode::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        StaticNode::Null => out.extend_from_slice(b"null"),
    }
}

impl Walk<'_> {
    /// Whether the record needs any edit: the read-only pass every event
    /// takes, so a clean record costs a walk of its tape and no writes.
    pub fn needs_change(&self, nodes: &[Node<'_>], memo: &mut KeyMemo) -> bool {
        let mut path = String::new();
        for (k, member) in members(nodes).enumerate() {
            let Some((key, value)) = member else { return true };
            let class = memo.class(k, key, self.allow);
            let dirty = if class.secret {
                true
            } else if matches!(value[0], Node::Object { .. }) {
                path.clear();
                path.push_str(key);
                !class.opens || self.object_dirty(&mut path, value)
            } else if class.allowed {
                self.value_dirty(class.protected, value)
            } else {
                true
            };
            if dirty {
                return true;
            }
        }
        false
    }

    /// Whether the object at `path` (which the list opens) needs an edit.
    fn object_dirty(&self, path: &mut String, nodes: &[Node<'_>]) -> bool {
        let parent_len = path.len();
        let dirty = members(nodes).any(|m| {
            let Some((key, value)) = m else { return true };
            if is_secret_key(key) {
                return true;
            }
            path.truncate(parent_len);
            path.push('.');
            path.push_str(key);
            if self.allow.covers(path) {
                self.value_dirty(is_protected(path), value)
            } else if matches!(value[0], Node::Object { .. }) {
                !self.allow.opens(path) || self.object_dirty(path, value)
            } else {
                !self.allow.allows(path) || self.value_dirty(is_protected(path), value)
            }
        });
        path.truncate(parent_len);
        dirty
    }

    fn value_dirty(&self, protected: bool, nodes: &[Node<'_>]) -> bool {
        match nodes[0] {
            Node::String(s) => !protected && self.detectors.redact(s.as_bytes()).is_some(),
            Node::Object { .. } => members(nodes).any(|m| match m {
                Some((key, value)) => is_secret_key(key) || self.value_dirty(false, value),
                None => true,
            }),
            Node::Array { .. } => elements(nodes).any(|v| self.value_dirty(protected, v)),
            Node::Static(_) => false,
        }
    }

    fn hit(&mut self, rule: &str, field: &str) {
        self.hits.push((rule.to_string(), field.to_string()));
        self.changed = true;
    }

    /// The top-level object; `nodes[0]` must be an object.
    pub fn top(&mut self, nodes: &[Node<'_>]) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        if !matches!(nodes.first(), Some(Node::Object { .. })) {
            return out;
        }
        let mut path = String::new();
        self.object_filtered(&mut path, nodes, &mut out);
        out
    }

    fn hashed(&self, value: &[Node<'_>]) -> Option<String> {
        let mut raw = Vec::new();
        match value[0] {
            Node::String(s) => raw.extend_from_slice(s.as_bytes()),
            _ => copy_value(value, &mut raw),
        }
        (self.hmac)(&raw)
    }

    /// The object at `path` (empty: the record itself) member by member:
    /// secret keys masked, what the list allows kept, objects it opens
    /// filtered in turn, the rest removed (or, at the top, hashed).
    fn object_filtered(&mut self, path: &mut String, nodes: &[Node<'_>], out: &mut Vec<u8>) {
        let parent_len = path.len();
        out.push(b'{');
        let mut first = true;
        for (key, value) in members(nodes).flatten() {
            path.truncate(parent_len);
            if parent_len > 0 {
                path.push('.');
            }
            path.push_str(key);
            let is_object = matches!(value[0], Node::Object { .. });
            if is_secret_key(key) {
                key_out(key, &mut first, out);
                out.extend_from_slice(b"\"****\"");
                self.hit("secret_key", path);
            } else if self.allow.covers(path) || (!is_object && self.allow.allows(path)) {
                key_out(key, &mut first, out);
                self.allowed_value(path, value, out);
            } else if is_object && self.allow.opens(path) {
                key_out(key, &mut first, out);
                self.object_filtered(path, value, out);
            } else if let Some(h) = (parent_len == 0).then(|| self.hashed(value)).flatten() {
                key_out(key, &mut first, out);
                write_json_string(h.as_bytes(), out);
                self.hit("unlisted_hashed", path);
            } else {
                self.hit("unlisted", path);
            }
        }
        path.truncate(parent_len);
        out.push(b'}');
    }

    /// A value that passes: strings through the detectors (unless the field
    /// is protected), containers walked for secret keys and strings.
    fn allowed_value(&mut self, field: &str, nodes: &[Node<'_>], out: &mut Vec<u8>) {
        match nodes[0] {
            Node::String(s) if !is_protected(field) => match self.detectors.redact(s.as_bytes()) {
                Some((masked, rules)) => {
                    write_json_string(&masked, out);
                    for r in rules {
                        self.hit(&r, field);
                    }
                }
                None => write_json_string(s.as_bytes(), out),
            },
            Node::Object { .. } => {
                out.push(b'{');
                let mut first = true;
                for (key, value) in members(nodes).flatten() {
                    key_out(key, &mut first, out);
                    let path = format!("{field}.{key}");
                    if is_secret_key(key) {
                        out.extend_from_slice(b"\"****\"");
                        self.hit("secret_key", &path);
                    } else {
                        self.allowed_value(&path, value, out);
                    }
                }
                out.push(b'}');
            }
            Node::Array { .. } => {
                out.push(b'[');
                for (k, value) in elements(nodes).enumerate() {
                    if k > 0 {
                        out.push(b',');
                    }
                    self.allowed_value(field, value, out);
                }
                out.push(b']');
            }
            _ => copy_value(nodes, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::same_key;

    #[test]
    fn short_key_equality() {
        for (a, b) in [
            ("ts", "ts"),
            ("duration_ms", "duration_ms"),
            ("duration_ms", "duration_mx"),
            ("xuration_ms", "duration_ms"),
            ("request_id", "request_ix"),
            ("abcdefghijklmnop", "abcdefghijklmnop"),
            ("abcdefghijklmnop", "abcdefghXjklmnop"),
            ("abcdefghijklmnopq", "abcdefghijklmnopX"),
            ("level", "levels"),
        ] {
            assert_eq!(same_key(a.as_bytes(), b.as_bytes()), a == b, "{a} {b}");
        }
    }
}
