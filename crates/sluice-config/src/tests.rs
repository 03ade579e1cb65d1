use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse_str(text: &str) -> Result<Config, ConfigError> {
    parse(text, Path::new("test.toml"), &no_env)
}

const MINIMAL: &str = "[sources.in]\ntype = \"stdin\"\n\n[sinks.out]\ntype = \"stdout\"\n";

#[test]
fn minimal_config_gets_defaults() {
    let c = parse_str(MINIMAL).unwrap();
    assert!(matches!(c.sources["in"], SourceConfig::Stdin(_)));
    assert!(matches!(c.sinks["out"], SinkConfig::Stdout(_)));
    assert_eq!(c.pipeline.batch_bytes, ByteSize::kib(256));
    assert_eq!(c.pipeline.channel_capacity, 4);
    assert!(c.pipeline.parse);
    assert_eq!(c.data_dir, PathBuf::from("./data/state"));
}

#[test]
fn shipped_configs_are_valid() {
    let env = |name: &str| (name == "SLUICE_OUT_DIR").then(|| "/tmp/out".to_string());
    for (name, text) in [
        ("default.toml", include_str!("../../../config/default.toml")),
        ("passthrough.toml", include_str!("../../../config/passthrough.toml")),
        (
            "bench-stdin-file.toml",
            include_str!("../../../config/bench-stdin-file.toml"),
        ),
    ] {
        let c = parse(text, Path::new(name), &env).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!c.sources.is_empty() && !c.sinks.is_empty(), "{name}");
    }
    let c = parse(include_str!("../../../config/default.toml"), Path::new("d"), &env).unwrap();
    let SinkConfig::File(f) = &c.sinks["archive"] else {
        panic!("default ships a file sink")
    };
    assert_eq!(f.directory, PathBuf::from("/tmp/out"));
    assert_eq!(f.compression, Compression::Zstd);
    let SourceConfig::Generator(g) = &c.sources["workload"] else {
        panic!("default ships the generator")
    };
    assert_eq!((g.seed, g.count, g.services), (42, Some(1_000_000), 20));
}

#[test]
fn a_typo_names_its_line_and_key() {
    let text =
        "[sources.in]\ntype = \"stdin\"\n\n[sinks.out]\ntype = \"file\"\ndirectory = \"/tmp\"\ncompresion = \"zstd\"\n";
    let e = parse_str(text).unwrap_err();
    let msg = e.to_string();
    let ConfigError::Syntax { line, ref message, .. } = e else {
        panic!("{msg}")
    };
    assert_eq!(line, 7, "{msg}");
    assert!(message.contains("unknown field `compresion`"), "{msg}");
    assert!(msg.starts_with("test.toml:7:1: "), "{msg}");
}

#[test]
fn a_typo_in_a_top_level_table_names_its_line() {
    let text = format!("{MINIMAL}\n[pipeline]\nbatch_byte = \"1MiB\"\n");
    let e = parse_str(&text).unwrap_err();
    let ConfigError::Syntax { line, message, .. } = e else {
        panic!()
    };
    assert_eq!(line, 8);
    assert!(message.contains("unknown field `batch_byte`"), "{message}");
}

#[test]
fn an_unknown_component_type_is_named() {
    let text = "[sources.in]\ntype = \"stdn\"\n\n[sinks.out]\ntype = \"stdout\"\n";
    let e = parse_str(text).unwrap_err().to_string();
    assert!(
        e.contains("unknown variant `stdn`") && e.contains("stdin") && e.contains("generator"),
        "{e}"
    );
    assert!(e.starts_with("test.toml:1:") || e.starts_with("test.toml:2:"), "{e}");
}

#[test]
fn wrong_types_and_bad_sizes_are_named() {
    let text = format!("{MINIMAL}\n[pipeline]\nchannel_capacity = \"four\"\n");
    let e = parse_str(&text).unwrap_err().to_string();
    assert!(e.starts_with("test.toml:8:") && e.contains("invalid type"), "{e}");

    let text = format!("{MINIMAL}\n[pipeline]\nbatch_bytes = \"lots\"\n");
    let e = parse_str(&text).unwrap_err().to_string();
    assert!(e.starts_with("test.toml:8:") && e.contains("lots"), "{e}");
}

