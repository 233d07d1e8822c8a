//! What a text yields, remembered across the requests of a conversation: chat and agent
//! clients resend the whole history every turn, so without it a conversation of N turns is
//! judged in O(N²) bytes although only its last turn is new.
//!
//! # What is cached, and why that is exact
//!
//! In [`super::hits::find_hits_scored`] one text's hits and prompt-injection score are a pure
//! function of (compiled policy, phase, the text's role, the text's bytes): the text is
//! decoded (`detect::decode`, a function of the text), the policy's prefilter, detectors,
//! keyword sets and patterns run over it with the detector set `policy.detectors_for(phase,
//! role)`, the classifier scores the text as written, and each rule that applies to (phase,
//! role) keeps its findings (its `min_score` against that score). No step reads the request,
//! the other texts, a clock or a budget shared between texts (the classifier's scratch
//! buffers are cleared per text). So an entry is exactly that per-text result: the hits in
//! order (without their segment index, given back on use) and the score, bit for bit.
//! Streams (`engine::stream`) are not cached.
//!
//! # Key
//!
//! An entry's tag is SipHash-2-4-128 ([`super::siphash`]) under a secret random key of the
//! VM (the host's WASI `random_get`; natively `std`'s `RandomState`; no key, no cache: never
//! a fixed or time-derived one) of: the request's [`Scope`] (identity and policy lane), the
//! phase, the role, the text's length and bytes. Without the key nobody can make a malicious
//! text share a tag with a cached benign one. A cache belongs to one configuration: a new
//! policy gets a new cache, so no entry is ever consulted under another policy.
//!
//! # Scope: no cross-identity timing
//!
//! A hit is measurably faster than a scan, so a cache shared by clients would tell one
//! whether another sent exactly this text. Entries are scoped by the request's attributed
//! user and project and whether each was verified: one identity never hits another's. A
//! request without a user, or (by default) with an unverified one (a header any client may
//! set, so anyone could claim someone else's scope), is not cached at all.
//!
//! # Bounds
//!
//! `max_entries` entries and `max_bytes` bytes (each entry costs [`ENTRY_BYTES`] plus its hits,
//! [`HIT_BYTES`] each); texts shorter than `min_text_bytes` are judged every time (cheaper
//! than an entry), results with more than `max_hits` hits are not kept. Eviction is CLOCK
//! (second chance): amortised O(1) per insertion, no list to relink.

use super::hits::Hit;
use super::siphash::{sip128, Key};
use crate::llm::{Phase, Role};

/// The configured bounds (`text_cache.*` in the plugin configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most entries; 0 turns the cache off.
    pub max_entries: usize,
    /// Most bytes of entries, [`ENTRY_BYTES`] each plus their hits.
    pub max_bytes: usize,
    /// Shorter texts are not cached.
    pub min_text_bytes: usize,
    /// Results with more hits are not cached.
    pub max_hits: usize,
    /// Whether an unverified user (a plain header, a body field) scopes entries. Off by
    /// default: anyone could claim that user and probe its entries' timing.
    pub unverified_users: bool,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_entries: 4096,
            max_bytes: 4 << 20,
            min_text_bytes: 256,
            max_hits: 64,
            unverified_users: false,
        }
    }
}

/// One entry's bytes besides its hits: its slot, its map entry (tag, index, control byte,
/// at the map's worst load) and the hits' allocation header, rounded up.
pub const ENTRY_BYTES: usize = 96;
/// One cached hit's bytes.
pub const HIT_BYTES: usize = std::mem::size_of::<Hit>();

/// Who sent a request, as attributed: entries of one identity never answer another's.
#[derive(Debug, Clone, Copy)]
pub struct Identity<'a> {
    pub user: &'a str,
    pub user_verified: bool,
    pub project: Option<&'a str>,
    pub project_verified: bool,
}

/// Which of the configuration's policies judges: the active one or the candidate. Both share
/// a cache and never each other's entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    Active = 0,
    Candidate = 1,
}

/// A request's scope in the cache: its identity and lane, as a keyed digest.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Scope((u64, u64));

impl std::fmt::Debug for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scope(..)")
    }
}

