//! Our literal automaton: Aho-Corasick compiled once into a DFA over byte classes (or, for
//! large sets, a sparse NFA: see Forms), with
//! exactly the searches the detectors use, and the same hits as the aho-corasick crate gives in
//! those modes (the oracle tests in `tests/automaton.rs` compare them hit for hit):
//!
//! - [`Automaton::overlapping`]: standard semantics, every occurrence of every pattern,
//!   reported by end position; at one end, the longest pattern first, then its proper suffixes
//!   (patterns reaching the same state, such as case variants, in pattern order). The
//!   prefilter, the secret prefixes and the keyword sets.
//! - [`Automaton::find_iter`] with [`MatchKind::Standard`]: non-overlapping, each hit the first
//!   to end after the previous one (the longest of those ending there), the search resuming at
//!   its end. Custom patterns' literals.
//! - [`Automaton::find_iter`] with [`MatchKind::LeftmostLongest`]: non-overlapping, the hit
//!   starting first, the longest of those. Pseudonym tokens, unspaced injection phrases.
//!
//! ASCII case-insensitivity is folded into the byte-class map (`a` and `A` are one class), so
//! the search is the same loop either way. Byte classes: each distinct (folded) byte of the
//! patterns is a class, every other byte shares class 0, so the table's stride is one plus the
//! number of distinct pattern bytes (the default policy's prefilter: a few dozen, not 256).
//!
//! States are numbered so that the dead state is 0 and match states come next: the search
//! loop is one class read and one table read per byte, and one comparison against the largest
//! match state id (the only per-byte branch besides the table's bounds check). State ids are
//! premultiplied by the stride and stored as `u16` when the table has at most 65,536 entries
//! (most policies), else as `u32`. When one to three bytes leave the start state (a custom
//! pattern's literal, a few pseudonym tokens) and they are rare in typical text
//! ([`SKIP_MAX_PER_1000`]: on a common byte memchr would stop every few bytes and cost more
//! than the table), the start state is numbered just past the match states, so the same
//! comparison catches it, and memchr jumps to the next of those bytes.
//!
//! Forms. The dense table holds states × classes ids: a few dozen KB for the default policy,
//! but a 10,000-term Chinese word list (~40,000 states, ~130 classes) would need 20 MiB. Past
//! [`DENSE_BYTES`] the automaton is sparse instead: per state its trie edges and its fail
//! link, followed on a miss as in the textbook NFA, with a dense start row (most
//! bytes of a text are read there). About 13 bytes a state (that list: 1.34 MB); same ids,
//! same hits, a few table reads a byte more where the search is deep in the trie.
//!
//! Bounds. Building, for patterns of `m` bytes in all over a stride of `k` classes: at most
//! `m + 1` states, O(m·k) time (the trie's sparse children are scanned linearly, at most `k`
//! each); memory O(m·k) for the dense form, only below [`DENSE_BYTES`], else O(m). Match
//! lists are not copied into each state: a match state keeps its own patterns and an output
//! link to the next match state on its fail chain that has some (12 bytes a match state, 4 a
//! pattern: O(m) in all, where copies grew to hundreds of times the pattern bytes along a
//! chain of nested suffixes such as `a`, `aa`, …); a state's hits are its own, then those
//! along the links, the order aho-corasick reports. A set
//! whose sparse form would pass [`MAX_HEAP_BYTES`] is refused ([`BuildError::TooLarge`]) as
//! the trie grows past it, as are empty patterns ([`BuildError::EmptyPattern`]: no site
//! accepts them). Searching a text of `n` bytes: O(n + h) for `h` hits in either form (sparse:
//! amortized, as each fail link followed is one level up the trie and each byte one level
//! down at most), no allocation; overlapping hits at one position are at most the number of
//! patterns.

/// The largest dense table built, in bytes (1 MiB): past it the automaton takes the sparse
/// form, whose size grows with the trie alone, not with trie states × byte classes (a
/// 10,000-term Chinese word list has ~40,000 states over ~130 classes: 20 MiB dense).
pub const DENSE_BYTES: usize = 1 << 20;

