//! A VM's audit outbox: every configured sink's shipper, the call each has out, what the
//! metrics were last told, and this VM's entry in the ledger (`sinks::ledger`). The filter's
//! root context calls it on each event (a record, a tick, an answer, a stop) through a small
//! [`Host`] (dispatch a call, the shared data), and applies the [`Report`] it returns: metric
//! moves and warnings to log. Every delivery decision is here, host-free.
//!
//! Every record passes through the VM's chain (`audit::chain`) here, before any sink sees it:
//! decision and `policy_change` records as they are pushed, the `gap` records this outbox
//! writes for a sink's losses or a dead VM's, and the signed `checkpoint` records the chain
//! asks for. Every sink receives every chained record (the gap record of one sink's loss
//! included), so each sink's export is the same chain, less what that sink lost.
//!
//! With a shipper (`sinks::relay`) the work splits: a worker's outbox only chains and hands
//! each chained record out ([`Outbox::forward_to_shipper`], [`Outbox::take_forwarded`]), and
//! the shipper's outbox delivers the records of every worker ([`Outbox::relay`]) beside its
//! own chain (its gap records and checkpoints). The ledger stays per VM: a forwarding worker
//! holds nothing undelivered, the shipper holds everything.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::config::AuditConfig;
use super::delivery::Stats;
use super::ledger::{self, Entry, SinkEntry, Store};
use super::relay::{self, Relayed};
use super::shipper::{GapCause, Shipper};
use super::{Answer, Call, Gap, Outcome, QueuedRecord};
use crate::audit::chain::{Chain, Linked};
use crate::audit::time::iso8601_millis;
use crate::audit::{IdGenerator, SCHEMA_VERSION};

/// How often a VM looks for dead VMs' ledgers (and checks that its own was not claimed).
const LEDGER_SCAN_MS: u64 = 1_000;

/// The host, as delivery uses it: its shared data (for the ledger) and its HTTP calls.
pub trait Host: Store {
    /// Dispatches `call`: the token its answer will come back with, or why it could not.
    fn dispatch(&self, call: &Call) -> Result<u32, String>;
}

/// Moves of one sink's metrics: counters (`delivered`, `retried`, `dropped`) and the
/// `buffered_bytes` gauge. Deltas, so that workers sharing a metric sum correctly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub delivered: i64,
    pub retried: i64,
    pub dropped: i64,
    pub buffered_bytes: i64,
}

/// What the host is to apply after an event.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Per sink, in the order of [`Outbox::names`].
    pub sinks: Vec<Counters>,
    /// For `records.dropped`: every sink's drops, and those a dead VM left on a sink this
    /// configuration lacks.
    pub dropped: i64,
    /// Lines to log as warnings.
    pub warnings: Vec<String>,
    /// The VMs whose ledger entries this VM claimed (presumed dead): the host takes over
    /// what they left for the shipper (`relay::pending_key`), then says so
    /// ([`Outbox::finish_claim`]).
    pub claimed: Vec<Claimed>,
}

/// A dead VM whose entry this VM claimed ([`ledger::Claim`]), for the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claimed {
    pub vm: u64,
    /// Take over its records; false: claimers died at them [`ledger::CLAIM_TRIES`] times,
    /// only count them lost.
    pub recover: bool,
    /// Which claimer of the entry this VM is (1: the first).
    pub tries: u64,
}

/// A chained record a forwarding VM hands to the shipper; for a gap record of its own, the
/// sink whose loss it announces (`None`: every sink's) is named, so the shipper tracks the
/// announced loss (`QueuedRecord::gap`) as this VM would have.
#[derive(Debug, Clone)]
pub struct Handed {
    pub record: QueuedRecord,
    pub sink: Option<&'static str>,
}

/// One sink of the VM.
struct Slot {
    shipper: Shipper,
    /// The token of the call out, if one is.
    in_flight: Option<u32>,
    /// The counters as metrics last saw them.
    reported: Stats,
    reported_bytes: i64,
    /// The last reason logged: each is logged once, until delivery works again.
    last_error: Option<String>,
}

/// This VM's place in the ledger.
#[derive(Debug, Default)]
struct VmLedger {
    /// Its number; `None` until registered (the index was contended: retried on tick).
    vm: Option<u64>,
    /// Set by [`Outbox::stop`]: what is left is reported as `vm_stopped` if it never drains.
    stopped: bool,
    last_scan_ms: u64,
    /// Claimed VMs whose gap records the next ledger write holds ([`Entry::adopted`]); that
    /// write takes them.
    adopted: Vec<u64>,
}

pub struct Outbox {
    /// The gateway's instance id.
    gateway: String,
    vm_stale_ms: u64,
    slots: Vec<Slot>,
    ledger: VmLedger,
    chain: Chain,
    /// Ids of the gap records this outbox writes.
    ids: IdGenerator,
    /// Set while this VM's chained records go to the shipper: those not yet handed over.
    forward: Option<Vec<Handed>>,
    /// The shipper's numbers of the chains it relays (`relay::pack_seq`), while it holds
    /// something of them (`Self::prune_sources`), both ways.
    sources: HashMap<u64, String>,
    source_index: HashMap<String, u64>,
    /// Where the search for the next free chain number starts.
    next_source: u64,
}

impl Outbox {
    /// The configured sinks of a VM numbered `vm` in the ledger; `seed` is the VM's, and the
    /// chain starts at `start_ms`.
    pub fn new(
        audit: &AuditConfig,
        gateway: &str,
        seed: u64,
        vm: Option<u64>,
        start_ms: u64,
    ) -> Outbox {
        let limits = audit.limits();
        let slots = audit
            .sinks()
            .into_iter()
            .enumerate()
            .map(|(i, config)| Slot {
                shipper: Shipper::new(config, limits, gateway, seed ^ (i as u64) << 40),
                in_flight: None,
                reported: Stats::default(),
                reported_bytes: 0,
                last_error: None,
            })
            .collect();
        Outbox {
            gateway: gateway.to_string(),
            vm_stale_ms: audit.vm_stale_ms,
            slots,
            ledger: VmLedger {
                vm,
                ..VmLedger::default()
            },
            chain: Chain::new(&audit.trail, gateway, seed, start_ms),
            ids: IdGenerator::new(seed ^ 0x5eed),
            forward: None,
            sources: HashMap::new(),
            source_index: HashMap::new(),
            next_source: 1,
        }
    }

    /// From now on, chained records are handed out ([`Self::take_forwarded`]) for the
    /// shipper instead of being queued for this VM's sinks.
    pub fn forward_to_shipper(&mut self) {
        self.forward.get_or_insert_with(Vec::new);
    }

    pub fn is_forwarding(&self) -> bool {
        self.forward.is_some()
    }

