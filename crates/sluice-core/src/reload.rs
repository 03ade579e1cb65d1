//! The request to reload the configuration, as the admin endpoint and the
//! signal handler send it and the runtime answers it. Only the contract
//! lives here: loading, comparing and applying a configuration belong to
//! the runtime.

use tokio::sync::{mpsc, oneshot};

/// What a reload did: `Ok` with one line per change applied, `Err` with
/// why the new configuration was refused (the old one keeps running).
pub type ReloadOutcome = Result<Vec<String>, String>;

/// One request; `reply` (when someone waits for the outcome) gets it.
#[derive(Debug)]
pub struct ReloadRequest {
    /// Where to send the outcome; `None` for a signal nobody waits on.
    pub reply: Option<oneshot::Sender<ReloadOutcome>>,
}

/// The sending side, cheap to clone.
#[derive(Debug, Clone)]
pub struct ReloadHandle {
    tx: mpsc::Sender<ReloadRequest>,
}

/// The receiving side the runtime owns.
pub type ReloadRequests = mpsc::Receiver<ReloadRequest>;

/// A handle and the requests it sends. Requests beyond a few queued are
/// refused: one reload reads the newest file anyway.
pub fn channel() -> (ReloadHandle, ReloadRequests) {
    let (tx, rx) = mpsc::channel(4);
    (ReloadHandle { tx }, rx)
}

impl ReloadHandle {
    /// Ask for a reload and wait for its outcome.
    pub async fn reload(&self) -> ReloadOutcome {
        let (reply, outcome) = oneshot::channel();
        self.tx
            .try_send(ReloadRequest { reply: Some(reply) })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => {
                    "reloads are already queued; try again when they finish".to_string()
                }
                mpsc::error::TrySendError::Closed(_) => "the pipeline is shutting down".to_string(),
            })?;
        outcome
            .await
            .map_err(|_| "the pipeline shut down before the reload finished".to_string())?
    }

    /// Ask for a reload without waiting (a signal handler); `false` when
    /// it could not be queued.
    pub fn request(&self) -> bool {
        self.tx.try_send(ReloadRequest { reply: None }).is_ok()
    }
}
