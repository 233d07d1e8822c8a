//! The harness as the audit sink: the records in the Splunk HEC batches the module sent.

use std::io::Read;

use serde_json::Value;

use crate::abi;
use crate::host::{Answer, Call, Vm};

/// HEC's answer to a good batch.
pub fn hec_success() -> Answer {
    Answer::status(200, br#"{"text":"Success","code":0}"#)
}

/// The events of one HEC batch: gunzipped when sent with `content-encoding: gzip`, then the
/// concatenated JSON envelopes, each one's `event`.
pub fn hec_events(call: &Call) -> Result<Vec<Value>, String> {
    let body = if abi::get(&call.headers, "content-encoding") == Some(b"gzip") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(call.body.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| format!("batch {}: not gzip: {e}", call.token))?;
        out
    } else {
        call.body.clone()
    };
    serde_json::Deserializer::from_slice(&body)
        .into_iter::<Value>()
        .map(|envelope| {
            let mut envelope = envelope.map_err(|e| format!("batch {}: {e}", call.token))?;
            envelope
                .get_mut("event")
                .map(Value::take)
                .ok_or_else(|| format!("batch {}: an envelope without event", call.token))
        })
        .collect()
}

impl Vm {
    /// Every record the sink accepted (answered 2xx), in the order sent.
    pub fn records(&self) -> Result<Vec<Value>, String> {
        let mut out = Vec::new();
        for call in &self.state().calls {
            let accepted = call
                .answer
                .as_ref()
                .and_then(Answer::code)
                .is_some_and(|c| (200..300).contains(&c));
            if accepted && abi::get(&call.headers, ":path") == Some(b"/services/collector/event") {
                out.extend(hec_events(call)?);
            }
        }
        Ok(out)
    }

    /// Ships what is queued (ticks, HEC answers 200) and returns every decision record
    /// accepted so far.
    pub fn shipped_decisions(&mut self) -> Result<Vec<Value>, String> {
        self.ship(1_000, |_| hec_success())
            .map_err(|e| e.to_string())?;
        Ok(self
            .records()?
            .into_iter()
            .filter(|r| r["record_type"] == "decision")
            .collect())
    }
}
