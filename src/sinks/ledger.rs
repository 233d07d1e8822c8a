//! A ledger, per VM, of the audit records the VM has accepted and not yet delivered, kept where
//! it outlives the VM: the host's shared data (one store per plugin VM id in the Envoy
//! process; a VM that replaces a failed one reads what the failed one wrote). When a VM dies —
//! a trap under `failure_policy: FAIL_RELOAD`, or a stop that left records behind — its
//! ledger stops being written; another VM finds it stale, claims it exactly once (a
//! compare-and-swap) and queues, per sink, a `gap` record naming what was lost: how many
//! records, their time span and sequence range in the dead VM's chain, the VM and the gateway.
//!
//! Keys (all small; an entry is overwritten with [`GONE`] once claimed or retired):
//! - [`INDEX_KEY`]: ` N vm vm …`: the last VM number handed out (unique in the process) and
//!   the VMs whose ledger may still hold records.
//! - `policy_gateway.ledger.vm.<n>`: VM `n`'s [`Entry`], written by that VM only: when it
//!   last wrote (the heartbeat), its gateway, whether it was stopped, the claimed VMs whose
//!   gap records it holds until their claims say so, and per sink the records pending and
//!   the drops not yet announced by a delivered gap record.
//! - `policy_gateway.ledger.claim.<n>`: [`OPEN`] until a VM claims the entry.
//!
//! The host has no create-if-absent (a set on a missing key succeeds whatever the CAS token),
//! so the index is created by [`ensure_index`] where VMs start one at a time (`on_configure`:
//! the main thread's VM configures before the workers' VMs exist). Every later change is a
//! compare-and-swap. Time is passed in; the host store is behind [`Store`]. Values are short
//! lines of decimal numbers (no serde: the module stays small).

use super::shipper::GapCause;
use super::Gap;

pub const INDEX_KEY: &str = "policy_gateway.ledger.index";
/// The value of a claim key nobody has claimed.
pub const OPEN: &[u8] = b"open";
/// What a claimed or retired entry is overwritten with (shared data cannot shrink otherwise).
pub const GONE: &[u8] = b"gone";
/// Compare-and-swap attempts before giving up on one change (contention between workers).
const CAS_TRIES: usize = 16;

/// The host's shared data, as the ledger uses it.
pub trait Store {
    /// The value and its CAS token; `(None, None)` when the key does not exist.
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>);
    /// Sets the value if its CAS token is still `cas` (`None`: unconditionally); false when
    /// another VM changed it first.
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool;
}

pub fn entry_key(vm: u64) -> String {
    format!("policy_gateway.ledger.vm.{vm}")
}

pub fn claim_key(vm: u64) -> String {
    format!("policy_gateway.ledger.claim.{vm}")
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Index {
    next: u64,
    live: Vec<u64>,
}

/// Appends ` n` in decimal (by hand: `fmt` costs the module more).
#[inline(never)]
fn push_num(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        if let Some(d) = digits.get_mut(i) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    out.push(b' ');
    out.extend_from_slice(digits.get(i..).unwrap_or_default());
}

impl Index {
    /// `next vm vm …`
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        push_num(&mut out, self.next);
        for vm in &self.live {
            push_num(&mut out, *vm);
        }
        out
    }

    fn decode(bytes: &[u8]) -> Option<Index> {
        let mut words = std::str::from_utf8(bytes).ok()?.split(' ').skip(1);
        let next = num(&mut words)?;
        let mut live = Vec::new();
        while words.clone().next().is_some() {
            live.push(num(&mut words)?);
        }
        Some(Index { next, live })
    }
}

/// One VM's ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    pub vm: u64,
    pub gateway: String,
    /// The id of the VM's chain (`audit::chain`): the sequence ranges below are in it.
    pub chain: String,
    /// When the VM last wrote its entry (Unix ms): ticks write it at least every 200 ms.
    pub beat_ms: u64,
    /// Set by a VM that was stopped (`on_done`) with records still undelivered.
    pub stopped: bool,
    /// The claimed VMs whose gap records this write holds, until their claims say so
    /// ([`adopted`]): a claimer that dies in between is found to have written them.
    pub adopted: Vec<u64>,
    pub sinks: Vec<SinkEntry>,
}

