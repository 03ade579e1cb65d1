//! A seeded, reproducible, realistic node workload, so every benchmark, test
//! and demo in sluice is fed the same kind of lines a real node writes: the
//! field guide's JSON request summaries across services with Zipf-like
//! volumes, 3-6% errors with `error_type` and `dependency`, 1-2% slow
//! requests, several lines per trace, plain-text stack traces (Java, Python,
//! Go, Node) from a few legacy services, and lines that carry secrets and PII.
//! This crate only writes bytes: it must not know about batches, stages or
//! I/O, so the CLI, the generator source and the benchmarks share it as is.

mod catalog;
mod clock;
mod traces;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use catalog::{Endpoint, ServiceProfile, Style};
pub use clock::TimestampClock;

/// How to generate.
#[derive(Debug, Clone)]
pub struct WorkloadSettings {
    /// Seed; the same settings give the same bytes.
    pub seed: u64,
    /// Number of services (Zipf-like volumes).
    pub services: usize,
    /// Where timestamps come from.
    pub clock: TimestampClock,
}

impl Default for WorkloadSettings {
    fn default() -> Self {
        WorkloadSettings {
            seed: 1,
            services: 20,
            clock: TimestampClock::simulated(1_764_028_800_000, 1000.0),
        }
    }
}

/// The workload generator. See the crate docs.
pub struct Workload {
    rng: ChaCha8Rng,
    services: Vec<ServiceProfile>,
    /// Cumulative volume weights, for picking a service.
    cdf: Vec<f64>,
    clock: TimestampClock,
    /// Lines of the current record not yet handed out (a record may be a
    /// multi-line trace or several lines of one request).
    pending: Vec<u8>,
    pending_pos: usize,
    lines: u64,
    records: u64,
    ts: [u8; 24],
}

impl Workload {
    /// A generator with `settings`.
    pub fn new(settings: WorkloadSettings) -> Workload {
        let mut rng = ChaCha8Rng::seed_from_u64(settings.seed);
        let services = catalog::services(settings.services, &mut rng);
        let mut total = 0.0;
        let cdf = services
            .iter()
            .map(|s| {
                total += s.weight;
                total
            })
            .collect::<Vec<_>>();
        let cdf = cdf.into_iter().map(|c| c / total).collect();
        Workload {
            rng,
            services,
            cdf,
            clock: settings.clock,
            pending: Vec::with_capacity(8192),
            pending_pos: 0,
            lines: 0,
            records: 0,
            ts: [0; 24],
        }
    }

    /// Lines produced so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Append whole lines (each ending in `\n`) to `out` until it has grown
    /// by at least `min_bytes` or `max_lines` lines were written. Returns the
    /// number of lines written.
    pub fn fill(&mut self, out: &mut Vec<u8>, min_bytes: usize, max_lines: u64) -> u64 {
        let target = out.len() + min_bytes;
        let mut written = 0;
        while out.len() < target && written < max_lines {
            if self.pending_pos == self.pending.len() {
                self.pending.clear();
                self.pending_pos = 0;
                self.record();
            }
            let rest = &self.pending[self.pending_pos..];
            let end = memchr_newline(rest) + 1;
            out.extend_from_slice(&rest[..end]);
            self.pending_pos += end;
            written += 1;
        }
        self.lines += written;
        written
    }

    /// Generate one record into `pending`.
    fn record(&mut self) {
        let service = self.pick_service();
        let ts_len = self.clock.format(self.records, &mut self.ts);
        self.records += 1;
        let profile = &self.services[service];
        let ts = &self.ts[..ts_len];
        match profile.style {
            Style::Json => write_request(&mut self.rng, profile, ts, &mut self.pending),
            Style::Text(lang) => {
                if self.rng.random::<f64>() < profile.error_rate * 2.0 {
                    traces::write_trace(&mut self.rng, lang, profile, ts, &mut self.pending);
                } else {
                    traces::write_text_line(&mut self.rng, lang, profile, ts, &mut self.pending);
                }
            }
        }
    }

    fn pick_service(&mut self) -> usize {
        let x: f64 = self.rng.random();
        self.cdf.partition_point(|&c| c < x).min(self.services.len() - 1)
    }
}

fn memchr_newline(b: &[u8]) -> usize {
    b.iter().position(|&c| c == b'\n').unwrap_or(b.len() - 1)
}

fn hex(rng: &mut ChaCha8Rng, n: usize, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut bits = 0u64;
    for i in 0..n {
        if i % 16 == 0 {
            bits = rng.random();
        }
        out.push(HEX[(bits & 15) as usize]);
        bits >>= 4;
    }
}