/// The largest automaton built, in bytes of the sparse form (16 MiB, about 1.2 million trie
/// states: a megabyte of distinct term bytes). Past it [`Automaton::new`] refuses instead of
/// growing without limit with a policy's keywords.
pub const MAX_HEAP_BYTES: usize = 16 << 20;

/// How often each ASCII byte occurs in typical text, per 1,000 bytes: counted over
/// policies/examples/*.jsonl (chat requests and responses as JSON) and README.md, 156 KB. The
/// same idea as the byte frequency ranks of aho-corasick and memchr, with our own counts.
const ASCII_PER_1000: [u8; 128] = [
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 155, 0, 20, 1, 0, 0, 0, 2, 5, 5, 2, 0, 15, 17, 7, 3, 6, 5, 3, 2, 2, 2, 1, 1, 1, 1, 9, 2, 0,
    0, 0, 0, 0, 3, 1, 2, 2, 3, 1, 0, 1, 2, 1, 0, 1, 2, 2, 2, 2, 0, 2, 3, 2, 1, 1, 0, 0, 0, 0, 1, 6,
    1, 0, 7, 22, 49, 7, 26, 30, 87, 10, 11, 23, 37, 2, 7, 24, 15, 42, 45, 18, 2, 44, 49, 59, 17, 6,
    9, 5, 11, 1, 2, 7, 2, 0, 0,
];

/// The memchr skip is used when its bytes together occur at most this often per 1,000 bytes
/// of typical text (a landing every 25 bytes or more). Measured natively (cachegrind,
/// `examples/prof_automaton`): the skip wins 4–100× on `u`, `0`, `E` (SIMD memchr), is even on
/// `e` (8.7%) and loses 29–40% on a space (15.5%). So `e`, space, `t`, `a`, `s`, `o`, `n`,
/// `r` go without it, as does any non-ASCII byte (a UTF-8 lead byte is common in its script).
const SKIP_MAX_PER_1000: u32 = 40;

/// Heap bytes per trie state in the sparse form: its class and target (the edge into it), its
/// fail link and its offset.
const SPARSE_STATE_BYTES: usize = 13;

/// How non-overlapping searches choose among hits. Overlapping search needs
/// [`MatchKind::Standard`]: a leftmost automaton stops at its dead state, so it refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchKind {
    /// The first hit to end; at that end, the longest pattern.
    Standard,
    /// The hit that starts first; of those, the longest.
    LeftmostLongest,
}

/// Why an automaton was not built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildError {
    /// Pattern `0` is empty.
    EmptyPattern(usize),
    /// The automaton would exceed [`MAX_HEAP_BYTES`] (or the ids `u32`).
    TooLarge,
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildError::EmptyPattern(i) => write!(f, "pattern {i} is empty"),
            BuildError::TooLarge => write!(f, "more than {MAX_HEAP_BYTES} bytes"),
        }
    }
}

/// One occurrence: pattern index and byte range in the haystack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub pattern: usize,
    pub start: usize,
    pub end: usize,
}

/// The transitions: dense with premultiplied ids (`u16` for small tables, `u32` otherwise),
/// or sparse past [`DENSE_BYTES`].
#[derive(Clone)]
enum Table {
    Narrow(Box<[u16]>),
    Wide(Box<[u32]>),
    Sparse(Sparse),
}

/// Per state its trie edges (in insertion order, scanned linearly: below the root most states
/// have one or two) and its fail link, searched the standard NFA way
/// (no edge: follow the fail link and retry); the start state's row is dense, so every chain
/// ends in one read there. State ids are plain indices (not premultiplied).
#[derive(Clone)]
struct Sparse {
    start: usize,
    root: Box<[u32]>,
    /// State `s`'s edges are `edge_class[offs[s]..offs[s + 1]]` (and the same in `edge_next`).
    offs: Box<[u32]>,
    fail: Box<[u32]>,
    edge_class: Box<[u8]>,
    edge_next: Box<[u32]>,
}

impl Sparse {
    fn heap_bytes(&self) -> usize {
        (self.root.len() + self.offs.len() + self.fail.len() + self.edge_next.len()) * 4
            + self.edge_class.len()
    }
}

