//! Records handed from the request workers to the audit shipper (issue 16 item 4).
//!
//! Where the host runs a singleton service (Envoy's `envoy.bootstrap.wasm` with `singleton:
//! true`), one VM of this module with root id [`SHIPPER_ROOT_ID`] runs on the main thread and
//! registers the shared queue [`QUEUE`]. Each worker VM chains its records as before (its own
//! chain, `audit::chain`) and enqueues each one as linked; the shipper drains the queue and does
//! the delivery (batches, gzip, calls, retries, gap records, ledger) for every worker. A record
//! enqueued lives in the host, not in the worker's VM, so a worker torn down loses none. Where no
//! VM registered the queue, each worker ships its own records (the fallback).
//!
//! A message is the record's time (`u64`, little-endian milliseconds) then its chained JSON.

/// The root id of the shipper's plugin configuration (the bootstrap extension's `root_id`).
pub const SHIPPER_ROOT_ID: &str = "policy_gateway_shipper";

/// The shipper's queue, resolved by the workers under the shipper's `vm_id` (the filter's:
/// they must be the same, since shared data, and so the ledger, is per `vm_id` too).
pub const QUEUE: &str = "policy_gateway.audit";

/// How a VM's records reach the sinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The singleton shipper: it drains the queue and delivers every worker's records.
    Shipper,
    /// A worker whose records go to the shipper's queue.
    Forwarding,
    /// A worker that ships its own records (no shipper's queue resolved).
    PerWorker,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Shipper => "shipper",
            Mode::Forwarding => "forwarding",
            Mode::PerWorker => "per_worker",
        }
    }
}

/// The queue message of a chained record of time `epoch_ms`.
pub fn encode(epoch_ms: u64, json: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + json.len());
    out.extend_from_slice(&epoch_ms.to_le_bytes());
    out.extend_from_slice(json.as_bytes());
    out
}

/// A message's time and record; `None` for bytes that are not one of ours.
pub fn decode(message: Vec<u8>) -> Option<(u64, String)> {
    let (time, _) = message.split_first_chunk::<8>()?;
    let epoch_ms = u64::from_le_bytes(*time);
    let mut json = message;
    json.drain(..8);
    String::from_utf8(json).ok().map(|j| (epoch_ms, j))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_carries_the_record_and_its_time() {
        let json = r#"{"chain":{"id":"c","seq":3},"record_type":"decision","text":"é"}"#;
        let m = encode(1_764_000_000_123, json);
        assert_eq!(decode(m), Some((1_764_000_000_123, json.to_string())));
    }

    #[test]
    fn bytes_that_are_not_a_message_are_refused() {
        assert_eq!(decode(vec![1, 2, 3]), None, "shorter than the time");
        assert_eq!(
            decode(vec![0, 0, 0, 0, 0, 0, 0, 0, 0xff]),
            None,
            "not UTF-8"
        );
        assert_eq!(decode(vec![0; 8]), Some((0, String::new())));
    }
}
