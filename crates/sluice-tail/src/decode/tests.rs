use super::*;

fn text(d: &Decoded<'_>) -> String {
    String::from_utf8(d.content.to_vec()).unwrap()
}

#[test]
fn cri_full_lines_pass_without_copy() {
    let mut d = FileDecoder::new(FileFormat::Auto, 1024);
    let line = b"2026-11-25T01:02:03.123456789Z stdout F {\"level\":\"info\"}";
    let out = d.decode(line, 0).unwrap();
    assert_eq!(d.format(), FileFormat::Cri);
    assert_eq!(text(&out), "{\"level\":\"info\"}");
    assert!(matches!(out.content, Cow::Borrowed(_)));
    assert_eq!(out.stream, Stream::Stdout);
    assert_eq!(out.runtime_ts.as_deref(), Some(&b"2026-11-25T01:02:03.123456789Z"[..]));
}

#[test]
fn cri_partials_join_per_stream_even_when_interleaved() {
    let mut d = FileDecoder::new(FileFormat::Cri, 1024);
    let ts = "2026-11-25T01:02:03.000000001Z";
    let lines: Vec<String> = [
        "stdout P out-a ",
        "stderr P err-a ",
        "stdout P out-b ",
        "stderr F err-b",
        "stdout F out-c",
    ]
    .iter()
    .map(|l| format!("{ts} {l}"))
    .collect();
    assert_eq!(d.decode(lines[0].as_bytes(), 0), None);
    assert_eq!(d.oldest_pending(), Some(0));
    assert_eq!(d.decode(lines[1].as_bytes(), 50), None);
    assert_eq!(d.decode(lines[2].as_bytes(), 100), None);
    let e = d.decode(lines[3].as_bytes(), 150).unwrap();
    assert_eq!((text(&e), e.stream), ("err-a err-b".to_string(), Stream::Stderr));
    assert_eq!(d.oldest_pending(), Some(0));
    let o = d.decode(lines[4].as_bytes(), 200).unwrap();
    assert_eq!(
        (text(&o), o.stream, o.truncated),
        ("out-a out-b out-c".to_string(), Stream::Stdout, false)
    );
    assert_eq!(d.oldest_pending(), None);
}

#[test]
fn joined_lines_are_capped_and_marked() {
    let mut d = FileDecoder::new(FileFormat::Cri, 8);
    let ts = "2026-11-25T01:02:03.000000001Z";
    let (a, b, c) = (
        format!("{ts} stdout P 123456"),
        format!("{ts} stdout F 789abc"),
        format!("{ts} stdout F 0123456789"),
    );
    assert_eq!(d.decode(a.as_bytes(), 0), None);
    let e = d.decode(b.as_bytes(), 40).unwrap();
    assert_eq!(text(&e), "12345678");
    assert!(e.truncated);
    let long = d.decode(c.as_bytes(), 80).unwrap();
    assert_eq!((text(&long), long.truncated), ("01234567".to_string(), true));
}

#[test]
fn malformed_cri_lines_are_kept_raw() {
    let mut d = FileDecoder::new(FileFormat::Cri, 1024);
    for bad in [
        &b"2026-11-25T01:02:03Z stdout"[..],
        b"2026-11-25T01:02:03Z stdlog F x",
        b"not cri at all",
        b"2026-11-25T01:02:03.1Z stdout X y",
    ] {
        let e = d.decode(bad, 0).unwrap();
        assert!(e.malformed, "{}", String::from_utf8_lossy(bad));
        assert_eq!(&e.content[..], bad);
    }
    let empty = d.decode(b"2026-11-25T01:02:03.000000001Z stdout F", 0).unwrap();
    assert_eq!((text(&empty), empty.malformed), (String::new(), false));
}

#[test]
fn docker_pieces_join_and_unescape() {
    let mut d = FileDecoder::new(FileFormat::Auto, 1 << 20);
    let first = br#"{"log":"part one \"quoted\" ","stream":"stdout","time":"2026-11-25T01:02:03.1Z"}"#;
    assert_eq!(d.decode(first, 0), None);
    assert_eq!(d.format(), FileFormat::Docker);
    let err = d
        .decode(
            br#"{"log":"boom\n","stream":"stderr","time":"2026-11-25T01:02:03.2Z"}"#,
            90,
        )
        .unwrap();
    assert_eq!((text(&err), err.stream), ("boom".to_string(), Stream::Stderr));
    let out = d
        .decode(
            br#"{"log":"and two\r\n","stream":"stdout","time":"2026-11-25T01:02:03.3Z"}"#,
            180,
        )
        .unwrap();
    assert_eq!(text(&out), "part one \"quoted\" and two");
    assert_eq!(out.runtime_ts.as_deref(), Some(&b"2026-11-25T01:02:03.3Z"[..]));
    assert!(d.decode(b"{\"log\": 5}", 300).unwrap().malformed);
}

#[test]
fn drain_releases_held_pieces_as_truncated_lines() {
    let mut d = FileDecoder::new(FileFormat::Cri, 1024);
    d.decode(b"2026-11-25T01:02:03.000000001Z stderr P held", 0);
    let out = d.drain();
    assert_eq!(out.len(), 1);
    assert_eq!(
        (text(&out[0]), out[0].stream, out[0].truncated),
        ("held".into(), Stream::Stderr, true)
    );
    assert!(d.drain().is_empty());
}

#[test]
fn plain_lines_are_raw() {
    let mut d = FileDecoder::new(FileFormat::Auto, 1024);
    let e = d.decode(b"Exception in thread main", 0).unwrap();
    assert_eq!(d.format(), FileFormat::Raw);
    assert!(!e.malformed);
}