/// The transition function of one form.
trait Delta {
    fn next(&self, state: usize, class: usize) -> usize;
}

impl Delta for [u16] {
    #[inline(always)]
    fn next(&self, state: usize, class: usize) -> usize {
        self.get(state + class).map_or(0, |&t| usize::from(t))
    }
}

impl Delta for [u32] {
    #[inline(always)]
    fn next(&self, state: usize, class: usize) -> usize {
        self.get(state + class).map_or(0, |&t| t as usize)
    }
}

impl Delta for Sparse {
    /// Out of line: one copy in the module (large sets are rare; their search is not the hot
    /// path of the default policy).
    #[inline(never)]
    fn next(&self, mut state: usize, class: usize) -> usize {
        // Each fail link leads to a shallower state, so this ends at the start or the dead one.
        loop {
            if state == self.start {
                return self.root.get(class).map_or(0, |&t| t as usize);
            }
            if state == 0 {
                return 0;
            }
            let from = self.offs.get(state).map_or(0, |&o| o as usize);
            let to = self.offs.get(state + 1).map_or(0, |&o| o as usize);
            let classes = self.edge_class.get(from..to).unwrap_or_default();
            if let Some(i) = classes.iter().position(|&c| usize::from(c) == class) {
                return self.edge_next.get(from + i).map_or(0, |&t| t as usize);
            }
            state = self.fail.get(state).map_or(0, |&f| f as usize);
        }
    }
}

/// A compiled set of literal patterns.
#[derive(Clone)]
pub struct Automaton {
    kind: MatchKind,
    classes: [u8; 256],
    table: Table,
    stride: usize,
    /// What state ids are multiplied by: the stride when dense, 1 when sparse.
    unit: usize,
    /// Premultiplied id of the start state.
    start: usize,
    /// Ids up to this one (premultiplied) are the dead state (0) and the match states.
    max_match: usize,
    /// Ids up to this one leave the search loop: `max_match`, or the start state's id (just
    /// past the match states) when `first` is set.
    max_special: usize,
    /// The bytes that leave the start state, when there are one to three of them: the search
    /// jumps between them with memchr instead of reading each byte in the start state.
    first: Option<([u8; 3], usize)>,
    /// The same bytes whether rare or not (for [`Automaton::with_skip`]).
    start_bytes: Option<([u8; 3], usize)>,
    /// Per match state (its match number, id / unit, minus 1), its own patterns' range in
    /// `pids`.
    ranges: Box<[(u32, u32)]>,
    /// Per match state, the match number of the next state on its fail chain that ends
    /// patterns itself (0: none). A state's hits are its own, then those along these links.
    outs: Box<[u32]>,
    pids: Box<[u32]>,
    lens: Box<[u32]>,
}

impl std::fmt::Debug for Automaton {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Automaton")
            .field("patterns", &self.lens.len())
            .field("stride", &self.stride)
            .field("heap_bytes", &self.heap_bytes())
            .finish()
    }
}

/// The trie during the build: sparse children by class, fail links, own patterns.
struct Node {
    children: Vec<(u8, u32)>,
    fail: u32,
    /// The patterns this node ends itself, in pattern order.
    pids: Vec<u32>,
    /// The node ends a pattern itself (not only through its suffixes).
    own: bool,
    /// The nearest node on the fail chain that ends a pattern itself ([`DEAD`]: none): its
    /// patterns, then its `out`'s, and so on, follow this node's own.
    out: u32,
}

/// Node indices during the build.
const DEAD: u32 = 0;
const START: u32 = 1;

impl Automaton {
    /// Compiles `patterns` (pattern `i` is reported as `i`). `ascii_case_insensitive` matches
    /// ASCII letters in either case; other bytes match exactly.
    pub fn new<I, P>(
        patterns: I,
        kind: MatchKind,
        ascii_case_insensitive: bool,
    ) -> Result<Automaton, BuildError>
    where
        I: IntoIterator<Item = P>,
        P: AsRef<[u8]>,
    {
        Automaton::collect(patterns, kind, ascii_case_insensitive, false)
    }

