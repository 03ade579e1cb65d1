//! The node-level `file` source: finds container log files by glob, decodes
//! CRI and Docker json-file lines (joining partial lines per file and
//! stream), attaches Kubernetes metadata derived once per file from its
//! path, follows rename and copytruncate rotation and deletion without
//! losing or repeating a line, and checkpoints each file's acknowledged
//! offset so a restart resumes exactly after the last delivered line. It
//! must not parse records or decide what to keep: it hands raw lines to the
//! stage chain.

mod batch_builder;
pub mod checkpoint;
pub mod decode;
pub mod k8s;
mod source;
mod tracked;
mod wake;

use std::path::PathBuf;

use sluice_config::FileSourceConfig;
use sluice_core::{SourceContext, SourceError, SourceSummary};
use tokio::task::JoinHandle;

pub use source::Tailer;
pub use tracked::FileId;

/// Start the file source; state lives under `data_dir/checkpoints/<id>.json`.
pub fn spawn(
    ctx: SourceContext,
    cfg: FileSourceConfig,
    data_dir: PathBuf,
) -> JoinHandle<Result<SourceSummary, SourceError>> {
    let id = ctx.id.clone();
    tokio::task::spawn_blocking(move || {
        let setup = |e: std::io::Error| SourceError::Setup {
            id: id.clone(),
            message: format!("checkpoints: {e}"),
        };
        let tailer = Tailer::new(ctx, cfg, data_dir).map_err(setup)?;
        tailer
            .run()
            .map_err(|source| SourceError::Read { id: id.clone(), source })
    })
}
