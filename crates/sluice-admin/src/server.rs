//! The accept loop and the routes. Every limit here protects the pipeline
//! from its admin port: at most [`MAX_CONNECTIONS`] at once (more wait in
//! the kernel's accept queue, costing sluice nothing: accepting and closing
//! them would let a reconnecting client spin this thread), headers within
//! [`HEADER_TIMEOUT`] and
//! [`MAX_HEADER_BYTES`], a connection at most [`CONNECTION_LIFETIME`], and
//! request bodies are never read.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{oneshot, Semaphore};

use crate::{exposition, health, AdminState};

/// Connections served at once; a scraper and two probes need three.
pub const MAX_CONNECTIONS: usize = 64;
/// A client has this long to send its request's headers (slowloris).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a connection lives, however it behaves.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// Largest request head read.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Serve until `stopped` fires (or its sender is dropped).
pub fn serve(listener: std::net::TcpListener, state: AdminState, stopped: oneshot::Receiver<()>) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "admin endpoint: cannot build its runtime");
            return;
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "admin endpoint: cannot register its socket");
                return;
            }
        };
        let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        tokio::pin!(stopped);
        loop {
            let permit = tokio::select! {
                _ = &mut stopped => return,
                permit = permits.clone().acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            let (stream, _) = tokio::select! {
                _ = &mut stopped => return,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors, say: wait, do not spin.
                        tracing::warn!(error = %e, "admin endpoint: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let state = state.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let state = state.clone();
                    async move {
                        if req.uri().path() == "/reload" {
                            return Ok::<_, Infallible>(reload(req.method(), &state).await);
                        }
                        Ok(route(&req, &state))
                    }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .max_buf_size(MAX_HEADER_BYTES)
                    .serve_connection(TokioIo::new(stream), service);
                let _ = tokio::time::timeout(CONNECTION_LIFETIME, conn).await;
                drop(permit);
            });
        }
    });
}

/// The answer to one request.
pub fn route(req: &Request<Incoming>, state: &AdminState) -> Response<Full<Bytes>> {
    let openmetrics = req
        .headers()
        .get(hyper::header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(exposition::wants_openmetrics);
    respond(req.method(), req.uri().path(), openmetrics, state)
}

fn respond(method: &Method, path: &str, openmetrics: bool, state: &AdminState) -> Response<Full<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET and HEAD (and POST /reload)\n".into(),
        );
    }
    match path {
        "/metrics" if openmetrics => {
            let mut r = Response::new(Full::new(Bytes::from(exposition::render_openmetrics(&state.registry))));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            );
            r
        }
        "/metrics" => {
            let mut r = Response::new(Full::new(Bytes::from(exposition::render(&state.registry))));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        "/health/live" => json(health::liveness(state, state.stall_after)),
        "/health/ready" => json(health::readiness(state)),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /metrics, /health/live, /health/ready or POST /reload\n".into(),
        ),
    }
}

/// `POST /reload`: the outcome once the reload is done (applied, or
/// refused with the old pipeline still running). The body is never read.
async fn reload(method: &Method, state: &AdminState) -> Response<Full<Bytes>> {
    if method != Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, "POST /reload\n".into());
    }
    let Some(handle) = &state.reload else {
        return text(
            StatusCode::CONFLICT,
            "no configuration file to reload: sluice runs its embedded default\n".into(),
        );
    };
    let (status, body) = match handle.reload().await {
        Ok(changes) => (
            StatusCode::OK,
            serde_json::json!({"status": "applied", "changes": changes}),
        ),
        Err(error) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            serde_json::json!({"status": "refused", "error": error}),
        ),
    };
    let mut r = Response::new(Full::new(Bytes::from(format!("{body}\n"))));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

fn json(h: health::Health) -> Response<Full<Bytes>> {
    let status = if h.ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut r = Response::new(Full::new(Bytes::from(h.to_json())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}