    /// [`Automaton::new`] in the sparse form whatever its size, so the tests can compare both
    /// forms on small sets.
    #[doc(hidden)]
    pub fn new_sparse<I, P>(
        patterns: I,
        kind: MatchKind,
        ascii_case_insensitive: bool,
    ) -> Result<Automaton, BuildError>
    where
        I: IntoIterator<Item = P>,
        P: AsRef<[u8]>,
    {
        Automaton::collect(patterns, kind, ascii_case_insensitive, true)
    }

    /// The patterns as byte slices for [`Automaton::build`], which is not generic (one
    /// compiled copy whatever the callers' pattern types).
    fn collect<I, P>(
        patterns: I,
        kind: MatchKind,
        ascii_case_insensitive: bool,
        sparse: bool,
    ) -> Result<Automaton, BuildError>
    where
        I: IntoIterator<Item = P>,
        P: AsRef<[u8]>,
    {
        let patterns: Vec<P> = patterns.into_iter().collect();
        let patterns: Vec<&[u8]> = patterns.iter().map(AsRef::as_ref).collect();
        Automaton::build(&patterns, kind, ascii_case_insensitive, sparse)
    }

    /// Whether the search jumps between start bytes with memchr.
    #[doc(hidden)]
    pub fn skips(&self) -> bool {
        self.first.is_some()
    }

    /// The memchr skip whenever one to three bytes leave the start state, rare or not, so
    /// the tests can check the skip on any set.
    #[doc(hidden)]
    pub fn with_skip(mut self) -> Automaton {
        if let Some(f) = self.start_bytes {
            self.first = Some(f);
            self.max_special = self.start;
        }
        self
    }

    /// Whether its dense table holds `u32` ids (else `u16`, or sparse).
    #[doc(hidden)]
    pub fn is_wide(&self) -> bool {
        matches!(self.table, Table::Wide(_))
    }

    /// Whether it took the sparse form.
    #[doc(hidden)]
    pub fn is_sparse(&self) -> bool {
        matches!(self.table, Table::Sparse(_))
    }

