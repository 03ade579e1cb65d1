//! The `kafka` sink. Records are `[key length u32][key][value]`; the value
//! is the event exactly as every other sink writes it (one JSON object), the
//! key the configured field (`service` by default, so one service's events
//! stay in one partition and in order). librdkafka batches, compresses and
//! retries inside a request; the shared driver adds the buffer, the breaker
//! and dead letters around it.

use std::path::Path;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use sluice_config::KafkaSinkConfig;
use sluice_core::encode::write_event;
use sluice_core::{Batch, Field, SinkContext, SinkError, SinkSummary};
use sluice_ship::{run_sink, Encoder, Failure, FailureKind, Frame, SendResult, SinkParts, Transport};
use tokio::task::JoinHandle;

/// Encodes events as keyed records. See the module docs.
pub struct KafkaEncoder {
    key: Option<Field>,
    key_is_service: bool,
}

impl KafkaEncoder {
    /// An encoder keying by `key_field` (a routing field; anything else
    /// means no key).
    pub fn new(key_field: &str) -> KafkaEncoder {
        KafkaEncoder {
            key: Field::from_key(key_field.as_bytes()),
            key_is_service: key_field == "service",
        }
    }
}

impl Encoder for KafkaEncoder {
    fn encode(&mut self, batch: &Batch, frame: &mut Frame) {
        for event in batch.events() {
            let key: &[u8] = if self.key_is_service {
                batch.service(event).unwrap_or(b"")
            } else {
                self.key.and_then(|f| batch.str_field(event, f)).unwrap_or(b"")
            };
            let out = &mut frame.bytes;
            out.extend_from_slice(&(key.len() as u32).to_le_bytes());
            out.extend_from_slice(key);
            write_event(batch, event, out);
            out.pop();
            frame.finish_record();
        }
    }
}

/// Split a record into key and value.
fn split(record: &[u8]) -> (&[u8], &[u8]) {
    let len = record
        .get(..4)
        .map_or(0, |b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize);
    let key = record.get(4..4 + len).unwrap_or(b"");
    let value = record.get(4 + len..).unwrap_or(b"");
    (key, value)
}

/// Produces records. See the module docs.
pub struct KafkaTransport {
    producer: FutureProducer,
    topic: String,
}

impl KafkaTransport {
    /// A producer for the configured brokers.
    pub fn new(cfg: &KafkaSinkConfig) -> Result<KafkaTransport, String> {
        let timeout_ms = cfg.delivery.request_timeout.as_millis().to_string();
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &cfg.brokers)
            .set("enable.idempotence", "true")
            .set("compression.type", cfg.compression.as_str())
            .set("linger.ms", "5")
            .set("batch.size", "1000000")
            .set("message.timeout.ms", &timeout_ms)
            .set("queue.buffering.max.kbytes", "65536");
        for (k, v) in &cfg.options {
            config.set(k, v);
        }
        let producer: FutureProducer = config
            .create()
            .map_err(|e| format!("cannot create the Kafka producer: {e}"))?;
        Ok(KafkaTransport {
            producer,
            topic: cfg.topic.clone(),
        })
    }
}

/// Errors that blame the record itself: retrying cannot help.
fn is_record_error(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidMessage
            | RDKafkaErrorCode::InvalidMessageSize
            | RDKafkaErrorCode::InvalidRecord
    )
}

fn error_code(e: &KafkaError) -> Option<RDKafkaErrorCode> {
    e.rdkafka_error_code()
}

/// What a failed delivery says about the cluster: every one of these is
/// retried, none dead-letters.
fn failure_kind(code: Option<RDKafkaErrorCode>) -> FailureKind {
    use RDKafkaErrorCode as C;
    match code {
        Some(
            C::TopicAuthorizationFailed
            | C::ClusterAuthorizationFailed
            | C::TransactionalIdAuthorizationFailed
            | C::SaslAuthenticationFailed
            | C::Authentication,
        ) => FailureKind::Auth,
        Some(C::UnknownTopicOrPartition | C::UnknownTopic | C::UnknownPartition | C::UnknownTopicId) => {
            FailureKind::Missing
        }
        Some(C::MessageTimedOut | C::RequestTimedOut) => FailureKind::Timeout,
        Some(C::PolicyViolation | C::NotEnoughReplicas | C::NotEnoughReplicasAfterAppend) => FailureKind::Refusing,
        Some(C::ThrottlingQuotaExceeded) => FailureKind::Throttled,
        Some(C::AllBrokersDown | C::BrokerTransportFailure | C::BrokerNotAvailable) => FailureKind::Connection,
        _ => FailureKind::Server,
    }
}

