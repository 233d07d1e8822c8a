//! Paths from a body's root to one of its values: navigation, and the tree in which
//! extraction records where every text lives.
//!
//! A [`Paths`] tree is shared by all texts of a body: a text's path is one node (its last step)
//! whose parent is the node of the container above it, so texts under the same container share
//! every step above them, and keys are the formats' own `&'static str` names (or, for bodies
//! of unknown shape, copied once per node). A path is never copied per text: before this, a
//! 1 MiB body of arrays nested 120 deep held 740 MiB of path copies.
//!
//! [`Texts`] collects a body's texts and caps what one body may cost: at most [`MAX_SEGMENTS`]
//! texts, [`MAX_PATH_NODES`] nodes and [`MAX_DEPTH`] levels of nesting. A body over a cap is
//! not inspected in part: its extraction fails ([`TooComplex`]) and the caller decides.

use serde_json::Value;

use super::{Role, Segment};

/// Most texts extracted from one body.
pub const MAX_SEGMENTS: usize = 100_000;
/// Most nodes in the path tree of one body: one per text plus the steps above it that texts do
/// not share (at most five in the known formats, one per container in unknown shapes).
pub const MAX_PATH_NODES: usize = 400_000;
/// Most levels of containers read below a body's root: serde_json already refuses to parse
/// JSON nested deeper, so this only bounds values built in code.
pub const MAX_DEPTH: usize = 128;

/// One step of a path: an object key or an array index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathSeg<'k> {
    Key(&'k str),
    Index(usize),
}

/// Where a text sits at its path, and so how a changed text is written back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Slot {
    /// A string value: replaced.
    #[default]
    Value,
    /// An object key (the path's last step): the key is renamed.
    Key,
    /// A number's digits: the number becomes a string.
    Number,
}

/// A body's texts would exceed a cap: [`Texts`] stopped collecting them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TooComplex {
    /// More than [`MAX_SEGMENTS`] texts.
    Texts,
    /// More than [`MAX_PATH_NODES`] path nodes.
    PathNodes,
    /// Containers nested deeper than [`MAX_DEPTH`].
    Depth,
}

impl TooComplex {
    /// What the record says (never any of the body's content).
    pub fn detail(self) -> String {
        match self {
            TooComplex::Texts => format!("body has more than {MAX_SEGMENTS} texts"),
            TooComplex::PathNodes => {
                format!("body has more than {MAX_PATH_NODES} path steps to its texts")
            }
            TooComplex::Depth => format!("body is nested deeper than {MAX_DEPTH}"),
        }
    }
}

/// A path in a [`Paths`] tree; [`PathId::ROOT`] is the body itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PathId(u32);

impl PathId {
    pub const ROOT: PathId = PathId(0);
}

#[derive(Debug, Clone, Copy)]
enum Step {
    /// A field name known in advance (the formats').
    Static(&'static str),
    /// A key of the body (unknown shapes): `keys[at..at + len]`.
    Copied {
        at: u32,
        len: u32,
    },
    Index(u32),
}

#[derive(Debug, Clone, Copy)]
struct Node {
    parent: PathId,
    step: Step,
}

/// The tree of a body's text paths: node `i` is `PathId(i + 1)`.
#[derive(Debug, Default, Clone)]
pub struct Paths {
    nodes: Vec<Node>,
    keys: String,
}

impl Paths {
    /// Nodes in the tree.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The steps from the root to `id` (empty for the root or an unknown id).
    pub fn steps(&self, id: PathId) -> Vec<PathSeg<'_>> {
        let mut steps = Vec::new();
        let mut at = id;
        while let Some(node) = at.0.checked_sub(1).and_then(|i| self.nodes.get(i as usize)) {
            steps.push(match node.step {
                Step::Static(k) => PathSeg::Key(k),
                Step::Copied { at, len } => PathSeg::Key(
                    self.keys
                        .get(at as usize..at as usize + len as usize)
                        .unwrap_or_default(),
                ),
                Step::Index(i) => PathSeg::Index(i as usize),
            });
            at = node.parent;
        }
        steps.reverse();
        steps
    }