    /// [`Automaton::new`]'s body: one compiled copy, not one per caller's pattern type.
    #[inline(never)]
    fn build(
        patterns: &[&[u8]],
        kind: MatchKind,
        ascii_case_insensitive: bool,
        force_sparse: bool,
    ) -> Result<Automaton, BuildError> {
        let fold = |b: u8| {
            if ascii_case_insensitive {
                b.to_ascii_lowercase()
            } else {
                b
            }
        };
        // Classes: one per distinct folded pattern byte, in order of first appearance; 0 for
        // every other byte (none are left when all 256 occur: the classes then start at 0).
        let mut seen = [0u16; 256];
        let mut distinct: u16 = 0;
        for (i, p) in patterns.iter().enumerate() {
            if p.is_empty() {
                return Err(BuildError::EmptyPattern(i));
            }
            for &b in p.iter() {
                if let Some(c) = seen.get_mut(usize::from(fold(b))) {
                    if *c == 0 {
                        distinct += 1;
                        *c = distinct;
                    }
                }
            }
        }
        let shift = u16::from(distinct == 256);
        let mut classes = [0u8; 256];
        for (b, c) in classes.iter_mut().enumerate() {
            let folded = u8::try_from(b).map_or(0, fold);
            let class = seen.get(usize::from(folded)).copied().unwrap_or(0);
            *c = u8::try_from(class.saturating_sub(shift)).unwrap_or(0);
        }
        let stride = usize::from(distinct + 1 - shift);
        // The trie.
        let mut nodes: Vec<Node> = Vec::new();
        for _ in 0..2 {
            nodes.push(Node {
                children: Vec::new(),
                fail: START,
                pids: Vec::new(),
                own: false,
                out: DEAD,
            });
        }
        let mut lens = Vec::with_capacity(patterns.len());
        for (pid, p) in patterns.iter().enumerate() {
            let pid = u32::try_from(pid).map_err(|_| BuildError::TooLarge)?;
            let mut at = START;
            for &b in p.iter() {
                let class = classes.get(usize::from(b)).copied().unwrap_or(0);
                let node = nodes.get(at as usize).ok_or(BuildError::TooLarge)?;
                at = match node.children.iter().find(|c| c.0 == class) {
                    Some(&(_, next)) => next,
                    None => {
                        let next = u32::try_from(nodes.len()).map_err(|_| BuildError::TooLarge)?;
                        if nodes.len().saturating_mul(SPARSE_STATE_BYTES) > MAX_HEAP_BYTES {
                            return Err(BuildError::TooLarge);
                        }
                        nodes.push(Node {
                            children: Vec::new(),
                            fail: START,
                            pids: Vec::new(),
                            own: false,
                            out: DEAD,
                        });
                        if let Some(n) = nodes.get_mut(at as usize) {
                            n.children.push((class, next));
                        }
                        next
                    }
                };
            }
            if let Some(n) = nodes.get_mut(at as usize) {
                n.pids.push(pid);
                n.own = true;
            }
            lens.push(u32::try_from(p.len()).map_err(|_| BuildError::TooLarge)?);
        }
        let states = nodes.len();
        let id_bytes = if states * stride <= 1 << 16 { 2 } else { 4 };
        let sparse = force_sparse || states * stride * id_bytes > DENSE_BYTES;
        let unit = if sparse { 1 } else { stride };

        // Fail links, breadth first, as aho-corasick computes them: a node's matches are its
        // own then its fail node's; under leftmost semantics a node that ends a pattern fails
        // to the dead state (anything found after it would start later).
        let leftmost = kind == MatchKind::LeftmostLongest;
        let mut order: Vec<u32> = Vec::with_capacity(states);
        let mut queue: std::collections::VecDeque<u32> = std::collections::VecDeque::new();
        let start_children: Vec<u32> = nodes
            .get(START as usize)
            .map(|n| n.children.iter().map(|c| c.1).collect())
            .unwrap_or_default();
        for child in start_children {
            if let Some(n) = nodes.get_mut(child as usize) {
                if leftmost && n.own {
                    n.fail = DEAD;
                }
            }
            queue.push_back(child);
        }
        while let Some(id) = queue.pop_front() {
            order.push(id);
            let (count, id_fail) = match nodes.get(id as usize) {
                Some(n) => (n.children.len(), n.fail),
                None => continue,
            };
            // By index: the loop updates other nodes while it reads this one's children.
            for k in 0..count {
                let Some(&(class, next)) = nodes.get(id as usize).and_then(|n| n.children.get(k))
                else {
                    continue;
                };
                queue.push_back(next);
                let own = nodes.get(next as usize).is_some_and(|n| n.own);
                if leftmost && own {
                    if let Some(n) = nodes.get_mut(next as usize) {
                        n.fail = DEAD;
                    }
                    continue;
                }
                let mut fail = id_fail;
                let target = loop {
                    if fail == DEAD {
                        break DEAD;
                    }
                    let node = nodes.get(fail as usize);
                    if let Some(&(_, t)) =
                        node.and_then(|n| n.children.iter().find(|c| c.0 == class))
                    {
                        break t;
                    }
                    if fail == START {
                        break START;
                    }
                    fail = node.map_or(DEAD, |n| n.fail);
                };
                let out =
                    nodes
                        .get(target as usize)
                        .map_or(DEAD, |n| if n.own { target } else { n.out });
                if let Some(n) = nodes.get_mut(next as usize) {
                    n.fail = target;
                    n.out = out;
                }
            }
        }

        // Numbering: dead 0, match states 1.., then the others (start among them).
        let mut new_id = vec![0u32; states];
        let mut next_id: u32 = 1;
        let is_match = |n: &Node| n.own || n.out != DEAD;
        for (old, node) in nodes.iter().enumerate().skip(2) {
            if is_match(node) {
                if let Some(slot) = new_id.get_mut(old) {
                    *slot = next_id;
                }
                next_id += 1;
            }
        }
        // Per match state its own patterns' range in `pids` and its output link (a match
        // number, 0 for none): O(patterns + states), where copying the lists grew with the
        // square of a suffix chain's length.
        let mut ranges = Vec::new();
        let mut outs = Vec::new();
        let mut pids = Vec::new();
        for node in nodes.iter().skip(2).filter(|n| is_match(n)) {
            let from = u32::try_from(pids.len()).map_err(|_| BuildError::TooLarge)?;
            pids.extend_from_slice(&node.pids);
            let to = u32::try_from(pids.len()).map_err(|_| BuildError::TooLarge)?;
            ranges.push((from, to));
            outs.push(if node.out == DEAD {
                0
            } else {
                new_id.get(node.out as usize).copied().unwrap_or(0)
            });
        }
        let max_match = (next_id as usize - 1) * unit;
        for (old, node) in nodes.iter().enumerate().skip(1) {
            if !is_match(node) {
                if let Some(slot) = new_id.get_mut(old) {
                    *slot = next_id;
                }
                next_id += 1;
            }
        }
        let premul = |old: u32| new_id.get(old as usize).map_or(0, |&n| n as usize * unit) as u32;
        let start_id = premul(START) as usize;
        // The start state's row: its trie children over itself.
        let mut root = vec![premul(START); stride];
        if let Some(node) = nodes.get(START as usize) {
            for &(class, next) in &node.children {
                if let Some(t) = root.get_mut(usize::from(class)) {
                    *t = premul(next);
                }
            }
        }
        let mut first = ([0u8; 3], 0usize);
        for b in 0..=255u8 {
            let class = usize::from(classes.get(usize::from(b)).copied().unwrap_or(0));
            if root.get(class).is_some_and(|&t| t as usize != start_id) {
                if let Some(slot) = first.0.get_mut(first.1) {
                    *slot = b;
                }
                first.1 += 1;
            }
        }
        let rare = first.0.iter().take(first.1).fold(0u32, |sum, &b| {
            sum.saturating_add(
                ASCII_PER_1000
                    .get(usize::from(b))
                    .map_or(u32::MAX, |&f| u32::from(f)),
            )
        }) <= SKIP_MAX_PER_1000;
        // The sparse form keeps one search loop (module size): no skip.
        let start_bytes = (!sparse && (1..=3).contains(&first.1)).then_some(first);
        let first = start_bytes.filter(|_| rare);
        let table = if sparse {
            Table::Sparse(Automaton::sparse(&nodes, &new_id, start_id, root))
        } else {
            // The dense table: a node's row is its trie children over its fail node's row,
            // filled in breadth-first order so the fail row is done.
            let mut table = vec![0u32; states * stride];
            if let Some(row) = table.get_mut(start_id..start_id + stride) {
                row.copy_from_slice(&root);
            }
            for &id in &order {
                let Some(node) = nodes.get(id as usize) else {
                    continue;
                };
                let row = premul(id) as usize;
                let fail_row = premul(node.fail) as usize;
                // In bounds by construction (every id is below states × stride); checked so
                // that a mistake cannot panic.
                if fail_row + stride <= table.len() && row + stride <= table.len() {
                    table.copy_within(fail_row..fail_row + stride, row);
                }
                for &(class, next) in &node.children {
                    if let Some(t) = table.get_mut(row + usize::from(class)) {
                        *t = premul(next);
                    }
                }
            }
            if id_bytes == 2 {
                Table::Narrow(table.iter().map(|&t| t as u16).collect())
            } else {
                Table::Wide(table.into_boxed_slice())
            }
        };
        let aut = Automaton {
            kind,
            classes,
            table,
            stride,
            unit,
            start: start_id,
            max_match,
            max_special: if first.is_some() { start_id } else { max_match },
            first,
            start_bytes,
            ranges: ranges.into_boxed_slice(),
            outs: outs.into_boxed_slice(),
            pids: pids.into_boxed_slice(),
            lens: lens.into_boxed_slice(),
        };
        if aut.heap_bytes() > MAX_HEAP_BYTES {
            return Err(BuildError::TooLarge);
        }
        Ok(aut)
    }

