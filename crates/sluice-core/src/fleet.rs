//! The meeting point of a fleet-wide budget: the budget stage leaves this
//! node's report here and reads the other nodes' reports; the Kafka link
//! publishes the one and delivers the others. Only opaque bytes and when
//! they arrived pass through: what a report says belongs to the budget
//! stage, how it travels to the Kafka crate.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// One other node's latest report.
#[derive(Debug, Clone)]
pub struct PeerReport {
    /// The node's id.
    pub node: String,
    /// What it published, when that is new since the last
    /// [`FleetExchange::take_peers`] (the exchange holds a report only
    /// until the budget stage takes it).
    pub payload: Option<Arc<[u8]>>,
    /// When it was published (its Kafka timestamp, the wall clock).
    pub sent: SystemTime,
}

#[derive(Debug, Default)]
struct Inner {
    outgoing: Option<Arc<[u8]>>,
    peers: HashMap<String, PeerReport>,
    /// This node's own latest report read back from the topic (at a start,
    /// what its previous run last published).
    echo: Option<Arc<[u8]>>,
}

/// See the module docs. Cheap to clone; every clone is the same exchange.
#[derive(Debug, Clone)]
pub struct FleetExchange {
    node: Arc<str>,
    inner: Arc<Mutex<Inner>>,
    closed: Arc<AtomicBool>,
    caught_up: Arc<AtomicBool>,
}

impl FleetExchange {
    /// The exchange of node `node`.
    pub fn new(node: &str) -> FleetExchange {
        FleetExchange {
            node: node.into(),
            inner: Arc::default(),
            closed: Arc::default(),
            caught_up: Arc::default(),
        }
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.node
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replace this node's report (the link publishes the latest).
    pub fn set_outgoing(&self, payload: impl Into<Arc<[u8]>>) {
        self.lock().outgoing = Some(payload.into());
    }

    /// This node's latest report, if there is one yet.
    pub fn outgoing(&self) -> Option<Arc<[u8]>> {
        self.lock().outgoing.clone()
    }

    /// A report received from `node`, replacing its previous one; this
    /// node's own (read back from the topic) is kept apart as its echo.
    pub fn receive(&self, node: &str, payload: &[u8], sent: SystemTime) {
        if node == &*self.node {
            self.lock().echo = Some(payload.into());
            return;
        }
        self.lock().peers.insert(
            node.to_string(),
            PeerReport {
                node: node.to_string(),
                payload: Some(payload.into()),
                sent,
            },
        );
    }

    /// The other nodes heard from, by node id, each with its report when
    /// it is new since the last call (taken: the exchange keeps only who
    /// reported when).
    pub fn take_peers(&self) -> Vec<PeerReport> {
        let mut peers: Vec<PeerReport> = self
            .lock()
            .peers
            .values_mut()
            .map(|p| PeerReport {
                node: p.node.clone(),
                payload: p.payload.take(),
                sent: p.sent,
            })
            .collect();
        peers.sort_by(|a, b| a.node.cmp(&b.node));
        peers
    }

    /// Stop holding `node`'s report (until it reports again).
    pub fn forget(&self, node: &str) {
        self.lock().peers.remove(node);
    }

    /// This node's own report read back from the topic since the last
    /// call, if one was.
    pub fn take_echo(&self) -> Option<Arc<[u8]>> {
        self.lock().echo.take()
    }

    /// The link has read every report the topic held when it started
    /// (each node's latest, this node's previous run's included).
    pub fn mark_caught_up(&self) {
        self.caught_up.store(true, Ordering::Release);
    }

    /// Whether [`FleetExchange::mark_caught_up`] was called.
    pub fn is_caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Acquire)
    }

    /// The stage is done: the link stops.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Whether [`FleetExchange::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn keeps_the_latest_report_per_other_node_and_its_own_apart() {
        let x = FleetExchange::new("a");
        let t0 = SystemTime::now();
        x.receive("a", b"mine", t0);
        x.receive("b", b"old", t0);
        x.receive("c", b"c1", t0);
        let t1 = t0 + Duration::from_secs(5);
        x.receive("b", b"new", t1);
        x.forget("c");
        let peers = x.take_peers();
        let got: Vec<(&str, Option<&[u8]>, SystemTime)> = peers
            .iter()
            .map(|p| (p.node.as_str(), p.payload.as_deref(), p.sent))
            .collect();
        assert_eq!(got, [("b", Some(&b"new"[..]), t1)]);
        // Taken: b is still known, its report no longer held.
        let again = x.take_peers();
        assert_eq!((again[0].node.as_str(), again[0].payload.as_deref()), ("b", None));
        assert_eq!(x.take_echo().as_deref(), Some(&b"mine"[..]));
        assert_eq!(x.take_echo(), None);
        x.set_outgoing(b"report".to_vec());
        assert_eq!(x.outgoing().as_deref(), Some(&b"report"[..]));
        assert!(!x.is_closed());
        x.clone().close();
        assert!(x.is_closed());
    }
}
