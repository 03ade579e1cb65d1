//! What a plain-text line is to a stack trace: the start of one, a line that
//! continues one (of which languages), a log header that may introduce one,
//! or none of these. All start and continuation patterns of the enabled
//! languages are compiled into two multi-pattern regexes (regex-automata),
//! each matched once, anchored, per line; a first-byte test keeps the
//! common non-trace line from reaching them at all.

use regex_automata::meta::Regex;
use regex_automata::{Anchored, Input, MatchKind, PatternSet};

/// A language a trace can be written in; bit flags so a group can keep
/// several candidates while its first lines are ambiguous.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Langs(pub u8);

impl Langs {
    /// Java and other JVM languages.
    pub const JAVA: Langs = Langs(1);
    /// Python.
    pub const PYTHON: Langs = Langs(2);
    /// Go.
    pub const GO: Langs = Langs(4);
    /// Node.js.
    pub const NODE: Langs = Langs(8);
    /// Ruby.
    pub const RUBY: Langs = Langs(16);
    /// .NET.
    pub const DOTNET: Langs = Langs(32);
    /// The configured custom start/continue patterns.
    pub const CUSTOM: Langs = Langs(64);
    /// No language.
    pub const NONE: Langs = Langs(0);
    /// Every built-in language (`auto`).
    pub const ALL_BUILTIN: Langs = Langs(63);

    /// Whether any language of `other` is in this set.
    pub fn has(self, other: Langs) -> bool {
        self.0 & other.0 != 0
    }

    /// The languages in both sets.
    pub fn and(self, other: Langs) -> Langs {
        Langs(self.0 & other.0)
    }

    /// The languages in either set.
    pub fn or(self, other: Langs) -> Langs {
        Langs(self.0 | other.0)
    }

    /// Whether the set holds no language.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The language names `languages = [...]` accepts.
    pub fn from_name(name: &str) -> Option<Langs> {
        Some(match name {
            "auto" => Langs::ALL_BUILTIN,
            "java" => Langs::JAVA,
            "python" => Langs::PYTHON,
            "go" => Langs::GO,
            "node" => Langs::NODE,
            "ruby" => Langs::RUBY,
            "dotnet" => Langs::DOTNET,
            _ => return None,
        })
    }
}