    /// The chained records to hand to the shipper, in chain order.
    pub fn take_forwarded(&mut self) -> Vec<Handed> {
        self.forward
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// The shipper cannot be reached: this VM ships `unsent` (records it could not hand
    /// over, in chain order) and everything after them itself.
    pub fn ship_here(&mut self, host: &impl Host, unsent: Vec<Handed>, now_ms: u64) {
        let mut records = unsent;
        records.extend(self.forward.take().unwrap_or_default());
        for handed in records {
            self.queue_handed(handed);
        }
        self.write_ledger(host, now_ms);
    }

    /// The shipper's intake: records chained by other VMs, queued for every sink, each
    /// with its place in its chain (`relay::pack_seq`), so the gap record of a loss names
    /// the chain and range lost, in this VM's chain.
    ///
    /// A record whose header is not its own place in its chain (`relay::header_matches`) is
    /// refused: counted dropped, and reported in a gap record of cause `relay_mismatch`.
    pub fn relay(&mut self, host: &impl Host, records: Vec<Relayed>, now_ms: u64) -> Report {
        let (records, mismatched): (Vec<_>, Vec<_>) =
            records.into_iter().partition(relay::header_matches);
        let report = self.refuse_relayed(GapCause::RelayMismatch, mismatched.len() as u64, now_ms);
        for mut r in records {
            let announces = r.announces.take();
            // Without a number (every one in use, never in practice) a record's loss is still
            // counted and reported, without its range.
            let source = (r.seq > 0 && !r.chain.is_empty())
                .then(|| self.source(r.chain))
                .flatten();
            let seq = source.map_or(0, |n| relay::pack_seq(n, r.seq));
            // A range the worker named in its own chain is in the relayed chain here.
            let announces = announces.map(|a| {
                let gap = match source {
                    Some(n) if a.gap.from_seq != 0 => Gap {
                        from_seq: relay::pack_seq(n, a.gap.from_seq),
                        to_seq: relay::pack_seq(n, a.gap.to_seq),
                        ..a.gap
                    },
                    _ => Gap {
                        from_seq: 0,
                        to_seq: 0,
                        ..a.gap
                    },
                };
                let sink = a
                    .sink
                    .and_then(|name| self.slots.iter().position(|s| s.shipper.name() == name));
                (sink, gap)
            });
            let record = QueuedRecord {
                json: r.json,
                epoch_ms: r.epoch_ms,
                gap: None,
                seq,
            };
            self.queue_announcing(record, announces);
        }
        self.checkpoint_if_due(now_ms);
        self.write_ledger(host, now_ms);
        report
    }

    /// `n` messages the shipper took off its queue and could not take in (`cause`): counted
    /// dropped on every sink (they were meant for all), and a gap record per sink says how many
    /// and when (their chain and range are unknown, or not to be trusted).
    pub fn refuse_relayed(&mut self, cause: GapCause, n: u64, now_ms: u64) -> Report {
        let mut report = self.report();
        if n == 0 {
            return report;
        }
        report.warnings.push(format!(
            "{n} messages off the audit queue refused ({}): counted dropped, gap record queued",
            cause.name()
        ));
        let gap = Gap {
            dropped: n,
            from_ms: now_ms,
            to_ms: now_ms,
            from_seq: 0,
            to_seq: 0,
        };
        for i in 0..self.slots.len() {
            let Some(sink) = self.slots.get(i).map(|s| s.shipper.name()) else {
                continue;
            };
            let record = GapRecord {
                sink,
                gateway: None,
                cause,
                vm: None,
                gap,
                chain: "",
            };
            self.queue_gap(&record, now_ms, None);
            report.dropped += n as i64;
            if let Some(c) = report.sinks.get_mut(i) {
                c.dropped += n as i64;
            }
        }
        report
    }

    /// Announces what dead VMs of this VM's audit configuration left that no VM could deliver
    /// (`relay::take_orphaned`): per row, a `vm_failed` gap record per sink naming the dead
    /// VM and the range of its chain, tracked by that sink (lost in its turn, it is announced
    /// again). The VM that found them counted them in `records.dropped`; here they count in
    /// each sink's `dropped`, which that VM could not name.
    pub fn adopt_orphaned(&mut self, orphaned: &relay::Orphaned, now_ms: u64) -> Report {
        let mut report = self.report();
        for row in &orphaned.rows {
            if row.gap.dropped == 0 {
                continue;
            }
            report.warnings.push(format!(
                "VM {} left {} records of this audit configuration that no VM could deliver: \
                 gap record queued",
                row.vm, row.gap.dropped
            ));
            let tracked = Gap {
                from_seq: 0,
                to_seq: 0,
                ..row.gap
            };
            for i in 0..self.slots.len() {
                let Some(sink) = self.slots.get(i).map(|s| s.shipper.name()) else {
                    continue;
                };
                let record = GapRecord {
                    sink,
                    gateway: None,
                    cause: GapCause::VmFailed,
                    vm: (row.vm > 0).then_some(row.vm),
                    gap: row.gap,
                    chain: &row.chain,
                };
                self.queue_gap(&record, now_ms, Some((Some(i), tracked)));
                if let Some(c) = report.sinks.get_mut(i) {
                    c.dropped += row.gap.dropped as i64;
                }
            }
        }
        report
    }

    /// The number of a relayed chain (1, 2, …: one per worker chain the shipper holds
    /// records of); `None` when every number is in use.
    fn source(&mut self, chain: String) -> Option<u64> {
        if let Some(n) = self.source_index.get(&chain) {
            return Some(*n);
        }
        let n = relay::free_source(self.next_source, |n| self.sources.contains_key(&n))?;
        self.next_source = n.saturating_add(1);
        self.sources.insert(n, chain.clone());
        self.source_index.insert(chain, n);
        Some(n)
    }

    /// Forgets the numbers of relayed chains the shipper holds nothing of any more (no record,
    /// no loss still to announce), so the list stays as long as the chains in flight and a
    /// number is given again only once nothing refers to its old chain.
    fn prune_sources(&mut self) {
        if self.sources.is_empty() {
            return;
        }
        let mut held = Vec::new();
        for slot in &self.slots {
            slot.shipper.chains_held(&mut held);
        }
        self.sources.retain(|n, _| held.contains(n));
        let sources = &self.sources;
        self.source_index.retain(|_, n| sources.contains_key(n));
    }

    /// The chain a gap's range is in and the range in it: this VM's own chain, or one it
    /// relays. A range over several chains (never made by delivery) is left out.
    fn name_range(&self, gap: Gap) -> (String, Gap) {
        let ((a, from_seq), (b, to_seq)) = (
            relay::unpack_seq(gap.from_seq),
            relay::unpack_seq(gap.to_seq),
        );
        let chain = match (a == b).then_some(a) {
            Some(0) => Some(self.chain.id()),
            Some(n) => self.sources.get(&n).map(String::as_str),
            None => None,
        };
        match chain {
            Some(c) => (
                c.to_string(),
                Gap {
                    from_seq,
                    to_seq,
                    ..gap
                },
            ),
            None => (
                String::new(),
                Gap {
                    from_seq: 0,
                    to_seq: 0,
                    ..gap
                },
            ),
        }
    }

    /// Queues a record for every sink; `announces`: as in [`Self::broadcast`].
    fn queue_announcing(&mut self, record: QueuedRecord, announces: Option<(Option<usize>, Gap)>) {
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let gap = announces
                .filter(|(sink, _)| sink.is_none_or(|s| s == i))
                .map(|(_, gap)| gap);
            slot.shipper.push(QueuedRecord {
                gap,
                ..record.clone()
            });
        }
    }

    /// Queues a record this VM could not hand to the shipper for its own sinks.
    fn queue_handed(&mut self, handed: Handed) {
        let Handed { mut record, sink } = handed;
        let announces = record.gap.take().map(|gap| {
            let named =
                sink.and_then(|name| self.slots.iter().position(|s| s.shipper.name() == name));
            (named, gap)
        });
        self.queue_announcing(record, announces);
    }

    /// This VM's number in the ledger, once registered.
    /// How many sinks have a call out (its answer not in yet).
    pub fn calls_out(&self) -> usize {
        self.slots.iter().filter(|s| s.in_flight.is_some()).count()
    }

    pub fn vm(&self) -> Option<u64> {
        self.ledger.vm
    }

    /// The id of this VM's chain.
    pub fn chain_id(&self) -> &str {
        self.chain.id()
    }