    /// The sparse form of the trie `nodes` renumbered by `new_id` (not premultiplied).
    fn sparse(nodes: &[Node], new_id: &[u32], start: usize, root: Vec<u32>) -> Sparse {
        let states = nodes.len();
        let mut by_id = vec![0usize; states];
        for (old, &id) in new_id.iter().enumerate() {
            if let Some(slot) = by_id.get_mut(id as usize) {
                *slot = old;
            }
        }
        let id = |old: u32| new_id.get(old as usize).copied().unwrap_or(0);
        let mut offs = Vec::with_capacity(states + 1);
        let mut fail = Vec::with_capacity(states);
        let edges = states.saturating_sub(2);
        let mut edge_class = Vec::with_capacity(edges);
        let mut edge_next = Vec::with_capacity(edges);
        for &old in &by_id {
            offs.push(u32::try_from(edge_class.len()).unwrap_or(u32::MAX));
            let Some(node) = nodes.get(old) else {
                fail.push(0);
                continue;
            };
            fail.push(if old == DEAD as usize {
                0
            } else {
                id(node.fail)
            });
            // The start state's edges live in `root`.
            if old != START as usize {
                edge_class.extend(node.children.iter().map(|c| c.0));
                edge_next.extend(node.children.iter().map(|c| id(c.1)));
            }
        }
        offs.push(u32::try_from(edge_class.len()).unwrap_or(u32::MAX));
        Sparse {
            start,
            root: root.into_boxed_slice(),
            offs: offs.into_boxed_slice(),
            fail: fail.into_boxed_slice(),
            edge_class: edge_class.into_boxed_slice(),
            edge_next: edge_next.into_boxed_slice(),
        }
    }