/// A tag: the keyed PRF of (scope, phase, role, text).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Tag(u64, u64);

struct Slot {
    tag: Tag,
    hits: Box<[Hit]>,
    score: Option<f64>,
    /// CLOCK's second chance: used since the hand last passed.
    referenced: bool,
    live: bool,
}

impl Slot {
    fn cost(&self) -> usize {
        ENTRY_BYTES + self.hits.len() * HIT_BYTES
    }
}

/// What the cache has done since it was made, for tests, benchmarks and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Texts answered from the cache, and their bytes.
    pub hits: u64,
    pub hit_bytes: u64,
    /// Texts looked up and judged.
    pub misses: u64,
    pub evictions: u64,
}

/// The per-text result cache of one configuration (see the module doc).
pub struct TextCache {
    key: Key,
    limits: Limits,
    /// Open addressing over `slots` (linear probing, at most half full): a slot's index, or
    /// [`EMPTY`]. Made at the first insertion, [`index_len`] long.
    index: Vec<u32>,
    /// Entries held.
    len: usize,
    slots: Vec<Slot>,
    free: Vec<u32>,
    hand: usize,
    bytes: usize,
    stats: Stats,
}

impl std::fmt::Debug for TextCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextCache")
            .field("limits", &self.limits)
            .field("entries", &self.len)
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

/// One text's result: its hits (segment 0) and injection score.
pub(super) struct Entry<'c> {
    pub(super) hits: &'c [Hit],
    pub(super) score: Option<f64>,
}

impl TextCache {
    /// A cache under `key` (secret, random), or none when `limits` turn it off.
    pub fn new(key: Key, limits: Limits) -> Option<TextCache> {
        (limits.max_entries > 0 && limits.max_bytes >= ENTRY_BYTES).then(|| TextCache {
            key,
            limits,
            index: Vec::new(),
            len: 0,
            slots: Vec::new(),
            free: Vec::new(),
            hand: 0,
            bytes: 0,
            stats: Stats::default(),
        })
    }

    /// A cache keyed from `std`'s per-process random hasher keys (native builds).
    pub fn with_random_key(limits: Limits) -> Option<TextCache> {
        use std::hash::BuildHasher;
        let s = std::collections::hash_map::RandomState::new();
        TextCache::new(Key(s.hash_one(0u8), s.hash_one(1u8)), limits)
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Entries held, and their bytes as [`ENTRY_BYTES`] and [`HIT_BYTES`] count them.
    pub fn usage(&self) -> (usize, usize) {
        (self.len, self.bytes)
    }

    /// The scope of a request, or `None` when it must not be cached: no user, or an
    /// unverified one unless the configuration allows it.
    pub fn scope(&self, identity: Option<Identity<'_>>, lane: Lane) -> Option<Scope> {
        let id = identity?;
        if !id.user_verified && !self.limits.unverified_users {
            return None;
        }
        let project = id.project.unwrap_or_default();
        let flags = lane as u64
            | u64::from(id.user_verified) << 8
            | u64::from(id.project.is_some()) << 16
            | u64::from(id.project_verified) << 24;
        // Lengths first, each string whole: ("al", "icep1") is not ("alice", "p1").
        let user = sip128(
            self.key,
            &[SCOPE, flags, id.user.len() as u64],
            id.user.as_bytes(),
        );
        let both = sip128(
            self.key,
            &[user.0, user.1, project.len() as u64],
            project.as_bytes(),
        );
        Some(Scope(both))
    }

    /// Whether a text of `len` bytes is worth a lookup.
    pub(super) fn caches(&self, len: usize) -> bool {
        len >= self.limits.min_text_bytes
    }

    fn tag(&self, scope: Scope, phase: Phase, role: Role, text: &str) -> Tag {
        let (a, b) = scope.0;
        let kind = phase as u64 | (role as u64) << 8;
        let (x, y) = sip128(self.key, &[a, b, kind], text.as_bytes());
        Tag(x, y)
    }

    /// The cached result of `text` in `scope`, or the tag to [`TextCache::insert`] it under.
    pub(super) fn get(
        &mut self,
        scope: Scope,
        phase: Phase,
        role: Role,
        text: &str,
    ) -> Result<Entry<'_>, Pending> {
        let tag = self.tag(scope, phase, role, text);
        let slot = match self.find(tag) {
            Ok(at) => self
                .index
                .get(at)
                .and_then(|&i| self.slots.get_mut(i as usize)),
            Err(_) => None,
        };
        match slot {
            Some(s) => {
                s.referenced = true;
                self.stats.hits += 1;
                self.stats.hit_bytes += text.len() as u64;
                Ok(Entry {
                    hits: &s.hits,
                    score: s.score,
                })
            }
            None => {
                self.stats.misses += 1;
                Err(Pending(tag))
            }
        }
    }

