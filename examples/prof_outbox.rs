//! Profiling aid for audit delivery (issue 16 item 4): `prof_outbox <mode> <records>` runs
//! the outbox over `records` copies of the benchmarks' typical decision record, as one VM
//! would, with an in-memory host (shared data, HEC answering 200 to every call), batches of
//! 64. Modes: `per_worker` (the worker chains, queues, writes its ledger per record, and
//! batches, gzips and dispatches on ticks), `forwarding` (the worker chains and encodes the
//! queue message: all a worker does with the shipper), `shipper` (the shipper's side of
//! the same records: decode, queue, ledger, batches). For valgrind: run with N and 2N records
//! and take the difference over N, so set-up cancels out. Host calls themselves (Envoy's
//! shared data, queue, dispatch) are not in the count.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::hint::black_box;

use policy_gateway::sinks::config::AuditConfig;
use policy_gateway::sinks::ledger::Store;
use policy_gateway::sinks::outbox::{Host, Outbox};
use policy_gateway::sinks::{relay, Call};

#[allow(dead_code)]
#[path = "../benches/support/inputs.rs"]
mod inputs;

#[derive(Default)]
struct MemHost {
    data: RefCell<HashMap<String, (Vec<u8>, u32)>>,
    cas: Cell<u32>,
    calls: Cell<u32>,
}

impl Store for MemHost {
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        match self.data.borrow().get(key) {
            Some((v, c)) => (Some(v.clone()), Some(*c)),
            None => (None, None),
        }
    }
    fn set(&self, key: &str, value: &[u8], _cas: Option<u32>) -> bool {
        self.cas.set(self.cas.get() + 1);
        self.data
            .borrow_mut()
            .insert(key.to_string(), (value.to_vec(), self.cas.get()));
        true
    }
}

impl Host for MemHost {
    fn dispatch(&self, call: &Call) -> Result<u32, String> {
        black_box(call.request.body.len());
        self.calls.set(self.calls.get() + 1);
        Ok(self.calls.get())
    }
}

const OK: &[u8] = br#"{"text":"Success","code":0}"#;

fn main() {
    let mode = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "per_worker".into());
    let n: u64 = std::env::args().nth(2).map_or(1000, |s| s.parse().unwrap());
    let config: AuditConfig = serde_json::from_value(serde_json::json!({
        "flush_interval_ms": 1000,
        "splunk_hec": {"cluster": "hec", "authority": "splunk:8088", "token": "t"}
    }))
    .unwrap();
    let record: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&inputs::audit_record()).unwrap();
    let host = MemHost::default();
    let mut out = Outbox::new(&config, "gw", 1, Some(1), 0);
    let mut worker = Outbox::new(&config, "gw", 2, Some(2), 0);
    worker.forward_to_shipper();
    let chain = worker.chain_id().to_string();
    let mut pending = Vec::new();
    let tick = |out: &mut Outbox, now: u64| {
        out.flush(&host, now, true);
        let token = host.calls.get();
        out.on_answer(&host, token, Some((200, &[], OK)), now);
        out.tend(&host, now);
    };
    for i in 0..n {
        let now = 1_000 + i;
        match mode.as_str() {
            "per_worker" => {
                out.push_members(&host, record.clone(), now);
                if i % 64 == 63 {
                    tick(&mut out, now);
                }
            }
            "forwarding" | "shipper" => {
                worker.push_members(&host, record.clone(), now);
                for h in worker.take_forwarded() {
                    let r = h.record;
                    pending.push(relay::encode(r.epoch_ms, &chain, r.seq, &r.json));
                }
                if mode == "forwarding" {
                    black_box(pending.drain(..).count());
                    continue;
                }
                let records = pending.drain(..).filter_map(relay::decode).collect();
                out.relay(&host, records, now);
                if i % 64 == 63 {
                    tick(&mut out, now);
                }
            }
            other => panic!("unknown mode {other}"),
        }
    }
    eprintln!("{mode}: {n} records, {} calls", host.calls.get());
}