    /// Bytes of heap it holds (the table, the match states' patterns and links, the pattern
    /// lengths).
    pub fn heap_bytes(&self) -> usize {
        let table = match &self.table {
            Table::Narrow(t) => t.len() * 2,
            Table::Wide(t) => t.len() * 4,
            Table::Sparse(t) => t.heap_bytes(),
        };
        table + self.ranges.len() * 8 + (self.outs.len() + self.pids.len() + self.lens.len()) * 4
    }

    /// Every occurrence of every pattern, overlapping ones too (see the module docs). Only on
    /// a [`MatchKind::Standard`] automaton: on a leftmost one it yields nothing rather than
    /// the few hits before its first dead state (no site asks for that).
    pub fn overlapping<'a>(&'a self, haystack: &'a [u8]) -> Overlapping<'a> {
        let standard = self.kind == MatchKind::Standard;
        Overlapping {
            aut: self,
            haystack,
            at: if standard { 0 } else { haystack.len() },
            state: self.start,
            pending: None,
        }
    }

    /// Non-overlapping hits in the automaton's [`MatchKind`].
    pub fn find_iter<'a>(&'a self, haystack: &'a [u8]) -> FindIter<'a> {
        FindIter {
            aut: self,
            haystack,
            at: 0,
        }
    }

    /// Where match state `state`'s (premultiplied) hits begin: a match number and an index
    /// in its own patterns.
    fn first(&self, state: usize) -> Option<Cursor> {
        let m = (state / self.unit).checked_sub(1)?;
        let &(from, to) = self.ranges.get(m)?;
        if from < to {
            return Some((m + 1, 0));
        }
        let out = *self.outs.get(m)? as usize;
        (out != 0).then_some((out, 0))
    }

    /// The hit at `cursor` ending at `end`.
    fn hit(&self, (m, i): Cursor, end: usize) -> Option<Hit> {
        let &(from, _) = self.ranges.get(m.checked_sub(1)?)?;
        let pid = *self.pids.get(from as usize + i)?;
        let len = *self.lens.get(pid as usize)? as usize;
        Some(Hit {
            pattern: pid as usize,
            start: end.checked_sub(len)?,
            end,
        })
    }

    /// The hit after `cursor`'s: the next of the state's own, else the first along its
    /// output link.
    fn advance(&self, (m, i): Cursor) -> Option<Cursor> {
        let &(from, to) = self.ranges.get(m.checked_sub(1)?)?;
        if from as usize + i + 1 < to as usize {
            return Some((m, i + 1));
        }
        let out = *self.outs.get(m - 1)? as usize;
        (out != 0).then_some((out, 0))
    }