    /// The sinks' names, in the order of [`Report::sinks`].
    pub fn names(&self) -> Vec<&'static str> {
        self.slots.iter().map(|s| s.shipper.name()).collect()
    }

    fn report(&self) -> Report {
        Report {
            sinks: vec![Counters::default(); self.slots.len()],
            ..Report::default()
        }
    }

    /// Chains a record and queues it for every sink, then a checkpoint if one is due. Never
    /// blocks, never fails: a full buffer drops its oldest records and counts them (reported
    /// with the sink's other counters).
    pub fn push(&mut self, host: &impl Host, json: String, epoch_ms: u64) {
        let linked = self.chain.link(&json);
        self.push_linked(host, linked, epoch_ms);
    }

    /// [`Self::push`] for a record given as its members (a decision record: serialised once,
    /// by the chain).
    pub fn push_members(&mut self, host: &impl Host, members: Map<String, Value>, epoch_ms: u64) {
        let linked = self.chain.link_members(members);
        self.push_linked(host, linked, epoch_ms);
    }

    /// [`Self::push`] for a decision record, written once in canonical form by the chain
    /// straight from the struct.
    pub fn push_record(
        &mut self,
        host: &impl Host,
        record: &crate::audit::AuditRecord,
        epoch_ms: u64,
    ) {
        let linked = self.chain.link_record(record);
        self.push_linked(host, linked, epoch_ms);
    }

    fn push_linked(&mut self, host: &impl Host, linked: Linked, epoch_ms: u64) {
        self.broadcast(linked, epoch_ms, None);
        self.checkpoint_if_due(epoch_ms);
        // Forwarded, the record is not this VM's to account for: no ledger write per record.
        if self.forward.is_none() {
            self.write_ledger(host, epoch_ms);
        }
    }

    /// Queues a chained record for every sink. `announces`: the loss it announces, and the
    /// sink that lost it (`None`: every sink), whose delivery then tracks it.
    fn broadcast(
        &mut self,
        linked: Linked,
        epoch_ms: u64,
        announces: Option<(Option<usize>, Gap)>,
    ) {
        let record = QueuedRecord {
            json: linked.json,
            epoch_ms,
            gap: None,
            seq: linked.seq,
        };
        if let Some(forward) = &mut self.forward {
            // The shipper tracks the loss a gap record announces for the sink of the same
            // name, as this VM would have.
            let sink = announces
                .and_then(|(sink, _)| sink)
                .and_then(|i| self.slots.get(i))
                .map(|s| s.shipper.name());
            forward.push(Handed {
                record: QueuedRecord {
                    gap: announces.map(|(_, gap)| gap),
                    ..record
                },
                sink,
            });
            return;
        }
        self.queue_announcing(record, announces);
    }

    /// Chains a gap record and queues it for every sink (`announces`: as in
    /// [`Self::broadcast`]). The record names no gateway of its own when the loss is this
    /// VM's, so callers need not borrow `self` for it.
    fn queue_gap(
        &mut self,
        record: &GapRecord<'_>,
        now_ms: u64,
        announces: Option<(Option<usize>, Gap)>,
    ) {
        let gateway = record.gateway.unwrap_or(&self.gateway);
        let members = record.members(gateway, self.ids.next(now_ms), now_ms);
        let linked = self.chain.link_members(members);
        self.broadcast(linked, now_ms, announces);
    }

    fn checkpoint_if_due(&mut self, now_ms: u64) {
        if self.chain.checkpoint_due(now_ms) {
            if let Some(cp) = self.chain.checkpoint(now_ms, false) {
                self.broadcast(cp, now_ms, None);
            }
        }
    }

    /// The chain's closing checkpoint (a key configured, records since the last one): call
    /// before a stopping VM's last flush.
    pub fn close(&mut self, host: &impl Host, now_ms: u64) {
        if let Some(cp) = self.chain.checkpoint(now_ms, true) {
            self.broadcast(cp, now_ms, None);
            self.write_ledger(host, now_ms);
        }
    }

    /// Chains a gap record for each loss a sink now owes one (delivery works again), queued
    /// for every sink and tracked by the one that lost the records.
    fn announce_owed(&mut self, now_ms: u64) {
        for i in 0..self.slots.len() {
            let Some(slot) = self.slots.get_mut(i) else {
                continue;
            };
            let (sink, owed) = (slot.shipper.name(), slot.shipper.take_owed());
            for (gap, cause) in owed {
                let (chain, named) = self.name_range(gap);
                let record = GapRecord {
                    sink,
                    gateway: None,
                    cause,
                    vm: None,
                    gap: named,
                    chain: &chain,
                };
                self.queue_gap(&record, now_ms, Some((Some(i), gap)));
            }
        }
        self.checkpoint_if_due(now_ms);
    }

    /// Sends every due batch (all of them when `force`).
    pub fn flush(&mut self, host: &impl Host, now_ms: u64, force: bool) -> Report {
        let mut report = self.report();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            slot.dispatch_next(host, now_ms, force, &mut report);
            slot.count(i, &mut report);
        }
        self.announce_owed(now_ms);
        report
    }

    /// Takes the answer to call `token`. A sink with more to send right away (the upload
    /// after its presigned URL, the next part) sends it at once.
    pub fn on_answer(
        &mut self,
        host: &impl Host,
        token: u32,
        answer: Answer<'_>,
        now_ms: u64,
    ) -> Report {
        let mut report = self.report();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if slot.in_flight != Some(token) {
                continue;
            }
            slot.in_flight = None;
            match slot.shipper.on_answer(answer, now_ms) {
                Outcome::Delivered => slot.last_error = None,
                Outcome::Retry { reason, .. } | Outcome::Drop { reason } => {
                    slot.note_error(&reason, &mut report)
                }
            }
            slot.dispatch_next(host, now_ms, false, &mut report);
            slot.count(i, &mut report);
        }
        self.announce_owed(now_ms);
        self.write_ledger(host, now_ms);
        report
    }

    /// Writes this VM's ledger entry: what each sink holds undelivered, as of now. Done
    /// whenever that changes (a record queued, an answer) and on every tick (the heartbeat).
    /// A stopped VM with nothing left takes itself out of the ledger instead.
    fn write_ledger(&mut self, host: &impl Host, now_ms: u64) {
        let Some(vm) = self.ledger.vm else {
            return;
        };
        let entry = Entry {
            vm,
            gateway: self.gateway.clone(),
            chain: self.chain.id().to_string(),
            beat_ms: now_ms,
            stopped: self.ledger.stopped,
            adopted: std::mem::take(&mut self.ledger.adopted),
            sinks: self.slots.iter().flat_map(|s| self.sink_rows(s)).collect(),
        };
        if self.ledger.stopped && entry.is_empty() {
            ledger::retire(host, &[vm]);
            self.ledger.vm = None;
        } else {
            ledger::write(host, &entry);
        }
    }

    /// A sink's rows of the ledger entry. A VM that relays other chains (the shipper) has a
    /// row per chain it holds records of, so whoever reports them lost names each worker
    /// chain's range; its own chain's row carries the drops and gauge bytes.
    fn sink_rows(&self, s: &Slot) -> Vec<SinkEntry> {
        let u = s.shipper.unaccounted();
        let dropped = s.shipper.stats().dropped();
        let mut own = SinkEntry {
            sink: s.shipper.name().to_string(),
            chain: None,
            pending: u.pending,
            unannounced: u.unannounced,
            unreported_dropped: dropped.saturating_sub(s.reported.dropped()),
            gauge_bytes: s.reported_bytes.max(0) as u64,
        };
        if self.sources.is_empty() {
            return vec![own];
        }
        let mut rows = Vec::new();
        own.pending = None;
        for (n, gap) in s.shipper.pending_by_chain() {
            let chain = match n {
                0 => None,
                n => self.sources.get(&n).cloned(),
            };
            match chain {
                Some(chain) => rows.push(SinkEntry {
                    sink: own.sink.clone(),
                    chain: Some(chain),
                    pending: Some(gap),
                    ..SinkEntry::default()
                }),
                None => own.pending = Gap::union(own.pending, Some(gap)),
            }
        }
        rows.insert(0, own);
        rows
    }

    /// On tick: registers if needed, registers again if another VM presumed this one dead,
    /// claims dead VMs' ledgers and reports what they lost, then writes the heartbeat.
    pub fn tend(&mut self, host: &impl Host, now_ms: u64) -> Report {
        let mut report = self.report();
        let stale_ms = self.vm_stale_ms;
        let l = &mut self.ledger;
        if l.vm.is_none() && !l.stopped {
            l.vm = ledger::register(host, &self.gateway, now_ms);
        }
        let mut claimed = Vec::new();
        if let (Some(vm), true) = (
            l.vm,
            now_ms.saturating_sub(l.last_scan_ms) >= LEDGER_SCAN_MS,
        ) {
            l.last_scan_ms = now_ms;
            if let Some(by) = ledger::claimed_by(host, vm) {
                report.warnings.push(format!(
                    "{by} presumed this VM ({vm}) dead (no ledger write for {stale_ms} ms: a \
                     stalled worker?) and reported its undelivered records lost; those still \
                     delivered are then counted twice; registering again"
                ));
                l.vm = ledger::register(host, &self.gateway, now_ms);
            }
            if let Some(vm) = l.vm {
                // The shipper's entry waits as long as its heartbeat does (workers stop
                // forwarding first, so the gap record of its losses is not handed to it).
                let shipper = host
                    .get(relay::BEAT_KEY)
                    .0
                    .and_then(|b| relay::decode_beat(&b))
                    .and_then(|(_, vm)| vm);
                claimed = ledger::claim_dead_by(host, vm, now_ms, |other| {
                    if Some(other) == shipper {
                        relay::shipper_stale_ms(stale_ms)
                    } else {
                        stale_ms
                    }
                });
            }
        }
        for c in claimed.iter().filter(|c| c.adopt) {
            self.adopt(&c.entry, now_ms, &mut report);
            // A forwarding VM's gap records are on their way to the shipper, not in its ledger.
            if self.forward.is_none() {
                self.ledger.adopted.push(c.entry.vm);
            }
        }
        report.claimed = claimed
            .iter()
            .map(|c| Claimed {
                vm: c.entry.vm,
                recover: c.recover,
                tries: c.tries,
            })
            .collect();
        self.announce_owed(now_ms);
        self.prune_sources();
        // The gap records and the VMs they answer for, in one write: a claimer after this one
        // (if this VM dies before its claims say so, or before it has taken the records over)
        // does not write them again.
        self.write_ledger(host, now_ms);
        if let Some(me) = self.ledger.vm {
            for c in claimed.iter().filter(|c| c.adopt) {
                ledger::adopted(host, c.entry.vm, me);
            }
        }
        report
    }

    /// The host has taken over what claimed VM `vm` left for the shipper (or given up on it):
    /// the claim is finished and the VM's entry retired.
    pub fn finish_claim(&self, host: &impl Host, vm: u64) {
        if let Some(me) = self.ledger.vm {
            ledger::finish_claim(host, vm, me);
        }
    }

    /// Reports what a dead VM lost: a gap record per sink, naming the range lost in the dead
    /// VM's chain (in this VM's chain, queued for every sink; tracked by this VM's sink of the
    /// same name, or every sink when it has none), its records counted dropped in both dropped
    /// metrics, and its share of the buffered-bytes gauge taken back.
    fn adopt(&mut self, entry: &Entry, now_ms: u64, report: &mut Report) {
        let cause = entry.cause();
        for lost in entry.lost() {
            let named = self
                .slots
                .iter()
                .position(|s| s.shipper.name() == lost.sink);
            if lost.gap.dropped > 0 {
                report.warnings.push(format!(
                    "VM {} ({}) left {} records undelivered to {}: gap record queued",
                    entry.vm,
                    cause.name(),
                    lost.gap.dropped,
                    lost.sink
                ));
                // A dead shipper's ranges are in chains it alone had numbers for.
                let packed = relay::unpack_seq(lost.gap.from_seq).0 != 0
                    || relay::unpack_seq(lost.gap.to_seq).0 != 0;
                let gap = if packed {
                    Gap {
                        from_seq: 0,
                        to_seq: 0,
                        ..lost.gap
                    }
                } else {
                    lost.gap
                };
                let record = GapRecord {
                    sink: &lost.sink,
                    gateway: Some(&entry.gateway),
                    cause,
                    vm: Some(entry.vm),
                    gap,
                    chain: &lost.chain,
                };
                // Tracked here by count and time only: its sequence range is another chain's.
                let tracked = Gap {
                    from_seq: 0,
                    to_seq: 0,
                    ..lost.gap
                };
                self.queue_gap(&record, now_ms, Some((named, tracked)));
            }
            let dropped = lost.newly_dropped as i64;
            report.dropped += dropped;
            // A sink this configuration lacks has no metrics here: only the global count.
            if let Some(c) = named.and_then(|n| report.sinks.get_mut(n)) {
                c.dropped += dropped;
                c.buffered_bytes -= lost.gauge_bytes as i64;
            }
        }
    }

    /// At a stop (shutdown, reconfiguration): the ledger keeps what is still undelivered,
    /// for whichever VM claims it if this one never drains it.
    /// A forwarding VM's records not yet handed over (the host calls `take_forwarded` first;
    /// any left) are queued for its own sinks, so its ledger holds them.
    pub fn stop(&mut self, host: &impl Host, now_ms: u64) {
        if let Some(unsent) = self.forward.take() {
            for handed in unsent {
                self.queue_handed(handed);
            }
        }
        self.ledger.stopped = true;
        self.write_ledger(host, now_ms);
    }
}