/// What one sink of the VM holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkEntry {
    pub sink: String,
    /// The chain the ranges below are in, when not the VM's own: the shipper has a row per
    /// worker chain it holds records of (encoded `sink@chain`).
    pub chain: Option<String>,
    /// Records buffered, in flight or waiting for a retry (gap records aside).
    pub pending: Option<Gap>,
    /// Records dropped and counted, whose gap record is not delivered yet.
    pub unannounced: Option<Gap>,
    /// Drops counted by the VM and not yet added to the metrics.
    pub unreported_dropped: u64,
    /// What the VM has added to the sink's `buffered_bytes` gauge.
    pub gauge_bytes: u64,
}

/// What a dead VM lost on one sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lost {
    pub sink: String,
    /// The chain the gap's sequence range is in (the dead VM's).
    pub chain: String,
    /// For the gap record: the pending records and the unannounced drops together.
    pub gap: Gap,
    /// For the dropped metrics: records never counted (pending) and drops counted but not
    /// yet reported.
    pub newly_dropped: u64,
    /// To take back from the `buffered_bytes` gauge.
    pub gauge_bytes: u64,
}

fn put_gap(out: &mut Vec<u8>, gap: Option<Gap>) {
    for n in gap.map_or([0; 5], Gap::words) {
        push_num(out, n);
    }
}

#[inline(never)]
fn num<'a>(words: &mut impl Iterator<Item = &'a str>) -> Option<u64> {
    words.next()?.parse().ok()
}

fn take_gap<'a>(words: &mut impl Iterator<Item = &'a str>) -> Option<Option<Gap>> {
    let gap = Gap::from_words([
        num(words)?,
        num(words)?,
        num(words)?,
        num(words)?,
        num(words)?,
    ]);
    Some((gap.dropped > 0).then_some(gap))
}

