//! sluice's admin HTTP endpoint: `GET /metrics` (Prometheus text, every
//! family of the run's [`Registry`] plus build and process metrics),
//! `GET /health/live` and `GET /health/ready` (JSON, one reason per
//! component), and `POST /reload` (asks the runtime to read its
//! configuration again and answers with the outcome). It runs on a thread and a tokio runtime of its own, so
//! a slow or hostile client costs this thread, never the pipeline's
//! workers; connections are bounded in number and time.
//!
//! This crate reads what components publish in the registry (the stage
//! threads' busy-since and queue gauges, the sinks' breaker and buffer
//! gauges); it must not reach into a component or change the pipeline
//! other than by asking for a reload.

mod exposition;
mod health;
mod process;
mod server;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use sluice_config::AdminConfig;
use sluice_core::reload::ReloadHandle;
use sluice_core::{Registry, Shutdown};

pub use health::{liveness, readiness, Health, STALL_AFTER_SECS};

/// Why the admin endpoint did not start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The address could not be bound (taken, or not ours).
    #[error("admin endpoint: cannot listen on {address}: {source}")]
    Bind {
        /// The configured address.
        address: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Its thread could not be started.
    #[error("admin endpoint: cannot start its thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// What the endpoint reads: the run's metrics and its phase.
#[derive(Debug, Clone)]
pub struct AdminState {
    /// The run's metrics.
    pub registry: Registry,
    /// The run's shutdown signal: once it fires, the run is draining and
    /// not ready.
    pub shutdown: Shutdown,
    /// How long one batch may hold a stage before liveness fails.
    pub stall_after: std::time::Duration,
    /// Set once every source and sink was started.
    started: Arc<AtomicBool>,
    /// Where `POST /reload` goes; `None` when there is no file to reload.
    reload: Option<ReloadHandle>,
}

impl AdminState {
    /// The state of a run that has not started its components yet.
    pub fn new(registry: Registry, shutdown: Shutdown, stall_after: std::time::Duration) -> AdminState {
        AdminState {
            registry,
            shutdown,
            stall_after,
            started: Arc::new(AtomicBool::new(false)),
            reload: None,
        }
    }

    /// Serve `POST /reload` through `handle`.
    pub fn with_reload(mut self, handle: ReloadHandle) -> AdminState {
        self.reload = Some(handle);
        self
    }

    /// Every source and sink is running.
    pub fn mark_started(&self) {
        self.started.store(true, Ordering::Release);
    }

    /// Whether [`AdminState::mark_started`] was called.
    pub fn is_started(&self) -> bool {
        self.started.load(Ordering::Acquire)
    }
}

/// The running endpoint; dropping it stops it.
#[derive(Debug)]
pub struct AdminServer {
    address: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl AdminServer {
    /// The address it listens on (the bound port when `:0` was asked).
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Start the endpoint `cfg` describes; `Ok(None)` when it is disabled.
pub fn start(cfg: &AdminConfig, state: AdminState) -> Result<Option<AdminServer>, AdminError> {
    if !cfg.enabled {
        return Ok(None);
    }
    let listener = std::net::TcpListener::bind(cfg.address).map_err(|source| AdminError::Bind {
        address: cfg.address,
        source,
    })?;
    let address = listener.local_addr().map_err(|source| AdminError::Bind {
        address: cfg.address,
        source,
    })?;
    listener.set_nonblocking(true).map_err(|source| AdminError::Bind {
        address: cfg.address,
        source,
    })?;
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("sluice-admin".into())
        .spawn(move || server::serve(listener, state, stopped))
        .map_err(AdminError::Thread)?;
    Ok(Some(AdminServer {
        address,
        stop: Some(stop),
        thread: Some(thread),
    }))
}