    /// Remembers a text's result (hits of any segment: stored as segment 0), evicting as
    /// needed; a result with too many hits, or larger than the whole cache, is not kept.
    pub(super) fn insert(&mut self, pending: Pending, hits: &[Hit], score: Option<f64>) {
        if hits.len() > self.limits.max_hits {
            return;
        }
        let cost = ENTRY_BYTES + hits.len() * HIT_BYTES;
        if cost > self.limits.max_bytes {
            return;
        }
        if self.index.is_empty() {
            self.index = vec![EMPTY; index_len(self.limits.max_entries)];
        }
        while self.len >= self.limits.max_entries || self.bytes + cost > self.limits.max_bytes {
            if !self.evict_one() {
                return;
            }
        }
        let slot = Slot {
            tag: pending.0,
            hits: hits.iter().map(|h| Hit { segment: 0, ..*h }).collect(),
            score,
            referenced: false,
            live: true,
        };
        let index = match self.free.pop() {
            Some(i) => match self.slots.get_mut(i as usize) {
                Some(s) => {
                    *s = slot;
                    i
                }
                None => return,
            },
            None => {
                let Ok(i) = u32::try_from(self.slots.len()) else {
                    return;
                };
                self.slots.push(slot);
                i
            }
        };
        // Evictions may have moved the tag's place: found again.
        if let Err(at) = self.find(pending.0) {
            if let Some(e) = self.index.get_mut(at) {
                *e = index;
                self.bytes += cost;
                self.len += 1;
                return;
            }
        }
        // Unreachable (the index is never full, a missing tag is never found): the slot
        // stays unused rather than half-inserted.
        if let Some(s) = self.slots.get_mut(index as usize) {
            s.live = false;
            s.hits = Box::default();
        }
        self.free.push(index);
    }

    /// Where `tag` is in the index (`Ok`), or the empty place where it would go (`Err`).
    fn find(&self, tag: Tag) -> Result<usize, usize> {
        let mask = self.index.len().wrapping_sub(1);
        if self.index.is_empty() {
            return Err(0);
        }
        // A tag is uniformly random to anyone without the key: its first word places it
        // (no second hash, and no flooding: tags cannot be chosen).
        let mut at = (tag.0 as usize) & mask;
        for _ in 0..self.index.len() {
            match self.index.get(at) {
                Some(&EMPTY) | None => return Err(at),
                Some(&i) if self.slots.get(i as usize).is_some_and(|s| s.tag == tag) => {
                    return Ok(at)
                }
                Some(_) => at = (at + 1) & mask,
            }
        }
        Err(at)
    }

    /// Takes the index entry at `at` out, shifting back the entries of its probe run that
    /// would no longer be found (deletion without tombstones).
    fn unindex(&mut self, mut at: usize) {
        let mask = self.index.len().wrapping_sub(1);
        let mut next = (at + 1) & mask;
        loop {
            let i = match self.index.get(next) {
                Some(&EMPTY) | None => break,
                Some(&i) => i,
            };
            let home = self
                .slots
                .get(i as usize)
                .map_or(next, |s| (s.tag.0 as usize) & mask);
            // Moves back when its home is not in (at, next] cyclically.
            let stays = if at <= next {
                at < home && home <= next
            } else {
                at < home || home <= next
            };
            if !stays {
                if let Some(e) = self.index.get_mut(at) {
                    *e = i;
                }
                at = next;
            }
            next = (next + 1) & mask;
        }
        if let Some(e) = self.index.get_mut(at) {
            *e = EMPTY;
        }
    }