#[test]
fn semantic_errors_name_the_key() {
    let text = format!("{MINIMAL}\n[pipeline]\nbatch_bytes = \"1KiB\"\n");
    let e = parse_str(&text).unwrap_err();
    assert_eq!(
        e.to_string(),
        "test.toml: `pipeline.batch_bytes`: must be between 4KiB and 64MiB"
    );
    let text = "[sources.g]\ntype = \"generator\"\nrate = -1.0\n[sinks.out]\ntype = \"stdout\"\n";
    assert_eq!(
        parse_str(text).unwrap_err().to_string(),
        "test.toml: `sources.g.rate`: must be a positive number of events per second"
    );
    let text = "[sources]\n[sinks.out]\ntype = \"stdout\"\n";
    assert_eq!(
        parse_str(text).unwrap_err().to_string(),
        "test.toml: `sources`: at least one source is required"
    );
}

#[test]
fn budget_overrides_are_checked() {
    let text = format!("{MINIMAL}\n[budget]\n[[budget.overrides]]\nenv = \"staging\"\nbudget = \"1GiB/week\"\n");
    assert_eq!(
        parse_str(&text).unwrap_err().to_string(),
        "test.toml:10:10: `budget.overrides[0].budget`: `1GiB/week`: unknown period `week` (use day, h, min or a duration such as 6h)\n    budget = \"1GiB/week\""
    );
    let text = format!("{MINIMAL}\n[budget]\n[[budget.overrides]]\nnamespace = \"[shop\"\nbudget = \"1GiB/day\"\n");
    let e = parse_str(&text).unwrap_err().to_string();
    assert!(
        e.starts_with("test.toml:9:13: `budget.overrides[0].namespace`: `[shop` is not a valid glob"),
        "{e}"
    );
    let text = format!("{MINIMAL}\n[budget]\n[[budget.overrides]]\nnamspace = \"shop\"\nbudget = \"1GiB/day\"\n");
    let e = parse_str(&text).unwrap_err().to_string();
    assert!(e.contains("unknown field `namspace`"), "{e}");
    let text = format!("{MINIMAL}\n[budget]\n[[budget.overrides]]\nenv = \"prod\"\nbudget = \"5GiB/day\"\n");
    let o = &parse_str(&text).unwrap().budget.unwrap().overrides[0];
    assert_eq!(
        (
            o.service.as_str(),
            o.env.as_ref().map(Glob::as_str),
            o.namespace.as_ref().map(Glob::as_str)
        ),
        ("*", Some("prod"), None)
    );
}

#[test]
fn the_service_cap_is_at_least_one_and_ten_thousand_by_default() {
    let text = format!("{MINIMAL}\n[budget]\nmax_services = 0\n");
    assert_eq!(
        parse_str(&text).unwrap_err().to_string(),
        "test.toml: `budget.max_services`: must be at least 1"
    );
    let text = format!("{MINIMAL}\n[budget]\n");
    assert_eq!(parse_str(&text).unwrap().budget.unwrap().max_services, 10_000);
}

#[test]
fn calendar_windows_take_a_time_zone_or_an_offset_not_both() {
    let budget = |extra: &str| parse_str(&format!("{MINIMAL}\n[budget]\n{extra}\n"));
    let b = budget("timezone = \"Europe/Berlin\"").unwrap().budget.unwrap();
    assert_eq!((b.timezone.as_deref(), b.utc_offset), (Some("Europe/Berlin"), None));
    assert_eq!(
        budget("timezone = \"Europe/Berln\"").unwrap_err().to_string(),
        "test.toml: `budget.timezone`: `Europe/Berln` is not a known IANA time zone (like \"Asia/Seoul\")"
    );
    assert_eq!(
        budget("timezone = \"Asia/Seoul\"\nutc_offset = \"+09:00\"")
            .unwrap_err()
            .to_string(),
        "test.toml: `budget`: set `timezone` or `utc_offset`, not both"
    );
    assert_eq!(
        budget("utc_offset = \"+9\"").unwrap_err().to_string(),
        "test.toml: `budget.utc_offset`: `+9`: expected +HH:MM"
    );
}

