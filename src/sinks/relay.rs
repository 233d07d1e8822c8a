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
//! A message is a version byte ([`VERSION`]: a module upgraded through LDS runs new worker code
//! beside the old bootstrap shipper, which must refuse what it cannot read), the record's time and its place in its chain (`u64`s, little-endian: epoch
//! milliseconds, `chain.seq`), the chain id's length (one byte) and the id, then the chained
//! JSON: the shipper learns which chain and range a lost record was in without parsing it.
//!
//! A worker hands its records over [`RECORDS_PER_MESSAGE`] at a time, in one message of kind
//! [`BATCH`] (each record's message inside, length-prefixed): Envoy wakes the shipper's thread
//! once per message, and that wake-up, not the work, was most of the shipper's cost. Until a
//! batch is handed over, the worker keeps a copy of each record in shared data ([`pending_key`]
//! of its ledger number and the record's place in the batch), set in the callback that chained
//! the record: shared data outlives the VM,
//! and whoever claims a dead VM's ledger entry hands what it left there over. So a worker VM
//! that dies still loses no record it finished.
//!
//! The shipper numbers the chains it relays (1, 2, …; 0 is its own) and keeps a relayed
//! record's sequence number as [`pack_seq`] of both, so a loss (`sinks::Gap`) stays within one
//! chain and its gap record names that chain and range, as a worker's own gap record would.

use super::ledger::Store;
use super::Gap;

/// The root id of the shipper's plugin configuration (the bootstrap extension's `root_id`).
pub const SHIPPER_ROOT_ID: &str = "policy_gateway_shipper";

/// The message format's version, its first byte.
pub const VERSION: u8 = 1;

/// The first byte of a message holding several records' messages, each after its length
/// (`u32`, little-endian).
pub const BATCH: u8 = 2;

/// Records a worker puts in one message (fewer when its tick, a stop or a takeover comes
/// first).
pub const RECORDS_PER_MESSAGE: usize = 16;

/// The shared-data key of the record in place `slot` (0 to [`RECORDS_PER_MESSAGE`] − 1) of
/// the batch worker VM `vm` (its ledger number) has not handed over yet, as a copy
/// ([`encode_copy`]) of the record's message (empty: none). One key per record, so a worker
/// writes only the record it just chained under the host's shared-data lock, not the whole
/// batch so far (BENCHMARKS.md, "The shipper's cost per record").
pub fn pending_key(vm: u64, slot: usize) -> String {
    format!("policy_gateway.pending.{vm}.{slot}")
}

/// Every [`pending_key`] of VM `vm`: a claimer reads them all (the records' chain order is
/// in their messages).
pub fn pending_keys(vm: u64) -> Vec<String> {
    (0..RECORDS_PER_MESSAGE)
        .map(|slot| pending_key(vm, slot))
        .collect()
}

/// A copy in shared data of records not handed over yet: the audit digest
/// ([`audit_digest`]) of the VM that wrote it (its length, one byte, then the digest), then
/// the message. A VM that claims the writer's ledger entry delivers the records only through a
/// configuration with that digest: its own sinks would be another SIEM, or other credentials.
pub fn encode_copy(digest: Option<&str>, message: &[u8]) -> Vec<u8> {
    let digest = digest.filter(|d| d.len() <= 255).unwrap_or("");
    let mut out = Vec::with_capacity(1 + digest.len() + message.len());
    out.push(digest.len() as u8);
    out.extend_from_slice(digest.as_bytes());
    out.extend_from_slice(message);
    out
}

/// (digest, message) of a copy ([`encode_copy`]); `None` for bytes that are not one.
pub fn decode_copy(value: &[u8]) -> Option<(&str, &[u8])> {
    let (len, rest) = value.split_first()?;
    let (digest, message) = rest.split_at_checked(usize::from(*len))?;
    Some((std::str::from_utf8(digest).ok()?, message))
}

/// Where a VM that claimed a dead VM's entry sends what that VM left
/// ([`recover_left`]'s `hand`): the records' message, how many records, and the digest of
/// the configuration they belong to.
pub struct Left<'a> {
    pub digest: &'a str,
    pub message: Vec<u8>,
    pub records: usize,
}

/// Where the records a dead VM left go ([`route_left`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// This VM's audit configuration: to its queue (forwarding) or its sinks.
    Here,
    /// The live shipper's, not this VM's: to the shipper's queue.
    Shipper,
    /// No configuration reachable from here delivers them: reported lost, sent nowhere.
    Lost,
}

/// Where records of audit configuration `left` go from a VM of configuration `own`, with a
/// shipper that published `shipper` (none: no queue resolved) and is alive or not. Never to
/// this VM's sinks unless `left` is its configuration: they would reach another SIEM, or go
/// with other credentials, and the right one would show no gap.
pub fn route_left(
    own: Option<&str>,
    left: &str,
    shipper: Option<&[u8]>,
    shipper_alive: bool,
) -> Route {
    if !left.is_empty() && own == Some(left) {
        Route::Here
    } else if !left.is_empty()
        && shipper_alive
        && handover(Some(left), shipper) == Handover::Forward
    {
        Route::Shipper
    } else {
        Route::Lost
    }
}

/// Hands what a dead VM left under `keys` (its copies, [`encode_copy`]) to `hand`, one message
/// per audit digest, then clears each copy with the compare-and-swap token of the read: a VM
/// presumed dead that is alive and wrote a newer copy in between keeps it (and hands it over
/// itself: some records twice, none lost). A copy that is not of this format is handed as
/// the digest "" (no configuration has it).
pub fn recover_left(store: &impl Store, keys: &[String], mut hand: impl FnMut(Left<'_>)) {
    let mut read = Vec::new();
    for key in keys {
        if let (Some(value), cas) = store.get(key) {
            if !value.is_empty() {
                read.push((key, value, cas));
            }
        }
    }
    let mut by_digest: Vec<(&str, Vec<Vec<u8>>, usize)> = Vec::new();
    for (_, value, _) in &read {
        let (digest, message) = decode_copy(value).unwrap_or(("", value));
        let (messages, broken) = unbatch(message.to_vec());
        let at = match by_digest.iter().position(|(d, _, _)| *d == digest) {
            Some(at) => at,
            None => {
                by_digest.push((digest, Vec::new(), 0));
                by_digest.len() - 1
            }
        };
        if let Some((_, all, unsplit)) = by_digest.get_mut(at) {
            all.extend(messages);
            *unsplit += broken;
        }
    }
    for (digest, messages, unsplit) in by_digest {
        // The chain's order, whichever copy a record was in; unreadable ones last.
        // Each key decoded once; `crate::sort`, not a standard sort compiled for this alone.
        let mut keyed: Vec<(u64, Vec<u8>)> = messages
            .into_iter()
            .map(|m| (decode(m.clone()).map_or(u64::MAX, |r| r.seq), m))
            .collect();
        crate::sort::sort_by(&mut keyed, &|a, b| a.0.cmp(&b.0));
        let records = keyed.len() + unsplit;
        let mut message = vec![BATCH];
        for (_, m) in keyed {
            let len = u32::try_from(m.len()).unwrap_or(u32::MAX);
            message.extend_from_slice(&len.to_le_bytes());
            message.extend_from_slice(&m);
        }
        if unsplit > 0 {
            // A length past the end: the receiver counts what could not be split.
            message.extend_from_slice(&u32::MAX.to_le_bytes());
        }
        hand(Left {
            digest,
            message,
            records,
        });
    }
    for (key, _, cas) in read {
        store.set(key, b"", cas);
    }
}

/// The shared-data key of what dead VMs of audit configuration `digest` left that no VM could
/// deliver ([`Route::Lost`]): an [`Orphaned`], counts and chain ranges, not the records. A VM
/// of that configuration (its shipper, or a worker) takes it on its tick and turns it into gap
/// records in its own chain, so the SIEM the records were meant for shows the loss at the end
/// of the dead VM's chain. One key per configuration that lost records this way; a
/// configuration that never comes back leaves its key (at most [`ORPHANED_ROWS`] rows) for
/// the life of the Envoy process.
pub fn orphaned_key(digest: &str) -> String {
    format!("policy_gateway.orphaned.{digest}")
}

/// Rows an [`Orphaned`] keeps (a row per dead VM and chain); past it, the losses are merged
/// into one row without a chain or range (count and time span only), so the value stays small
/// however many VMs die before a VM of the configuration reads it.
pub const ORPHANED_ROWS: usize = 32;

/// What one dead VM lost of one chain (`chain` empty: records whose chain is unknown, or the
/// overflow row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrphanRow {
    pub vm: u64,
    pub chain: String,
    pub gap: Gap,
}

