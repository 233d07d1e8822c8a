//! PROFILING ONLY (cargo feature `callback-timing`, `make wasm-timing`): the time spent inside
//! each callback, read from the host clock at entry and exit and summed per callback, shipped
//! as counters `policy_gateway.timing.<callback>.ns` and `.calls` on every tick (not per call,
//! so the count itself stays out of what is measured). `bench/run.py --timing` reads them.
//! Without the feature a [`Span`] is empty and every call here compiles away.

/// The callbacks timed, in the order of [`NAMES`].
#[derive(Clone, Copy)]
pub enum Callback {
    RequestHeaders,
    RequestBody,
    ResponseHeaders,
    ResponseBody,
    /// The record: the exchange's end, the record built (`Exchange::finish`).
    LogFinish,
    /// The record queued: serialised, chained, handed to the sinks.
    LogEmit,
    /// Batches: serialised for the sink, compressed, dispatched; ledger upkeep.
    Tick,
    CallResponse,
    /// The shipper (main thread): records taken off the queue and queued for the sinks.
    ShipperQueue,
    /// The shipper's ticks and sink answers (batches, gzip, dispatch, ledger upkeep).
    ShipperTick,
}

#[cfg(feature = "callback-timing")]
mod on {
    use std::cell::RefCell;

    use super::Callback;
    use crate::filter::host;

    const NAMES: [&str; 10] = [
        "request_headers",
        "request_body",
        "response_headers",
        "response_body",
        "log_finish",
        "log_emit",
        "tick",
        "call_response",
        "shipper_queue",
        "shipper_tick",
    ];

    #[derive(Default)]
    struct Totals {
        /// Per callback: nanoseconds and calls since the last flush.
        pending: [(u64, u64); 10],
        /// Metric ids (ns, calls), defined at the first flush.
        ids: Option<Vec<(Option<u32>, Option<u32>)>>,
    }

    thread_local! {
        static TOTALS: RefCell<Totals> = RefCell::new(Totals::default());
    }

    /// One timed callback: its time is added when it ends.
    pub struct Span {
        which: Callback,
        start: u64,
    }

    pub fn span(which: Callback) -> Span {
        Span {
            which,
            start: host::now_nanos(),
        }
    }

    impl Drop for Span {
        fn drop(&mut self) {
            let spent = host::now_nanos().saturating_sub(self.start);
            TOTALS.with(|t| {
                if let Some(slot) = t.borrow_mut().pending.get_mut(self.which as usize) {
                    slot.0 += spent;
                    slot.1 += 1;
                }
            });
        }
    }

    /// Adds what was timed since the last flush to the counters.
    pub fn flush() {
        use crate::filter::abi::MetricType;
        TOTALS.with(|t| {
            let mut t = t.borrow_mut();
            let ids = t.ids.get_or_insert_with(|| {
                NAMES
                    .iter()
                    .map(|n| {
                        let def = |suffix: &str| {
                            host::define_metric(
                                MetricType::Counter,
                                &format!("policy_gateway.timing.{n}.{suffix}"),
                            )
                            .ok()
                        };
                        (def("ns"), def("calls"))
                    })
                    .collect()
            });
            let ids = ids.clone();
            for ((ns, calls), (ns_id, calls_id)) in t.pending.iter_mut().zip(ids) {
                crate::filter::metrics::add(ns_id, i64::try_from(*ns).unwrap_or(i64::MAX));
                crate::filter::metrics::add(calls_id, i64::try_from(*calls).unwrap_or(i64::MAX));
                *ns = 0;
                *calls = 0;
            }
        });
    }
}

#[cfg(feature = "callback-timing")]
pub use on::{flush, span};

#[cfg(not(feature = "callback-timing"))]
pub struct Span;

#[cfg(not(feature = "callback-timing"))]
impl Drop for Span {
    #[inline(always)]
    fn drop(&mut self) {}
}

#[cfg(not(feature = "callback-timing"))]
#[inline(always)]
pub fn span(_which: Callback) -> Span {
    Span
}

#[cfg(not(feature = "callback-timing"))]
#[inline(always)]
pub fn flush() {}