/// Start patterns: (languages, regex). An exception line is a start for
/// several languages at once until continuation lines tell them apart.
const STARTS: &[(Langs, &str)] = &[
    // Java/JVM exception line (also the first line after a log header).
    (
        Langs(1 | 32),
        r"(?:Exception in thread .+ )?(?:[a-zA-Z_$][\w$]*\.)+(?:[A-Z][\w$]*)?(?:Exception|Error|Throwable)(?::.*)?$",
    ),
    (Langs(1), r"Exception in thread .+"),
    (Langs::PYTHON, r"Traceback \(most recent call last\):$"),
    // An exception group (3.11+), and a SyntaxError raised while compiling
    // the main script, which has no Traceback line.
    (
        Langs::PYTHON,
        r"\s*\+ Exception Group Traceback \(most recent call last\):$",
    ),
    (Langs::PYTHON, r#"  File "[^"]+", line \d+$"#),
    // A group re-raised by `except*` has no frames: it starts inside.
    (Langs::PYTHON, r"  \| [A-Za-z_][\w.]*:.* \(\d+ sub-exceptions?\)$"),
    (
        Langs::GO,
        r"(?:panic: |fatal error: |goroutine \d+ (?:[^\[]* )?\[[^\]]*\]:$)",
    ),
    (
        Langs(8 | 32),
        r"(?:Uncaught )?(?:[A-Z][\w$]*)?(?:Error|Exception)(?: \[[\w]+\])?(?::.*)?$",
    ),
    // util.inspect of an error without frames: `[AggregateError: msg] {`.
    (
        Langs::NODE,
        r"\[(?:[A-Z][\w$]*)?(?:Error|Exception)(?:: [^\]]*)?\](?: \{)?$",
    ),
    // Where an uncaught error was thrown: `/app/x.js:12`, then the source
    // line, a caret line, and the error (see `NODE_LOCATION`).
    (Langs::NODE, NODE_LOCATION),
    (Langs::RUBY, RUBY_EXCEPTION),
    (
        Langs::DOTNET,
        r"Unhandled [eE]xception\. (?:[A-Za-z_][\w]*\.)+[A-Z]\w*(?::.*)?$",
    ),
];

/// Node's uncaught-error location line.
const NODE_LOCATION: &str = r"(?:/|node:|file://|[A-Za-z]:\\)[^\s]*:\d+$";

/// Ruby's exception line: `app.rb:5:in 'divide': divided by 0 (ZeroDivisionError)`.
const RUBY_EXCEPTION: &str = r"\S+:\d+:in [`'][^']*': .* \([A-Z][\w:]*\)$";

/// Continuation patterns: (languages, regex).
const CONTINUES: &[(Langs, &str)] = &[
    (Langs::JAVA, r"\s+at [\w$.<>/\-]+\(.*\)$"),
    (Langs::JAVA, r"\s*\.\.\. \d+ (?:more|common frames omitted)$"),
    (Langs::JAVA, r"Caused by: .+"),
    (Langs::JAVA, r"\s+Suppressed: .+"),
    (Langs::PYTHON, r"  File .+, line \d+.*"),
    (Langs::PYTHON, r"    .*"),
    (
        Langs::PYTHON,
        r"During handling of the above exception, another exception occurred:$",
    ),
    (
        Langs::PYTHON,
        r"The above exception was the direct cause of the following exception:$",
    ),
    (Langs::PYTHON, r"Traceback \(most recent call last\):$"),
    (Langs::PYTHON, r"\s*[~^]+\s*$"),
    (Langs::PYTHON, r"\s*\[Previous line repeated \d+ more times?\]$"),
    // Exception groups: `  | ` prefixed tracebacks, `+-+---- 1 ----`
    // separators, nested group headers.
    (
        Langs::PYTHON,
        r"\s*\+ Exception Group Traceback \(most recent call last\):$",
    ),
    (Langs::PYTHON, r"\s*\|(?: .*)?$"),
    (Langs::PYTHON, r"\s*\+[-+][-+ \w.]*$"),
    (Langs::GO, r"\[signal .+\]$"),
    (Langs::GO, r"goroutine \d+ (?:[^\[]* )?\[[^\]]*\]:$"),
    (Langs::GO, r"\tpanic: .+"),
    (Langs::GO, r"\.\.\.(?:additional|\d+) frames elided\.\.\.$"),
    // A fatal error's dump of a goroutine running on another thread
    // (`concurrent map writes` prints it now and then).
    (Langs::GO, r"\tgoroutine running on other thread; stack unavailable$"),
    (Langs::GO, r"\t.+:\d+(?: \+0x[0-9a-f]+)?$"),
    (Langs::GO, r"[\w./*()\-]+\(.*\)$"),
    (Langs::GO, r"created by .+"),
    (Langs::GO, r"exit status \d+$"),
    (Langs::NODE, r"\s+at .+"),
    (Langs::NODE, r"\s*\[\w+\]: .+"),
    (Langs::NODE, r"\s+\.\.\. \d+ lines matching cause stack trace \.\.\.$"),
    (Langs::NODE, r"\s+(?:code|errno|syscall|path|cause|\w+): .+"),
    (Langs::NODE, r"\s*[\[\]{}],?$"),
    (Langs::NODE, r"\s+\[?(?:[A-Z][\w$]*)?(?:Error|Exception)(?::.*)?$"),
    (Langs::NODE, r"Node\.js v\d+\.\d+\.\d+$"),
    (Langs::NODE, r"\(Use `node --trace-.+\)$"),
    (Langs::RUBY, r"\s+from \S+:\d+:in .+"),
    // Ruby prints an exception's cause as another exception line.
    (Langs::RUBY, RUBY_EXCEPTION),
    (Langs::DOTNET, r"\s+at .+"),
    (Langs::DOTNET, r"\s*--- End of inner exception stack trace ---$"),
    (Langs::DOTNET, r"\s*--- End of stack trace from previous location.*---$"),
    (Langs::DOTNET, r" ---> .+"),
];

/// Python's final exception line: it belongs to the trace, and after it only
/// a chaining sentence continues it.
const PYTHON_EXCEPTION: &str =
    r"[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning|Iteration|Timeout\w*)?(?:: .*)?$";

/// A line of carets under the source line Node quotes where an error was
/// thrown.
pub fn is_caret_line(line: &[u8]) -> bool {
    let t = line.trim_ascii();
    !t.is_empty() && t.iter().all(|&b| b == b'^')
}

/// What a line is to the stream's current group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Starts a trace, in these candidate languages.
    Start(Langs),
    /// Continues a trace of these languages.
    Continue(Langs),
    /// A log header that may introduce a trace on the next line.
    Header,
    /// None of the above.
    Plain,
}