    /// The value at `id` in `root`, if every step exists.
    pub fn get<'v>(&self, root: &'v Value, id: PathId) -> Option<&'v Value> {
        get(root, &self.steps(id))
    }

    /// Replaces the string at `id`; false (body untouched) when it does not lead to a string.
    pub fn replace(&self, root: &mut Value, id: PathId, text: String) -> bool {
        replace(root, &self.steps(id), text)
    }

    /// Writes a changed text back into its slot: a string replaced, a number turned into the
    /// string, a key renamed (to a name no other key of its object has: a `#2`, `#3`… suffix
    /// when needed, so no value is lost). False (body untouched) when the slot is not there.
    pub fn write(&self, root: &mut Value, id: PathId, slot: Slot, text: String) -> bool {
        let steps = self.steps(id);
        match slot {
            Slot::Value => replace(root, &steps, text),
            Slot::Number => match get_mut(root, &steps) {
                Some(v @ Value::Number(_)) => {
                    *v = Value::String(text);
                    true
                }
                _ => false,
            },
            Slot::Key => {
                let Some((PathSeg::Key(old), parent)) = steps.split_last() else {
                    return false;
                };
                let Some(obj) = get_mut(root, parent).and_then(Value::as_object_mut) else {
                    return false;
                };
                let Some(v) = obj.remove(*old) else {
                    return false;
                };
                let mut name = text.clone();
                let mut n = 1;
                while obj.contains_key(&name) {
                    n += 1;
                    name = format!("{text}#{n}");
                }
                obj.insert(name, v);
                true
            }
        }
    }

    /// A new node; the caller checks the caps.
    fn push(&mut self, parent: PathId, step: Step) -> PathId {
        self.nodes.push(Node { parent, step });
        // Below MAX_PATH_NODES, so it fits.
        PathId(u32::try_from(self.nodes.len()).unwrap_or(u32::MAX))
    }
}

/// The texts of a body, each with its path in a shared [`Paths`] tree (see
/// [`super::extract`]).
#[derive(Debug, Default)]
pub struct Texts<'a> {
    pub segments: Vec<Segment<'a>>,
    pub paths: Paths,
    /// The digits of numbers inspected as text ([`Slot::Number`]), at their paths: owned, as
    /// the body holds no text for them. [`Texts::all`] lists them with the segments.
    pub numbers: Vec<(PathId, String)>,
    failed: Option<TooComplex>,
    /// Counting only ([`Texts::counting`]): no text, node or key is kept.
    tally: Option<Tally>,
}

/// What a counting [`Texts`] keeps instead of the texts: the same numbers the caps and the
/// record read (texts, their bytes, path nodes, copied key bytes), and the addresses of the
/// texts a format's own extraction emitted, which [`super::generic::rest`] must not emit twice.
#[derive(Debug, Default)]
struct Tally {
    texts: usize,
    bytes: u64,
    nodes: usize,
    keys: usize,
    emitted: Vec<usize>,
    /// Set once [`Texts::emitted`] handed the addresses over: later texts are `rest`'s own.
    sealed: bool,
}