    /// Evicts the first entry the CLOCK hand finds not used since it last passed; false when
    /// there is none (an empty cache).
    fn evict_one(&mut self) -> bool {
        // Two turns: the first may only clear second chances.
        for _ in 0..2 * self.slots.len() {
            let i = self.hand;
            self.hand = if i + 1 >= self.slots.len() { 0 } else { i + 1 };
            let Some(s) = self.slots.get_mut(i) else {
                continue;
            };
            if !s.live {
                continue;
            }
            if s.referenced {
                s.referenced = false;
                continue;
            }
            let cost = s.cost();
            s.live = false;
            s.hits = Box::default();
            let tag = s.tag;
            if let Ok(at) = self.find(tag) {
                self.unindex(at);
            }
            self.len -= 1;
            self.bytes = self.bytes.saturating_sub(cost);
            self.stats.evictions += 1;
            if let Ok(i) = u32::try_from(i) {
                self.free.push(i);
            }
            return true;
        }
        false
    }
}

/// The first word of a scope's message (a tag's is a scope's digest).
const SCOPE: u64 = u64::from_le_bytes(*b"scope\0\0\0");

/// An index entry that is no slot.
const EMPTY: u32 = u32::MAX;

/// The index's length for `max_entries`: a power of two at least twice as large, so probe
/// runs stay short.
fn index_len(max_entries: usize) -> usize {
    max_entries.saturating_mul(2).max(2).next_power_of_two()
}

/// A text looked up and not found: its tag, for [`TextCache::insert`].
pub(super) struct Pending(Tag);

/// A cache with the scope one evaluation uses, and how many of its texts it answered.
#[derive(Debug)]
pub struct Cached<'c> {
    pub(super) cache: &'c mut TextCache,
    pub(super) scope: Scope,
    /// Texts of this evaluation whose result came from the cache.
    pub(super) hits: u32,
}

impl<'c> Cached<'c> {
    pub fn new(cache: &'c mut TextCache, scope: Scope) -> Cached<'c> {
        Cached {
            cache,
            scope,
            hits: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// [`ENTRY_BYTES`] covers an entry: its slot, its two index places (the index is at most
    /// half full) and the allocator's header of its hits (16 bytes at most).
    #[test]
    fn an_entry_costs_at_most_entry_bytes() {
        let entry = std::mem::size_of::<Slot>() + 2 * std::mem::size_of::<u32>() + 16;
        assert!(entry <= ENTRY_BYTES, "{entry}");
    }

    /// The index against a model: tags crowded onto few home places (long probe runs that
    /// wrap around), inserted, used and evicted at random; every live entry is found, no
    /// evicted one is, and the counts agree.
    #[test]
    fn the_index_finds_exactly_the_live_entries() {
        let limits = Limits {
            max_entries: 13,
            max_bytes: 1 << 20,
            ..Limits::default()
        };
        let mut cache = TextCache::new(Key(1, 2), limits).unwrap();
        let mut state = 7u64;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            state >> 33
        };
        for round in 0..20_000u64 {
            // Homes within a quarter of the index, and near its end: runs wrap.
            let tag = Tag(28 + next() % 8, next() % 64);
            if next() % 3 == 0 {
                if let Ok(at) = cache.find(tag) {
                    let i = cache.index[at] as usize;
                    cache.slots[i].referenced = true;
                }
                continue;
            }
            if cache.find(tag).is_err() {
                cache.insert(Pending(tag), &[], Some(round as f64));
            }
            let live: Vec<Tag> = cache
                .slots
                .iter()
                .filter(|s| s.live)
                .map(|s| s.tag)
                .collect();
            assert_eq!(live.len(), cache.len, "round {round}");
            assert!(cache.len <= 13);
            for t in &live {
                assert!(cache.find(*t).is_ok(), "round {round}: a live entry lost");
            }
            let indexed = cache.index.iter().filter(|&&i| i != EMPTY).count();
            assert_eq!(
                indexed,
                live.len(),
                "round {round}: the index holds the dead"
            );
        }
        assert!(cache.stats().evictions > 1000);
    }
}
