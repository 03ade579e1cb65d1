//! Writes a few JSON log records with tracing-subscriber's JSON formatter to
//! stdout. The output is committed as tests/fixtures/loggers/tracing-json.jsonl.

use std::io;

use tracing::{error, info, info_span, warn};

fn charge() -> io::Result<()> {
    Err(io::Error::new(io::ErrorKind::ConnectionRefused, "charge declined"))
}

fn main() {
    tracing_subscriber::fmt()
        .json()
        .with_file(true)
        .with_line_number(true)
        .with_thread_names(true)
        .with_thread_ids(true)
        .init();

    info!("order placed");
    warn!("stock running low");

    let span = info_span!("checkout");
    let _entered = span.enter();
    info!("order shipped");
    if let Err(err) = charge() {
        error!(error = &err as &dyn std::error::Error, "payment failed");
    }
}