#[test]
fn budgets_are_bytes_per_window_events_per_second_or_both() {
    let b = |s: &str| Budget::parse(s);
    let gib = 1024 * 1024 * 1024;
    assert_eq!(
        b("20GiB/day"),
        Ok(Budget {
            bytes: 20 * gib,
            period_secs: 86_400,
            events_per_sec: None
        })
    );
    assert_eq!(
        b("50MiB/h"),
        Ok(Budget {
            bytes: 50 << 20,
            period_secs: 3600,
            events_per_sec: None
        })
    );
    assert_eq!(
        b("1500 events/s"),
        Ok(Budget {
            bytes: u64::MAX,
            period_secs: 86_400,
            events_per_sec: Some(1500.0)
        })
    );
    assert_eq!(
        b(" 2000 events/s , 10GiB/6h"),
        Ok(Budget {
            bytes: 10 * gib,
            period_secs: 6 * 3600,
            events_per_sec: Some(2000.0)
        })
    );
    for (bad, message) in [
        ("", "``: expected <size>/<period>, e.g. \"20GiB/day\", or <N> events/s"),
        (
            "500 events/min",
            "`500 events/min`: events are budgeted per second (`500 events/s`)",
        ),
        ("0 events/s", "`0 events/s`: expected a positive number of events/s"),
        ("1GiB/day, 2GiB/day", "`1GiB/day, 2GiB/day`: two byte budgets"),
        (
            "5 events/s, 6 events/s",
            "`5 events/s, 6 events/s`: two events/s budgets",
        ),
        ("1GiB/0s", "`1GiB/0s`: period must be at least a second"),
    ] {
        assert_eq!(b(bad), Err(message.to_string()), "{bad}");
    }
    // Named where it is configured.
    let text = format!("{MINIMAL}\n[budget]\n[budget.services]\napi = \"1GiB/day, 9 events/h\"\n");
    assert_eq!(
        parse_str(&text).unwrap_err().to_string(),
        "test.toml:9:7: `budget.services.api`: `9 events/h`: events are budgeted per second (`500 events/s`)\n    api = \"1GiB/day, 9 events/h\""
    );
}

#[test]
fn slow_thresholds_are_positive_and_service_globs_valid() {
    let budget = |extra: &str| parse_str(&format!("{MINIMAL}\n[budget]\n{extra}\n"));
    let b = budget("[budget.slow_services]\nsearch = 3000\n\"batch-*\" = 60000")
        .unwrap()
        .budget
        .unwrap();
    assert_eq!(
        b.slow_services.get(&Glob::try_from("batch-*".to_string()).unwrap()),
        Some(&60000.0)
    );
    for (extra, message) in [
        (
            "[budget.slow_services]\nsearch = 0",
            "test.toml: `budget.slow_services.search`: must be positive",
        ),
        (
            "[budget.slow_routes]\n\"/v1/x\" = -5",
            "test.toml: `budget.slow_routes./v1/x`: must be positive",
        ),
        (
            "[budget.slow_services]\n\"[abc\" = 10",
            "test.toml:9:1: `budget.slow_services.[abc`: `[abc` is not a valid glob: Pattern syntax error near position 0: invalid range pattern\n    \"[abc\" = 10",
        ),
    ] {
        assert_eq!(budget(extra).unwrap_err().to_string(), message, "{extra}");
    }
}

#[test]
fn environment_reaches_any_value() {
    let env = |name: &str| match name {
        "CAP" => Some("9".to_string()),
        _ => None,
    };
    let text = format!("{MINIMAL}\n[pipeline]\nchannel_capacity = ${{CAP}}\nbatch_bytes = \"${{BATCH:-1MiB}}\"\n");
    let c = parse(&text, Path::new("t"), &env).unwrap();
    assert_eq!(c.pipeline.channel_capacity, 9);
    assert_eq!(c.pipeline.batch_bytes, ByteSize::mib(1));

    let e = parse("x = \"${NOPE}\"", Path::new("t.toml"), &env).unwrap_err();
    assert_eq!(
        e.to_string(),
        "t.toml:1: environment variable `NOPE` is not set (write ${NOPE:-default} to give a default)"
    );
}

