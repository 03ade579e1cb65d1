//! Reading a stitched trace: the exception's type and message, and the
//! timestamp and level of the log header that introduced it.

use crate::detect::Langs;

/// What a trace says about itself.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TraceInfo {
    /// Exception type (`java.lang.IllegalStateException`, `ValueError`, `panic`).
    pub error_type: Option<String>,
    /// Exception message.
    pub error_message: Option<String>,
    /// The header line's timestamp.
    pub ts: Option<String>,
    /// The header line's level.
    pub level: Option<String>,
}

const LEVELS: [&str; 10] = [
    "TRACE", "DEBUG", "INFO", "WARN", "WARNING", "ERROR", "FATAL", "CRITICAL", "SEVERE", "PANIC",
];

/// Describe a trace from its lines; `header` says the first line is a log
/// header rather than part of the trace.
pub fn describe(lines: &[&str], langs: Langs, header: bool) -> TraceInfo {
    let mut info = TraceInfo::default();
    let mut body = lines;
    if header {
        if let Some(h) = lines.first() {
            info.ts = header_ts(h);
            info.level = header_level(h);
        }
        body = &lines[1.min(lines.len())..];
    }
    let Some(mut first) = body.first().copied() else {
        return info;
    };
    // Node's uncaught error: location, source line, carets, then the error.
    if langs.has(Langs::NODE)
        && body.len() > 3
        && crate::detect::is_caret_line(body[2].as_bytes())
        && !first.contains(' ')
    {
        if let Some(l) = body[3..].iter().find(|l| !l.is_empty()) {
            first = l;
        }
    }
    let python_start = ["Traceback", "+ Exception Group Traceback", "File \"", "| "]
        .iter()
        .any(|p| first.trim_start().starts_with(p));
    let (t, m) = if langs.has(Langs::PYTHON) && python_start {
        // The exception that escaped: the last unindented line, or the last
        // line of a top-level exception group (`  | Type: message`).
        body.iter()
            .rev()
            .filter_map(|l| match l.strip_prefix("  | ") {
                Some(inner) if !inner.starts_with(' ') => Some(inner),
                Some(_) => None,
                None if !l.starts_with(char::is_whitespace) && !l.is_empty() => Some(l),
                None => None,
            })
            .find(|l| {
                !l.starts_with("Traceback")
                    && !l.starts_with("Exception Group Traceback")
                    && !l.starts_with("During handling")
                    && !l.starts_with("The above exception")
            })
            .map_or((None, None), split_type)
    } else if langs.has(Langs::GO) && (first.starts_with("panic: ") || first.starts_with("fatal error: ")) {
        let (kind, rest) = first.split_once(": ").unwrap_or((first, ""));
        // A panic re-raised after a recover says so after its message.
        let rest = rest.find(" [recovered").map_or(rest, |at| &rest[..at]);
        match rest.strip_prefix("runtime error: ") {
            Some(msg) => (Some("runtime error".to_string()), Some(msg.to_string())),
            None => (Some(kind.to_string()), Some(rest.to_string())),
        }
    } else if langs.has(Langs::GO) && first.starts_with("goroutine ") {
        (Some("goroutine dump".to_string()), None)
    } else if langs.has(Langs::RUBY) && first.ends_with(')') && first.contains(":in ") {
        ruby(first)
    } else {
        let l = first
            .strip_prefix("Unhandled exception. ")
            .or_else(|| first.strip_prefix("Unhandled Exception: "))
            .or_else(|| first.strip_prefix("Uncaught "))
            .unwrap_or(first);
        // util.inspect of an error without frames: `[AggregateError: msg] {`.
        let l = match l.strip_prefix('[') {
            Some(inner) => inner.trim_end_matches(" {").trim_end_matches(']'),
            None => l,
        };
        let l = match l.strip_prefix("Exception in thread \"") {
            Some(rest) => rest.split_once("\" ").map_or(rest, |(_, e)| e),
            None => l,
        };
        split_type(l)
    };
    info.error_type = t;
    info.error_message = m.filter(|m| !m.is_empty());
    info
}

/// `Type: message` → (Type, message); `Type` alone → (Type, None).
fn split_type(line: &str) -> (Option<String>, Option<String>) {
    let line = line.trim();
    match line.split_once(':') {
        Some((t, m)) if !t.contains(' ') || t.ends_with(']') => (Some(t.to_string()), Some(m.trim().to_string())),
        Some(_) => (None, Some(line.to_string())),
        None if !line.contains(' ') => (Some(line.to_string()), None),
        None => (None, Some(line.to_string())),
    }
}