impl Entry {
    /// One line, ` vm beat stopped chain`, ` + vm` per adopted VM, then per sink ` name`,
    /// pending and unannounced as `count from to from_seq to_seq`, unreported drops and gauge
    /// bytes; then the gateway as it is.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(100 + 120 * self.sinks.len() + self.gateway.len());
        for n in [self.vm, self.beat_ms, u64::from(self.stopped)] {
            push_num(&mut out, n);
        }
        // The chain id is ours (a UUID); never empty, so the words stay in place.
        out.push(b' ');
        out.extend_from_slice(
            if self.chain.is_empty() || self.chain.contains([' ', '\n']) {
                b"-"
            } else {
                self.chain.as_bytes()
            },
        );
        for vm in &self.adopted {
            out.extend_from_slice(b" +");
            push_num(&mut out, *vm);
        }
        for s in &self.sinks {
            out.push(b' ');
            out.extend_from_slice(s.sink.as_bytes());
            if let Some(chain) = s.chain.as_deref().filter(|c| !c.contains([' ', '\n'])) {
                out.push(b'@');
                out.extend_from_slice(chain.as_bytes());
            }
            put_gap(&mut out, s.pending);
            put_gap(&mut out, s.unannounced);
            for n in [s.unreported_dropped, s.gauge_bytes] {
                push_num(&mut out, n);
            }
        }
        out.push(b'\n');
        out.extend_from_slice(self.gateway.as_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Entry> {
        let (line, gateway) = std::str::from_utf8(bytes).ok()?.split_once('\n')?;
        let mut words = line.split(' ').skip(1);
        let (vm, beat_ms, stopped) = (num(&mut words)?, num(&mut words)?, num(&mut words)?);
        let chain = match words.next()? {
            "-" => String::new(),
            c => c.to_string(),
        };
        let (mut adopted, mut sinks) = (Vec::new(), Vec::new());
        while let Some(word) = words.next() {
            if word == "+" {
                adopted.push(num(&mut words)?);
                continue;
            }
            let (sink, chain) = match word.split_once('@') {
                Some((sink, chain)) => (sink, Some(chain.to_string())),
                None => (word, None),
            };
            sinks.push(SinkEntry {
                sink: sink.to_string(),
                chain,
                pending: take_gap(&mut words)?,
                unannounced: take_gap(&mut words)?,
                unreported_dropped: num(&mut words)?,
                gauge_bytes: num(&mut words)?,
            });
        }
        Some(Entry {
            vm,
            gateway: gateway.to_string(),
            chain,
            beat_ms,
            stopped: stopped == 1,
            adopted,
            sinks,
        })
    }

    pub fn cause(&self) -> GapCause {
        if self.stopped {
            GapCause::VmStopped
        } else {
            GapCause::VmFailed
        }
    }

    /// What was lost, per sink (sinks that lost nothing and owe the metrics nothing left out).
    pub fn lost(&self) -> Vec<Lost> {
        self.sinks
            .iter()
            .filter_map(|s| {
                let pending = s.pending.map_or(0, |p| p.dropped);
                let newly_dropped = pending.saturating_add(s.unreported_dropped);
                let gap = Gap::union(s.pending, s.unannounced).filter(|g| g.dropped > 0);
                if gap.is_none() && newly_dropped == 0 && s.gauge_bytes == 0 {
                    return None;
                }
                Some(Lost {
                    sink: s.sink.clone(),
                    chain: s.chain.clone().unwrap_or_else(|| self.chain.clone()),
                    gap: gap.unwrap_or(Gap {
                        dropped: 0,
                        from_ms: self.beat_ms,
                        to_ms: self.beat_ms,
                        from_seq: 0,
                        to_seq: 0,
                    }),
                    newly_dropped,
                    gauge_bytes: s.gauge_bytes,
                })
            })
            .collect()
    }

    /// Whether the VM held nothing a claimant would have to report.
    pub fn is_empty(&self) -> bool {
        self.lost().is_empty()
    }
}

fn read_index(store: &impl Store) -> (Index, Option<u32>) {
    let (value, cas) = store.get(INDEX_KEY);
    let index = value.and_then(|v| Index::decode(&v)).unwrap_or_default();
    (index, cas)
}

fn write_index(store: &impl Store, index: &Index, cas: Option<u32>) -> bool {
    store.set(INDEX_KEY, &index.encode(), cas)
}

/// Creates the index if it does not exist yet. Call it where VMs start one at a time.
pub fn ensure_index(store: &impl Store) {
    if store.get(INDEX_KEY).1.is_none() {
        write_index(store, &Index::default(), None);
    }
}

/// Registers a new VM: a number unique in the process, an open claim key, a first entry
/// (so a VM that never runs again is tidied up like any other), and a place in the index.
/// `None` when the index stayed contended.
pub fn register(store: &impl Store, gateway: &str, now_ms: u64) -> Option<u64> {
    for _ in 0..CAS_TRIES {
        let (mut index, cas) = read_index(store);
        index.next += 1;
        let vm = index.next;
        // Open before anyone can find `vm` in the index (a lost race only re-opens a claim
        // key of a number nobody holds yet).
        store.set(&claim_key(vm), OPEN, None);
        write(
            store,
            &Entry {
                vm,
                gateway: gateway.to_string(),
                chain: String::new(),
                beat_ms: now_ms,
                ..Entry::default()
            },
        );
        index.live.push(vm);
        if write_index(store, &index, cas) {
            return Some(vm);
        }
    }
    None
}

/// Writes a VM's entry; only that VM writes it, so unconditionally.
pub fn write(store: &impl Store, entry: &Entry) {
    store.set(&entry_key(entry.vm), &entry.encode(), None);
}

/// The VM that claimed `vm`'s entry, if one did (it presumed `vm` dead).
pub fn claimed_by(store: &impl Store, vm: u64) -> Option<String> {
    let (value, _) = store.get(&claim_key(vm));
    value
        .filter(|v| v.as_slice() != OPEN)
        .map(|v| String::from_utf8_lossy(&v).into_owned())
}

/// Takes a VM out of the index and empties its entry (a stop with nothing left to report,
/// or a claimed VM). False when the index stayed contended.
pub fn retire(store: &impl Store, vms: &[u64]) -> bool {
    if vms.is_empty() {
        return true;
    }
    for vm in vms {
        store.set(&entry_key(*vm), GONE, None);
    }
    for _ in 0..CAS_TRIES {
        let (mut index, cas) = read_index(store);
        let before = index.live.len();
        index.live.retain(|vm| !vms.contains(vm));
        if index.live.len() == before || write_index(store, &index, cas) {
            return true;
        }
    }
    false
}

/// Finds the VMs (other than `me`) whose entry was not written for `stale_ms`, claims each
/// once, takes them out of the index, and returns the entries this VM claimed: it must
/// announce what they lost. A VM claimed by another is only tidied away. (The claim, the
/// announcement and the recovery at once: [`claim_dead_by`] for the steps.)
pub fn claim_dead(store: &impl Store, me: u64, now_ms: u64, stale_ms: u64) -> Vec<Entry> {
    let claims = claim_dead_by(store, me, now_ms, |_| stale_ms);
    for c in &claims {
        adopted(store, c.entry.vm, me);
        finish_claim(store, c.entry.vm, me);
    }
    claims.into_iter().map(|c| c.entry).collect()
}

/// Claimers a dead VM's entry may have before the next one gives up recovering the records it
/// left (`relay::pending_key`) and only counts them: records that trapped every VM that took
/// them in must not take the whole fleet down one VM after another.
pub const CLAIM_TRIES: u64 = 3;

/// A dead VM's entry this VM claimed, and what is still to be done with it. The claim key
/// says so (`vm <me> adopting|recovering <tries>`) until [`finish_claim`]: a claimer that dies
/// (a trap) before it finishes leaves its claim to the next VM that finds the claimer dead
/// too, which takes up where it stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub entry: Entry,
    /// Its gap records are still to be written (`Outbox::adopt`), then [`adopted`] said.
    pub adopt: bool,
    /// The records it left for the shipper are to be taken over; false once [`CLAIM_TRIES`]
    /// claimers died at it: they are then only counted lost.
    pub recover: bool,
    /// Which claimer of the entry this is (1: the first).
    pub tries: u64,
}

