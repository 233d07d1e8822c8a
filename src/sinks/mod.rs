//! Audit sinks: for each platform, how a batch of records becomes an HTTP request and how the
//! platform's answer is classified (delivered, retry, drop). The delivery engine
//! ([`delivery`]) batches, buffers and retries; the filter only dispatches the requests.

pub mod azure_monitor;
pub mod config;
pub mod datadog_logs;
pub mod delivery;
pub mod elasticsearch;
pub mod gzip;
pub mod ledger;
pub mod s3;
pub mod shipper;
pub mod splunk_hec;

/// A record waiting for delivery: its JSON and its time (some sinks put it in an envelope).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedRecord {
    pub json: String,
    pub epoch_ms: u64,
    /// Set on a `gap` record: the lost records it announces. Delivery keeps track of them
    /// until it is delivered (if the gap record is itself shed, they are announced again).
    pub gap: Option<Gap>,
}

impl QueuedRecord {
    pub fn new(json: String, epoch_ms: u64) -> QueuedRecord {
        QueuedRecord {
            json,
            epoch_ms,
            gap: None,
        }
    }
}

/// Records lost (counted as dropped) and not yet announced by a delivered `gap` record: how
/// many and over which time span (Unix ms of the first and last).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    pub dropped: u64,
    pub from_ms: u64,
    pub to_ms: u64,
}

impl Gap {
    pub fn one(epoch_ms: u64) -> Gap {
        Gap {
            dropped: 1,
            from_ms: epoch_ms,
            to_ms: epoch_ms,
        }
    }

    /// This gap and `other` together (the span covers both).
    pub fn merge(self, other: Gap) -> Gap {
        Gap {
            dropped: self.dropped.saturating_add(other.dropped),
            from_ms: self.from_ms.min(other.from_ms),
            to_ms: self.to_ms.max(other.to_ms),
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
pub fn no_answer() -> Outcome {
    Outcome::Retry {
        reason: "no response (timeout or connection failure)".into(),
        after_ms: None,
    }
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