/// `app.rb:5:in 'divide': divided by 0 (ZeroDivisionError)`.
fn ruby(line: &str) -> (Option<String>, Option<String>) {
    let Some(open) = line.rfind(" (") else {
        return (None, None);
    };
    let t = &line[open + 2..line.len() - 1];
    let before = &line[..open];
    let msg = before.split_once("': ").map_or("", |(_, m)| m);
    (Some(t.to_string()), Some(msg.to_string()))
}

/// A leading `2026-11-25 01:02:03.004`, `2026-11-25T01:02:03Z`,
/// `2026/11/25 01:02:03` or `[2026-11-25T01:02:03.004Z]`.
fn header_ts(line: &str) -> Option<String> {
    let l = line.strip_prefix('[').unwrap_or(line);
    let b = l.as_bytes();
    let date_ok = b.len() >= 19
        && b[..4].iter().all(u8::is_ascii_digit)
        && matches!(b[4], b'-' | b'/')
        && b[5..7].iter().all(u8::is_ascii_digit)
        && matches!(b[10], b' ' | b'T')
        && b[11..13].iter().all(u8::is_ascii_digit)
        && b[13] == b':';
    if !date_ok {
        return None;
    }
    let end = b
        .iter()
        .enumerate()
        .skip(19)
        .find(|(_, c)| !(c.is_ascii_digit() || matches!(c, b'.' | b',' | b'Z' | b'+' | b'-' | b':')))
        .map_or(b.len(), |(i, _)| i);
    Some(l[..end].to_string())
}

fn header_level(line: &str) -> Option<String> {
    line.split(|c: char| !c.is_ascii_alphabetic()).find_map(|w| {
        LEVELS
            .iter()
            .find(|l| l.eq_ignore_ascii_case(w) && (w == **l || w.len() > 4))
            .map(|l| l.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(
        lines: &[&str],
        langs: Langs,
        header: bool,
    ) -> (Option<String>, Option<String>, Option<String>, Option<String>) {
        let i = describe(lines, langs, header);
        (i.error_type, i.error_message, i.ts, i.level)
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    #[test]
    fn java_with_header() {
        let lines = [
            "2026-11-25 01:02:03.004 ERROR [main] c.e.Svc - Failed to bill",
            "java.lang.IllegalStateException: total mismatch",
            "\tat c.e.Svc.bill(Svc.java:10)",
            "Caused by: java.io.IOException: disk",
        ];
        assert_eq!(
            info(&lines, Langs::JAVA, true),
            (
                s("java.lang.IllegalStateException"),
                s("total mismatch"),
                s("2026-11-25 01:02:03.004"),
                s("ERROR")
            )
        );
        assert_eq!(
            info(
                &[
                    "Exception in thread \"main\" java.lang.RuntimeException: boom",
                    "\tat A.main(A.java:3)"
                ],
                Langs::JAVA,
                false
            )
            .0,
            s("java.lang.RuntimeException")
        );
    }

    #[test]
    fn python_takes_the_last_exception() {
        let lines = [
            "Traceback (most recent call last):",
            "  File \"a.py\", line 2, in <module>",
            "    x()",
            "KeyError: 'k'",
            "During handling of the above exception, another exception occurred:",
            "Traceback (most recent call last):",
            "  File \"a.py\", line 4, in <module>",
            "    raise ValueError(\"bad\")",
            "ValueError: bad",
        ];
        assert_eq!(
            info(&lines, Langs::PYTHON, false),
            (s("ValueError"), s("bad"), None, None)
        );
    }

    #[test]
    fn go_node_ruby_dotnet() {
        assert_eq!(
            info(
                &[
                    "panic: runtime error: index out of range [3] with length 3",
                    "",
                    "goroutine 1 [running]:"
                ],
                Langs::GO,
                false
            )
            .0,
            s("runtime error")
        );
        assert_eq!(
            info(&["panic: boom", "goroutine 1 [running]:"], Langs::GO, false).1,
            s("boom")
        );
        assert_eq!(
            info(
                &[
                    "[2026-11-25T01:02:03.004Z] error: failed",
                    "TypeError: Cannot read x",
                    "    at f (a.js:1:2)"
                ],
                Langs::NODE,
                true
            ),
            (
                s("TypeError"),
                s("Cannot read x"),
                s("2026-11-25T01:02:03.004Z"),
                s("ERROR")
            )
        );
        assert_eq!(
            info(
                &[
                    "app.rb:5:in 'divide': divided by 0 (ZeroDivisionError)",
                    "\tfrom app.rb:9:in '<main>'"
                ],
                Langs::RUBY,
                false
            ),
            (s("ZeroDivisionError"), s("divided by 0"), None, None)
        );
        assert_eq!(
            info(
                &[
                    "Unhandled exception. System.InvalidOperationException: nope",
                    "   at P.Main() in /p.cs:line 3"
                ],
                Langs::DOTNET,
                false
            )
            .0,
            s("System.InvalidOperationException")
        );
    }
}