/// The compiled detectors. See the module docs.
pub struct Detector {
    enabled: Langs,
    starts: Regex,
    start_langs: Vec<Langs>,
    continues: Regex,
    continue_langs: Vec<Langs>,
    python_exception: Regex,
    node_location: Regex,
    start_set: PatternSet,
    continue_set: PatternSet,
    headers: memchr::memmem::Finder<'static>,
    header_words: [memchr::memmem::Finder<'static>; 4],
}

/// A custom pattern failed to compile.
#[derive(Debug, thiserror::Error)]
#[error("invalid multiline pattern `{pattern}`: {message}")]
pub struct PatternError {
    /// The pattern.
    pub pattern: String,
    /// Why.
    pub message: String,
}

fn compile(patterns: &[&str]) -> Result<Regex, PatternError> {
    // `All`: every pattern that matches is reported, not just the first.
    Regex::builder()
        .configure(Regex::config().match_kind(MatchKind::All))
        .build_many(patterns)
        .map_err(|e| PatternError {
            pattern: patterns.join(" | "),
            message: e.to_string(),
        })
}

impl Detector {
    /// Detectors for `enabled` built-in languages plus optional custom
    /// start/continue regexes.
    pub fn new(
        enabled: Langs,
        custom_start: Option<&str>,
        custom_continue: Option<&str>,
    ) -> Result<Detector, PatternError> {
        let mut starts: Vec<(Langs, &str)> = STARTS
            .iter()
            .filter(|(l, _)| l.has(enabled))
            .map(|(l, p)| (l.and(enabled), *p))
            .collect();
        let mut continues: Vec<(Langs, &str)> = CONTINUES
            .iter()
            .filter(|(l, _)| l.has(enabled))
            .map(|(l, p)| (l.and(enabled), *p))
            .collect();
        let mut enabled = enabled;
        if let Some(p) = custom_start {
            starts.push((Langs::CUSTOM, p));
            enabled = enabled.or(Langs::CUSTOM);
        }
        if let Some(p) = custom_continue {
            continues.push((Langs::CUSTOM, p));
        }
        for (_, p) in starts.iter().chain(&continues) {
            // Validate one by one so an error names the pattern at fault.
            compile(&[p])?;
        }
        // An empty set must still compile: a pattern that cannot match.
        let never = r"[^\s\S]";
        let start_patterns: Vec<&str> = if starts.is_empty() {
            vec![never]
        } else {
            starts.iter().map(|(_, p)| *p).collect()
        };
        let continue_patterns: Vec<&str> = if continues.is_empty() {
            vec![never]
        } else {
            continues.iter().map(|(_, p)| *p).collect()
        };
        let starts_re = compile(&start_patterns)?;
        let continues_re = compile(&continue_patterns)?;
        Ok(Detector {
            enabled,
            start_set: PatternSet::new(starts_re.pattern_len()),
            continue_set: PatternSet::new(continues_re.pattern_len()),
            starts: starts_re,
            start_langs: starts.iter().map(|(l, _)| *l).collect(),
            continues: continues_re,
            continue_langs: continues.iter().map(|(l, _)| *l).collect(),
            python_exception: compile(&[PYTHON_EXCEPTION])?,
            node_location: compile(&[NODE_LOCATION])?,
            headers: memchr::memmem::Finder::new("ERROR").into_owned(),
            header_words: [
                memchr::memmem::Finder::new("FATAL").into_owned(),
                memchr::memmem::Finder::new("SEVERE").into_owned(),
                memchr::memmem::Finder::new("CRITICAL").into_owned(),
                memchr::memmem::Finder::new("error:").into_owned(),
            ],
        })
    }