/// A claim in progress: (claimer, adopted yet, tries).
fn parse_claim(value: &[u8]) -> Option<(u64, bool, u64)> {
    let text = std::str::from_utf8(value).ok()?;
    let mut w = text.split(' ');
    if w.next()? != "vm" {
        return None;
    }
    let by = w.next()?.parse().ok()?;
    let adopted = match w.next()? {
        "adopting" => false,
        "recovering" => true,
        _ => return None,
    };
    Some((by, adopted, w.next()?.parse().ok()?))
}

fn claim_value(me: u64, adopted: bool, tries: u64) -> Vec<u8> {
    let phase = if adopted { "recovering" } else { "adopting" };
    format!("vm {me} {phase} {tries}").into_bytes()
}

/// [`claim_dead`] with a bound per VM number (the shipper's is longer: `relay::shipper_stale_ms`),
/// in steps: the entries stay listed, claimed, until this VM has announced what each lost
/// ([`adopted`]) and taken over its records ([`finish_claim`]).
pub fn claim_dead_by(
    store: &impl Store,
    me: u64,
    now_ms: u64,
    stale_ms: impl Fn(u64) -> u64,
) -> Vec<Claim> {
    let (index, _) = read_index(store);
    let mut claimed = Vec::new();
    let mut tidy = Vec::new();
    let read =
        |vm: u64| -> Option<Entry> { store.get(&entry_key(vm)).0.and_then(|v| Entry::decode(&v)) };
    for &vm in index.live.iter().filter(|&&vm| vm != me) {
        match read(vm) {
            Some(entry) if now_ms.saturating_sub(entry.beat_ms) >= stale_ms(vm) => {}
            // Retired, but still listed (its VM lost the race for the index).
            None if store.get(&entry_key(vm)).0.as_deref() == Some(GONE) => {
                tidy.push(vm);
                continue;
            }
            // Alive, or registering (its entry comes with its number).
            _ => continue,
        }
        let (claim, cas) = store.get(&claim_key(vm));
        let (adopted, tries) = match (claim.as_deref(), cas) {
            (Some(OPEN), Some(_)) => (false, 1),
            // Another VM got it first (CAS token gone).
            (Some(OPEN), None) => continue,
            (Some(value), Some(_)) => match parse_claim(value) {
                Some((by, _, _)) if by == me => continue,
                Some((by, adopted, tries)) => {
                    let claimer = read(by);
                    // Its claimer is at it.
                    if let Some(c) = &claimer {
                        if now_ms.saturating_sub(c.beat_ms) < stale_ms(by) {
                            continue;
                        }
                    }
                    // Its claimer died before it finished: this VM takes up where it stopped.
                    // The gap records are written if the claimer's ledger holds them (it may
                    // have died between that write and the claim's).
                    let held = claimer.is_some_and(|c| c.adopted.contains(&vm));
                    (adopted || held, tries.saturating_add(1))
                }
                // Claimed and finished: only tidied away.
                None => {
                    tidy.push(vm);
                    continue;
                }
            },
            _ => {
                tidy.push(vm);
                continue;
            }
        };
        if store.set(&claim_key(vm), &claim_value(me, adopted, tries), cas) {
            // Ours: the entry as it stands now (its VM may have written since).
            if let Some(entry) = read(vm) {
                // Gap records it holds for VMs it claimed are this VM's to announce now (its
                // loss): their claims say so before its entry can be retired.
                for &other in &entry.adopted {
                    self::adopted(store, other, vm);
                }
                claimed.push(Claim {
                    entry,
                    adopt: !adopted,
                    recover: tries <= CLAIM_TRIES,
                    tries,
                });
            }
        }
    }
    retire(store, &tidy);
    claimed
}

