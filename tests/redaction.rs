//! End to end for the redaction stage as a node runs it: a real private
//! key (made by `openssl genpkey`) printed line by line into CRI and
//! Docker log files, some lines split into partials; records with nothing
//! allowed; look-alikes beside them. The output is valid JSON, holds no
//! line of the key, and leaves every other line as it was.

mod common;
use common::*;

use std::path::Path;
use std::process::Command;

/// A fresh RSA key in PEM: its BEGIN line, body lines and END line.
fn private_key(dir: &Path) -> Vec<String> {
    let path = dir.join("key.pem");
    let status = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&path)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl is installed (scripts/test.sh installs it)");
    assert!(status.success());
    let pem = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    pem.lines().map(str::to_string).collect()
}

fn config(root: &Path, include: &str, out: &Path) -> std::path::PathBuf {
    write_config(
        root,
        "sluice.toml",
        &format!(
            "data_dir = \"{state}\"\n\
             [sources.pods]\ntype = \"file\"\ninclude = [\"{include}\"]\nexit_at_eof = true\n\
             [redact]\n\
             [sinks.out]\ntype = \"file\"\ndirectory = \"{out}\"\ncompression = \"none\"\n\
             [report]\nsummary = false\n",
            state = root.join("state").display(),
            out = out.display(),
        ),
    )
}

fn output(out: &Path) -> Vec<serde_json::Value> {
    let mut lines = Vec::new();
    for f in std::fs::read_dir(out).unwrap() {
        let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
        for l in text.lines() {
            lines.push(serde_json::from_str(l).unwrap_or_else(|e| panic!("invalid JSON out: {e}: {l}")));
        }
    }
    lines
}

#[test]
fn a_private_key_printed_line_by_line_never_reaches_the_output() {
    let root = tempfile::tempdir().unwrap();
    let key = private_key(root.path());
    assert!(key.len() > 20, "a 2048-bit key is 28 lines");
    let body: Vec<&String> = key[1..key.len() - 1].iter().collect();
    let ts = "2026-12-07T01:02:03.000000001Z";

    // CRI: the key on stdout, every fifth body line in two partials;
    // stderr goes on meanwhile and must pass untouched.
    let cri_dir = root.path().join("pods/shop_api-1_u1/api");
    std::fs::create_dir_all(&cri_dir).unwrap();
    let mut cri = vec![format!("{ts} stdout F starting"), format!("{ts} stdout F {}", key[0])];
    for (i, line) in body.iter().enumerate() {
        if i % 5 == 0 {
            let (a, b) = line.split_at(line.len() / 2);
            cri.push(format!("{ts} stdout P {a}"));
            cri.push(format!("{ts} stderr F worker {i} ready"));
            cri.push(format!("{ts} stdout F {b}"));
        } else {
            cri.push(format!("{ts} stdout F {line}"));
        }
    }
    cri.push(format!("{ts} stdout F {}", key[key.len() - 1]));
    cri.push(format!("{ts} stdout F job finished at epoch_ms=1734031969374"));
    cri.push(format!("{ts} stdout F {{\"foo\":1}}"));
    std::fs::write(cri_dir.join("0.log"), cri.join("\n") + "\n").unwrap();

    // Docker's json-file: the same key, each line its own record.
    let docker_dir = root.path().join("pods/shop_api-2_u2/api");
    std::fs::create_dir_all(&docker_dir).unwrap();
    let docker: Vec<String> = key
        .iter()
        .chain(std::iter::once(&"served 200 in 12 ms".to_string()))
        .map(|l| serde_json::json!({"log": format!("{l}\n"), "stream": "stdout", "time": ts}).to_string())
        .collect();
    std::fs::write(docker_dir.join("0.log"), docker.join("\n") + "\n").unwrap();

    let out = root.path().join("out");
    let include = format!("{}/pods/*/*/*.log", root.path().display());
    let status = sluice()
        .args(["run", "--config"])
        .arg(config(root.path(), &include, &out))
        .status()
        .unwrap();
    assert!(status.success());
    let records = output(&out);
    let text: String = records.iter().map(|r| r.to_string() + "\n").collect();
    for line in &body {
        // The base64 of one line, and of each half a partial carried.
        let half = &line[line.len() / 2..];
        assert!(
            !text.contains(line.as_str()) && !text.contains(half),
            "key material out:\n{text}"
        );
    }
    let messages = |pod: &str, stream: &str| -> Vec<String> {
        records
            .iter()
            .filter(|r| r["pod"] == pod && r["stream"] == stream)
            .map(|r| {
                r.get("message")
                    .map_or_else(|| r.to_string(), |m| m.as_str().unwrap().to_string())
            })
            .collect()
    };
    let mut want_cri = vec!["starting".to_string(), format!("{}****", key[0])];
    want_cri.extend(body.iter().map(|_| "****".to_string()));
    want_cri.push(key[key.len() - 1].clone());
    want_cri.push("job finished at epoch_ms=1734031969374".into());
    assert_eq!(messages("api-1", "stdout")[..want_cri.len()], want_cri[..]);
    // The record with nothing allowed: an empty record plus what sluice adds.
    let emptied = records
        .iter()
        .find(|r| r["pod"] == "api-1" && r.get("message").is_none())
        .unwrap();
    assert_eq!(emptied["redacted"], serde_json::json!(["unlisted"]), "{emptied}");
    let stderr: Vec<String> = (0..body.len())
        .step_by(5)
        .map(|i| format!("worker {i} ready"))
        .collect();
    assert_eq!(messages("api-1", "stderr"), stderr);
    let mut want_docker = vec![format!("{}****", key[0])];
    want_docker.extend(body.iter().map(|_| "****".to_string()));
    want_docker.push(key[key.len() - 1].clone());
    want_docker.push("served 200 in 12 ms".into());
    assert_eq!(messages("api-2", "stdout"), want_docker);
}
