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

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

use super::hits::Hit;
use super::siphash::{Key, Sip128};
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

impl Hash for Tag {
    /// A tag is already uniformly random to anyone without the key: its first word is the
    /// map's hash as it is (no second hash, and no flooding: tags cannot be chosen).
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0);
    }
}

#[derive(Default)]
struct TagHasher(u64);

impl Hasher for TagHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

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
    map: HashMap<Tag, u32, BuildHasherDefault<TagHasher>>,
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
            .field("entries", &self.map.len())
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
            map: HashMap::default(),
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
        (self.map.len(), self.bytes)
    }

    /// The scope of a request, or `None` when it must not be cached: no user, or an
    /// unverified one unless the configuration allows it.
    pub fn scope(&self, identity: Option<Identity<'_>>, lane: Lane) -> Option<Scope> {
        let id = identity?;
        if !id.user_verified && !self.limits.unverified_users {
            return None;
        }
        let mut h = Sip128::new(self.key);
        h.write(b"scope");
        h.write(&[lane as u8, u8::from(id.user_verified)]);
        h.write_u64(id.user.len() as u64);
        h.write(id.user.as_bytes());
        match id.project {
            Some(p) => {
                h.write(&[1, u8::from(id.project_verified)]);
                h.write_u64(p.len() as u64);
                h.write(p.as_bytes());
            }
            None => h.write(&[0]),
        }
        Some(Scope(h.finish()))
    }

    /// Whether a text of `len` bytes is worth a lookup.
    pub(super) fn caches(&self, len: usize) -> bool {
        len >= self.limits.min_text_bytes
    }

    fn tag(&self, scope: Scope, phase: Phase, role: Role, text: &str) -> Tag {
        let mut h = Sip128::new(self.key);
        let (a, b) = scope.0;
        h.write_u64(a);
        h.write_u64(b);
        h.write(&[phase as u8, role as u8]);
        h.write_u64(text.len() as u64);
        h.write(text.as_bytes());
        let (a, b) = h.finish();
        Tag(a, b)
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
        let slot = self
            .map
            .get(&tag)
            .and_then(|&i| self.slots.get_mut(i as usize));
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
        while self.map.len() >= self.limits.max_entries || self.bytes + cost > self.limits.max_bytes
        {
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
        self.bytes += cost;
        self.map.insert(pending.0, index);
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
            self.map.remove(&tag);
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