/// The losses waiting under an [`orphaned_key`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Orphaned {
    pub rows: Vec<OrphanRow>,
}

impl Orphaned {
    /// Adds a loss: to its VM's and chain's row, else a new row, else (full) the overflow row.
    pub fn add(&mut self, row: OrphanRow) {
        if let Some(r) = self
            .rows
            .iter_mut()
            .find(|r| r.vm == row.vm && r.chain == row.chain)
        {
            r.gap = r.gap.merge(row.gap);
            return;
        }
        if self.rows.len() < ORPHANED_ROWS {
            self.rows.push(row);
            return;
        }
        let unranged = Gap {
            from_seq: 0,
            to_seq: 0,
            ..row.gap
        };
        match self
            .rows
            .iter_mut()
            .find(|r| r.vm == 0 && r.chain.is_empty())
        {
            Some(r) => {
                r.gap = Gap {
                    from_seq: 0,
                    to_seq: 0,
                    ..r.gap.merge(unranged)
                }
            }
            None => {
                // Make room: the last row joins the overflow row with the new loss.
                if let Some(last) = self.rows.pop() {
                    let merged = Gap {
                        from_seq: 0,
                        to_seq: 0,
                        ..last.gap.merge(unranged)
                    };
                    self.rows.push(OrphanRow {
                        vm: 0,
                        chain: String::new(),
                        gap: merged,
                    });
                }
            }
        }
    }

    /// Lines of `vm chain dropped from_ms to_ms from_seq to_seq` (`-`: no chain).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = String::new();
        for r in &self.rows {
            let chain = if r.chain.is_empty() || r.chain.contains([' ', '\n']) {
                "-"
            } else {
                &r.chain
            };
            let [dropped, from_ms, to_ms, from_seq, to_seq] = r.gap.words();
            out.push_str(&format!(
                "{} {chain} {dropped} {from_ms} {to_ms} {from_seq} {to_seq}\n",
                r.vm
            ));
        }
        out.into_bytes()
    }

    /// The rows of a value ([`Orphaned::encode`]); lines that are not one are skipped.
    pub fn decode(bytes: &[u8]) -> Orphaned {
        let text = String::from_utf8_lossy(bytes);
        let rows = text
            .lines()
            .filter_map(|line| {
                let mut w = line.split(' ');
                let vm = w.next()?.parse().ok()?;
                let chain = match w.next()? {
                    "-" => String::new(),
                    c => c.to_string(),
                };
                let mut n = [0u64; 5];
                for x in &mut n {
                    *x = w.next()?.parse().ok()?;
                }
                Some(OrphanRow {
                    vm,
                    chain,
                    gap: Gap::from_words(n),
                })
            })
            .collect();
        Orphaned { rows }
    }
}

/// What the records of a [`Left`] message are, per chain: how many, their time span and
/// sequence range (records that cannot be read count in a row without a chain, at `now_ms`).
pub fn orphan_rows(vm: u64, left: &Left<'_>, now_ms: u64) -> Vec<OrphanRow> {
    let mut d = Drained::default();
    d.take_in(left.message.clone());
    let mut rows: Vec<OrphanRow> = Vec::new();
    let mut add = |chain: &str, gap: Gap| match rows.iter_mut().find(|r| r.chain == chain) {
        Some(r) => r.gap = r.gap.merge(gap),
        None => rows.push(OrphanRow {
            vm,
            chain: chain.to_string(),
            gap,
        }),
    };
    for r in &d.records {
        // A relayed gap record announces a loss of its own: announced again with it.
        let mut gap = Gap::one(r.epoch_ms, r.seq);
        if let Some(a) = &r.announces {
            gap = gap.merge(Gap {
                from_seq: 0,
                to_seq: 0,
                ..a.gap
            });
        }
        add(&r.chain, gap);
    }
    let unread = left.records.saturating_sub(d.records.len());
    if unread > 0 {
        add(
            "",
            Gap {
                dropped: unread as u64,
                from_ms: now_ms,
                to_ms: now_ms,
                from_seq: 0,
                to_seq: 0,
            },
        );
    }
    rows
}

/// Compare-and-swap attempts at an [`orphaned_key`] before giving up (workers racing).
const ORPHANED_TRIES: usize = 16;

/// Adds `rows` to what configuration `digest` has to announce ([`orphaned_key`]). False when
/// the key stayed contended (the caller logs the loss; it is counted already).
pub fn note_orphaned(store: &impl Store, digest: &str, rows: &[OrphanRow]) -> bool {
    if digest.is_empty() || rows.is_empty() {
        return rows.is_empty();
    }
    let key = orphaned_key(digest);
    for _ in 0..ORPHANED_TRIES {
        let (value, cas) = store.get(&key);
        if cas.is_none() {
            // The host has no create-if-absent: create it empty, then add by compare-and-swap.
            store.set(&key, b"", None);
            continue;
        }
        let mut orphaned = Orphaned::decode(&value.unwrap_or_default());
        for r in rows {
            orphaned.add(r.clone());
        }
        if store.set(&key, &orphaned.encode(), cas) {
            return true;
        }
    }
    false
}

