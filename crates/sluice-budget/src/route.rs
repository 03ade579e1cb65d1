//! Route templates: the `route` label of an event that has none of its own,
//! from its `path` with every id-like segment replaced by `{id}`, so a
//! label or a ledger key never carries an id (an unbounded set).

use sluice_core::{Batch, Event, Field};

/// The route template of an event: its `route`, else its `path` with ids
/// replaced by `{id}` (never an id as a label). A templated path is written
/// into `scratch`, which is reused so no event allocates.
#[inline]
pub fn route_key<'a>(batch: &'a Batch, e: &Event, scratch: &'a mut String) -> Option<&'a [u8]> {
    if let Some(r) = batch.str_field(e, Field::Route) {
        return Some(r);
    }
    path_template(batch, e, scratch)
}

#[inline(never)]
fn path_template<'a>(batch: &'a Batch, e: &Event, scratch: &'a mut String) -> Option<&'a [u8]> {
    let p = batch.str_field(e, Field::Path)?;
    scratch.clear();
    write_route_template(&String::from_utf8_lossy(p), scratch);
    Some(scratch.as_bytes())
}

/// `/v1/users/123/orders/9?x=1` → `/v1/users/{id}/orders/{id}`.
pub fn route_template(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    write_route_template(path, &mut out);
    out
}

fn write_route_template(path: &str, out: &mut String) {
    let path = path.split(['?', '#']).next().unwrap_or("");
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        let id_like = !seg.is_empty()
            && (seg.bytes().all(|b| b.is_ascii_digit())
                || (seg.len() >= 16 && seg.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'))
                || seg.contains('@')
                || (seg.len() >= 8
                    && seg.bytes().any(|b| b.is_ascii_digit())
                    && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                    && seg.bytes().filter(|b| b.is_ascii_digit()).count() * 2 >= seg.len()));
        out.push_str(if id_like { "{id}" } else { seg });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_never_keep_ids() {
        assert_eq!(route_template("/v1/users/123/orders/9"), "/v1/users/{id}/orders/{id}");
        assert_eq!(route_template("/v1/items/4bf92f3577b34da6?x=1"), "/v1/items/{id}");
        assert_eq!(route_template("/v1/users/kim@example.com"), "/v1/users/{id}");
        assert_eq!(route_template("/healthz"), "/healthz");
        assert_eq!(route_template("/v1/orders/ord-20261125-0042"), "/v1/orders/{id}");
    }
}
