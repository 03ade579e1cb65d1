//! A local HTTP/1.1 server for the sinks whose real servers cannot run here
//! (Loki, Elasticsearch): it parses every request as the real one would
//! receive it (gzip bodies decoded), lets the test decide each answer, and
//! records what it accepted.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// One request as received.
#[derive(Debug, Clone)]
pub struct Request {
    /// `POST`, ...
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body, gunzipped when it came gzip-encoded.
    pub body: Vec<u8>,
}

impl Request {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

type Handler = dyn Fn(usize, &Request) -> (u16, String) + Send + Sync;

/// A running server. See the module docs.
pub struct HttpServer {
    /// Where it listens.
    pub port: u16,
    /// Every request with the status it got, in arrival order.
    pub log: Arc<Mutex<Vec<(Request, u16)>>>,
}

impl HttpServer {
    /// Serve on a free loopback port; `handler(n, request)` answers the
    /// n-th request (from 0) with a status and a body.
    pub fn start(handler: impl Fn(usize, &Request) -> (u16, String) + Send + Sync + 'static) -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let counter = Arc::new(AtomicUsize::new(0));
        let shared = Arc::clone(&log);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (handler, counter, log) = (Arc::clone(&handler), Arc::clone(&counter), Arc::clone(&shared));
                std::thread::spawn(move || serve(conn, &*handler, &counter, &log));
            }
        });
        HttpServer { port, log }
    }

    /// Base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Requests answered with a 2xx.
    pub fn accepted(&self) -> Vec<Request> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, s)| (200..300).contains(s))
            .map(|(r, _)| r.clone())
            .collect()
    }
}

fn serve(conn: TcpStream, handler: &Handler, counter: &AtomicUsize, log: &Mutex<Vec<(Request, u16)>>) {
    let mut writer = conn.try_clone().unwrap();
    let mut reader = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((n, v)) = h.split_once(':') {
                headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if headers.iter().any(|(n, v)| n == "content-encoding" && v == "gzip") {
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut plain).unwrap();
            body = plain;
        }
        let request = Request {
            method,
            path,
            headers,
            body,
        };
        let n = counter.fetch_add(1, Ordering::SeqCst);
        let (status, answer) = handler(n, &request);
        log.lock().unwrap().push((request, status));
        let response = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}",
            answer.len()
        );
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}