#[test]
fn a_wrong_type_inside_a_component_names_its_line() {
    let text =
        "[sources.in]\ntype = \"stdin\"\n\n[sinks.out]\ntype = \"file\"\ndirectory = \"/tmp\"\nzstd_level = \"high\"\n";
    let e = parse_str(text).unwrap_err().to_string();
    assert!(e.starts_with("test.toml:7:"), "{e}");
    assert!(e.contains("invalid type: string \"high\""), "{e}");
}

#[test]
fn clickhouse_columns_take_known_sources_only() {
    let sink = "[sinks.ch]\ntype = \"clickhouse\"\nendpoint = \"http://127.0.0.1:8123\"\ntable = \"logs\"\n";
    let ok = format!("[sources.in]\ntype = \"stdin\"\n{sink}[sinks.ch.columns]\nk8s_ns = \"namespace\"\nwhere = \"pod\"\nwhat = \"msg\"\n");
    let c = parse_str(&ok).unwrap();
    let SinkConfig::Clickhouse(ch) = &c.sinks["ch"] else {
        panic!("a clickhouse sink")
    };
    assert_eq!(ch.columns["k8s_ns"], "namespace");
    let bad = format!("[sources.in]\ntype = \"stdin\"\n{sink}[sinks.ch.columns]\nwhere = \"pood\"\n");
    let e = parse_str(&bad).unwrap_err().to_string();
    assert!(
        e.starts_with("test.toml: `sinks.ch.columns.where`: unknown source `pood` (expected one of ts, "),
        "{e}"
    );
    assert!(
        e.ends_with("namespace, sample_rate, message, raw, pod, pod_uid, container, stream, file)"),
        "{e}"
    );
}

#[test]
fn file_source_intervals_that_would_spin_are_refused_by_name() {
    for (key, value, least) in [
        ("poll_interval", "0s", "10ms"),
        ("scan_interval", "1ms", "10ms"),
        ("checkpoint_interval", "0s", "10ms"),
    ] {
        let text = format!(
            "[sources.pods]\ntype = \"file\"\ninclude = [\"/var/log/pods/*/*/*.log\"]\n{key} = \"{value}\"\n\n[sinks.out]\ntype = \"stdout\"\n"
        );
        let e = parse_str(&text).unwrap_err().to_string();
        assert!(e.contains(&format!("sources.pods.{key}")), "{e}");
        assert!(e.contains(&format!("must be at least {least}")), "{e}");
    }
}

#[test]
fn errors_never_echo_a_secret() {
    let env = |name: &str| (name == "CH_PASSWORD").then(|| "Env-S3cret-9".to_string());
    let sink = |body: &str| format!("[sources.i]\ntype = \"stdin\"\n[sinks.ch]\ntype = \"clickhouse\"\n{body}\n");
    for body in [
        // A typo'd key: unknown, so its value is not echoed.
        "endpoint = \"http://h:8123\"\npasword = \"S3cret-Value-1\"",
        // A secret key with a wrong type, as a literal and from the environment.
        "endpoint = \"http://h:8123\"\npassword = 12345678",
        "endpoint = \"http://h:8123\"\npassword = ${CH_PASSWORD}",
        "endpoint = \"http://h:8123\"\npassword = [\"S3cret-Value-1\"]",
        // Credentials in an endpoint that is refused, or beside another error.
        "endpoint = \"htp://admin:S3cret-Value-1@h/?password=S3cret-Value-1\"",
        "endpoint = \"http://admin:S3cret-Value-1@h/?password=S3cret-Value-1\" gzip_level = 3",
        "endpoint = \"http://h/?user=a&password=S3cret-Value-1\"\ngzip_level = 12",
    ] {
        let text = sink(body);
        let e = parse(&text, Path::new("t.toml"), &env).unwrap_err().to_string();
        for secret in ["S3cret-Value-1", "12345678", "Env-S3cret-9"] {
            assert!(!e.contains(secret), "`{secret}` echoed:\n{e}");
        }
        assert!(e.starts_with("t.toml:"), "{e}");
    }
    let e = parse(
        &sink("endpoint = \"http://h:8123\"\npasword = \"S3cret-Value-1\""),
        Path::new("t.toml"),
        &env,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("unknown field `pasword`") && e.ends_with("pasword = ****"),
        "{e}"
    );
    // A harmless value is still shown: it is what the operator must fix.
    let e = parse(
        &sink("endpoint = \"http://h:8123\"\ngzip_level = \"high\""),
        Path::new("t.toml"),
        &no_env,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("gzip_level = \"high\""), "{e}");
}