    fn matching(&mut self, line: &[u8], which: bool) -> Langs {
        let (re, set, langs) = if which {
            (&self.starts, &mut self.start_set, &self.start_langs)
        } else {
            (&self.continues, &mut self.continue_set, &self.continue_langs)
        };
        set.clear();
        let input = Input::new(line).anchored(Anchored::Yes);
        re.which_overlapping_matches(&input, set);
        let mut out = Langs::NONE;
        for id in set.iter() {
            if let Some(l) = langs.get(id.as_usize()) {
                out = out.or(*l);
            }
        }
        out
    }

    /// Whether `line` is Python's final exception line.
    pub fn is_python_exception(&self, line: &[u8]) -> bool {
        let input = Input::new(line).anchored(Anchored::Yes);
        !line.is_empty() && !line[0].is_ascii_whitespace() && self.python_exception.is_match(input)
    }

    /// Whether `line` is where Node says an uncaught error was thrown.
    pub fn is_node_location(&self, line: &[u8]) -> bool {
        self.enabled.has(Langs::NODE) && self.node_location.is_match(Input::new(line).anchored(Anchored::Yes))
    }

    /// Classify `line` for a stream whose open group (if any) is in `group`
    /// languages.
    pub fn classify(&mut self, line: &[u8], group: Option<Langs>) -> Class {
        let Some(&first) = line.first() else {
            return Class::Plain;
        };
        if let Some(g) = group {
            // Most continuation lines start with whitespace or a keyword;
            // test them before starts so `Caused by:` never opens a group.
            let c = self.matching(line, false).and(g);
            if !c.is_empty() {
                return Class::Continue(c);
            }
            if g.has(Langs::PYTHON) && self.is_python_exception(line) {
                return Class::Continue(Langs::PYTHON);
            }
        }
        // Starts begin with a letter, a digit (Ruby's `file:line`), a path,
        // `[` (an error util.inspect printed without frames) or spaces
        // (Python's exception groups and SyntaxError).
        let may_start = match first {
            b'/' | b'.' | b'_' => true,
            b'[' => line.get(1).is_some_and(u8::is_ascii_uppercase),
            // Only Python's shapes start indented: `  File "...", line N`,
            // `  + Exception Group Traceback`, `  | Group: ... (N sub-exceptions)`.
            b' ' => {
                let t = line.trim_ascii_start();
                t.starts_with(b"File \"") || t.starts_with(b"+ Exception Group") || t.starts_with(b"| ")
            }
            _ => first.is_ascii_alphanumeric(),
        };
        if may_start {
            let s = self.matching(line, true);
            if !s.is_empty() {
                return Class::Start(s);
            }
        }
        if self.enabled.and(Langs::ALL_BUILTIN).is_empty() {
            return Class::Plain;
        }
        if self.headers.find(line).is_some() || self.header_words.iter().any(|f| f.find(line).is_some()) {
            return Class::Header;
        }
        Class::Plain
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auto() -> Detector {
        Detector::new(Langs::ALL_BUILTIN, None, None).unwrap()
    }

    #[test]
    fn starts() {
        let mut d = auto();
        let start = |d: &mut Detector, l: &str| match d.classify(l.as_bytes(), None) {
            Class::Start(langs) => langs,
            other => panic!("{l:?} classified {other:?}"),
        };
        assert!(start(&mut d, "java.lang.IllegalStateException: bad").has(Langs::JAVA));
        assert!(start(&mut d, "Exception in thread \"main\" java.lang.RuntimeException: boom").has(Langs::JAVA));
        assert_eq!(start(&mut d, "Traceback (most recent call last):"), Langs::PYTHON);
        assert_eq!(
            start(&mut d, "panic: runtime error: index out of range [3] with length 3"),
            Langs::GO
        );
        assert_eq!(start(&mut d, "goroutine 1 [running]:"), Langs::GO);
        assert!(start(&mut d, "TypeError: Cannot read properties of undefined (reading 'id')").has(Langs::NODE));
        assert!(start(&mut d, "Error: connect ECONNREFUSED 127.0.0.1:5432").has(Langs::NODE));
        assert_eq!(
            start(&mut d, "app.rb:5:in 'divide': divided by 0 (ZeroDivisionError)"),
            Langs::RUBY
        );
        assert_eq!(
            start(&mut d, "Unhandled exception. System.InvalidOperationException: nope"),
            Langs::DOTNET
        );
        assert!(start(&mut d, "System.NullReferenceException: Object reference not set").has(Langs::DOTNET));
    }

    #[test]
    fn continuations_need_an_open_group_of_their_language() {
        let mut d = auto();
        assert_eq!(d.classify(b"\tat com.example.A.run(A.java:10)", None), Class::Plain);
        assert_eq!(
            d.classify(b"\tat com.example.A.run(A.java:10)", Some(Langs::JAVA)),
            Class::Continue(Langs::JAVA)
        );
        assert_eq!(
            d.classify(b"Caused by: java.io.IOException: x", Some(Langs::JAVA)),
            Class::Continue(Langs::JAVA)
        );
        assert_eq!(
            d.classify(b"\t... 12 more", Some(Langs::JAVA)),
            Class::Continue(Langs::JAVA)
        );
        assert_eq!(
            d.classify(b"  File \"/app/x.py\", line 3, in <module>", Some(Langs::PYTHON)),
            Class::Continue(Langs::PYTHON)
        );
        assert_eq!(
            d.classify(b"ValueError: bad value", Some(Langs::PYTHON)),
            Class::Continue(Langs::PYTHON)
        );
        assert_eq!(
            d.classify(
                b"\tgoroutine running on other thread; stack unavailable",
                Some(Langs::GO)
            ),
            Class::Continue(Langs::GO)
        );
        assert_eq!(
            d.classify(b"   at Program.Main() in /src/Program.cs:line 12", Some(Langs::DOTNET)),
            Class::Continue(Langs::DOTNET)
        );
        assert_eq!(
            d.classify(b"\tfrom app.rb:9:in '<main>'", Some(Langs::RUBY)),
            Class::Continue(Langs::RUBY)
        );
        assert_eq!(d.classify(b"main.main()", Some(Langs::GO)), Class::Continue(Langs::GO));
        assert_eq!(
            d.classify(b"\t/src/main.go:12 +0x1d", Some(Langs::GO)),
            Class::Continue(Langs::GO)
        );
    }

    #[test]
    fn headers_and_plain_lines() {
        let mut d = auto();
        assert_eq!(
            d.classify(b"2026-11-25 01:02:03.004 ERROR [main] c.e.Svc - Failed", None),
            Class::Header
        );
        assert_eq!(
            d.classify(b"[2026-11-25T01:02:03.004Z] error: delivery failed", None),
            Class::Header
        );
        assert_eq!(
            d.classify(b"2026-11-25 01:02:03 INFO started in 3 ms", None),
            Class::Plain
        );
        assert_eq!(d.classify(b"GET /healthz 200", None), Class::Plain);
    }

    #[test]
    fn a_single_language_ignores_the_others() {
        let mut d = Detector::new(Langs::PYTHON, None, None).unwrap();
        assert_eq!(d.classify(b"java.lang.IllegalStateException: bad", None), Class::Plain);
    }

    #[test]
    fn custom_rules() {
        let mut d = Detector::new(Langs::NONE, Some(r"BEGIN \d+"), Some(r"\| .*")).unwrap();
        assert_eq!(d.classify(b"BEGIN 42", None), Class::Start(Langs::CUSTOM));
        assert_eq!(
            d.classify(b"| detail", Some(Langs::CUSTOM)),
            Class::Continue(Langs::CUSTOM)
        );
        assert_eq!(d.classify(b"ERROR plain", None), Class::Plain);
        let err = Detector::new(Langs::NONE, Some("(unclosed"), None).err().unwrap();
        assert!(
            err.to_string().starts_with("invalid multiline pattern `(unclosed`"),
            "{err}"
        );
    }
}