/// Takes what configuration `digest` has to announce, leaving the key empty (compare-and-swap:
/// two VMs of the configuration never both take the same rows).
pub fn take_orphaned(store: &impl Store, digest: &str) -> Orphaned {
    let key = orphaned_key(digest);
    for _ in 0..ORPHANED_TRIES {
        let (Some(value), cas @ Some(_)) = store.get(&key) else {
            return Orphaned::default();
        };
        if value.is_empty() {
            return Orphaned::default();
        }
        if store.set(&key, b"", cas) {
            return Orphaned::decode(&value);
        }
    }
    Orphaned::default()
}

/// What a dead VM left under `keys`, counted per audit digest and cleared, without taking
/// the records in: for a VM whose claimers died at its records ([`super::ledger::CLAIM_TRIES`]).
pub fn discard_left(store: &impl Store, keys: &[String]) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for key in keys {
        let (Some(value), cas) = store.get(key) else {
            continue;
        };
        if value.is_empty() {
            continue;
        }
        let (digest, message) = decode_copy(&value).unwrap_or(("", &value));
        let (messages, broken) = unbatch(message.to_vec());
        let n = messages.len() + broken;
        match out.iter_mut().find(|(d, _)| d == digest) {
            Some((_, count)) => *count += n,
            None => out.push((digest.to_string(), n)),
        }
        store.set(key, b"", cas);
    }
    out
}

/// The first byte of a record's message that carries what the record (a worker's gap record)
/// announces, before the record's own message: the sink (its name's length, one byte, 0: every
/// sink, then the name) and the loss (`u64`s, little-endian: dropped, from and to epoch ms,
/// from and to seq in the record's own chain, 0 when the range is another chain's). The
/// shipper tracks it as the worker would have: if the gap record is lost, the loss it
/// announced is announced again.
pub const ANNOUNCING: u8 = 3;

/// What a relayed gap record announces: the sink whose loss it is (`None`: every sink's) and
/// the loss.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    pub sink: Option<String>,
    pub gap: Gap,
}

/// The queue message of a record that announces a loss ([`ANNOUNCING`]), or of any other.
pub fn encode_announcing(
    epoch_ms: u64,
    chain: &str,
    seq: u64,
    json: &str,
    announces: Option<(Option<&str>, Gap)>,
) -> Vec<u8> {
    let Some((sink, g)) = announces else {
        return encode(epoch_ms, chain, seq, json);
    };
    let sink = sink.filter(|s| s.len() <= 255).unwrap_or("");
    let mut out = vec![ANNOUNCING, sink.len() as u8];
    out.extend_from_slice(sink.as_bytes());
    for n in g.words() {
        out.extend_from_slice(&n.to_le_bytes());
    }
    out.extend_from_slice(&encode(epoch_ms, chain, seq, json));
    out
}

/// The records a worker has not handed over yet, as their [`BATCH`] message.
#[derive(Debug, Default)]
pub struct Pending {
    message: Vec<u8>,
    count: usize,
    /// Where the last record's message starts in `message`.
    last: usize,
}

impl Pending {
    pub fn push(
        &mut self,
        epoch_ms: u64,
        chain: &str,
        seq: u64,
        json: &str,
        announces: Option<(Option<&str>, Gap)>,
    ) {
        if self.message.is_empty() {
            self.message.push(BATCH);
        }
        let one = encode_announcing(epoch_ms, chain, seq, json, announces);
        let len = u32::try_from(one.len()).unwrap_or(u32::MAX);
        self.message.extend_from_slice(&len.to_le_bytes());
        self.last = self.message.len();
        self.message.extend_from_slice(&one);
        self.count += 1;
    }

    /// The last record's own message (what its [`pending_key`] copy holds).
    pub fn last(&self) -> &[u8] {
        self.message.get(self.last..).unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn message(&self) -> &[u8] {
        &self.message
    }

    /// The message, leaving none pending.
    pub fn take(&mut self) -> Vec<u8> {
        self.count = 0;
        self.last = 0;
        std::mem::take(&mut self.message)
    }
}

/// The records' messages a message carries: itself, or those inside a [`BATCH`]; and how
/// many it could not split (a length past its end: the rest of the batch).
pub fn unbatch(message: Vec<u8>) -> (Vec<Vec<u8>>, usize) {
    let Some((&BATCH, mut rest)) = message.split_first() else {
        return (vec![message], 0);
    };
    let mut out = Vec::new();
    while !rest.is_empty() {
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            return (out, 1);
        };
        let len = usize::try_from(u32::from_le_bytes(*len)).unwrap_or(usize::MAX);
        let Some((one, tail)) = (tail.len() >= len).then(|| tail.split_at(len)) else {
            return (out, 1);
        };
        out.push(one.to_vec());
        rest = tail;
    }
    (out, 0)
}

/// The shipper's queue, resolved by the workers under the shipper's `vm_id` (the filter's:
/// they must be the same, since shared data, and so the ledger, is per `vm_id` too).
pub const QUEUE: &str = "policy_gateway.audit";

/// The shared-data key (shared data is per `vm_id`, like the queue) under which the shipper
/// publishes [`audit_digest`] of its configuration before it registers the queue.
pub const AUDIT_DIGEST_KEY: &str = "policy_gateway.shipper.audit_digest";

/// The hand-over format a worker writes and a shipper reads (messages of kinds [`VERSION`],
/// [`BATCH`], [`ANNOUNCING`]), part of [`audit_digest`]'s input: a module upgraded through LDS
/// runs new workers beside the old bootstrap shipper, and a worker must not hand a shipper
/// messages it cannot read (it would count a whole batch as one undecodable message).
pub const HANDOVER_FORMAT: u8 = 2;

/// A digest of what decides where and how a VM's records are delivered: the `audit` section
/// and `instance_id` of a plugin configuration (keys sorted, so the same configuration
/// written in another order has the same digest), and the hand-over format
/// ([`HANDOVER_FORMAT`]). The shipper delivers with its own configuration, so a worker hands
/// its records over only when the two digests are equal (another module's shipper: the
/// worker ships its own); `None` for bytes that are not a JSON object.
pub fn audit_digest(plugin_configuration: &[u8]) -> Option<String> {
    let doc: serde_json::Value = serde_json::from_slice(plugin_configuration).ok()?;
    let doc = doc.as_object()?;
    let mut relevant = serde_json::Map::new();
    for key in ["audit", "instance_id"] {
        relevant.insert(
            key.into(),
            doc.get(key).cloned().unwrap_or(serde_json::Value::Null),
        );
    }
    relevant.insert("handover_format".into(), HANDOVER_FORMAT.into());
    let canonical = serde_json::to_vec(&serde_json::Value::Object(relevant)).unwrap_or_default();
    Some(crate::sha256::hex_digest(&canonical))
}

/// What a worker that found the shipper's queue does with its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handover {
    /// The shipper delivers with this worker's audit configuration: hand records over.
    Forward,
    /// It delivers with another one (or published none): this worker ships its own.
    ConfigMismatch,
}

/// Whether a worker with audit configuration digest `own` hands its records to a shipper
/// that published `published` under [`AUDIT_DIGEST_KEY`].
pub fn handover(own: Option<&str>, published: Option<&[u8]>) -> Handover {
    match (own, published) {
        (Some(own), Some(published)) if own.as_bytes() == published => Handover::Forward,
        _ => Handover::ConfigMismatch,
    }
}