/// A `gap` record: records lost for `cause` by sink `sink` (of this VM, or of VM `vm` of
/// gateway `gateway`), how many, over which time span and which sequence range of `chain`.
struct GapRecord<'a> {
    sink: &'a str,
    /// `None`: this VM's gateway.
    gateway: Option<&'a str>,
    cause: GapCause,
    vm: Option<u64>,
    gap: Gap,
    chain: &'a str,
}

impl GapRecord<'_> {
    fn members(&self, gateway: &str, record_id: String, now_ms: u64) -> Map<String, Value> {
        let mut m = Map::new();
        let g = self.gap;
        m.insert("schema_version".into(), SCHEMA_VERSION.into());
        m.insert("record_type".into(), "gap".into());
        m.insert("record_id".into(), record_id.into());
        m.insert("timestamp".into(), iso8601_millis(now_ms).into());
        m.insert("sink".into(), self.sink.into());
        m.insert("gateway".into(), gateway.into());
        m.insert("cause".into(), self.cause.name().into());
        if let Some(vm) = self.vm {
            m.insert("vm".into(), vm.into());
        }
        m.insert("dropped".into(), g.dropped.into());
        m.insert("from".into(), iso8601_millis(g.from_ms).into());
        m.insert("to".into(), iso8601_millis(g.to_ms).into());
        if g.from_seq > 0 && !self.chain.is_empty() {
            m.insert("lost_chain".into(), self.chain.into());
            m.insert("from_seq".into(), g.from_seq.into());
            m.insert("to_seq".into(), g.to_seq.into());
        }
        m
    }
}

impl Slot {
    /// Dispatches the sink's next call, if one is due and none is out.
    fn dispatch_next(&mut self, host: &impl Host, now_ms: u64, force: bool, report: &mut Report) {
        if self.in_flight.is_some() {
            return;
        }
        let Some(call) = self.shipper.poll(now_ms, force) else {
            return;
        };
        match host.dispatch(&call) {
            Ok(token) => self.in_flight = Some(token),
            Err(status) => {
                let reason = format!("dispatch to cluster \"{}\" failed: {status}", call.cluster);
                self.note_error(&reason, report);
                self.shipper.on_dispatch_failed(now_ms);
            }
        }
    }

    /// Warns of an error once per distinct reason (never the token or the body sent).
    fn note_error(&mut self, reason: &str, report: &mut Report) {
        if self.last_error.as_deref() != Some(reason) {
            report
                .warnings
                .push(format!("sink {}: {reason}", self.shipper.name()));
            self.last_error = Some(reason.to_string());
        }
    }

