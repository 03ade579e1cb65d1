//! The wire format of a node's fleet report: a version byte, then the
//! report in postcard's compact binary form. About 70 bytes a service
//! (JSON took 220), so a node with 10,000 services publishes some 700 KB,
//! within Kafka's 1 MB message default; rates and p travel as `f32`
//! (seven digits, beyond what an estimate holds), spend and clocks as
//! `f64`. A report of another version is unreadable, counted, and its node
//! not counted, never misread.

use serde::{Deserialize, Serialize};

/// The first byte of every report this build writes and reads.
const VERSION: u8 = 2;

/// One node's report, as published (the node id is the message key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Report {
    /// Which run of the node made it (a start picks one at random): a
    /// node tells its previous run's reports from its own.
    pub run: u64,
    /// The node's budget clock when it reported.
    pub clock: f64,
    /// Per ledger key.
    pub services: Vec<ServiceReport>,
}

/// One ledger's figures in a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ServiceReport {
    /// The ledger key (service, and env/namespace where ledgers are split).
    pub key: String,
    /// The start of its current window (the budget clock's seconds).
    pub window_start: f64,
    /// Bytes kept in that window.
    pub spent: f64,
    /// Must-keep (error, slow) bytes per second offered.
    pub must_rate: f32,
    /// Normal bytes per second offered.
    pub normal_rate: f32,
    /// Must-keep events per second offered.
    pub must_events: f32,
    /// Normal events per second offered.
    pub normal_events: f32,
    /// The node's keep-probability of normal events.
    pub p: f32,
    /// The window it closed last: start and final spend. A node whose
    /// clock is still in that window counts this spend, not the new
    /// window's: without it a node a little behind the others ignored
    /// their spend from their midnight to its own and overspent by it.
    pub closed: Option<(f64, f64)>,
}

/// A report that could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReportError {
    #[error("empty report")]
    Empty,
    #[error("report format version {0}, this build reads {VERSION}")]
    Version(u8),
    #[error("damaged report: {0}")]
    Damaged(#[from] postcard::Error),
}

/// The bytes to publish.
pub(crate) fn encode(report: &Report) -> Vec<u8> {
    let mut out = vec![VERSION];
    // Writing to a growable buffer fails only on allocation failure.
    out.extend(postcard::to_stdvec(report).unwrap_or_default());
    out
}

/// A published report read back.
pub(crate) fn decode(bytes: &[u8]) -> Result<Report, ReportError> {
    match bytes.split_first() {
        None => Err(ReportError::Empty),
        Some((&VERSION, rest)) => Ok(postcard::from_bytes(rest)?),
        Some((&v, _)) => Err(ReportError::Version(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(key: &str, closed: Option<(f64, f64)>) -> ServiceReport {
        ServiceReport {
            key: key.into(),
            window_start: 1_764_028_800.0,
            spent: 123_456_789.5,
            must_rate: 1_234.5,
            normal_rate: 98_765.25,
            must_events: 3.5,
            normal_events: 410.75,
            p: 0.0625,
            closed,
        }
    }

    #[test]
    fn a_report_reads_back_as_written_and_stays_small() {
        let report = Report {
            run: u64::MAX - 7,
            clock: 1_764_070_000.25,
            services: vec![
                service("checkout", None),
                service("search\u{1f}staging", Some((1_763_942_400.0, 9.0e9))),
            ],
        };
        let bytes = encode(&report);
        assert_eq!(decode(&bytes).unwrap(), report);
        // 10,000 services of 20-byte keys fit Kafka's 1 MB default.
        let many = Report {
            run: 1,
            clock: 0.0,
            services: (0..10_000)
                .map(|i| service(&format!("service-{i:012}"), None))
                .collect(),
        };
        let size = encode(&many).len();
        assert!(size < 1_000_000, "{size}");
    }

    #[test]
    fn another_version_or_damage_is_an_error_never_a_misreading() {
        let bytes = encode(&Report {
            run: 1,
            clock: 2.0,
            services: vec![service("a", None)],
        });
        assert!(matches!(decode(&[]), Err(ReportError::Empty)));
        let mut other = bytes.clone();
        other[0] = b'{';
        assert!(matches!(decode(&other), Err(ReportError::Version(b'{'))));
        for cut in 1..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }
}
