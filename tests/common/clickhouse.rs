//! A real ClickHouse server for the tests: Debian's `clickhouse-server`
//! (18.16) or any newer one on PATH, started as a plain process with the
//! project's `tests/clickhouse/server.xml` (all paths in a temp dir,
//! 127.0.0.1, free ports), stopped by PID. `scripts/test.sh` installs the
//! package when it is missing.

use super::free_port;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running server and its directory.
pub struct ClickHouse {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// The HTTP port.
    pub http_port: u16,
    tcp_port: u16,
}

fn server_binary() -> PathBuf {
    for p in ["/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server"] {
        if std::path::Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("clickhouse-server is not installed: run scripts/test.sh (it installs Debian's clickhouse-server)");
}

impl ClickHouse {
    /// Start a fresh server and create sluice's table in it.
    pub fn start() -> ClickHouse {
        let dir = tempfile::tempdir().unwrap();
        let template = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/clickhouse/server.xml"
        ))
        .unwrap();
        let (http_port, tcp_port) = (free_port(), free_port());
        let config = template
            .replace("@DIR@", dir.path().to_str().unwrap())
            .replace("@HTTP_PORT@", &http_port.to_string())
            .replace("@TCP_PORT@", &tcp_port.to_string());
        std::fs::write(dir.path().join("config.xml"), config).unwrap();
        let mut ch = ClickHouse {
            child: None,
            dir,
            http_port,
            tcp_port,
        };
        ch.launch();
        ch.create_table("logs");
        ch
    }

    /// Create sluice's table (`deploy/clickhouse/schema.sql`) as
    /// `qualified` (`logs`, `db.logs`).
    pub fn create_table(&self, qualified: &str) {
        let schema = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/clickhouse/schema.sql"
        ))
        .unwrap();
        let schema = schema.replace(
            "CREATE TABLE IF NOT EXISTS logs",
            &format!("CREATE TABLE IF NOT EXISTS {qualified}"),
        );
        self.query(&schema);
    }

    fn launch(&mut self) {
        let child = Command::new(server_binary())
            .arg(format!(
                "--config-file={}",
                self.dir.path().join("config.xml").display()
            ))
            .current_dir(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start clickhouse-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok((200, body)) = self.http("GET", "/ping", "") {
                if body.trim() == "Ok." {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = std::fs::read_to_string(self.dir.path().join("server.err.log")).unwrap_or_default();
        panic!("clickhouse-server did not answer /ping within 60 s; its error log:\n{log}");
    }

    /// The endpoint for sluice's config.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// Stop the server (SIGTERM, wait) — an outage.
    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            super::terminate(child);
        }
        let _ = self.tcp_port;
    }

    /// Start it again on the same ports and data.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// How often each `seq` of the rows' `raw` is stored in `table`.
    pub fn seq_counts(&self, table: &str) -> std::collections::HashMap<u64, u64> {
        self.query(&format!(
            "SELECT visitParamExtractUInt(raw, 'seq') AS s, count() FROM {table} GROUP BY s FORMAT TSV"
        ))
        .lines()
        .map(|l| {
            let (s, n) = l.split_once('\t').unwrap();
            (s.parse().unwrap(), n.parse().unwrap())
        })
        .collect()
    }

    /// Run `sql`, return the body; panics on an error answer.
    pub fn query(&self, sql: &str) -> String {
        match self.http("POST", "/", sql) {
            Ok((200, body)) => body,
            other => panic!("query {sql:?} failed: {other:?}"),
        }
    }

    /// One HTTP/1.0 exchange: (status, body).
    fn http(&self, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.http_port))?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        write!(
            s,
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
        let mut resp = String::new();
        s.read_to_string(&mut resp)?;
        let status = resp.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
        let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
        let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
            dechunk(body)
        } else {
            body.to_string()
        };
        Ok((status, body))
    }
}

/// Decode a chunked body.
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

impl Drop for ClickHouse {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