    /// Adds the counters' moves since the last report to sink `i`'s. Drops come from one
    /// counter (`Stats::dropped`, whatever the cause), for both the sink's and the global
    /// metric.
    fn count(&mut self, i: usize, report: &mut Report) {
        let (s, r) = (self.shipper.stats(), self.reported);
        let dropped = s.dropped().saturating_sub(r.dropped()) as i64;
        let bytes = self.shipper.buffered_bytes() as i64;
        if let Some(c) = report.sinks.get_mut(i) {
            c.delivered += s.delivered.saturating_sub(r.delivered) as i64;
            c.retried += s.retried.saturating_sub(r.retried) as i64;
            c.dropped += dropped;
            c.buffered_bytes += bytes - self.reported_bytes;
        }
        report.dropped += dropped;
        self.reported = s;
        self.reported_bytes = bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::ledger::{claim_key, entry_key, Entry, GONE, INDEX_KEY};
    use crate::sinks::Gap;
    use std::cell::{Cell, RefCell};
    use std::collections::HashMap;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// Shared data as Envoy keeps it (a CAS token per set), and the calls dispatched.
    #[derive(Default)]
    struct FakeHost {
        data: RefCell<HashMap<String, (Vec<u8>, u32)>>,
        cas: Cell<u32>,
        calls: RefCell<Vec<Call>>,
        /// While set, every dispatch fails.
        refuse: Cell<bool>,
    }

    impl Store for FakeHost {
        fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
            match self.data.borrow().get(key) {
                Some((v, cas)) => (Some(v.clone()), Some(*cas)),
                None => (None, None),
            }
        }

        fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
            let mut data = self.data.borrow_mut();
            if let (Some((_, current)), Some(cas)) = (data.get(key), cas) {
                if *current != cas {
                    return false;
                }
            }
            self.cas.set(self.cas.get() + 1);
            data.insert(key.to_string(), (value.to_vec(), self.cas.get()));
            true
        }
    }

    impl Host for FakeHost {
        fn dispatch(&self, call: &Call) -> Result<u32, String> {
            if self.refuse.get() {
                return Err("BadArgument".into());
            }
            self.calls.borrow_mut().push(call.clone());
            Ok(self.calls.borrow().len() as u32)
        }
    }

    impl FakeHost {
        fn call(&self, token: u32) -> Call {
            self.calls.borrow()[token as usize - 1].clone()
        }

        fn entry(&self, vm: u64) -> Vec<u8> {
            self.get(&entry_key(vm)).0.unwrap_or_default()
        }
    }

    fn audit(sinks: serde_json::Value) -> AuditConfig {
        let mut doc = serde_json::json!({"flush_interval_ms": 100});
        for (k, v) in sinks.as_object().unwrap() {
            doc[k] = v.clone();
        }
        serde_json::from_value(doc).unwrap()
    }

    fn hec() -> serde_json::Value {
        serde_json::json!({"cluster": "hec", "authority": "splunk:8088", "token": "t"})
    }

    fn s3() -> serde_json::Value {
        serde_json::json!({"presigner_cluster": "presigner",
            "presigner_authority": "presigner:8080", "s3_cluster": "s3"})
    }

    const OK: &[u8] = br#"{"text":"Success","code":0}"#;

    fn presigned() -> Vec<u8> {
        serde_json::json!({"url": "http://127.0.0.1:9000/audit/k?X-Amz-Signature=ab",
            "headers": {}, "expires_at": 9_999_999_999u64})
        .to_string()
        .into_bytes()
    }

    /// The records of a HEC call, gzipped or not.
    fn hec_events(call: &Call) -> Vec<serde_json::Value> {
        let body = &call.request.body;
        let body = if body.starts_with(&[0x1f, 0x8b]) {
            miniz_oxide::inflate::decompress_to_vec(&body[10..body.len() - 8]).unwrap()
        } else {
            body.clone()
        };
        serde_json::Deserializer::from_slice(&body)
            .into_iter::<serde_json::Value>()
            .map(|e| e.unwrap()["event"].clone())
            .collect()
    }

    /// Registers a VM of gateway `gateway` that then died with `dropped` records pending on
    /// its HEC sink (seqs 1.., chain `dead-chain`, beat at 500 ms).
    fn dead_vm(host: &FakeHost, gateway: &str, dropped: u64) -> u64 {
        let vm = ledger::register(host, gateway, 0).unwrap();
        let pending = Gap {
            dropped,
            from_ms: 100,
            to_ms: 200,
            from_seq: 1,
            to_seq: dropped,
        };
        ledger::write(
            host,
            &Entry {
                vm,
                gateway: gateway.into(),
                chain: "dead-chain".into(),
                beat_ms: 500,
                sinks: vec![SinkEntry {
                    sink: "splunk_hec".into(),
                    pending: Some(pending),
                    ..SinkEntry::default()
                }],
                ..Entry::default()
            },
        );
        vm
    }

    #[test]
    fn a_gap_record_names_the_gateway_of_the_vm_that_lost_the_records() {
        let host = FakeHost::default();
        ledger::ensure_index(&host);
        dead_vm(&host, "gw-old", 2);
        let config = audit(serde_json::json!({"splunk_hec": hec()}));
        let me = ledger::register(&host, "gw", 20_000);
        let mut out = Outbox::new(&config, "gw", 1, me, 0);
        out.tend(&host, 20_000);
        out.refuse_relayed(GapCause::Undecodable, 1, 20_001);
        out.flush(&host, 20_002, true);
        let gaps: Vec<_> = hec_events(&host.call(1))
            .iter()
            .map(|e| (e["cause"].clone(), e["gateway"].clone()))
            .collect();
        use serde_json::json;
        assert_eq!(
            gaps,
            [
                (json!("vm_failed"), json!("gw-old")),
                (json!("undecodable"), json!("gw"))
            ]
        );
    }

    /// VM `dead` died with five records pending; a claimer `c` (forwarding or not) claimed it
    /// and died right after its ledger write, before its claim said it had adopted. Returns
    /// them, the next claimer's report and the `(vm, dropped)` of the gap records it ships.
    fn claimer_dead_before_its_claim_update(
        forwarding: bool,
    ) -> (u64, u64, Report, Vec<(u64, u64)>) {
        let host = FakeHost::default();
        ledger::ensure_index(&host);
        let dead = dead_vm(&host, "gw", 5);
        let config = audit(serde_json::json!({"splunk_hec": hec()}));
        let c = ledger::register(&host, "gw", 20_000).unwrap();
        let mut claimer = Outbox::new(&config, "gw", 1, Some(c), 0);
        if forwarding {
            claimer.forward_to_shipper();
        }
        assert_eq!(claimer.tend(&host, 20_000).dropped, 5);
        // Forwarded, its gap record dies with it (never copied to shared data).
        assert_eq!(claimer.take_forwarded().len(), usize::from(forwarding));
        // The claim as the claimer left it.
        host.set(
            &claim_key(dead),
            format!("vm {c} adopting 1").as_bytes(),
            None,
        );
        let next = ledger::register(&host, "gw", 31_000);
        let mut out = Outbox::new(&config, "gw", 2, next, 0);
        let r = out.tend(&host, 31_000);
        out.flush(&host, 31_001, true);
        let announced = hec_events(&host.call(1))
            .iter()
            .map(|e| (e["vm"].as_u64().unwrap(), e["dropped"].as_u64().unwrap()))
            .collect();
        (dead, c, r, announced)
    }

    /// The claimer's ledger held the gap records: the next claimer announces them once, as
    /// the dead claimer's loss, and does not count the records a second time.
    #[test]
    fn a_claimer_dead_between_its_ledger_write_and_its_claim_update_announces_once() {
        let (dead, c, r, announced) = claimer_dead_before_its_claim_update(false);
        assert_eq!(r.dropped, 0, "counted by the first claimer: {r:?}");
        let mut claimed: Vec<_> = r.claimed.iter().map(|c| c.vm).collect();
        claimed.sort();
        assert_eq!(claimed, [dead, c], "both, to take over what they left");
        assert_eq!(announced, [(c, 5)]);
    }

    /// A forwarding claimer's gap records are not in its ledger: it took them with it, and
    /// the next claimer writes them.
    #[test]
    fn a_forwarding_claimer_dead_before_its_claim_update_leaves_the_gap_to_the_next() {
        let (dead, _, _, announced) = claimer_dead_before_its_claim_update(true);
        assert_eq!(announced, [(dead, 5)]);
    }

    #[test]
    fn answers_go_to_the_sink_that_made_the_call_and_the_next_call_goes_at_once() {
        let host = FakeHost::default();
        let mut out = Outbox::new(
            &audit(serde_json::json!({"splunk_hec": hec(), "s3": s3()})),
            "gw",
            1,
            None,
            0,
        );
        assert_eq!(out.names(), ["splunk_hec", "s3"]);
        out.push(&host, r#"{"i":1}"#.into(), 1_000);
        let r = out.flush(&host, 1_000, true);
        assert_eq!(
            (host.call(1).cluster.as_str(), host.call(2).cluster.as_str()),
            ("hec", "presigner")
        );
        // Every sink holds the record as chained: its canonical form, with `chain`.
        let linked = serde_json::json!({"i": 1, "chain": {"id": out.chain_id(), "seq": 1,
            "prev": crate::audit::chain::GENESIS}});
        let len = crate::audit::chain::canonical(&linked).len() as i64;
        assert_eq!(r.sinks[0].buffered_bytes, len);
        assert_eq!(hec_events(&host.call(1))[0], linked);
        // The presigned URL: the upload goes out with the answer, not at the next tick.
        let r = out.on_answer(&host, 2, Some((200, &[], &presigned())), 1_001);
        assert_eq!(host.call(3).request.method, "PUT");
        assert_eq!(r.sinks, vec![Counters::default(); 2]);
        let r = out.on_answer(&host, 1, Some((200, &[], OK)), 1_002);
        let hec_moves = Counters {
            delivered: 1,
            buffered_bytes: -len,
            ..Counters::default()
        };
        assert_eq!(r.sinks, vec![hec_moves, Counters::default()]);
        let r = out.on_answer(&host, 3, Some((200, &[], b"")), 1_003);
        assert_eq!(r.sinks[1].delivered, 1);
        assert!(r.warnings.is_empty());
        let r = out.on_answer(&host, 3, Some((200, &[], b"")), 1_004);
        assert_eq!(
            r.sinks,
            vec![Counters::default(); 2],
            "an answer counts once"
        );
    }

    /// Two sinks, each sends what it holds and is answered `status` (HEC) / delivered (S3).
    fn round(out: &mut Outbox, host: &FakeHost, now: u64, hec_status: u16) {
        let before = host.calls.borrow().len() as u32;
        out.flush(host, now, true);
        let after = host.calls.borrow().len() as u32;
        for token in before + 1..=after {
            let answer = match host.call(token).cluster.as_str() {
                "hec" if hec_status == 200 => (200, OK.to_vec()),
                "hec" => (
                    hec_status,
                    br#"{"text":"Invalid data format","code":6}"#.to_vec(),
                ),
                "presigner" => (200, presigned()),
                _ => (200, Vec::new()),
            };
            out.on_answer(host, token, Some((answer.0, &[], &answer.1)), now);
        }
        // The S3 upload goes out with the presigner's answer.
        let last = host.calls.borrow().len() as u32;
        for token in after + 1..=last {
            out.on_answer(host, token, Some((200, &[], b"")), now);
        }
    }

    #[test]
    fn an_interval_checkpoint_comes_on_a_tick_with_no_record_after_the_last() {
        let host = FakeHost::default();
        let key = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [9u8; 32]);
        let mut audit = audit(serde_json::json!({"splunk_hec": hec()}));
        audit.trail = serde_json::from_value(serde_json::json!({
            "checkpoint_records": 0, "checkpoint_interval_ms": 1000, "key_id": "k1",
            "hmac_key": key}))
        .unwrap();
        let mut out = Outbox::new(&audit, "gw", 1, None, 0);
        out.push(&host, r#"{"record_type":"decision","n":1}"#.into(), 10);
        out.tend(&host, 999);
        round(&mut out, &host, 999, 200);
        out.tend(&host, 1000);
        round(&mut out, &host, 1000, 200);
        // Nothing linked since: no further checkpoint, however long.
        out.tend(&host, 5000);
        round(&mut out, &host, 5000, 200);
        let types: Vec<(String, u64)> = host
            .calls
            .borrow()
            .iter()
            .flat_map(hec_events)
            .map(|e| {
                (
                    e["record_type"].as_str().unwrap_or("").to_string(),
                    e["chain"]["seq"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            types,
            [("decision".to_string(), 1), ("checkpoint".to_string(), 2)]
        );
    }

    #[test]
    fn a_sinks_loss_is_a_chained_gap_record_every_sink_receives() {
        let host = FakeHost::default();
        let key = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [9u8; 32]);
        let mut audit = audit(serde_json::json!({"splunk_hec": hec(), "s3": s3()}));
        audit.trail = serde_json::from_value(serde_json::json!({
            "checkpoint_records": 3, "key_id": "k1", "hmac_key": key}))
        .unwrap();
        let mut out = Outbox::new(&audit, "gw", 1, None, 0);
        out.push(&host, r#"{"record_type":"decision","n":1}"#.into(), 10);
        out.push(&host, r#"{"record_type":"decision","n":2}"#.into(), 11);
        // HEC rejects the batch (seq 1 and 2); S3 stores it. HEC owes a gap record at once
        // (seq 3), and three records make a checkpoint (seq 4).
        round(&mut out, &host, 20, 400);
        out.push(&host, r#"{"record_type":"decision","n":3}"#.into(), 30);
        round(&mut out, &host, 40, 200);
        round(&mut out, &host, 50, 200);
        let hec: Vec<serde_json::Value> = host
            .calls
            .borrow()
            .iter()
            .filter(|c| c.cluster == "hec")
            .flat_map(hec_events)
            .collect();
        let seqs: Vec<u64> = hec
            .iter()
            .map(|e| e["chain"]["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(
            seqs,
            [1, 2, 3, 4, 5],
            "sent, rejected (1, 2), then the rest"
        );
        let gap = &hec[2];
        assert_eq!(gap["record_type"], "gap");
        assert_eq!(
            (gap["sink"].as_str(), gap["cause"].as_str()),
            (Some("splunk_hec"), Some("rejected"))
        );
        assert_eq!(gap["lost_chain"], out.chain_id());
        assert_eq!(
            (gap["from_seq"].as_u64(), gap["to_seq"].as_u64()),
            (Some(1), Some(2))
        );
        let cp = &hec[3];
        assert_eq!(hec[4]["n"], 3);
        assert_eq!(
            (cp["record_type"].as_str(), cp["records"].as_u64()),
            (Some("checkpoint"), Some(3))
        );
        // Each record's prev is the hash of the one before, whatever sink carried it.
        for pair in hec.windows(2) {
            let h = crate::audit::chain::link_hash(&crate::audit::chain::canonical(&pair[0]));
            assert_eq!(pair[1]["chain"]["prev"], h.as_str());
        }
        // S3 got the gap record too (the chain is one for every sink), and owes none.
        let entry_sinks = out
            .slots
            .iter()
            .map(|s| s.shipper.unaccounted())
            .collect::<Vec<_>>();
        assert!(
            entry_sinks.iter().all(|u| u.unannounced.is_none()),
            "{entry_sinks:?}"
        );
        let mut s3_seqs = Vec::new();
        for c in host
            .calls
            .borrow()
            .iter()
            .filter(|c| c.request.method == "PUT")
        {
            let b = &c.request.body;
            let text = miniz_oxide::inflate::decompress_to_vec(&b[10..b.len() - 8]).unwrap();
            for line in String::from_utf8(text).unwrap().lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                s3_seqs.push(v["chain"]["seq"].as_u64().unwrap());
            }
        }
        assert_eq!(
            s3_seqs,
            [1, 2, 3, 4, 5],
            "S3 lost nothing, and got the gap record too"
        );
    }

    #[test]
    fn a_failed_dispatch_is_retried_and_warned_once_until_delivery_works() {
        let host = FakeHost::default();
        let mut out = Outbox::new(
            &audit(serde_json::json!({"splunk_hec": hec()})),
            "gw",
            1,
            None,
            0,
        );
        out.push(&host, "{}".into(), 0);
        host.refuse.set(true);
        let r = out.flush(&host, 0, true);
        let warning = "sink splunk_hec: dispatch to cluster \"hec\" failed: BadArgument";
        assert_eq!(r.warnings, [warning]);
        assert_eq!((r.sinks[0].retried, r.dropped), (1, 0));
        let r = out.flush(&host, 60_000, false);
        assert!(r.warnings.is_empty(), "the same reason again: not logged");
        assert_eq!(r.sinks[0].retried, 1);
        host.refuse.set(false);
        out.flush(&host, 120_000, false);
        let r = out.on_answer(&host, 1, Some((200, &[], OK)), 120_001);
        assert_eq!(r.sinks[0].delivered, 1);
        out.push(&host, "{}".into(), 120_002);
        host.refuse.set(true);
        assert_eq!(
            out.flush(&host, 120_002, true).warnings,
            [warning],
            "logged again"
        );
    }

    #[test]
    fn a_dead_vms_losses_are_chained_gap_records_naming_its_chain_for_every_sink() {
        let host = FakeHost::default();
        ledger::ensure_index(&host);
        let dead = ledger::register(&host, "gw-old", 0).unwrap();
        let gap = |n| {
            Some(Gap {
                dropped: n,
                from_ms: 100,
                to_ms: 200,
                from_seq: 10,
                to_seq: 9 + n,
            })
        };
        ledger::write(
            &host,
            &Entry {
                vm: dead,
                gateway: "gw-old".into(),
                chain: "dead-chain".into(),
                beat_ms: 500,
                stopped: false,
                adopted: Vec::new(),
                sinks: vec![
                    SinkEntry {
                        sink: "s3".into(),
                        pending: gap(5),
                        gauge_bytes: 300,
                        ..SinkEntry::default()
                    },
                    SinkEntry {
                        sink: "elasticsearch".into(),
                        pending: gap(2),
                        ..SinkEntry::default()
                    },
                ],
            },
        );
        let me = ledger::register(&host, "gw", 20_000);
        let mut out = Outbox::new(
            &audit(serde_json::json!({"splunk_hec": hec(), "s3": s3()})),
            "gw",
            1,
            me,
            0,
        );
        let r = out.tend(&host, 20_000);
        assert_eq!(
            r.warnings,
            [
                format!("VM {dead} (vm_failed) left 5 records undelivered to s3: gap record queued"),
                format!("VM {dead} (vm_failed) left 2 records undelivered to elasticsearch: gap record queued"),
            ]
        );
        assert_eq!(r.dropped, 7, "both count in records.dropped");
        let s3_moves = Counters {
            dropped: 5,
            buffered_bytes: -300,
            ..Counters::default()
        };
        assert_eq!(r.sinks, vec![Counters::default(), s3_moves]);
        // Both gap records are in this VM's chain, so every sink gets both; each names the
        // range lost in the dead VM's chain.
        out.flush(&host, 20_001, true);
        let events = hec_events(&host.call(1));
        assert_eq!(events.len(), 2, "{events:?}");
        for (i, (sink, to_seq)) in [("s3", 14), ("elasticsearch", 11)].iter().enumerate() {
            let e = &events[i];
            assert_eq!(e["record_type"], "gap");
            assert_eq!(
                (e["sink"].as_str(), e["cause"].as_str()),
                (Some(*sink), Some("vm_failed"))
            );
            assert_eq!(e["lost_chain"], "dead-chain");
            assert_eq!(
                (e["from_seq"].as_u64(), e["to_seq"].as_u64()),
                (Some(10), Some(*to_seq))
            );
            assert_eq!(e["chain"]["id"], out.chain_id());
            assert_eq!(e["chain"]["seq"], i as u64 + 1);
        }
        assert_eq!(out.tend(&host, 21_500).warnings.len(), 0, "claimed once");
    }

    #[test]
    fn a_stopped_vm_keeps_its_records_in_the_ledger_until_it_drains_them() {
        let host = FakeHost::default();
        ledger::ensure_index(&host);
        let vm = ledger::register(&host, "gw", 0).unwrap();
        let mut out = Outbox::new(
            &audit(serde_json::json!({"splunk_hec": hec()})),
            "gw",
            1,
            Some(vm),
            0,
        );
        out.push(&host, "{}".into(), 10);
        out.flush(&host, 10, true);
        out.stop(&host, 11);
        let entry = Entry::decode(&host.entry(vm)).unwrap();
        assert!(entry.stopped);
        assert_eq!(entry.sinks[0].pending.map(|p| p.dropped), Some(1));
        out.on_answer(&host, 1, Some((200, &[], OK)), 12);
        assert_eq!(host.entry(vm), GONE, "drained: out of the ledger");
        let index = String::from_utf8(host.get(INDEX_KEY).0.unwrap()).unwrap();
        assert!(
            !index.split(' ').skip(2).any(|n| n == vm.to_string()),
            "{index}"
        );
        assert!(out.tend(&host, 5_000).warnings.is_empty());
        assert_eq!(host.entry(vm), GONE, "a stopped VM does not register again");
    }

    #[test]
    fn a_vm_presumed_dead_says_so_and_registers_again() {
        let host = FakeHost::default();
        ledger::ensure_index(&host);
        let vm = ledger::register(&host, "gw", 0).unwrap();
        let mut out = Outbox::new(
            &audit(serde_json::json!({"splunk_hec": hec()})),
            "gw",
            1,
            Some(vm),
            0,
        );
        host.set(&claim_key(vm), b"vm 9", None);
        let r = out.tend(&host, 5_000);
        assert_eq!(r.warnings.len(), 1);
        assert!(r.warnings[0].starts_with(&format!("vm 9 presumed this VM ({vm}) dead")));
        let again = ledger::register(&host, "gw", 5_001).unwrap();
        assert_eq!(again, vm + 2, "it took the number after {vm}");
    }

    #[test]
    fn forwarded_records_reach_the_shippers_sinks_as_each_worker_chained_them() {
        use crate::sinks::relay;
        let host = FakeHost::default();
        let config = audit(serde_json::json!({"splunk_hec": hec()}));
        let mut workers = [
            Outbox::new(&config, "gw", 1, Some(1), 0),
            Outbox::new(&config, "gw", 2, Some(2), 0),
        ];
        let mut shipper = Outbox::new(&config, "gw", 3, Some(3), 0);
        let mut expected = Vec::new();
        let mut messages = Vec::new();
        for (i, w) in workers.iter_mut().enumerate() {
            w.forward_to_shipper();
            assert!(w.is_forwarding());
            for n in 0..2 {
                w.push(&host, format!(r#"{{"w":{i},"n":{n}}}"#), 1_000 + n);
                expected.push(
                    serde_json::json!({"w": i, "n": n, "chain": {"id": w.chain_id(),
                    "seq": n + 1, "prev": "?"}}),
                );
            }
            let forwarded = w.take_forwarded();
            assert_eq!(
                forwarded.iter().map(|h| h.record.seq).collect::<Vec<_>>(),
                [1, 2]
            );
            assert!(w.take_forwarded().is_empty(), "handed out once");
            let id = w.chain_id().to_string();
            messages.extend(
                forwarded
                    .iter()
                    .map(|h| &h.record)
                    .map(|r| relay::encode(r.epoch_ms, &id, r.seq, &r.json)),
            );
            // Nothing is the worker's to lose: no ledger write per record, and its sinks
            // hold nothing.
            assert!(host.entry(w.ledger.vm.unwrap()).is_empty());
            assert_eq!(w.slots[0].shipper.buffered_bytes(), 0);
        }
        shipper.relay(
            &host,
            messages.into_iter().filter_map(relay::decode).collect(),
            1_010,
        );
        let held = Entry::decode(&host.entry(3)).unwrap();
        assert_eq!(
            held.sinks
                .iter()
                .filter_map(|s| s.pending)
                .map(|g| g.dropped)
                .sum::<u64>(),
            4,
            "the shipper's ledger holds them (a row per worker chain)"
        );
        shipper.flush(&host, 1_010, true);
        let events = hec_events(&host.call(1));
        assert_eq!(events.len(), 4);
        for (got, want) in events.iter().zip(&expected) {
            assert_eq!(got["w"], want["w"]);
            assert_eq!(got["n"], want["n"]);
            assert_eq!(
                got["chain"]["id"], want["chain"]["id"],
                "the worker's chain"
            );
            assert_eq!(got["chain"]["seq"], want["chain"]["seq"]);
        }
        assert_eq!(events[1]["chain"]["prev"], {
            let first = crate::audit::chain::canonical(&events[0]);
            crate::audit::chain::link_hash(&first)
        });
    }

    #[test]
    fn a_worker_that_cannot_reach_the_shipper_ships_what_it_could_not_hand_over() {
        let host = FakeHost::default();
        let mut w = Outbox::new(
            &audit(serde_json::json!({"splunk_hec": hec()})),
            "gw",
            1,
            Some(1),
            0,
        );
        w.forward_to_shipper();
        w.push(&host, r#"{"n":1}"#.into(), 1_000);
        w.push(&host, r#"{"n":2}"#.into(), 1_001);
        let mut unsent = w.take_forwarded();
        let handed_over = unsent.remove(0);
        assert_eq!(handed_over.record.seq, 1);
        w.push(&host, r#"{"n":3}"#.into(), 1_002);
        w.ship_here(&host, unsent, 1_003);
        assert!(!w.is_forwarding());
        w.push(&host, r#"{"n":4}"#.into(), 1_004);
        assert_eq!(
            Entry::decode(&host.entry(1)).unwrap().sinks[0]
                .pending
                .map(|g| g.dropped),
            Some(3)
        );
        w.flush(&host, 1_005, true);
        let seqs: Vec<_> = hec_events(&host.call(1))
            .iter()
            .map(|e| e["chain"]["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs, [2, 3, 4], "in chain order, none twice, none lost");
    }

    #[test]
    fn a_dead_shippers_ledger_waits_for_its_longer_bound_and_its_losses_are_shipped_by_a_worker() {
        use crate::sinks::relay;
        let host = FakeHost::default();
        ledger::ensure_index(&host);
        let config = audit(serde_json::json!({"splunk_hec": hec()}));
        let s = ledger::register(&host, "gw", 0);
        let mut shipper = Outbox::new(&config, "gw", 3, s, 0);
        let w = ledger::register(&host, "gw", 0);
        let mut worker = Outbox::new(&config, "gw", 1, w, 0);
        worker.forward_to_shipper();
        worker.push(&host, r#"{"n":1}"#.into(), 1_000);
        let id = worker.chain_id().to_string();
        let messages = worker
            .take_forwarded()
            .iter()
            .map(|h| &h.record)
            .map(|r| relay::encode(r.epoch_ms, &id, r.seq, &r.json))
            .filter_map(relay::decode)
            .collect();
        shipper.relay(&host, messages, 1_000);
        host.set(relay::BEAT_KEY, &relay::encode_beat(1_000, s), None);
        // vm_stale_ms is 10 s: a stalled worker would be claimed now, a busy main thread not.
        let beat = host.get(relay::BEAT_KEY).0;
        assert!(!relay::shipper_dead(beat.as_deref(), 16_000, 10_000));
        let r = worker.tend(&host, 16_000);
        assert!(r.warnings.is_empty() && r.dropped == 0, "{r:?}");
        // Past three times the bound: the worker stops forwarding, then claims.
        assert!(relay::shipper_dead(beat.as_deref(), 31_000, 10_000));
        let unsent = worker.take_forwarded();
        worker.ship_here(&host, unsent, 31_000);
        let r = worker.tend(&host, 31_000);
        assert_eq!(r.dropped, 1, "{r:?}");
        assert!(
            worker.take_forwarded().is_empty(),
            "not handed to the dead shipper"
        );
        worker.flush(&host, 31_001, true);
        let events = hec_events(&host.call(1));
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0]["record_type"], "gap");
        assert_eq!(events[0]["cause"], "vm_failed");
        assert_eq!(events[0]["dropped"], 1);
        assert_eq!(events[0]["chain"]["id"], worker.chain_id());
        // The shipper's ledger keeps a range per chain it held: the worker's record.
        assert_eq!(events[0]["lost_chain"], id.as_str());
        assert_eq!(
            (events[0]["from_seq"].as_u64(), events[0]["to_seq"].as_u64()),
            (Some(1), Some(1))
        );
    }

    #[test]
    fn records_of_a_dead_vm_no_vm_could_deliver_reach_their_siem_as_a_gap() {
        use crate::sinks::relay;
        let host = FakeHost::default();
        // What a claimer of another configuration noted (the dead VM 7's chain c-7, 41..43).
        let left = relay::Left {
            digest: "theirs",
            message: {
                let mut p = relay::Pending::default();
                for seq in 41..=43 {
                    p.push(1_000 + seq, "c-7", seq, "{}", None);
                }
                p.take()
            },
            records: 3,
        };
        let rows = relay::orphan_rows(7, &left, 5_000);
        assert!(relay::note_orphaned(&host, "theirs", &rows));
        // The next VM of that configuration announces it in its own chain, once.
        let mut out = Outbox::new(
            &audit(serde_json::json!({"splunk_hec": hec()})),
            "gw",
            1,
            None,
            0,
        );
        let orphaned = relay::take_orphaned(&host, "theirs");
        let r = out.adopt_orphaned(&orphaned, 6_000);
        assert_eq!(r.sinks[0].dropped, 3, "counted on the sink, once");
        assert_eq!(
            r.dropped, 0,
            "records.dropped was counted by the VM that found them"
        );
        assert_eq!(r.warnings.len(), 1);
        assert!(relay::take_orphaned(&host, "theirs").rows.is_empty());
        out.flush(&host, 6_001, true);
        let events = hec_events(&host.call(1));
        assert_eq!(events.len(), 1, "{events:?}");
        let gap = &events[0];
        assert_eq!(gap["record_type"], "gap");
        assert_eq!(gap["cause"], "vm_failed");
        assert_eq!(gap["vm"], 7);
        assert_eq!(gap["dropped"], 3);
        assert_eq!(gap["lost_chain"], "c-7");
        assert_eq!(
            (gap["from_seq"].as_u64(), gap["to_seq"].as_u64()),
            (Some(41), Some(43))
        );
        assert_eq!(gap["chain"]["id"], out.chain_id());
    }

    #[test]
    fn the_shippers_ledger_has_a_row_per_chain_it_holds() {
        use crate::sinks::relay;
        let host = FakeHost::default();
        let config = audit(serde_json::json!({"splunk_hec": hec()}));
        let mut shipper = Outbox::new(&config, "gw", 3, Some(3), 0);
        let msg = |chain: &str, seq| {
            let json = format!(r#"{{"chain":{{"id":"{chain}","seq":{seq}}}}}"#);
            relay::encode(1_000 + seq, chain, seq, &json)
        };
        let records = [
            msg("a", 4),
            msg("b", 9),
            msg("a", 5),
            msg("b", 10),
            msg("b", 11),
        ]
        .into_iter()
        .filter_map(relay::decode)
        .collect();
        shipper.relay(&host, records, 1_020);
        let entry = Entry::decode(&host.entry(3)).unwrap();
        let lost: Vec<_> = entry
            .lost()
            .into_iter()
            .map(|l| (l.chain, l.gap.dropped, l.gap.from_seq, l.gap.to_seq))
            .collect();
        assert_eq!(lost, [("a".into(), 2, 4, 5), ("b".into(), 3, 9, 11)]);
    }

    #[test]
    fn a_forwarded_gap_record_lost_by_the_shipper_announces_its_loss_again() {
        use crate::sinks::relay;
        let host = FakeHost::default();
        ledger::ensure_index(&host);
        let dead = ledger::register(&host, "gw", 0).unwrap();
        let lost = Gap {
            dropped: 5,
            from_ms: 100,
            to_ms: 200,
            from_seq: 10,
            to_seq: 14,
        };
        ledger::write(
            &host,
            &Entry {
                vm: dead,
                gateway: "gw".into(),
                chain: "dead-chain".into(),
                beat_ms: 500,
                stopped: false,
                adopted: Vec::new(),
                sinks: vec![SinkEntry {
                    sink: "splunk_hec".into(),
                    pending: Some(lost),
                    ..SinkEntry::default()
                }],
            },
        );
        let config = audit(serde_json::json!({"splunk_hec": hec()}));
        let mut worker = Outbox::new(&config, "gw", 1, ledger::register(&host, "gw", 20_000), 0);
        worker.forward_to_shipper();
        assert_eq!(worker.tend(&host, 20_000).dropped, 5, "counted once, here");
        let id = worker.chain_id().to_string();
        let mut pending = relay::Pending::default();
        for h in worker.take_forwarded() {
            let r = &h.record;
            let announces = r.gap.map(|gap| (h.sink, gap));
            pending.push(r.epoch_ms, &id, r.seq, &r.json, announces);
        }
        let mut drained = relay::Drained::default();
        drained.take_in(pending.take());
        assert_eq!(drained.records.len(), 1, "the gap record");
        let mut shipper = Outbox::new(&config, "gw", 3, Some(50), 0);
        shipper.relay(&host, drained.records, 20_010);
        // HEC refuses the batch holding the worker's gap record, for good.
        shipper.flush(&host, 20_010, true);
        let token = host.calls.borrow().len() as u32;
        let refused = br#"{"text":"Invalid data format","code":6}"#;
        let r = shipper.on_answer(&host, token, Some((400, &[], refused)), 20_011);
        assert_eq!(
            r.dropped, 0,
            "a gap record is no record lost: its loss was counted"
        );
        // Only gap records refused: their losses wait for a delivery to be announced.
        worker.push(&host, r#"{"n":2}"#.into(), 20_012);
        let next: Vec<_> = worker
            .take_forwarded()
            .iter()
            .map(|h| &h.record)
            .filter_map(|r| relay::decode(relay::encode(r.epoch_ms, &id, r.seq, &r.json)))
            .collect();
        shipper.relay(&host, next, 20_012);
        shipper.flush(&host, 20_012, true);
        let token = host.calls.borrow().len() as u32;
        shipper.on_answer(&host, token, Some((200, &[], OK)), 20_013);
        shipper.flush(&host, 20_020, true);
        let events = hec_events(host.calls.borrow().last().unwrap());
        assert_eq!(events.len(), 1, "{events:?}");
        let g = &events[0];
        assert_eq!(
            (g["record_type"].as_str(), g["cause"].as_str()),
            (Some("gap"), Some("rejected"))
        );
        assert_eq!(
            g["dropped"], 5,
            "the dead VM's five records, announced again: {g}"
        );
        assert_eq!(
            (g["lost_chain"].as_str(), g["from_seq"].as_u64()),
            (Some(id.as_str()), Some(1)),
            "and the hole the lost gap record leaves in the worker's chain"
        );
    }

    #[test]
    fn the_shipper_forgets_a_relayed_chain_once_it_holds_nothing_of_it() {
        use crate::sinks::relay;
        let host = FakeHost::default();
        let config = audit(serde_json::json!({"splunk_hec": hec()}));
        let mut shipper = Outbox::new(&config, "gw", 3, Some(3), 0);
        let msg = |chain: &str, seq| {
            let json = format!(r#"{{"chain":{{"id":"{chain}","seq":{seq}}}}}"#);
            relay::decode(relay::encode(1_000 + seq, chain, seq, &json))
        };
        let records = [msg("a", 1), msg("b", 1), msg("c", 1)];
        shipper.relay(&host, records.into_iter().flatten().collect(), 1_010);
        round(&mut shipper, &host, 1_010, 200);
        shipper.relay(&host, msg("b", 2).into_iter().collect(), 1_020);
        shipper.tend(&host, 1_020);
        assert_eq!(
            shipper.sources.len(),
            1,
            "only b, which the shipper still holds a record of, keeps its number"
        );
        // Its ledger still names b's range; a chain seen again gets a number again.
        let entry = Entry::decode(&host.entry(3)).unwrap();
        let lost: Vec<_> = entry.lost().into_iter().map(|l| l.chain).collect();
        assert_eq!(lost, ["b"]);
        shipper.relay(&host, msg("a", 2).into_iter().collect(), 1_030);
        let entry = Entry::decode(&host.entry(3)).unwrap();
        let mut lost: Vec<_> = entry
            .lost()
            .into_iter()
            .map(|l| (l.chain, l.gap.from_seq, l.gap.to_seq))
            .collect();
        lost.sort();
        assert_eq!(lost, [("a".into(), 2, 2), ("b".into(), 2, 2)]);
    }

    #[test]
    fn a_forwarding_vm_stopped_with_records_not_handed_over_keeps_them_in_its_ledger() {
        let host = FakeHost::default();
        let config = audit(serde_json::json!({"splunk_hec": hec()}));
        let mut w = Outbox::new(&config, "gw", 1, Some(1), 0);
        w.forward_to_shipper();
        w.push(&host, r#"{"n":1}"#.into(), 1_000);
        w.stop(&host, 1_001);
        let entry = Entry::decode(&host.entry(1)).unwrap();
        assert!(entry.stopped);
        assert_eq!(entry.sinks[0].pending.map(|g| g.dropped), Some(1));
    }

    #[test]
    fn messages_the_shipper_cannot_take_in_are_counted_dropped_and_reported() {
        use crate::sinks::relay;
        let host = FakeHost::default();
        let config = audit(serde_json::json!({"splunk_hec": hec()}));
        let mut shipper = Outbox::new(&config, "gw", 3, Some(3), 0);
        let own = r#"{"n":1,"chain":{"id":"w","seq":1}}"#;
        let records = [
            relay::encode(1_000, "w", 1, own),
            // A header naming a range the record is not in.
            relay::encode(1_000, "w", 90, r#"{"n":2,"chain":{"id":"w","seq":2}}"#),
        ]
        .into_iter()
        .filter_map(relay::decode)
        .collect();
        let r = shipper.relay(&host, records, 1_000);
        assert_eq!((r.dropped, r.sinks[0].dropped), (1, 1), "{r:?}");
        let r = shipper.refuse_relayed(GapCause::Undecodable, 2, 1_001);
        assert_eq!((r.dropped, r.sinks[0].dropped), (2, 2), "{r:?}");
        assert_eq!(r.warnings.len(), 1);
        shipper.flush(&host, 1_002, true);
        let events = hec_events(&host.call(1));
        let gaps: Vec<_> = events
            .iter()
            .filter(|e| e["record_type"] == "gap")
            .map(|e| (e["cause"].as_str().unwrap(), e["dropped"].as_u64().unwrap()))
            .collect();
        assert_eq!(gaps, [("relay_mismatch", 1), ("undecodable", 2)]);
        let relayed: Vec<_> = events.iter().filter(|e| e.get("n").is_some()).collect();
        assert_eq!(
            relayed.len(),
            1,
            "only the record that is what its header says"
        );
        assert_eq!(relayed[0]["n"], 1);
    }

    #[test]
    fn the_shippers_loss_is_a_gap_record_per_worker_chain_naming_its_range() {
        let host = FakeHost::default();
        let config = audit(serde_json::json!({"splunk_hec": hec()}));
        let mut shipper = Outbox::new(&config, "gw", 3, Some(3), 0);
        let relayed = |chain: &str, seq: u64| Relayed {
            epoch_ms: 1_000 + seq,
            chain: chain.into(),
            seq,
            json: format!(r#"{{"c":"{chain}","s":{seq},"chain":{{"id":"{chain}","seq":{seq}}}}}"#),
            announces: None,
        };
        let batch = vec![
            relayed("A", 4),
            relayed("B", 1),
            relayed("A", 5),
            relayed("B", 2),
        ];
        shipper.relay(&host, batch, 1_010);
        shipper.flush(&host, 1_010, true);
        let refused = br#"{"text":"Invalid data format","code":6}"#;
        shipper.on_answer(&host, 1, Some((400, &[], refused)), 1_011);
        shipper.flush(&host, 1_020, true);
        let events = hec_events(&host.call(2));
        let gaps: Vec<_> = events
            .iter()
            .map(|g| {
                assert_eq!(g["record_type"], "gap");
                assert_eq!(
                    g["chain"]["id"],
                    shipper.chain_id(),
                    "in the shipper's chain"
                );
                let f = |k: &str| g[k].clone();
                (f("lost_chain"), f("from_seq"), f("to_seq"), f("dropped"))
            })
            .collect();
        use serde_json::json;
        assert_eq!(
            gaps,
            [
                (json!("A"), json!(4), json!(5), json!(2)),
                (json!("B"), json!(1), json!(2), json!(2))
            ],
            "one per chain, never a range across two"
        );
    }
}
