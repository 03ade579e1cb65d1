//! Plain-text lines and multi-line stack traces, as legacy services write
//! them: what the multiline stage must stitch back into one event.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::catalog::{Lang, ServiceProfile};

/// `2026-11-25T00:00:01.123Z` → `2026-11-25 00:00:01.123` (log4j/logback style).
fn java_ts(ts: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&ts[..10]);
    out.push(b' ');
    out.extend_from_slice(&ts[11..23]);
}

/// `2026-11-25 00:00:01,123` (Python logging style).
fn python_ts(ts: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&ts[..10]);
    out.push(b' ');
    out.extend_from_slice(&ts[11..19]);
    out.push(b',');
    out.extend_from_slice(&ts[20..23]);
}

/// `2026/11/25 00:00:01` (Go's log package).
fn go_ts(ts: &[u8], out: &mut Vec<u8>) {
    for &b in &ts[..10] {
        out.push(if b == b'-' { b'/' } else { b });
    }
    out.push(b' ');
    out.extend_from_slice(&ts[11..19]);
}

fn num(out: &mut Vec<u8>, n: u32) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// One ordinary plain-text line.
pub fn write_text_line(rng: &mut ChaCha8Rng, lang: Lang, p: &ServiceProfile, ts: &[u8], out: &mut Vec<u8>) {
    let id: u32 = rng.random_range(1000..99_999);
    let ms: u32 = rng.random_range(1..400);
    match lang {
        Lang::Java => {
            java_ts(ts, out);
            out.extend_from_slice(b" INFO  [http-nio-8080-exec-");
            num(out, rng.random_range(1..20));
            out.extend_from_slice(b"] c.e.billing.InvoiceService - Generated invoice ");
            num(out, id);
            out.extend_from_slice(b" in ");
            num(out, ms);
            out.extend_from_slice(b" ms\n");
        }
        Lang::Python => {
            python_ts(ts, out);
            out.extend_from_slice(b" INFO ml_scoring.worker: scored batch ");
            num(out, id);
            out.extend_from_slice(b" (512 rows) in ");
            num(out, ms);
            out.extend_from_slice(b"ms\n");
        }
        Lang::Go => {
            go_ts(ts, out);
            out.push(b' ');
            out.extend_from_slice(p.name.as_bytes());
            out.extend_from_slice(b": proxied GET /v1/users/");
            num(out, id);
            out.extend_from_slice(b" -> 200 in ");
            num(out, ms);
            out.extend_from_slice(b"ms\n");
        }
        Lang::Node => {
            out.push(b'[');
            out.extend_from_slice(ts);
            out.extend_from_slice(b"] info: webhook delivered id=");
            num(out, id);
            out.extend_from_slice(b" status=200\n");
        }
    }
}

/// An error line and its stack trace (several lines).
pub fn write_trace(rng: &mut ChaCha8Rng, lang: Lang, p: &ServiceProfile, ts: &[u8], out: &mut Vec<u8>) {
    let id: u32 = rng.random_range(1000..99_999);
    let depth = rng.random_range(3..12);
    match lang {
        Lang::Java => {
            java_ts(ts, out);
            out.extend_from_slice(
                b" ERROR [http-nio-8080-exec-7] c.e.billing.InvoiceService - Failed to generate invoice ",
            );
            num(out, id);
            out.extend_from_slice(b"\njava.lang.IllegalStateException: Invoice total mismatch for order ");
            num(out, id);
            out.push(b'\n');
            for k in 0..depth {
                out.extend_from_slice(b"\tat com.example.billing.InvoiceService.step");
                num(out, k);
                out.extend_from_slice(b"(InvoiceService.java:");
                num(out, 100 + k * 7);
                out.extend_from_slice(b")\n");
            }
            if rng.random::<bool>() {
                out.extend_from_slice(b"Caused by: java.sql.SQLTransientConnectionException: HikariPool-1 - Connection is not available, request timed out after 30000ms.\n");
                out.extend_from_slice(
                    b"\tat com.zaxxer.hikari.pool.HikariPool.createTimeoutException(HikariPool.java:696)\n",
                );
                out.extend_from_slice(b"\tat com.zaxxer.hikari.pool.HikariPool.getConnection(HikariPool.java:197)\n");
                out.extend_from_slice(b"\t... ");
                num(out, depth);
                out.extend_from_slice(b" more\n");
            }
        }
        Lang::Python => {
            python_ts(ts, out);
            out.extend_from_slice(b" ERROR ml_scoring.worker: scoring failed for batch ");
            num(out, id);
            out.extend_from_slice(b"\nTraceback (most recent call last):\n");
            for k in 0..depth.min(6) {
                out.extend_from_slice(b"  File \"/app/ml_scoring/stage");
                num(out, k);
                out.extend_from_slice(b".py\", line ");
                num(out, 20 + k * 11);
                out.extend_from_slice(b", in run\n    return self.next.run(batch)\n");
            }
            out.extend_from_slice(b"TimeoutError: feature store read timed out after 50ms\n");
        }
        Lang::Go => {
            out.extend_from_slice(b"panic: runtime error: invalid memory address or nil pointer dereference\n");
            out.extend_from_slice(
                b"[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x6b4f2a]\n\ngoroutine ",
            );
            num(out, rng.random_range(1..500));
            out.extend_from_slice(b" [running]:\n");
            for k in 0..depth.min(5) {
                out.extend_from_slice(b"main.(*Proxy).forward");
                num(out, k);
                out.extend_from_slice(b"(0xc0001a2000, {0x7f2a, 0xc00020e000})\n\t/src/");
                out.extend_from_slice(p.name.as_bytes());
                out.extend_from_slice(b"/proxy.go:");
                num(out, 100 + k * 9);
                out.extend_from_slice(b" +0x2a\n");
            }
        }
        Lang::Node => {
            out.push(b'[');
            out.extend_from_slice(ts);
            out.extend_from_slice(b"] error: delivery failed for webhook ");
            num(out, id);
            out.extend_from_slice(b"\nTypeError: Cannot read properties of undefined (reading 'id')\n");
            for k in 0..depth.min(6) {
                out.extend_from_slice(b"    at deliver");
                num(out, k);
                out.extend_from_slice(b" (/app/src/webhooks/deliver.js:");
                num(out, 40 + k);
                out.extend_from_slice(b":17)\n");
            }
            out.extend_from_slice(
                b"    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)\n",
            );
        }
    }
}