    /// Runs from `state` over `haystack[at..]` to the first special state (dead or match):
    /// its id and the position after the byte that led there, or the end of the haystack.
    /// `SKIP`: the automaton has a memchr set (`first`), and the start state is special.
    #[inline(always)]
    fn run<T: Delta + ?Sized, const SKIP: bool>(
        &self,
        table: &T,
        mut state: usize,
        haystack: &[u8],
        mut at: usize,
    ) -> (usize, usize) {
        if SKIP && state == self.start {
            at = self.skip(haystack, at);
        }
        'scan: loop {
            let rest = haystack.get(at..).unwrap_or_default();
            for (i, &b) in rest.iter().enumerate() {
                let class = usize::from(self.classes.get(usize::from(b)).copied().unwrap_or(0));
                state = table.next(state, class);
                if state <= self.max_special {
                    if !SKIP || state != self.start {
                        return (state, at + i + 1);
                    }
                    at = self.skip(haystack, at + i + 1);
                    continue 'scan;
                }
            }
            return (state, haystack.len());
        }
    }

    /// Where the next byte that leaves the start state is, from `at` (the haystack's end when
    /// there is none); `at` itself without a memchr set.
    fn skip(&self, haystack: &[u8], at: usize) -> usize {
        let Some(([a, b, c], n)) = self.first else {
            return at;
        };
        let rest = haystack.get(at..).unwrap_or_default();
        let found = match n {
            1 => memchr::memchr(a, rest),
            2 => memchr::memchr2(a, b, rest),
            _ => memchr::memchr3(a, b, c, rest),
        };
        found.map_or(haystack.len(), |i| at + i)
    }

    fn run_any(&self, state: usize, haystack: &[u8], at: usize) -> (usize, usize) {
        match (&self.table, self.first.is_some()) {
            (Table::Narrow(t), false) => self.run::<[u16], false>(t, state, haystack, at),
            (Table::Narrow(t), true) => self.run::<[u16], true>(t, state, haystack, at),
            (Table::Wide(t), false) => self.run::<[u32], false>(t, state, haystack, at),
            (Table::Wide(t), true) => self.run::<[u32], true>(t, state, haystack, at),
            (Table::Sparse(t), _) => self.run::<_, false>(t, state, haystack, at),
        }
    }

    /// The next non-overlapping hit starting the search at `at`.
    fn find_at(&self, haystack: &[u8], mut at: usize) -> Option<Hit> {
        let mut state = self.start;
        let mut found = None;
        while at < haystack.len() {
            (state, at) = self.run_any(state, haystack, at);
            if state > self.max_match {
                break;
            }
            if state == 0 {
                return found;
            }
            found = self.first(state).and_then(|c| self.hit(c, at));
            if self.kind == MatchKind::Standard {
                return found;
            }
        }
        found
    }
}

/// A position in a match state's hits: a match number (from 1) and an index in that state's
/// own patterns.
type Cursor = (usize, usize);

/// [`Automaton::overlapping`]'s iterator.
pub struct Overlapping<'a> {
    aut: &'a Automaton,
    haystack: &'a [u8],
    at: usize,
    state: usize,
    /// The next hit of the current match state's list.
    pending: Option<Cursor>,
}

impl Iterator for Overlapping<'_> {
    type Item = Hit;

    fn next(&mut self) -> Option<Hit> {
        if let Some(c) = self.pending {
            self.pending = self.aut.advance(c);
            return self.aut.hit(c, self.at);
        }
        if self.at >= self.haystack.len() {
            return None;
        }
        let (state, at) = self.aut.run_any(self.state, self.haystack, self.at);
        self.state = state;
        self.at = at;
        if state > self.aut.max_match || state == 0 {
            self.at = self.haystack.len();
            return None;
        }
        let c = self.aut.first(state)?;
        self.pending = self.aut.advance(c);
        self.aut.hit(c, at)
    }
}

/// [`Automaton::find_iter`]'s iterator.
pub struct FindIter<'a> {
    aut: &'a Automaton,
    haystack: &'a [u8],
    at: usize,
}

impl Iterator for FindIter<'_> {
    type Item = Hit;

    fn next(&mut self) -> Option<Hit> {
        if self.at >= self.haystack.len() {
            return None;
        }
        let hit = self.aut.find_at(self.haystack, self.at);
        self.at = hit.map_or(self.haystack.len(), |h| h.end);
        hit
    }
}
