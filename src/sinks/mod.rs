//! Audit sinks: for each platform, how a batch of records becomes HTTP calls and what the
//! platform's answers mean (delivered, retry, drop).
//!
//! - Each sink's file holds its configuration ([`config::SinkConfig`]: name, checks, the sink
//!   it builds) and its protocol ([`Sink`]: the calls for a batch, one after another, and what
//!   each answer leads to), with the state that protocol needs (a presigned URL, a token, an
//!   ack id).
//! - [`shipper`] drives any sink the same way; [`delivery`] batches, buffers and retries;
//!   [`outbox`] holds a VM's sinks, what metrics have seen of them and its [`ledger`] entry.
//!   The filter only dispatches the calls the outbox asks for and hands back the answers.
//!
//! A new sink is a file here (its configuration, `SinkConfig` and `Sink`), its `mod` line
//! below, and its field in [`config::AuditConfig`] with its line in `AuditConfig::sinks`.

pub mod azure_monitor;
pub mod config;
pub mod datadog_logs;
pub mod delivery;
pub mod elasticsearch;
pub mod format;
pub mod gzip;
pub mod ledger;
pub mod outbox;
mod parts;
pub mod relay;
pub mod s3;
pub mod shipper;
pub mod splunk_hec;

use delivery::ItemResult;

/// A sink's protocol for one batch. The shipper ([`shipper::Shipper`]) hands a due batch to
/// [`Sink::start`], dispatches the call asked for, hands its answer to [`Sink::on_answer`],
/// and so on until the sink settles the batch. A retried batch starts again.
pub trait Sink {
    /// The first step for `batch`: a new batch, or one retried (then with the same id).
    fn start(&mut self, batch: &Batch<'_>, now_ms: u64) -> Step;
    /// What the answer to the last call asked for means for `batch`, and what comes next.
    fn on_answer(&mut self, answer: Answer<'_>, batch: &Batch<'_>, now_ms: u64) -> Step;
}

/// The batch under way.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    pub records: &'a [QueuedRecord],
    /// The same across retries of the same records (`delivery::Delivery::batch_id`).
    pub id: u64,
}

/// A request for the host to dispatch to an Envoy cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub cluster: String,
    pub request: HttpRequest,
}

/// An answer to a call: status, headers and body; `None` when there was none (timeout,
/// connection failure, unknown cluster).
pub type Answer<'a> = Option<(u16, &'a [(String, String)], &'a [u8])>;

/// What a sink does next with its batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send `call`, not before `at_ms`. `seen` is what the answer just taken said (for logs;
    /// `Delivered` when all is well so far).
    Call {
        call: Call,
        at_ms: u64,
        seen: Outcome,
    },
    /// The whole batch has this outcome (a retry without a time waits for the answer's
    /// `Retry-After`, else the backoff).
    Settle(Outcome),
    /// Each record has its own fate; only `Retry` ones stay, to go again after `after_ms`
    /// (else the answer's `Retry-After`, else the backoff). `seen` as for `Call`.
    SettleEach {
        results: Vec<ItemResult>,
        after_ms: Option<u64>,
        seen: Outcome,
    },
}

impl Step {
    /// Send `call` at once.
    #[inline(never)]
    pub fn call(cluster: &str, request: HttpRequest) -> Step {
        Step::Call {
            call: Call {
                cluster: cluster.to_string(),
                request,
            },
            at_ms: 0,
            seen: Outcome::Delivered,
        }
    }
}

/// A record waiting for delivery: its JSON and its time (some sinks put it in an envelope).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedRecord {
    pub json: String,
    pub epoch_ms: u64,
    /// Set on a `gap` record of this sink's own losses: the lost records it announces.
    /// Delivery keeps track of them until it is delivered (if the gap record is itself
    /// dropped, they are announced again, with it).
    pub gap: Option<Gap>,
    /// Its `chain.seq` (`audit::chain`), so a loss names the sequence range; 0 if unchained.
    pub seq: u64,
}

impl QueuedRecord {
    pub fn new(json: String, epoch_ms: u64) -> QueuedRecord {
        QueuedRecord {
            json,
            epoch_ms,
            gap: None,
            seq: 0,
        }
    }
}

/// Records lost (counted as dropped) and not yet announced by a delivered `gap` record: how
/// many, over which time span (Unix ms of the first and last), and over which sequence numbers
/// of this VM's chain (`from_seq..=to_seq`; both 0 when none is known: records of another
/// chain, or unchained). The range may hold records that were delivered: it spans the losses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    pub dropped: u64,
    pub from_ms: u64,
    pub to_ms: u64,
    pub from_seq: u64,
    pub to_seq: u64,
}

impl Gap {
    /// Its numbers in the order every encoding of a gap has them (the ledger's entries, the
    /// relay's messages and notes): dropped, from_ms, to_ms, from_seq, to_seq.
    pub fn words(self) -> [u64; 5] {
        [
            self.dropped,
            self.from_ms,
            self.to_ms,
            self.from_seq,
            self.to_seq,
        ]
    }

    /// The gap of [`Gap::words`].
    pub fn from_words([dropped, from_ms, to_ms, from_seq, to_seq]: [u64; 5]) -> Gap {
        Gap {
            dropped,
            from_ms,
            to_ms,
            from_seq,
            to_seq,
        }
    }