/// The shared-data key of the shipper's heartbeat ([`encode_beat`]), written on each of its
/// ticks: workers that see it stale stop handing records over (`shipper_dead`).
pub const BEAT_KEY: &str = "policy_gateway.shipper.beat";

/// How long the shipper's heartbeat may stand still before workers presume it dead: three
/// times a worker's (`audit.vm_stale_ms`), since it runs on Envoy's main thread, which other
/// work (configuration updates, DNS, admin) can keep busy for a while. A shipper presumed
/// dead while only busy loses nothing (the workers drain its queue), but what it still held
/// is reported lost by a worker, and then perhaps delivered too.
pub fn shipper_stale_ms(vm_stale_ms: u64) -> u64 {
    vm_stale_ms.saturating_mul(3)
}

/// The heartbeat's value: when the shipper last ticked (Unix ms) and its number in the
/// ledger (`sinks::ledger`), if it has one.
pub fn encode_beat(now_ms: u64, vm: Option<u64>) -> Vec<u8> {
    match vm {
        Some(vm) => format!("{now_ms} {vm}"),
        None => format!("{now_ms} -"),
    }
    .into_bytes()
}

/// (time, ledger number) of a heartbeat value.
pub fn decode_beat(value: &[u8]) -> Option<(u64, Option<u64>)> {
    let (ms, vm) = std::str::from_utf8(value).ok()?.split_once(' ')?;
    let vm = match vm {
        "-" => None,
        n => Some(n.parse().ok()?),
    };
    Some((ms.parse().ok()?, vm))
}

/// Whether a worker is to presume the shipper dead: its heartbeat `beat` (none: never
/// published, or not ours) stood still for [`shipper_stale_ms`].
pub fn shipper_dead(beat: Option<&[u8]>, now_ms: u64, vm_stale_ms: u64) -> bool {
    match beat.and_then(decode_beat) {
        Some((ms, _)) => now_ms.saturating_sub(ms) >= shipper_stale_ms(vm_stale_ms),
        None => true,
    }
}

/// The bits of a packed sequence number below the chain's number.
pub const SOURCE_SHIFT: u32 = 40;

/// The highest chain number a packed sequence number holds.
pub const MAX_SOURCE: u64 = (1 << (64 - SOURCE_SHIFT)) - 1;

/// The first chain number from `next` on (wrapping past [`MAX_SOURCE`] to 1) that is not
/// `taken`; `None` when all are.
pub fn free_source(next: u64, taken: impl Fn(u64) -> bool) -> Option<u64> {
    free_number(next, MAX_SOURCE, taken)
}

fn free_number(next: u64, max: u64, taken: impl Fn(u64) -> bool) -> Option<u64> {
    let start = if (1..=max).contains(&next) { next } else { 1 };
    (start..=max).chain(1..start).find(|n| !taken(*n))
}

/// A relayed record's sequence number: chain number `source` and `seq` in that chain.
pub fn pack_seq(source: u64, seq: u64) -> u64 {
    source << SOURCE_SHIFT | (seq & ((1 << SOURCE_SHIFT) - 1))
}

/// (chain number, sequence number in that chain) of a packed sequence number.
pub fn unpack_seq(packed: u64) -> (u64, u64) {
    (packed >> SOURCE_SHIFT, packed & ((1 << SOURCE_SHIFT) - 1))
}

/// A record as the shipper takes it off the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relayed {
    pub epoch_ms: u64,
    pub chain: String,
    pub seq: u64,
    pub json: String,
    pub announces: Option<Announce>,
}

/// The shipper stops taking messages off the queue in one callback once it has this many
/// records or more (a message is taken whole: up to `DRAIN_CHUNK + RECORDS_PER_MESSAGE - 1`;
/// the rest on the next wake-up or tick): the main thread the shipper runs on serves
/// Envoy's other work too, and the host's queue is unbounded.
pub const DRAIN_CHUNK: usize = 256;

/// Wake-ups the shipper lets pass before it drains the queue (and on every tick it drains
/// it whatever the count).
///
/// Envoy posts one `on_queue_ready` to the main thread per message enqueued, so a drain per
/// wake-up is a drain per message (up to [`RECORDS_PER_MESSAGE`] records), each with its ledger
/// write and flush; one in four drains 64 records or so at once. Letting wake-ups pass
/// costs no guarantee: a message not yet taken stays in the host's queue, which outlives a
/// worker VM and is drained by the workers if the shipper dies; what a drain takes is in the
/// shipper's ledger before the callback that took it returns. It delays a record by up to one
/// shipper tick, on top of the worker tick its batch may wait for (`audit.flush_interval_ms`,
/// at most 200 ms each), well inside a batch's age.
pub const WAKES_PER_DRAIN: u32 = 4;

/// Counts the shipper's wake-ups between drains ([`WAKES_PER_DRAIN`]).
#[derive(Debug, Default)]
pub struct WakePacer {
    since_drain: u32,
}

impl WakePacer {
    /// A wake-up: whether to drain now.
    pub fn wake(&mut self) -> bool {
        self.since_drain = self.since_drain.saturating_add(1);
        self.since_drain >= WAKES_PER_DRAIN
    }

    /// The queue was drained (a wake-up that said so, or a tick): count from zero.
    pub fn drained(&mut self) {
        self.since_drain = 0;
    }
}

/// What one drain took off the queue.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Drained {
    pub records: Vec<Relayed>,
    /// Messages that were not records of this format.
    pub undecodable: usize,
    /// Whether it stopped at `max`, with messages perhaps left.
    pub capped: bool,
}

/// Takes messages from `next` (the host's dequeue) and decodes them, until it has `max`
/// records (undecodable ones counted) or the queue is empty.
pub fn drain(mut next: impl FnMut() -> Option<Vec<u8>>, max: usize) -> Drained {
    let mut out = Drained::default();
    while out.records.len() + out.undecodable < max {
        let Some(message) = next() else {
            return out;
        };
        out.take_in(message);
    }
    out.capped = true;
    out
}

impl Drained {
    /// Decodes one message (a record's, or a [`BATCH`]) into this drain.
    pub fn take_in(&mut self, message: Vec<u8>) {
        let (messages, broken) = unbatch(message);
        self.undecodable += broken;
        for m in messages {
            match decode(m) {
                Some(r) => self.records.push(r),
                None => self.undecodable += 1,
            }
        }
    }
}

/// Whether a relayed record is what its message's header says: the record's own `chain.id`
/// and `chain.seq` (none for a record chained without a trail) are the header's. The shipper
/// names chains and ranges in gap records from the header, so it takes in no record whose
/// header another module's message could have made up.
///
/// Read with visitors of our own over `deserialize_any` (what is not the header skipped
/// unparsed, as the derive did): a derived `Deserialize` over serde_json's reader links
/// serde's `Unexpected`, and with it core's float `Display` (~27 KB of the filter module).
pub fn header_matches(r: &Relayed) -> bool {
    match serde_json::from_slice::<Head>(r.json.as_bytes()) {
        Ok(Head(Some(chain))) => {
            chain.get("id").and_then(serde_json::Value::as_str) == Some(r.chain.as_str())
                && chain.get("seq").and_then(serde_json::Value::as_u64) == Some(r.seq)
        }
        Ok(Head(None)) => r.chain.is_empty() && r.seq == 0,
        Err(_) => false,
    }
}