#[test]
fn typed_values_are_refused_at_their_line_and_key() {
    let kafka = "[sources.in]\ntype = \"stdin\"\n[sinks.k]\ntype = \"kafka\"\nbrokers = \"b:9092\"\ntopic = \"t\"\ncompression = \"zip\"\n";
    assert_eq!(
        parse_str(kafka).unwrap_err().to_string(),
        "test.toml:7:15: `sinks.k.compression`: unknown variant `zip`, expected one of `zstd`, `lz4`, `snappy`, `gzip`, `none`\n    compression = \"zip\""
    );
    let ok = parse_str(&kafka.replace("zip", "lz4")).unwrap();
    let SinkConfig::Kafka(k) = &ok.sinks["k"] else {
        panic!("a kafka sink")
    };
    assert_eq!(k.compression.as_str(), "lz4");
    let source = "[sources.k]\ntype = \"kafka\"\nbrokers = \"b:9092\"\ntopics = [\"t\"]\ngroup_id = \"g\"\nauto_offset_reset = \"oldest\"\n[sinks.o]\ntype = \"stdout\"\n";
    assert_eq!(
        parse_str(source).unwrap_err().to_string(),
        "test.toml:6:21: `sources.k.auto_offset_reset`: unknown variant `oldest`, expected `earliest` or `latest`\n    auto_offset_reset = \"oldest\""
    );
    let regex = format!("{MINIMAL}\n[multiline]\nstart_pattern = \"(unclosed\"\n");
    let e = parse_str(&regex).unwrap_err().to_string();
    assert!(
        e.starts_with("test.toml:8:17: `multiline.start_pattern`: invalid regex: unclosed group\n"),
        "{e}"
    );
    let custom = format!("{MINIMAL}\n[redact]\n[[redact.custom]]\nname = \"a\"\npattern = \"x\"\n[[redact.custom]]\nname = \"b\"\npattern = \"[z\"\n");
    let e = parse_str(&custom).unwrap_err().to_string();
    assert!(
        e.starts_with("test.toml:13:11: `redact.custom[1].pattern`: invalid regex: unclosed character class\n"),
        "{e}"
    );
}

#[test]
fn a_kafka_handover_must_end_well_before_the_group_gives_up_on_the_member() {
    let kafka = "[sources.k]\ntype = \"kafka\"\nbrokers = \"b:9092\"\ntopics = [\"t\"]\ngroup_id = \"g\"\n";
    let text = format!("{kafka}[sinks.out]\ntype = \"stdout\"\n");
    let SourceConfig::Kafka(k) = &parse_str(&text).unwrap().sources["k"] else {
        panic!()
    };
    assert_eq!(k.revoke_timeout, std::time::Duration::from_secs(10));
    let text = format!("{kafka}revoke_timeout = \"40s\"\n[sources.k.options]\n\"max.poll.interval.ms\" = \"60000\"\n[sinks.out]\ntype = \"stdout\"\n");
    assert_eq!(
        parse_str(&text).unwrap_err().to_string(),
        "test.toml: `sources.k.revoke_timeout`: must be under half of max.poll.interval.ms (300 s unless options set it)"
    );
}