/// This VM (`me`) has announced what claimed VM `vm` lost (its gap records are in this VM's
/// ledger): a claimer after it only recovers the records.
pub fn adopted(store: &impl Store, vm: u64, me: u64) {
    let (value, cas) = store.get(&claim_key(vm));
    if let Some((by, false, tries)) = value.as_deref().and_then(parse_claim) {
        if by == me {
            store.set(&claim_key(vm), &claim_value(me, true, tries), cas);
        }
    }
}

/// This VM (`me`) is done with claimed VM `vm`: the claim says so for good and the entry is
/// retired. A claim another VM took over meanwhile (it presumed this one dead) is its to
/// finish.
pub fn finish_claim(store: &impl Store, vm: u64, me: u64) {
    let (value, cas) = store.get(&claim_key(vm));
    if value.as_deref().and_then(parse_claim).map(|(by, _, _)| by) != Some(me) {
        return;
    }
    if store.set(&claim_key(vm), format!("vm {me}").as_bytes(), cas) {
        retire(store, &[vm]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::{Cell, RefCell};
    use std::collections::HashMap;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    type Hook = Box<dyn FnMut(&Host, &str)>;

    /// Shared data as Envoy (proxy-wasm-cpp-host) implements it: every set gives the key a
    /// new CAS token; a set with a stale token fails; a set on a missing key always succeeds.
    #[derive(Default)]
    struct Host {
        data: RefCell<HashMap<String, (Vec<u8>, u32)>>,
        cas: Cell<u32>,
        /// Called before each set: lets a test interleave another VM's writes.
        before_set: RefCell<Option<Hook>>,
    }

    impl Store for Host {
        fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
            match self.data.borrow().get(key) {
                Some((v, cas)) => (Some(v.clone()), Some(*cas)),
                None => (None, None),
            }
        }

        fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
            let hook = self.before_set.borrow_mut().take();
            if let Some(mut hook) = hook {
                hook(self, key);
                *self.before_set.borrow_mut() = Some(hook);
            }
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

    fn entry(vm: u64, beat_ms: u64, pending: u64) -> Entry {
        Entry {
            vm,
            gateway: "gw".into(),
            chain: "c-1".into(),
            beat_ms,
            stopped: false,
            adopted: Vec::new(),
            sinks: vec![SinkEntry {
                sink: "splunk_hec".into(),
                chain: None,
                pending: (pending > 0).then_some(Gap {
                    dropped: pending,
                    from_ms: 1_000,
                    to_ms: 1_900,
                    from_seq: 3,
                    to_seq: 2 + pending,
                }),
                unannounced: None,
                unreported_dropped: 0,
                gauge_bytes: 300,
            }],
        }
    }

    #[test]
    fn vms_get_distinct_numbers_and_are_listed() {
        let host = Host::default();
        ensure_index(&host);
        let a = register(&host, "gw", 0).unwrap();
        let b = register(&host, "gw", 0).unwrap();
        assert_ne!(a, b);
        assert_eq!(read_index(&host).0.live, vec![a, b]);
        assert_eq!(claimed_by(&host, a), None);
        ensure_index(&host);
        assert_eq!(
            read_index(&host).0.live,
            vec![a, b],
            "ensure_index keeps it"
        );
    }

    #[test]
    fn a_dead_vm_is_claimed_once_and_reported() {
        let host = Host::default();
        ensure_index(&host);
        let dead = register(&host, "gw", 0).unwrap();
        let a = register(&host, "gw", 0).unwrap();
        let b = register(&host, "gw", 0).unwrap();
        write(&host, &entry(dead, 2_000, 12));
        write(&host, &entry(a, 2_000, 0));
        write(&host, &entry(b, 2_000, 0));
        assert!(
            claim_dead(&host, a, 5_000, 10_000).is_empty(),
            "not stale yet"
        );
        write(&host, &entry(a, 12_000, 0));
        write(&host, &entry(b, 12_000, 0));
        let got = claim_dead(&host, a, 12_500, 10_000);
        assert_eq!(got, vec![entry(dead, 2_000, 12)]);
        assert_eq!(
            claimed_by(&host, dead).as_deref(),
            Some(&*format!("vm {a}"))
        );
        assert!(claim_dead(&host, b, 12_600, 10_000).is_empty(), "once");
        assert_eq!(read_index(&host).0.live, vec![a, b]);
        assert_eq!(host.get(&entry_key(dead)).0.as_deref(), Some(GONE));
        let lost = got[0].lost();
        assert_eq!(
            lost,
            vec![Lost {
                sink: "splunk_hec".into(),
                chain: "c-1".into(),
                gap: Gap {
                    dropped: 12,
                    from_ms: 1_000,
                    to_ms: 1_900,
                    from_seq: 3,
                    to_seq: 14,
                },
                newly_dropped: 12,
                gauge_bytes: 300,
            }]
        );
        assert_eq!(got[0].cause(), GapCause::VmFailed);
    }

    #[test]
    fn two_vms_racing_for_one_dead_vm_claim_it_once() {
        let host = Host::default();
        ensure_index(&host);
        let dead = register(&host, "gw", 0).unwrap();
        let a = register(&host, "gw", 0).unwrap();
        let b = register(&host, "gw", 0).unwrap();
        write(&host, &entry(dead, 0, 5));
        write(&host, &entry(a, 60_000, 0));
        write(&host, &entry(b, 60_000, 0));
        // B's whole scan runs just before A's claim lands (after A read the open claim key).
        let b_got = std::rc::Rc::new(RefCell::new(Vec::new()));
        let b_seen = b_got.clone();
        let fired = Cell::new(false);
        *host.before_set.borrow_mut() = Some(Box::new(move |h: &Host, key: &str| {
            if key == claim_key(dead) && !fired.replace(true) {
                b_seen.borrow_mut().extend(claim_dead(h, b, 60_001, 10_000));
            }
        }));
        let a_got = claim_dead(&host, a, 60_001, 10_000);
        assert_eq!(b_got.borrow().len(), 1, "B got in first");
        assert!(a_got.is_empty(), "A's compare-and-swap failed");
        assert_eq!(read_index(&host).0.live, vec![a, b]);
    }

    #[test]
    fn a_claimer_that_dies_before_it_recovered_leaves_the_claim_to_the_next() {
        let host = Host::default();
        ensure_index(&host);
        let dead = register(&host, "gw", 0).unwrap();
        let a = register(&host, "gw", 0).unwrap();
        let b = register(&host, "gw", 0).unwrap();
        write(&host, &entry(dead, 0, 12));
        write(&host, &entry(a, 20_000, 0));
        write(&host, &entry(b, 20_000, 0));
        // A claims, then traps before it has taken the records over: no further step.
        assert_eq!(claim_dead_by(&host, a, 20_000, |_| 10_000).len(), 1);
        write(&host, &entry(b, 25_000, 0));
        assert!(
            claim_dead(&host, b, 25_000, 10_000).is_empty(),
            "A may still be at it"
        );
        // A's entry stands still: B takes the dead VM up again (and A's own).
        write(&host, &entry(b, 31_000, 0));
        let got = claim_dead(&host, b, 31_000, 10_000);
        assert!(
            got.iter()
                .any(|e| e.vm == dead && e.lost()[0].gap.dropped == 12),
            "{got:?}"
        );
        assert_eq!(read_index(&host).0.live, vec![b]);
        assert_eq!(
            claimed_by(&host, dead).as_deref(),
            Some(&*format!("vm {b}"))
        );
    }

    #[test]
    fn claimers_dying_at_a_dead_vms_records_are_bounded() {
        let host = Host::default();
        ensure_index(&host);
        let dead = register(&host, "gw", 0).unwrap();
        write(&host, &entry(dead, 0, 5));
        let mut now = 20_000;
        let mut seen = Vec::new();
        for round in 1..=CLAIM_TRIES + 1 {
            let me = register(&host, "gw", now).unwrap();
            let claims: Vec<_> = claim_dead_by(&host, me, now, |_| 10_000)
                .into_iter()
                .filter(|c| c.entry.vm == dead)
                .collect();
            assert_eq!(claims.len(), 1, "round {round}");
            let c = &claims[0];
            seen.push((c.adopt, c.recover, c.tries));
            if round == 1 {
                // The first claimer wrote the gap records, then died taking the records in.
                adopted(&host, dead, me);
            }
            if round == CLAIM_TRIES + 1 {
                finish_claim(&host, dead, me);
                assert_eq!(host.get(&entry_key(dead)).0.as_deref(), Some(GONE));
                assert_eq!(
                    claimed_by(&host, dead).as_deref(),
                    Some(&*format!("vm {me}"))
                );
            }
            // This claimer dies: its entry stands still.
            now += 11_000;
        }
        assert_eq!(
            seen,
            [
                (true, true, 1),
                (false, true, 2),
                (false, true, 3),
                (false, false, 4)
            ],
            "the gap records once; the records retried, then given up"
        );
        let me = register(&host, "gw", now).unwrap();
        assert!(
            claim_dead_by(&host, me, now, |_| 10_000)
                .iter()
                .all(|c| c.entry.vm != dead),
            "finished"
        );
    }

    /// A claimer that wrote a dead VM's gap records into its ledger and died before its claim
    /// said so: whoever claims the dead VM next only recovers, whether it finds the claimer's
    /// entry still there or, the claimer itself claimed and retired first, only the claim.
    #[test]
    fn gap_records_in_a_dead_claimers_ledger_are_not_written_again() {
        for claimer_retired_first in [false, true] {
            let host = Host::default();
            ensure_index(&host);
            let dead = register(&host, "gw", 0).unwrap();
            let c = register(&host, "gw", 0).unwrap();
            let b = register(&host, "gw", 0).unwrap();
            write(&host, &entry(dead, 0, 12));
            let claims =
                claim_dead_by(
                    &host,
                    c,
                    20_000,
                    |vm| if vm == dead { 10_000 } else { u64::MAX },
                );
            assert_eq!(claims.len(), 1);
            assert!(claims[0].adopt);
            // Its ledger holds the gap records; it dies before `adopted`.
            write(
                &host,
                &Entry {
                    adopted: vec![dead],
                    ..entry(c, 20_000, 0)
                },
            );
            let got = if claimer_retired_first {
                let first =
                    claim_dead_by(
                        &host,
                        b,
                        31_000,
                        |vm| if vm == c { 10_000 } else { u64::MAX },
                    );
                assert_eq!(first.iter().map(|c| c.entry.vm).collect::<Vec<_>>(), [c]);
                finish_claim(&host, c, b);
                assert_eq!(host.get(&entry_key(c)).0.as_deref(), Some(GONE));
                claim_dead_by(&host, b, 31_000, |_| 10_000)
            } else {
                claim_dead_by(&host, b, 31_000, |_| 10_000)
            };
            let again: Vec<_> = got.iter().filter(|c| c.entry.vm == dead).collect();
            assert_eq!(again.len(), 1, "retired first: {claimer_retired_first}");
            assert!(!again[0].adopt, "retired first: {claimer_retired_first}");
            assert!(again[0].recover);
        }
    }

    #[test]
    fn a_vm_claimed_while_alive_can_tell() {
        let host = Host::default();
        ensure_index(&host);
        let slow = register(&host, "gw", 0).unwrap();
        let a = register(&host, "gw", 0).unwrap();
        write(&host, &entry(a, 30_000, 0));
        assert_eq!(claim_dead(&host, a, 30_000, 10_000).len(), 1);
        assert!(claimed_by(&host, slow).is_some());
        // It registers again and is a live VM like any other.
        let again = register(&host, "gw", 30_100).unwrap();
        assert!(read_index(&host).0.live.contains(&again));
        assert!(!read_index(&host).0.live.contains(&slow));
    }

    #[test]
    fn empty_and_stopped_vms() {
        let host = Host::default();
        ensure_index(&host);
        let idle = register(&host, "gw", 0).unwrap();
        let stopped = register(&host, "gw", 0).unwrap();
        let a = register(&host, "gw", 0).unwrap();
        let mut e = entry(stopped, 0, 3);
        e.stopped = true;
        write(&host, &e);
        write(&host, &entry(a, 20_000, 0));
        let got = claim_dead(&host, a, 20_000, 10_000);
        // The idle VM (registered, never wrote again) is claimed too: nothing to report.
        assert_eq!(got.len(), 2);
        let idle_entry = got.iter().find(|e| e.vm == idle).unwrap();
        assert!(idle_entry.is_empty());
        let stopped_entry = got.iter().find(|e| e.vm == stopped).unwrap();
        assert_eq!(stopped_entry.cause(), GapCause::VmStopped);
        assert_eq!(read_index(&host).0.live, vec![a]);
        // A VM stopping with nothing left retires itself.
        assert!(retire(&host, &[a]));
        assert!(read_index(&host).0.live.is_empty());
    }

    #[test]
    fn lost_merges_pending_and_unannounced_and_counts_only_new_drops() {
        let e = Entry {
            vm: 4,
            gateway: "gw".into(),
            chain: "0196a1b2-0000-7000-8000-000000000001".into(),
            beat_ms: 9,
            stopped: false,
            adopted: Vec::new(),
            sinks: vec![
                SinkEntry {
                    sink: "s3".into(),
                    chain: None,
                    pending: Some(Gap {
                        dropped: 3,
                        from_ms: 50,
                        to_ms: 60,
                        from_seq: 20,
                        to_seq: 22,
                    }),
                    unannounced: Some(Gap {
                        dropped: 7,
                        from_ms: 10,
                        to_ms: 40,
                        from_seq: 5,
                        to_seq: 11,
                    }),
                    unreported_dropped: 2,
                    gauge_bytes: 0,
                },
                SinkEntry {
                    sink: "splunk_hec".into(),
                    ..SinkEntry::default()
                },
            ],
        };
        assert_eq!(
            e.lost(),
            vec![Lost {
                sink: "s3".into(),
                chain: "0196a1b2-0000-7000-8000-000000000001".into(),
                gap: Gap {
                    dropped: 10,
                    from_ms: 10,
                    to_ms: 60,
                    from_seq: 5,
                    to_seq: 22,
                },
                newly_dropped: 5,
                gauge_bytes: 0,
            }]
        );
        assert_eq!(Entry::decode(&e.encode()), Some(e.clone()));
        let claimer = Entry {
            adopted: vec![7, 12],
            ..e.clone()
        };
        assert_eq!(Entry::decode(&claimer.encode()), Some(claimer));
        let odd = Entry {
            gateway: "gw 1\nsecond line".into(),
            sinks: Vec::new(),
            ..e
        };
        assert_eq!(Entry::decode(&odd.encode()), Some(odd));
        assert_eq!(Entry::decode(b" 1 2 0 c s3 1 2\ngw"), None, "truncated");
        assert_eq!(
            Entry::decode(b" 1 18446744073709551615 1 -\n").map(|e| (e.beat_ms, e.chain)),
            Some((u64::MAX, String::new()))
        );
        assert_eq!(
            Index::decode(b" 7 1 3"),
            Some(Index {
                next: 7,
                live: vec![1, 3]
            })
        );
        assert_eq!(
            Index::decode(b" 0 10 200").map(|i| i.live),
            Some(vec![10, 200])
        );
        assert_eq!(
            Index::decode(&Index::default().encode()),
            Some(Index::default())
        );
    }

    #[test]
    fn contention_gives_up_without_harm() {
        let host = Host::default();
        ensure_index(&host);
        // Every index write races with another VM's registration.
        *host.before_set.borrow_mut() = Some(Box::new(|h: &Host, key: &str| {
            if key == INDEX_KEY {
                let (mut index, _) = read_index(h);
                index.next += 1;
                let bytes = index.encode();
                h.data
                    .borrow_mut()
                    .insert(INDEX_KEY.into(), (bytes, 9_999 + index.next as u32));
            }
        }));
        assert_eq!(register(&host, "gw", 0), None);
    }
}