impl Transport for KafkaTransport {
    async fn send(&mut self, records: &[&[u8]]) -> SendResult {
        let mut pending: Vec<(usize, DeliveryFuture)> = Vec::with_capacity(records.len());
        let mut retry = Vec::new();
        let mut rejected = Vec::new();
        let settle = |pending: &mut Vec<(usize, DeliveryFuture)>| {
            let taken = std::mem::take(pending);
            async move {
                let mut failures = Vec::new();
                for (i, fut) in taken {
                    match fut.await {
                        Ok(Ok(_)) => {}
                        Ok(Err((e, _))) => failures.push((i, Some(e))),
                        Err(_canceled) => failures.push((i, None)),
                    }
                }
                failures
            }
        };
        let mut failures = Vec::new();
        for (i, record) in records.iter().enumerate() {
            let (key, value) = split(record);
            loop {
                let mut rec = FutureRecord::to(&self.topic).payload(value);
                if !key.is_empty() {
                    rec = rec.key(key);
                }
                match self.producer.send_result(rec) {
                    Ok(fut) => {
                        pending.push((i, fut));
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        // The local queue is full: wait for what is in flight.
                        failures.extend(settle(&mut pending).await);
                        if pending.is_empty() && failures.len() > records.len() / 2 {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((e, _)) => {
                        failures.push((i, Some(e)));
                        break;
                    }
                }
            }
        }
        failures.extend(settle(&mut pending).await);
        if failures.is_empty() {
            return SendResult::Accepted;
        }
        // The first failure that is not a record's own stands for the rest.
        let mut failure: Option<Failure> = None;
        for (i, e) in failures {
            let code = e.as_ref().and_then(error_code);
            match code {
                Some(code) if is_record_error(code) => rejected.push((i, format!("Kafka: {code}"))),
                _ => {
                    retry.push(i);
                    failure.get_or_insert_with(|| Failure {
                        kind: failure_kind(code),
                        reason: match &e {
                            Some(e) => format!("Kafka topic {}: {e}", self.topic),
                            None => format!("Kafka topic {}: delivery canceled", self.topic),
                        },
                    });
                }
            }
        }
        retry.sort_unstable();
        match failure {
            Some(failure) if rejected.is_empty() && retry.len() == records.len() => SendResult::Failed(Failure {
                reason: format!("no record of {} acknowledged: {}", records.len(), failure.reason),
                ..failure
            }),
            failure => SendResult::Partial {
                retry,
                rejected,
                failure,
            },
        }
    }

    fn describe<'a>(&self, record: &'a [u8]) -> &'a [u8] {
        split(record).1
    }
}

impl Drop for KafkaTransport {
    fn drop(&mut self) {
        // Accepted records were already delivered; this only bounds how long
        // a dropped producer waits for librdkafka's own housekeeping.
        let _ = self.producer.flush(Duration::from_secs(1));
    }
}

/// Start a Kafka sink.
pub fn spawn_sink(
    ctx: SinkContext,
    cfg: KafkaSinkConfig,
    data_dir: &Path,
) -> JoinHandle<Result<SinkSummary, SinkError>> {
    let data_dir = data_dir.to_path_buf();
    tokio::spawn(async move {
        let transport = KafkaTransport::new(&cfg).map_err(|message| SinkError::Setup {
            id: ctx.id.clone(),
            message,
        })?;
        let encoder = KafkaEncoder::new(&cfg.key_field);
        let parts = SinkParts {
            ctx,
            cfg: cfg.delivery,
            data_dir,
        };
        run_sink(parts, encoder, transport).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_carry_the_service_key_and_the_event() {
        let line = br#"{"service":"pay","msg":"ok"}"#;
        let b = Batch::new(
            line.to_vec(),
            vec![sluice_core::Event::unparsed(
                sluice_core::Span::new(0, line.len()),
                0,
                sluice_core::Event::NO_ORIGIN,
            )],
        );
        let mut out = Vec::new();
        sluice_core::Stage::process(
            &mut sluice_parse::ParseStage::new(&sluice_core::Registry::new()),
            b,
            &mut out,
        );
        let b = out.pop().unwrap();
        let mut frame = Frame::default();
        KafkaEncoder::new("service").encode(&b, &mut frame);
        assert_eq!(split(frame.record(0)), (&b"pay"[..], &line[..]));
        let mut frame = Frame::default();
        KafkaEncoder::new("nothing").encode(&b, &mut frame);
        assert_eq!(split(frame.record(0)), (&b""[..], &line[..]));
    }
}