fn push_num(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn push_kv_str(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":\"");
    out.extend_from_slice(value);
    out.push(b'"');
}

/// One request: optionally a dependency-call line first (same trace), then
/// the request summary. Errors, slow requests, secrets and PII are planted at
/// the profile's rates.
fn write_request(rng: &mut ChaCha8Rng, p: &ServiceProfile, ts: &[u8], out: &mut Vec<u8>) {
    let endpoint: &Endpoint = &p.endpoints[rng.random_range(0..p.endpoints.len())];
    let mut trace = Vec::with_capacity(32);
    hex(rng, 32, &mut trace);
    let mut request_id = b"req-".to_vec();
    hex(rng, 12, &mut request_id);
    let roll: f64 = rng.random();
    let is_error = roll < p.error_rate;
    let is_slow = !is_error && roll < p.error_rate + p.slow_rate;
    let (path, ids) = endpoint.concrete_path(rng);

    if is_error && rng.random::<f64>() < 0.5 {
        // The failing dependency call, logged before the summary.
        let dep = catalog::DEPENDENCIES[rng.random_range(0..catalog::DEPENDENCIES.len())];
        header(out, ts, b"WARN", p, &trace, &request_id);
        push_kv_str(out, "event", b"dependency_call_failed");
        push_kv_str(out, "dependency", dep.as_bytes());
        out.extend_from_slice(b",\"timeout_ms\":");
        push_num(out, 800 + rng.random_range(0..5u32) * 200);
        push_kv_str(out, "msg", b"dependency call failed");
        out.extend_from_slice(b"}\n");
    }

    let level: &[u8] = if is_error {
        b"ERROR"
    } else if is_slow {
        b"WARN"
    } else if rng.random::<f64>() < 0.05 {
        b"DEBUG"
    } else {
        b"INFO"
    };
    header(out, ts, level, p, &trace, &request_id);
    push_kv_str(out, "event", b"request_summary");
    push_kv_str(out, "method", endpoint.method.as_bytes());
    push_kv_str(out, "path", path.as_bytes());
    push_kv_str(out, "route", endpoint.route.as_bytes());
    let status: u16 = if is_error {
        [500, 502, 503, 504][rng.random_range(0..4)]
    } else if rng.random::<f64>() < 0.04 {
        [400, 401, 404, 409, 429][rng.random_range(0..5)]
    } else {
        endpoint.ok_status
    };
    out.extend_from_slice(b",\"status\":");
    push_num(out, status);
    let duration: u32 = if is_slow {
        rng.random_range(1000..8000)
    } else if is_error {
        rng.random_range(5..3000)
    } else {
        // Log-normal-ish body: most requests fast, a tail toward 1 s.
        let u: f64 = rng.random();
        (endpoint.base_ms * (1.0 + 6.0 * u * u * u)) as u32
    };
    out.extend_from_slice(b",\"duration_ms\":");
    push_num(out, duration);
    out.extend_from_slice(b",\"client_ip\":\"10.");
    push_num(out, rng.random_range(0..255u8));
    out.push(b'.');
    push_num(out, rng.random_range(0..255u8));
    out.push(b'.');
    push_num(out, rng.random_range(1..255u8));
    out.extend_from_slice(b"\",\"user_id\":\"u-");
    push_num(out, ids.0);
    out.push(b'"');
    if is_error {
        let (etype, emsg, dep) = catalog::ERRORS[rng.random_range(0..catalog::ERRORS.len())];
        push_kv_str(out, "error_type", etype.as_bytes());
        push_kv_str(out, "error_message", emsg.as_bytes());
        push_kv_str(out, "dependency", dep.as_bytes());
        push_kv_str(out, "msg", b"request failed");
    } else if is_slow {
        push_kv_str(out, "msg", b"slow request");
    } else {
        push_kv_str(out, "msg", b"request completed");
    }
    if rng.random::<f64>() < p.secret_rate {
        catalog::plant_secret(rng, out);
    }
    out.extend_from_slice(b"}\n");
}

fn header(out: &mut Vec<u8>, ts: &[u8], level: &[u8], p: &ServiceProfile, trace: &[u8], request_id: &[u8]) {
    out.extend_from_slice(b"{\"ts\":\"");
    out.extend_from_slice(ts);
    out.extend_from_slice(b"\",\"level\":\"");
    out.extend_from_slice(level);
    out.push(b'"');
    push_kv_str(out, "service", p.name.as_bytes());
    push_kv_str(out, "env", b"prod");
    push_kv_str(out, "version", p.version.as_bytes());
    push_kv_str(out, "trace_id", trace);
    push_kv_str(out, "request_id", request_id);
}

#[cfg(test)]
mod tests;
