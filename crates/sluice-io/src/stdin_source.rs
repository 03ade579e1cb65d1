//! The `stdin` source: lines from standard input until it closes.
//!
//! Reading runs on a blocking thread (as every shipper does for stdin: there
//! is no portable async stdin). It waits for input with `poll(2)` in 100 ms
//! slices so it notices shutdown even when no byte arrives, and it cuts a
//! batch when the buffer is full *or* when no more input is immediately
//! ready, so a trickle of lines is forwarded at once and a flood travels in
//! full batches.

use std::io::Read;
use std::os::fd::AsRawFd;

use tokio::task::JoinHandle;

use crate::framer::FramerCarry;
use crate::{DeliveryLedger, FramerCounters, LineFramer};

/// The start of a line a stopped stdin source read but could not frame
/// yet. Stdin is one per process and outlives a configuration reload: the
/// next stdin source starts from here, so a reload cuts no line in two.
static CARRY: std::sync::Mutex<Option<FramerCarry>> = std::sync::Mutex::new(None);
use sluice_core::{SourceContext, SourceError, SourceSummary};

/// Start the stdin source.
pub fn spawn(ctx: SourceContext) -> JoinHandle<Result<SourceSummary, SourceError>> {
    tokio::spawn(async move {
        let id = ctx.id.clone();
        let reader = tokio::task::spawn_blocking(move || read_loop(ctx));
        let ledger = reader.await.map_err(|e| SourceError::Setup {
            id: id.clone(),
            message: format!("reader thread failed: {e}"),
        })??;
        Ok(ledger.settle().await)
    })
}

/// Wait up to `timeout_ms` for stdin to be readable (or closed).
fn wait_readable(fd: i32, timeout_ms: i32) -> std::io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, count 1; poll does not retain the pointer.
    let r = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    match r {
        0 => Ok(false),
        r if r > 0 => Ok(true),
        _ => {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            }
        }
    }
}

fn read_loop(ctx: SourceContext) -> Result<DeliveryLedger, SourceError> {
    let read_err = |source| SourceError::Read {
        id: ctx.id.clone(),
        source,
    };
    let mut ledger = DeliveryLedger::new(&ctx.registry, &ctx.id);
    let mut framer = LineFramer::new(
        ctx.batch_bytes,
        ctx.max_line_bytes,
        FramerCounters::new(&ctx.registry, &ctx.id),
    );
    if let Some(carry) = CARRY.lock().unwrap_or_else(|p| p.into_inner()).take() {
        framer.resume(carry);
    }
    let stdin = std::io::stdin();
    let fd = stdin.as_raw_fd();
    let mut stdin = stdin.lock();
    let send = |batch, ledger: &mut DeliveryLedger| -> bool {
        let mut batch = batch;
        ledger.attach(&mut batch);
        // Blocks while the chain is full: backpressure reaches the pipe.
        ctx.out.blocking_send(batch).is_ok()
    };
    loop {
        if ctx.shutdown.is_triggered() {
            // Whatever complete lines were read are still delivered; the
            // rest waits for the next stdin source (after a reload).
            if let Some(b) = framer.take_batch(false) {
                send(b, &mut ledger);
            }
            *CARRY.lock().unwrap_or_else(|p| p.into_inner()) = Some(framer.into_carry());
            break;
        }
        if !wait_readable(fd, 0).map_err(read_err)? {
            // Nothing more right now: forward what we have, then wait.
            if let Some(b) = framer.take_batch(false) {
                if !send(b, &mut ledger) {
                    break;
                }
            }
            if !wait_readable(fd, 100).map_err(read_err)? {
                continue;
            }
        }
        let target = framer.read_target(64 * 1024);
        match stdin.read(target) {
            Ok(0) => {
                framer.commit(0);
                if let Some(b) = framer.take_batch(true) {
                    send(b, &mut ledger);
                }
                break;
            }
            Ok(n) => framer.commit(n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => framer.commit(0),
            Err(e) => {
                framer.commit(0);
                return Err(read_err(e));
            }
        }
        if framer.is_full() {
            if let Some(b) = framer.take_batch(false) {
                if !send(b, &mut ledger) {
                    break;
                }
            }
        }
    }
    Ok(ledger)
}