    /// One record, of time `epoch_ms` and sequence number `seq` (0: none).
    pub fn one(epoch_ms: u64, seq: u64) -> Gap {
        Gap {
            dropped: 1,
            from_ms: epoch_ms,
            to_ms: epoch_ms,
            from_seq: seq,
            to_seq: seq,
        }
    }

    /// Gap records count the records they announce, not themselves: their own sequence
    /// number joins the range when one is lost in its turn.
    pub fn with_seq(self, seq: u64) -> Gap {
        let (from_seq, to_seq) = seq_union((self.from_seq, self.to_seq), (seq, seq));
        Gap {
            from_seq,
            to_seq,
            ..self
        }
    }

    /// The chain its sequence range is in, as the shipper numbers the chains it relays
    /// (`relay::pack_seq`; 0: the VM's own); `None` without a range.
    pub fn chain_key(&self) -> Option<u64> {
        (self.from_seq != 0).then_some(self.from_seq >> relay::SOURCE_SHIFT)
    }

    /// Adds the chain numbers its range is in to `held` (none without a range).
    pub fn chains(&self, held: &mut Vec<u64>) {
        for seq in [self.from_seq, self.to_seq] {
            if seq != 0 {
                held.push(seq >> relay::SOURCE_SHIFT);
            }
        }
    }

    /// Whether the two ranges are in different chains (then they are not merged).
    pub fn other_chain(&self, other: &Gap) -> bool {
        matches!((self.chain_key(), other.chain_key()), (Some(a), Some(b)) if a != b)
    }

    /// This gap and `other` together (the spans cover both).
    pub fn merge(self, other: Gap) -> Gap {
        let (from_seq, to_seq) =
            seq_union((self.from_seq, self.to_seq), (other.from_seq, other.to_seq));
        Gap {
            dropped: self.dropped.saturating_add(other.dropped),
            from_ms: self.from_ms.min(other.from_ms),
            to_ms: self.to_ms.max(other.to_ms),
            from_seq,
            to_seq,
        }
    }

    /// `a` and `b` merged, either possibly absent.
    pub fn union(a: Option<Gap>, b: Option<Gap>) -> Option<Gap> {
        match (a, b) {
            (Some(a), Some(b)) => Some(a.merge(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Two sequence ranges together; `(0, 0)` is no range.
fn seq_union(a: (u64, u64), b: (u64, u64)) -> (u64, u64) {
    match (a.0, b.0) {
        (0, _) => b,
        (_, 0) => a,
        _ => (a.0.min(b.0), a.1.max(b.1)),
    }
}

/// An HTTP request for the host to dispatch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: &'static str,
    pub authority: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What a sink's answer means for the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Try the same batch again later (`after_ms` when the service said how long to wait).
    Retry {
        reason: String,
        after_ms: Option<u64>,
    },
    /// The service will never accept this batch: count it dropped, log the reason once.
    Drop {
        reason: String,
    },
}

/// Bodies at least this long are gzipped for sinks that accept `content-encoding: gzip`
/// (audit records compress about 8:1, and smaller bodies gain nothing).
pub const GZIP_MIN_BYTES: usize = 1024;

/// Gzips the body of a request to a sink that accepts compressed requests.
pub fn compress(mut req: HttpRequest) -> HttpRequest {
    if req.body.len() >= GZIP_MIN_BYTES {
        req.body = gzip::gzip(&req.body);
        req.headers.push(("content-encoding".into(), "gzip".into()));
    }
    req
}

/// Classifies the outcome of a call that got no HTTP answer (timeout, reset, no cluster).
#[inline(never)]
pub fn no_answer() -> Outcome {
    Outcome::Retry {
        reason: "no response (timeout or connection failure)".into(),
        after_ms: None,
    }
}

/// `Retry-After` values are capped to this.
const MAX_RETRY_AFTER_MS: u64 = 3600 * 1000;

/// `Retry-After` in seconds (HTTP dates are ignored), capped at an hour: honoured for every
/// sink's retries.
pub fn retry_after_ms(headers: &[(String, String)]) -> Option<u64> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("retry-after"))
        .and_then(|(_, v)| v.trim().parse::<u64>().ok())
        .map(|s| s.saturating_mul(1000).min(MAX_RETRY_AFTER_MS))
}

/// Keeps error texts from services short and on one line for logs.
pub fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut s: String = text
        .chars()
        .take(200)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > 200 {
        s.push('…');
    }
    s
}

/// Percent-encodes everything but RFC 3986 unreserved characters (paths, queries, forms).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn percent_encoding_keeps_only_unreserved_characters() {
        assert_eq!(percent_encode("aZ09-._~"), "aZ09-._~");
        assert_eq!(percent_encode("a b/c?d=é"), "a%20b%2Fc%3Fd%3D%C3%A9");
        assert_eq!(
            percent_encode("https://monitor.azure.com/.default"),
            "https%3A%2F%2Fmonitor.azure.com%2F.default"
        );
    }

    #[test]
    fn retry_after_is_seconds_capped_at_an_hour() {
        let h = |v: &str| vec![("Retry-After".to_string(), v.to_string())];
        assert_eq!(retry_after_ms(&h(" 7 ")), Some(7_000));
        assert_eq!(retry_after_ms(&h("999999")), Some(MAX_RETRY_AFTER_MS));
        assert_eq!(retry_after_ms(&h("Wed, 21 Oct 2015 07:28:00 GMT")), None);
        assert_eq!(retry_after_ms(&[]), None);
    }
}