/// A record's `chain` member (`None` when absent or null); a record that is not an object,
/// or names `chain` twice, is an error.
struct Head(Option<serde_json::Map<String, serde_json::Value>>);

impl<'de> serde::Deserialize<'de> for Head {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Head, D::Error> {
        d.deserialize_any(HeadVisitor)
    }
}

struct HeadVisitor;

impl<'de> serde::de::Visitor<'de> for HeadVisitor {
    type Value = Head;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a record")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Head, A::Error> {
        use serde::de::Error as _;
        let mut chain = None;
        while let Some(is_chain) = map.next_key::<IsChain>()? {
            if !is_chain.0 {
                map.next_value::<serde::de::IgnoredAny>()?;
            } else if chain.is_some() {
                return Err(A::Error::custom("duplicate field `chain`"));
            } else {
                chain = Some(map.next_value::<serde_json::Value>()?);
            }
        }
        match chain {
            None | Some(serde_json::Value::Null) => Ok(Head(None)),
            Some(serde_json::Value::Object(link)) => Ok(Head(Some(link))),
            Some(_) => Err(A::Error::custom("`chain` is not an object")),
        }
    }

    // Every other kind of document: not a record. (The defaults would name the value
    // through serde's `Unexpected`.)
    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Head, E> {
        Err(E::custom("not a record"))
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Head, E> {
        Err(E::custom("not a record"))
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Head, E> {
        Err(E::custom("not a record"))
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Head, E> {
        Err(E::custom("not a record"))
    }
    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Head, E> {
        Err(E::custom("not a record"))
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Head, E> {
        Err(E::custom("not a record"))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<Head, A::Error> {
        Err(serde::de::Error::custom("not a record"))
    }
}

/// A record's key: whether it is `chain`.
struct IsChain(bool);

impl<'de> serde::Deserialize<'de> for IsChain {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<IsChain, D::Error> {
        struct KeyVisitor;
        impl serde::de::Visitor<'_> for KeyVisitor {
            type Value = IsChain;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<IsChain, E> {
                Ok(IsChain(key == "chain"))
            }
        }
        d.deserialize_any(KeyVisitor)
    }
}

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

/// The queue message of record `json`, of time `epoch_ms`, number `seq` of chain `chain`
/// (an id longer than 255 bytes, never one of ours, is sent as none).
pub fn encode(epoch_ms: u64, chain: &str, seq: u64, json: &str) -> Vec<u8> {
    let chain = if chain.len() > 255 { "" } else { chain };
    let mut out = Vec::with_capacity(18 + chain.len() + json.len());
    out.push(VERSION);
    out.extend_from_slice(&epoch_ms.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.push(chain.len() as u8);
    out.extend_from_slice(chain.as_bytes());
    out.extend_from_slice(json.as_bytes());
    out
}

/// A message's record; `None` for bytes that are not one of ours.
pub fn decode(message: Vec<u8>) -> Option<Relayed> {
    if message.first() == Some(&ANNOUNCING) {
        return decode_announcing(&message);
    }
    let (version, rest) = message.split_first()?;
    if *version != VERSION {
        return None;
    }
    let (time, rest) = rest.split_first_chunk::<8>()?;
    let (seq, rest) = rest.split_first_chunk::<8>()?;
    let (len, rest) = rest.split_first()?;
    let chain = std::str::from_utf8(rest.get(..usize::from(*len))?).ok()?;
    let (epoch_ms, seq) = (u64::from_le_bytes(*time), u64::from_le_bytes(*seq));
    let chain = chain.to_string();
    let mut json = message;
    json.drain(..18 + chain.len());
    let json = String::from_utf8(json).ok()?;
    Some(Relayed {
        epoch_ms,
        chain,
        seq,
        json,
        announces: None,
    })
}

fn decode_announcing(message: &[u8]) -> Option<Relayed> {
    let (_, rest) = message.split_first()?;
    let (len, rest) = rest.split_first()?;
    let (sink, mut rest) = rest.split_at_checked(usize::from(*len))?;
    let sink = std::str::from_utf8(sink).ok()?;
    let mut n = [0u64; 5];
    for x in &mut n {
        let (bytes, tail) = rest.split_first_chunk::<8>()?;
        *x = u64::from_le_bytes(*bytes);
        rest = tail;
    }
    if rest.first() == Some(&ANNOUNCING) {
        return None;
    }
    let mut r = decode(rest.to_vec())?;
    r.announces = Some(Announce {
        sink: (!sink.is_empty()).then(|| sink.to_string()),
        gap: Gap::from_words(n),
    });
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// Shared data with compare-and-swap tokens, as the host keeps it.
    #[derive(Default)]
    struct Data(std::cell::RefCell<std::collections::HashMap<String, (Vec<u8>, u32)>>);

    impl Store for Data {
        fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
            match self.0.borrow().get(key) {
                Some((v, cas)) => (Some(v.clone()), Some(*cas)),
                None => (None, None),
            }
        }

        fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
            let mut data = self.0.borrow_mut();
            let now = data.get(key).map(|(_, c)| *c);
            if cas.is_some() && cas != now {
                return false;
            }
            data.insert(key.into(), (value.to_vec(), now.unwrap_or(0) + 1));
            true
        }
    }

    fn left_behind(data: &Data, keys: &[String]) -> Vec<(String, Vec<u64>)> {
        let mut out = Vec::new();
        recover_left(data, keys, |left| {
            let seqs = drain_all(left.message).iter().map(|r| r.seq).collect();
            out.push((left.digest.to_string(), seqs));
        });
        out
    }

    fn drain_all(message: Vec<u8>) -> Vec<Relayed> {
        let mut d = Drained::default();
        d.take_in(message);
        d.records
    }

    #[test]
    fn a_dead_workers_records_go_only_where_its_audit_configuration_delivers() {
        let data = Data::default();
        let key = pending_key(7, 0);
        data.set(
            &key,
            &encode_copy(Some("theirs"), &encode(1, "c", 1, "{}")),
            None,
        );
        data.set(
            &pending_key(7, 1),
            &encode_copy(Some("theirs"), &encode(2, "c", 2, "{}")),
            None,
        );
        assert_eq!(
            left_behind(&data, &pending_keys(7)),
            [("theirs".to_string(), vec![1, 2])],
            "the copy names the configuration it belongs to"
        );
        assert_eq!(data.get(&key).0, Some(vec![]), "cleared once handed");
        // A claimer that ships its own records to other sinks (per worker).
        assert_eq!(
            route_left(Some("mine"), "theirs", Some(b"theirs"), true),
            Route::Shipper
        );
        assert_eq!(
            route_left(Some("mine"), "theirs", Some(b"theirs"), false),
            Route::Lost,
            "a dead shipper takes nothing"
        );
        assert_eq!(
            route_left(Some("mine"), "theirs", Some(b"mine"), true),
            Route::Lost
        );
        assert_eq!(route_left(Some("mine"), "theirs", None, true), Route::Lost);
        assert_eq!(route_left(Some("mine"), "mine", None, false), Route::Here);
        assert_eq!(
            route_left(None, "", Some(b""), true),
            Route::Lost,
            "unreadable copy"
        );
    }

    #[test]
    fn records_no_vm_can_deliver_wait_as_counts_and_ranges_for_their_configuration() {
        let data = Data::default();
        for (slot, seq) in [(0, 41), (1, 42), (2, 43)] {
            data.set(
                &pending_key(7, slot),
                &encode_copy(Some("theirs"), &encode(1_000 + seq, "c-7", seq, "{}")),
                None,
            );
        }
        // A claimer of another configuration, and no live shipper of theirs: lost here.
        let mut noted = Vec::new();
        recover_left(&data, &pending_keys(7), |left| {
            assert_eq!(
                route_left(Some("mine"), left.digest, None, false),
                Route::Lost
            );
            let rows = orphan_rows(7, &left, 5_000);
            assert!(note_orphaned(&data, left.digest, &rows));
            noted.extend(rows);
        });
        let want = OrphanRow {
            vm: 7,
            chain: "c-7".into(),
            gap: Gap {
                dropped: 3,
                from_ms: 1_041,
                to_ms: 1_043,
                from_seq: 41,
                to_seq: 43,
            },
        };
        assert_eq!(noted, std::slice::from_ref(&want));
        assert_eq!(take_orphaned(&data, "mine"), Orphaned::default());
        // A VM of their configuration takes it once.
        assert_eq!(
            take_orphaned(&data, "theirs"),
            Orphaned {
                rows: vec![want.clone()]
            }
        );
        assert_eq!(take_orphaned(&data, "theirs"), Orphaned::default(), "once");
        // Another loss of the same VM and chain joins its row; one unreadable record counts.
        let mut left = Left {
            digest: "theirs",
            message: encode(2_000, "c-7", 44, "{}"),
            records: 2,
        };
        let rows = orphan_rows(7, &left, 6_000);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].chain, "", "the unreadable one: no chain");
        assert!(note_orphaned(&data, "theirs", &rows));
        assert!(note_orphaned(
            &data,
            "theirs",
            &orphan_rows(7, &left, 6_000)
        ));
        let got = take_orphaned(&data, "theirs");
        assert_eq!(got.rows.len(), 2);
        assert_eq!(got.rows[0].gap.dropped, 2);
        assert_eq!((got.rows[0].gap.from_seq, got.rows[0].gap.to_seq), (44, 44));
        assert_eq!(got.rows[1].gap.dropped, 2);
        left.records = 0;
        assert!(note_orphaned(&data, "theirs", &[]), "nothing to note");
    }

    #[test]
    fn records_claimers_died_at_are_counted_per_configuration_and_cleared() {
        let data = Data::default();
        let mut batch = Pending::default();
        batch.push(1, "c", 1, "{}", None);
        batch.push(2, "c", 2, "{}", None);
        data.set(
            &pending_key(4, 0),
            &encode_copy(Some("a"), batch.message()),
            None,
        );
        data.set(
            &pending_key(4, 1),
            &encode_copy(Some("b"), &encode(3, "c", 3, "{}")),
            None,
        );
        data.set(&pending_key(4, 2), b"", None);
        assert_eq!(
            discard_left(&data, &pending_keys(4)),
            [("a".to_string(), 2), ("b".to_string(), 1)]
        );
        assert!(discard_left(&data, &pending_keys(4)).is_empty(), "cleared");
    }

    #[test]
    fn what_waits_for_a_configuration_that_never_comes_back_stays_bounded() {
        let data = Data::default();
        for vm in 1..=(ORPHANED_ROWS as u64 * 4) {
            let row = OrphanRow {
                vm,
                chain: format!("c-{vm}"),
                gap: Gap {
                    dropped: 10,
                    from_ms: vm,
                    to_ms: vm,
                    from_seq: 1,
                    to_seq: 10,
                },
            };
            assert!(note_orphaned(&data, "gone", &[row]));
        }
        let value = data.get(&orphaned_key("gone")).0.unwrap_or_default();
        let kept = Orphaned::decode(&value);
        assert_eq!(kept.rows.len(), ORPHANED_ROWS);
        let total: u64 = kept.rows.iter().map(|r| r.gap.dropped).sum();
        assert_eq!(total, 10 * ORPHANED_ROWS as u64 * 4, "every loss counted");
        let overflow = kept.rows.last().unwrap();
        assert_eq!((overflow.vm, overflow.chain.as_str()), (0, ""));
        assert_eq!((overflow.gap.from_seq, overflow.gap.to_seq), (0, 0));
        assert!(value.len() < 40 * 80, "{} bytes", value.len());
        assert_eq!(Orphaned::decode(&kept.encode()), kept);
        assert_eq!(Orphaned::decode(b"garbage\n1 c 1 2 3 4 5\n").rows.len(), 1);
    }

    #[test]
    fn a_worker_copies_each_record_once_and_a_claimer_gets_them_back_in_chain_order() {
        // 1.2 KB records, as in BENCHMARKS: bytes written to shared data per record.
        let json = format!(r#"{{"pad":"{}"}}"#, "x".repeat(1200));
        let digest = audit_digest(b"{}");
        let (data, mut pending) = (Data::default(), Pending::default());
        let (mut whole_batch, mut per_slot) = (0, 0);
        for seq in 1..RECORDS_PER_MESSAGE as u64 {
            pending.push(seq, "c", seq, &json, None);
            // What the copy of the whole batch so far cost (the format before slots).
            whole_batch += encode_copy(digest.as_deref(), pending.message()).len();
            let copy = encode_copy(digest.as_deref(), pending.last());
            per_slot += copy.len();
            data.set(&pending_key(3, pending.len() - 1), &copy, None);
        }
        let requests = RECORDS_PER_MESSAGE - 1;
        println!(
            "bytes copied per request: whole batch {}, one slot {}",
            whole_batch / requests,
            per_slot / requests
        );
        assert!(
            per_slot / requests < json.len() + 100,
            "one record per request"
        );
        assert!(whole_batch > per_slot * 7);
        // Written out of order (another record's slot first): still the chain's order.
        let swapped = data.get(&pending_key(3, 0)).0.unwrap_or_default();
        data.set(
            &pending_key(3, 0),
            &data.get(&pending_key(3, 4)).0.unwrap_or_default(),
            None,
        );
        data.set(&pending_key(3, 4), &swapped, None);
        let got = left_behind(&data, &pending_keys(3));
        let want: Vec<u64> = (1..RECORDS_PER_MESSAGE as u64).collect();
        assert_eq!(got, [(digest.unwrap_or_default(), want)]);
        assert!(pending_keys(3)
            .iter()
            .all(|k| data.get(k).0.is_none_or(|v| v.is_empty())));
    }

    #[test]
    fn a_claimer_never_erases_a_newer_copy_of_a_vm_presumed_dead_but_alive() {
        let data = Data::default();
        let copy = |seq| encode_copy(Some("d"), &encode(seq, "c", seq, "{}"));
        data.set(&pending_key(5, 0), &copy(1), None);
        let mut handed = Vec::new();
        recover_left(&data, &pending_keys(5), |left| {
            handed.push(drain_all(left.message).len());
            // The owner, alive, hands its batch over and starts the next one meanwhile.
            data.set(&pending_key(5, 0), &copy(17), None);
        });
        assert_eq!(handed, [1]);
        assert_eq!(
            data.get(&pending_key(5, 0)).0,
            Some(copy(17)),
            "the newer copy is kept"
        );
    }

    #[test]
    fn a_message_carries_the_record_its_time_and_its_place_in_its_chain() {
        let json = r#"{"chain":{"id":"c-é","seq":3},"record_type":"decision","text":"é"}"#;
        let m = encode(1_764_000_000_123, "c-é", 3, json);
        let want = Relayed {
            epoch_ms: 1_764_000_000_123,
            chain: "c-é".into(),
            seq: 3,
            json: json.into(),
            announces: None,
        };
        assert_eq!(decode(m), Some(want.clone()));
        let gap = Gap {
            dropped: 5,
            from_ms: 10,
            to_ms: 20,
            from_seq: 0,
            to_seq: 0,
        };
        let m = encode_announcing(want.epoch_ms, "c-é", 3, json, Some((Some("s3"), gap)));
        let announcing = Relayed {
            announces: Some(Announce {
                sink: Some("s3".into()),
                gap,
            }),
            ..want.clone()
        };
        assert_eq!(decode(m), Some(announcing));
        let every = decode(encode_announcing(1, "c", 1, "{}", Some((None, gap))));
        assert_eq!(every.and_then(|r| r.announces).map(|a| a.sink), Some(None));
        let mut cut = encode_announcing(1, "c", 1, "{}", Some((None, gap)));
        cut.truncate(20);
        assert_eq!(decode(cut), None);
    }

    #[test]
    fn records_handed_over_together_come_out_one_by_one_in_order() {
        let mut pending = Pending::default();
        assert!(pending.is_empty());
        for n in 1..=3 {
            pending.push(n, "c", n, &format!(r#"{{"n":{n}}}"#), None);
        }
        assert_eq!(pending.len(), 3);
        let message = pending.take();
        assert!(pending.is_empty() && pending.message().is_empty());
        assert_eq!(message.first(), Some(&BATCH));
        let mut queue =
            std::collections::VecDeque::from([message, encode(9, "d", 1, "{}"), vec![BATCH]]);
        let drained = drain(|| queue.pop_front(), 10);
        let got: Vec<_> = drained
            .records
            .iter()
            .map(|r| (r.chain.as_str(), r.seq))
            .collect();
        assert_eq!(got, [("c", 1), ("c", 2), ("c", 3), ("d", 1)]);
        assert_eq!(drained.undecodable, 0, "an empty batch holds nothing");
    }

    #[test]
    fn a_batch_cut_short_keeps_what_it_holds_whole_and_counts_the_rest() {
        let mut pending = Pending::default();
        pending.push(1, "c", 1, "{}", None);
        pending.push(2, "c", 2, "{}", None);
        let mut message = pending.take();
        message.truncate(message.len() - 3);
        let mut drained = Drained::default();
        drained.take_in(message);
        assert_eq!(drained.records.len(), 1);
        assert_eq!(drained.undecodable, 1);
        let mut inner_garbage = vec![BATCH];
        inner_garbage.extend_from_slice(&2u32.to_le_bytes());
        inner_garbage.extend_from_slice(&[9, 9]);
        drained.take_in(inner_garbage);
        assert_eq!(drained.undecodable, 2, "a record's message that is not one");
    }

    #[test]
    fn bytes_that_are_not_a_message_are_refused() {
        assert_eq!(decode(vec![1, 2, 3]), None, "shorter than the header");
        assert_eq!(
            decode([vec![VERSION], vec![0; 16], vec![5, b'a']].concat()),
            None,
            "id cut short"
        );
        assert_eq!(
            decode([vec![VERSION], vec![0; 17], vec![0xff]].concat()),
            None,
            "not UTF-8"
        );
        assert_eq!(
            decode([vec![VERSION], vec![0; 17]].concat()).map(|r| r.json),
            Some(String::new())
        );
        let mut other_version = encode(1, "c", 1, "{}");
        other_version[0] = VERSION + 1;
        assert_eq!(decode(other_version), None, "another version's message");
        assert_eq!(decode(vec![0; 18]), None, "the format before versions");
    }

    #[test]
    fn a_header_that_is_not_the_records_own_place_is_refused() {
        let json = r#"{"record_type":"decision","chain":{"id":"c-1","seq":7,"prev":"ab"}}"#;
        let relayed = |chain: &str, seq| decode(encode(1, chain, seq, json)).unwrap();
        assert!(header_matches(&relayed("c-1", 7)));
        assert!(!header_matches(&relayed("c-2", 7)), "another chain");
        assert!(!header_matches(&relayed("c-1", 1)), "another seq");
        let unchained = decode(encode(1, "", 0, r#"{"record_type":"decision"}"#)).unwrap();
        assert!(header_matches(&unchained));
        let claims = decode(encode(1, "c-1", 3, r#"{"record_type":"decision"}"#)).unwrap();
        assert!(!header_matches(&claims), "a place the record does not have");
        assert!(!header_matches(
            &decode(encode(1, "c-1", 7, "not json")).unwrap()
        ));
        // What the derive refused, refused still: a member of the wrong type, `chain` named
        // twice (a second one could override the first), a document that is not an object.
        for (text, why) in [
            (r#"{"chain":{"id":"c-1","seq":"7"}}"#, "seq not a number"),
            (r#"{"chain":{"id":1,"seq":7}}"#, "id not a string"),
            (r#"{"chain":[],"x":1}"#, "chain not an object"),
            (
                r#"{"chain":{"id":"c-1","seq":7},"chain":{"id":"c-1","seq":7}}"#,
                "chain twice",
            ),
            (r#"["c-1",7]"#, "an array"),
            ("1.5", "a number"),
            ("null", "null"),
            (r#"{"chain":{"id":"c-1","seq":7}} x"#, "trailing text"),
        ] {
            assert!(
                !header_matches(&decode(encode(1, "c-1", 7, text)).unwrap()),
                "{why}"
            );
        }
        // Other members, of any kind, are skipped; a null chain is no chain.
        let busy = r#"{"a":[1,{"b":null}],"chain":{"id":"c-1","seq":7,"prev":"ab"},"n":-1.5e3}"#;
        assert!(header_matches(&decode(encode(1, "c-1", 7, busy)).unwrap()));
        let null_chain = decode(encode(1, "", 0, r#"{"chain":null,"x":true}"#)).unwrap();
        assert!(header_matches(&null_chain));
    }

    #[test]
    fn a_worker_hands_over_only_to_a_shipper_with_its_audit_configuration() {
        let hec = br#"{"instance_id":"gw","policy":{"a":1},"audit":{"splunk_hec":{"token":"t","cluster":"c"}}}"#;
        let own = audit_digest(hec);
        let reordered = br#"{"audit":{"splunk_hec":{"cluster":"c","token":"t"}},"instance_id":"gw","policy":{"b":2}}"#;
        assert_eq!(
            own,
            audit_digest(reordered),
            "key order and the policy do not matter"
        );
        let published = own.clone().unwrap_or_default().into_bytes();
        assert_eq!(
            handover(own.as_deref(), Some(&published)),
            Handover::Forward
        );
        for other in [
            &br#"{"instance_id":"gw","audit":{}}"#[..],
            br#"{"instance_id":"gw","audit":{"splunk_hec":{"token":"rotated","cluster":"c"}}}"#,
            br#"{"instance_id":"gw2","audit":{"splunk_hec":{"token":"t","cluster":"c"}}}"#,
        ] {
            let theirs = audit_digest(other).unwrap_or_default().into_bytes();
            assert_eq!(
                handover(own.as_deref(), Some(&theirs)),
                Handover::ConfigMismatch,
                "{}",
                String::from_utf8_lossy(other)
            );
        }
        assert_eq!(
            handover(own.as_deref(), None),
            Handover::ConfigMismatch,
            "none published"
        );
        assert_eq!(handover(None, None), Handover::ConfigMismatch);
        assert_eq!(audit_digest(b"[1]"), None);
    }

    /// The digest is of the compact JSON text, keys sorted: modules that agree on it hand over
    /// to each other, so how the text is written (no longer `Value`'s `Display`) must not move it.
    #[test]
    fn the_audit_digest_is_of_the_compact_sorted_text() {
        use sha2::Digest as _;
        let config = br#"{"zz":1,"instance_id":"gw",
            "audit":{"splunk_hec":{"token":"t","cluster":"c"},"batch":{"max_records":2.5}}}"#;
        let text = format!(
            r#"{{"audit":{{"batch":{{"max_records":2.5}},"splunk_hec":{{"cluster":"c","token":"t"}}}},"handover_format":{HANDOVER_FORMAT},"instance_id":"gw"}}"#
        );
        let want: String = sha2::Sha256::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(audit_digest(config).as_deref(), Some(want.as_str()));
    }

    #[test]
    fn a_worker_does_not_hand_batches_to_a_shipper_of_the_module_before_them() {
        use sha2::Digest as _;
        let config = br#"{"instance_id":"gw","audit":{"splunk_hec":{"token":"t","cluster":"c"}}}"#;
        // What the shipper of the module before batches published: the same configuration's
        // digest, without a format.
        let doc: serde_json::Value = serde_json::from_slice(config).unwrap();
        let before = serde_json::json!({"audit": doc["audit"], "instance_id": doc["instance_id"]});
        let before: String = sha2::Sha256::digest(before.to_string().as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let own = audit_digest(config);
        assert_eq!(
            handover(own.as_deref(), Some(before.as_bytes())),
            Handover::ConfigMismatch
        );
        let published = own.clone().unwrap_or_default().into_bytes();
        assert_eq!(
            handover(own.as_deref(), Some(&published)),
            Handover::Forward
        );
    }

    #[test]
    fn a_shipper_is_presumed_dead_only_when_its_heartbeat_stood_still_long() {
        let beat = encode_beat(10_000, Some(7));
        assert_eq!(decode_beat(&beat), Some((10_000, Some(7))));
        assert_eq!(decode_beat(&encode_beat(5, None)), Some((5, None)));
        // vm_stale_ms 1000: a worker is stale after 1 s, the shipper after 3 s.
        assert!(
            !shipper_dead(Some(&beat), 11_500, 1_000),
            "a busy main thread"
        );
        assert!(!shipper_dead(Some(&beat), 12_999, 1_000));
        assert!(shipper_dead(Some(&beat), 13_000, 1_000));
        assert!(shipper_dead(None, 0, 1_000), "no heartbeat at all");
        assert!(shipper_dead(Some(b"garbage"), 0, 1_000));
    }

    #[test]
    fn a_drain_takes_a_bounded_chunk_and_leaves_the_rest() {
        let mut queue: std::collections::VecDeque<Vec<u8>> = (1..=5)
            .map(|n| encode(n, "c", n, "{}"))
            .chain([vec![9, 9]])
            .collect();
        let first = drain(|| queue.pop_front(), 3);
        assert_eq!(
            first.records.iter().map(|r| r.seq).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert!(first.capped);
        assert_eq!(queue.len(), 3, "left for the next wake-up");
        let rest = drain(|| queue.pop_front(), 3);
        assert_eq!(rest.records.len(), 2);
        assert_eq!(rest.undecodable, 1);
        assert!(rest.capped, "exactly the chunk: maybe more");
        let empty = drain(|| queue.pop_front(), 3);
        assert_eq!(empty, Drained::default());
    }

    #[test]
    fn the_shipper_drains_on_one_wake_up_in_so_many_and_after_any_drain_counts_again() {
        let mut pacer = WakePacer::default();
        let drains = (0..WAKES_PER_DRAIN * 3).filter(|_| {
            let now = pacer.wake();
            if now {
                pacer.drained();
            }
            now
        });
        assert_eq!(drains.count(), 3);
        for _ in 1..WAKES_PER_DRAIN {
            assert!(!pacer.wake());
        }
        pacer.drained();
        assert!(!pacer.wake(), "a tick drained: the count starts again");
    }

    #[test]
    fn a_chain_number_is_given_again_only_once_free_and_never_past_the_packed_bits() {
        let taken = [1u64, 2, 4];
        let free = |next| free_number(next, 5, |n| taken.contains(&n));
        assert_eq!(free(1), Some(3));
        assert_eq!(free(5), Some(5));
        assert_eq!(free(6), Some(3), "past the last number: from 1 again");
        assert_eq!(free_number(3, 4, |n| n != 3 && n <= 4), Some(3));
        assert_eq!(free_number(1, 3, |_| true), None, "all in use");
        assert_eq!(free_source(MAX_SOURCE + 1, |n| n == 1), Some(2));
        assert_eq!(
            unpack_seq(pack_seq(MAX_SOURCE, 7)),
            (MAX_SOURCE, 7),
            "the highest number still packs"
        );
    }

    #[test]
    fn packed_sequence_numbers_keep_the_chain_apart() {
        let p = pack_seq(3, 17);
        assert_eq!(unpack_seq(p), (3, 17));
        assert_eq!(unpack_seq(pack_seq(0, 9)), (0, 9), "the shipper's own");
        assert!(pack_seq(2, 1) > pack_seq(1, 1 << 39));
    }
}