impl<'a> Texts<'a> {
    pub fn new() -> Texts<'a> {
        Texts::default()
    }

    /// A collector that only counts: what a policy with no rule for a body's texts needs
    /// (the record's `segments` and `text_bytes`, and the same [`TooComplex`] verdict), without
    /// a segment list, a path tree or copied keys. [`Texts::len`] and [`Texts::text_bytes`]
    /// answer as they would have; [`Texts::all`] is empty.
    pub fn counting() -> Texts<'a> {
        Texts {
            tally: Some(Tally::default()),
            ..Texts::default()
        }
    }

    /// How many texts: segments and numbers.
    pub fn len(&self) -> usize {
        match &self.tally {
            Some(t) => t.texts,
            None => self.segments.len() + self.numbers.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of all texts (segments and numbers' digits).
    pub fn text_bytes(&self) -> u64 {
        match &self.tally {
            Some(t) => t.bytes,
            None => {
                let segments = self.segments.iter().map(|s| s.text.len() as u64);
                let numbers = self.numbers.iter().map(|(_, d)| d.len() as u64);
                segments.chain(numbers).sum()
            }
        }
    }

    /// The addresses of the texts emitted so far, sorted (what [`super::generic::rest`] skips);
    /// a counting collector keeps no more of them after this.
    pub(crate) fn emitted(&mut self) -> Vec<usize> {
        let mut seen: Vec<usize> = match &mut self.tally {
            Some(t) => {
                t.sealed = true;
                std::mem::take(&mut t.emitted)
            }
            None => self
                .segments
                .iter()
                .map(|s| s.text.as_ptr() as usize)
                .collect(),
        };
        if seen.len() > 1 {
            crate::sort::sort_by(&mut seen, &Ord::cmp);
        }
        seen
    }

    fn nodes(&self) -> usize {
        match &self.tally {
            Some(t) => t.nodes,
            None => self.paths.nodes.len(),
        }
    }

    /// A new node of the tree (only counted when counting); the caller checks the caps.
    fn node(&mut self, parent: PathId, step: Step) -> PathId {
        match &mut self.tally {
            Some(t) => {
                t.nodes += 1;
                PathId(u32::try_from(t.nodes).unwrap_or(u32::MAX))
            }
            None => self.paths.push(parent, step),
        }
    }

    /// The texts, or the cap the body exceeded.
    pub fn finish(self) -> Result<Texts<'a>, TooComplex> {
        match self.failed {
            Some(why) => Err(why),
            None => Ok(self),
        }
    }

    /// Whether a cap was reached (collecting more is pointless).
    pub(crate) fn failed(&self) -> bool {
        self.failed.is_some()
    }

    /// Stops collecting: the body exceeds a cap.
    pub(crate) fn fail(&mut self, why: TooComplex) {
        self.failed.get_or_insert(why);
    }

    fn room_for(&mut self, nodes: usize) -> bool {
        if self.nodes() + nodes > MAX_PATH_NODES {
            self.fail(TooComplex::PathNodes);
        }
        !self.failed()
    }

    /// `base` followed by the field names and indices of `rel`.
    pub(crate) fn at(&mut self, base: PathId, rel: &[PathSeg<'static>]) -> PathId {
        if !self.room_for(rel.len()) {
            return PathId::ROOT;
        }
        let mut at = base;
        for seg in rel {
            at = match *seg {
                PathSeg::Key(k) => self.node(at, Step::Static(k)),
                PathSeg::Index(i) => self.index(at, i),
            };
        }
        at
    }

    /// `base` followed by a key of the body, copied into the tree.
    pub(crate) fn key(&mut self, base: PathId, key: &str) -> PathId {
        let copied = match &self.tally {
            Some(t) => t.keys,
            None => self.paths.keys.len(),
        };
        let at = u32::try_from(copied);
        let len = u32::try_from(key.len());
        let (Ok(at), Ok(len)) = (at, len) else {
            self.fail(TooComplex::PathNodes);
            return PathId::ROOT;
        };
        if !self.room_for(1) {
            return PathId::ROOT;
        }
        match &mut self.tally {
            Some(t) => t.keys += key.len(),
            None => self.paths.keys.push_str(key),
        }
        self.node(base, Step::Copied { at, len })
    }

    /// `base` followed by an array index.
    pub(crate) fn index(&mut self, base: PathId, i: usize) -> PathId {
        match u32::try_from(i) {
            Ok(i) if self.room_for(1) => self.node(base, Step::Index(i)),
            Ok(_) => PathId::ROOT,
            Err(_) => {
                self.fail(TooComplex::PathNodes);
                PathId::ROOT
            }
        }
    }

    /// Adds a text at `path`.
    pub(crate) fn push(&mut self, role: Role, text: &'a str, path: PathId) {
        self.push_slot(role, text, path, Slot::Value);
    }

    /// Adds a text in `slot` at `path`.
    pub(crate) fn push_slot(&mut self, role: Role, text: &'a str, path: PathId, slot: Slot) {
        if self.len() >= MAX_SEGMENTS {
            self.fail(TooComplex::Texts);
        }
        if self.failed() {
            return;
        }
        match &mut self.tally {
            Some(t) => {
                t.texts += 1;
                t.bytes += text.len() as u64;
                if !t.sealed {
                    t.emitted.push(text.as_ptr() as usize);
                }
            }
            None => self.segments.push(Segment {
                role,
                text,
                path,
                slot,
            }),
        }
    }

    /// Adds a number's digits at `path`.
    pub(crate) fn push_number(&mut self, digits: String, path: PathId) {
        if self.len() >= MAX_SEGMENTS {
            self.fail(TooComplex::Texts);
        }
        if self.failed() {
            return;
        }
        match &mut self.tally {
            Some(t) => {
                t.texts += 1;
                t.bytes += digits.len() as u64;
            }
            None => self.numbers.push((path, digits)),
        }
    }

    /// Every text: the segments, then the numbers (role `other`); none when counting.
    pub fn all(&self) -> Vec<Segment<'_>> {
        let numbers = self.numbers.iter().map(|(path, digits)| Segment {
            role: Role::Other,
            text: digits,
            path: *path,
            slot: Slot::Number,
        });
        self.segments.iter().copied().chain(numbers).collect()
    }
}

/// The value at `path`, if every step exists (keys in objects, indices in arrays).
pub fn get<'v>(root: &'v Value, path: &[PathSeg<'_>]) -> Option<&'v Value> {
    path.iter().try_fold(root, |v, seg| match seg {
        PathSeg::Key(k) => v.as_object()?.get(*k),
        PathSeg::Index(i) => v.as_array()?.get(*i),
    })
}

/// The value at `path`, mutably, if every step exists.
pub fn get_mut<'v>(root: &'v mut Value, path: &[PathSeg<'_>]) -> Option<&'v mut Value> {
    path.iter().try_fold(root, |v, seg| match seg {
        PathSeg::Key(k) => v.as_object_mut()?.get_mut(*k),
        PathSeg::Index(i) => v.as_array_mut()?.get_mut(*i),
    })
}

/// Replaces the string at `path`; false (body untouched) when the path does not lead to a string.
pub fn replace(root: &mut Value, path: &[PathSeg<'_>], text: String) -> bool {
    match get_mut(root, path) {
        Some(Value::String(s)) => {
            *s = text;
            true
        }
        _ => false,
    }
}

/// A key step.
pub(crate) fn key(k: &str) -> PathSeg<'_> {
    PathSeg::Key(k)
}

/// An index step.
pub(crate) fn idx(i: usize) -> PathSeg<'static> {
    PathSeg::Index(i)
}

/// Adds a text when `value` is a non-empty string, at `base` followed by `rel`; the path's
/// nodes are only made then.
///
/// Empty strings carry nothing to inspect or rewrite, so they are not segments.
#[inline]
pub(crate) fn emit<'a>(
    out: &mut Texts<'a>,
    role: Role,
    value: Option<&'a Value>,
    base: PathId,
    rel: &[PathSeg<'static>],
) {
    if let Some(Value::String(s)) = value {
        if !s.is_empty() {
            let path = out.at(base, rel);
            out.push(role, s.as_str(), path);
        }
    }
}

/// A string field's value, or None.
#[inline]
pub(crate) fn str_field<'v>(v: &'v Value, k: &str) -> Option<&'v str> {
    v.get(k).and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn p<'k>(segs: &[PathSeg<'k>]) -> Vec<PathSeg<'k>> {
        segs.to_vec()
    }

    #[test]
    fn get_follows_keys_and_indices() {
        let v = json!({"a": [{"b": "x"}, {"b": "y"}]});
        let path = p(&[key("a"), idx(1), key("b")]);
        assert_eq!(get(&v, &path), Some(&json!("y")));
        assert_eq!(get(&v, &[]), Some(&v));
        assert_eq!(get(&v, &[key("a"), idx(2)]), None);
        assert_eq!(get(&v, &[key("a"), key("b")]), None, "key into an array");
        assert_eq!(get(&v, &[idx(0)]), None, "index into an object");
    }

    #[test]
    fn replace_only_strings() {
        let mut v = json!({"a": ["x", 1, null, {"s": "t"}]});
        assert!(replace(&mut v, &[key("a"), idx(0)], "new".into()));
        assert!(!replace(&mut v, &[key("a"), idx(1)], "n".into()));
        assert!(!replace(&mut v, &[key("a"), idx(2)], "n".into()));
        assert!(!replace(&mut v, &[key("a"), idx(3)], "n".into()));
        assert!(!replace(&mut v, &[key("a"), idx(9)], "n".into()));
        assert!(!replace(&mut v, &[key("zz")], "n".into()));
        assert!(replace(&mut v, &[key("a"), idx(3), key("s")], "u".into()));
        assert_eq!(v, json!({"a": ["new", 1, null, {"s": "u"}]}));
        let mut s = json!("root");
        assert!(replace(&mut s, &[], "r2".into()));
        assert_eq!(s, json!("r2"));
    }

    #[test]
    fn emit_skips_non_strings_and_empty() {
        let v = json!({"s": "x", "e": "", "n": 3});
        let mut out = Texts::new();
        for k in ["s", "e", "n", "missing"] {
            emit(&mut out, Role::User, v.get(k), PathId::ROOT, &[key(k)]);
        }
        assert_eq!(
            out.paths.len(),
            1,
            "paths are built only for emitted strings"
        );
        assert_eq!(out.segments.len(), 1);
        assert_eq!(out.segments[0].text, "x");
        assert_eq!(out.paths.steps(out.segments[0].path), vec![key("s")]);
    }

    #[test]
    fn texts_share_the_steps_above_them() {
        let v = json!({"m": [{"c": "x", "d": "y"}], "k": {"odd key": "z"}});
        let mut out = Texts::new();
        let item = out.at(PathId::ROOT, &[key("m"), idx(0)]);
        emit(&mut out, Role::User, v["m"][0].get("c"), item, &[key("c")]);
        emit(&mut out, Role::User, v["m"][0].get("d"), item, &[key("d")]);
        let k = out.at(PathId::ROOT, &[key("k")]);
        let odd = out.key(k, "odd key");
        out.push(Role::Other, "z", odd);
        // m, 0, c, d, k, "odd key": the texts under m[0] share two nodes.
        assert_eq!(out.paths.len(), 6);
        let texts = out.finish().unwrap();
        let p = &texts.paths;
        let steps: Vec<_> = texts.segments.iter().map(|s| p.steps(s.path)).collect();
        assert_eq!(
            steps,
            vec![
                vec![key("m"), idx(0), key("c")],
                vec![key("m"), idx(0), key("d")],
                vec![key("k"), key("odd key")],
            ]
        );
        let mut edited = v.clone();
        for (seg, new) in texts.segments.iter().zip(["1", "2", "3"]) {
            assert_eq!(p.get(&v, seg.path).and_then(Value::as_str), Some(seg.text));
            assert!(p.replace(&mut edited, seg.path, new.into()));
        }
        assert_eq!(
            edited,
            json!({"m": [{"c": "1", "d": "2"}], "k": {"odd key": "3"}})
        );
        assert!(p.steps(PathId::ROOT).is_empty());
        assert!(
            !p.replace(&mut edited, PathId::ROOT, "x".into()),
            "root is no string"
        );
    }

    #[test]
    fn caps_fail_the_extraction_instead_of_dropping_texts() {
        let mut out = Texts::new();
        for _ in 0..MAX_SEGMENTS {
            out.push(Role::User, "t", PathId::ROOT);
        }
        assert!(!out.failed());
        out.push(Role::User, "one too many", PathId::ROOT);
        assert_eq!(out.finish().unwrap_err(), TooComplex::Texts);

        let mut out = Texts::new();
        for i in 0..MAX_PATH_NODES {
            out.index(PathId::ROOT, i);
        }
        assert!(!out.failed());
        assert_eq!(out.at(PathId::ROOT, &[key("x")]), PathId::ROOT);
        assert_eq!(out.paths.len(), MAX_PATH_NODES, "no node past the cap");
        assert_eq!(out.finish().unwrap_err(), TooComplex::PathNodes);
        assert!(TooComplex::Depth.detail().contains("128"));
    }

    #[test]
    fn metadata_sizes_behind_the_documented_bound() {
        // README: 16 bytes per text and per path node on wasm32 (4-byte words).
        let word = std::mem::size_of::<usize>();
        assert!(std::mem::size_of::<Segment<'_>>() <= 4 * word);
        assert!(std::mem::size_of::<Node>() <= 4 * word);
    }
}
