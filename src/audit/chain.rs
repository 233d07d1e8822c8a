//! The tamper-evident trail: a hash chain over the records a VM emits, and signed checkpoints.
//! README "The audit trail's chain" is the specification a third party verifies against; this
//! is the gateway's side of it.
//!
//! - Every record a VM's outbox emits (decision, `policy_change`, `gap`, `checkpoint`) is
//!   linked before any sink sees it: it gains `chain: {"id", "seq", "prev"}` (`seq` counts
//!   from 1 without gaps; `prev` is the hash of record `seq - 1`, [`GENESIS`] for the first).
//! - The record is then written in its canonical form, RFC 8785 (JCS: object members sorted by
//!   their UTF-16 code units, no whitespace, shortest numbers, minimal string escapes), and
//!   those bytes are what every sink ships; the record's hash is SHA-256 over them (hex).
//!   A reader that re-serialised the record canonicalises it again and gets the same bytes.
//! - With a key configured, every N records or T ms a `checkpoint` record carries the chain
//!   head (its own `prev`), signed: `signature` = HMAC-SHA-256 over the canonical form of the
//!   checkpoint record without `signature`, with `key_id` naming the key. The key never leaves
//!   this module's [`Signer`] (and `Debug` hides it).
//!
//! One chain per VM and configuration: every sink receives the same chained records.

use std::fmt;

use base64::Engine as _;
use serde_json::{Map, Value};

use super::canonical::Link;
use super::{AuditRecord, IdGenerator, SCHEMA_VERSION};
use crate::config::read::{self, Fields, Path, ReadError};
use crate::error::ConfigError;
use crate::sha256::{self, hex};

/// `prev` of a chain's first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// The checkpoint signature's algorithm, as records name it.
pub const ALGORITHM: &str = "HMAC-SHA-256";
/// Shortest HMAC key accepted: the hash's output length (RFC 2104 §3).
pub const MIN_KEY_BYTES: usize = 32;

/// `audit.trail` in the plugin configuration: the checkpoint cadence and the signing key.
#[derive(Clone, PartialEq, Eq)]
pub struct TrailConfig {
    /// A checkpoint once this many records were linked since the last one (0: never by count).
    pub checkpoint_records: u64,
    /// A checkpoint once this long passed since the last one, if records were linked since
    /// (0: never by time).
    pub checkpoint_interval_ms: u64,
    /// Names the key in checkpoints, so a verifier picks the right one across rotations.
    pub key_id: Option<String>,
    /// The HMAC-SHA-256 key, base64 (standard alphabet), at least 32 bytes once decoded.
    pub hmac_key: Option<String>,
}

crate::deserialize_by_hand!(TrailConfig);

impl TrailConfig {
    /// `audit.trail` (every field optional, unknown fields refused).
    pub fn read(v: Value, path: Path<'_>) -> Result<TrailConfig, ReadError> {
        let mut f = Fields::new(
            v,
            path,
            "struct TrailConfig",
            &[
                "checkpoint_records",
                "checkpoint_interval_ms",
                "key_id",
                "hmac_key",
            ],
        )?;
        let d = TrailConfig::default();
        Ok(TrailConfig {
            checkpoint_records: f.or("checkpoint_records", read::u64, d.checkpoint_records)?,
            checkpoint_interval_ms: f.or(
                "checkpoint_interval_ms",
                read::u64,
                d.checkpoint_interval_ms,
            )?,
            key_id: f.opt("key_id", read::string)?,
            hmac_key: f.opt("hmac_key", read::string)?,
        })
    }
}

impl Default for TrailConfig {
    fn default() -> Self {
        TrailConfig {
            checkpoint_records: 1000,
            checkpoint_interval_ms: 60_000,
            key_id: None,
            hmac_key: None,
        }
    }
}

/// The key stays out of logs and errors.
impl fmt::Debug for TrailConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrailConfig")
            .field("checkpoint_records", &self.checkpoint_records)
            .field("checkpoint_interval_ms", &self.checkpoint_interval_ms)
            .field("key_id", &self.key_id)
            .field("hmac_key", &self.hmac_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Decodes a base64 key (standard alphabet, padding optional, surrounding whitespace ignored).
pub fn decode_key(text: &str) -> Option<Vec<u8>> {
    let t = text.trim().trim_end_matches('=');
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(t)
        .ok()
}

/// Whether a key id is usable: 1 to 64 of `A-Z a-z 0-9 . _ -`.
pub fn valid_key_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl TrailConfig {
    /// Checks the fields; errors name the field within `trail` (never the key).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field: &str, message: &str| Err(ConfigError::field(field, message));
        if self.checkpoint_records > 1_000_000 {
            return bad("checkpoint_records", "must be at most 1000000 (0: none)");
        }
        if self.checkpoint_interval_ms != 0
            && !(1_000..=86_400_000).contains(&self.checkpoint_interval_ms)
        {
            return bad(
                "checkpoint_interval_ms",
                "must be between 1000 and 86400000 (0: none)",
            );
        }
        match (&self.key_id, &self.hmac_key) {
            (None, None) => Ok(()),
            (Some(_), None) => bad("hmac_key", "is needed with key_id"),
            (None, Some(_)) => bad("key_id", "is needed with hmac_key"),
            (Some(id), Some(key)) => {
                if !valid_key_id(id) {
                    return bad("key_id", "must be 1 to 64 of A-Z a-z 0-9 . _ -");
                }
                match decode_key(key) {
                    None => bad("hmac_key", "is not base64"),
                    Some(k) if k.len() < MIN_KEY_BYTES => bad(
                        "hmac_key",
                        "must be at least 32 bytes (44 base64 characters)",
                    ),
                    Some(k) if k.len() > 1024 => bad("hmac_key", "must be at most 1024 bytes"),
                    Some(_) => Ok(()),
                }
            }
        }
    }

    fn signer(&self) -> Option<Signer> {
        Some(Signer {
            key_id: self.key_id.clone()?,
            key: decode_key(self.hmac_key.as_deref()?)?,
        })
    }
}

/// A checkpoint signing key and its id.
#[derive(Clone)]
pub struct Signer {
    pub key_id: String,
    key: Vec<u8>,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Signer {
    pub fn new(key_id: &str, key: Vec<u8>) -> Signer {
        Signer {
            key_id: key_id.to_string(),
            key,
        }
    }

    /// HMAC-SHA-256 of `message`, hex.
    pub fn sign(&self, message: &[u8]) -> String {
        hex(&hmac_sha256(&self.key, message))
    }
}

/// What the next record's `prev` commits to: SHA-256 of a record's canonical form, in hex.
pub fn link_hash(canonical: &str) -> String {
    sha256::hex_digest(canonical.as_bytes())
}

/// HMAC-SHA-256 (RFC 2104) of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    let hashed;
    let key = if key.len() > block.len() {
        hashed = sha256::digest(key);
        &hashed[..]
    } else {
        key
    };
    for (b, k) in block.iter_mut().zip(key) {
        *b = *k;
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let mut inner = sha256::Sha256::new();
    inner.update(&pad(0x36));
    inner.update(message);
    let mut outer = sha256::Sha256::new();
    outer.update(&pad(0x5c));
    outer.update(&inner.finish());
    outer.finish()
}

/// The RFC 8785 (JCS) serialisation of a JSON value.
pub fn canonical(v: &Value) -> String {
    let mut out = String::with_capacity(1024);
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(n, out),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(members) => {
            // serde_json's map iterates in byte order, which is UTF-16 order unless a key
            // has characters beyond the BMP and others at U+E000 and above.
            out.push('{');
            if members.keys().all(|k| k.is_ascii()) {
                // The map's own order, without a lookup per member (a record has ~40).
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_string(k, out);
                    out.push(':');
                    write_canonical(v, out);
                }
            } else {
                let mut keys: Vec<&String> = members.keys().collect();
                crate::sort::sort_by(&mut keys, &|a, b| a.encode_utf16().cmp(b.encode_utf16()));
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_string(k, out);
                    out.push(':');
                    if let Some(v) = members.get(k) {
                        write_canonical(v, out);
                    }
                }
            }
            out.push('}');
        }
    }
}

/// Integers as they are; other numbers as ECMAScript's `Number.prototype.toString` writes
/// them (RFC 8785 §3.2.2.3): the shortest round-trip digits (serde_json's, from ryu), placed
/// as ECMA-262 §6.1.6.1.20 says (exponent form below 1e-6 and from 1e21).
pub(crate) fn write_number(n: &serde_json::Number, out: &mut String) {
    if n.is_u64() || n.is_i64() {
        out.push_str(&n.to_string());
        return;
    }
    // Through serde_json's float writer (shortest round-trip digits, exponent form for large
    // and small values), not `Display`: core's float `Display` is 14 KB of the module.
    let text = serde_json::to_string(n).unwrap_or_default();
    let (negative, text) = match text.strip_prefix('-') {
        Some(t) => (true, t),
        None => (false, text.as_str()),
    };
    let (mantissa, exp) = match text.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (text, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    // The digits without leading or trailing zeros, and n: the value is 0.DIGITS × 10^n.
    let all: String = int.chars().chain(frac.chars()).collect();
    let lead = all.len() - all.trim_start_matches('0').len();
    let digits = all.trim_matches('0');
    if digits.is_empty() {
        out.push('0');
        return;
    }
    let n = int.len() as i32 - lead as i32 + exp;
    let k = digits.len() as i32;
    if negative {
        out.push('-');
    }
    if k <= n && n <= 21 {
        out.push_str(digits);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        let (a, b) = digits.split_at(n as usize);
        out.push_str(a);
        out.push('.');
        out.push_str(b);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(digits);
    } else {
        let (first, rest) = digits.split_at(1);
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        out.push('e');
        out.push(if n > 0 { '+' } else { '-' });
        out.push_str(&(n - 1).abs().to_string());
    }
}

pub(crate) fn write_string(s: &str, out: &mut String) {
    out.push('"');
    // Runs without `"`, `\` or a C0 control are copied whole: escapes are rare in a record.
    let mut rest = s;
    while let Some(i) = rest
        .bytes()
        .position(|b| b == b'"' || b == b'\\' || b < 0x20)
    {
        let Some((plain, tail)) = rest.split_at_checked(i) else {
            break;
        };
        out.push_str(plain);
        let mut chars = tail.chars();
        match chars.next() {
            Some('"') => out.push_str("\\\""),
            Some('\\') => out.push_str("\\\\"),
            Some('\u{8}') => out.push_str("\\b"),
            Some('\t') => out.push_str("\\t"),
            Some('\n') => out.push_str("\\n"),
            Some('\u{c}') => out.push_str("\\f"),
            Some('\r') => out.push_str("\\r"),
            Some(c) => {
                out.push_str("\\u00");
                out.push_str(&hex(&[c as u8]));
            }
            None => {}
        }
        rest = chars.as_str();
    }
    out.push_str(rest);
    out.push('"');
}

/// A linked record: its canonical JSON (what sinks ship) and its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Linked {
    pub json: String,
    pub seq: u64,
}

/// The chain of one VM's records.
#[derive(Debug)]
pub struct Chain {
    id: String,
    gateway: String,
    /// `seq` of the next record.
    next: u64,
    /// Hash (hex) of the last record linked.
    head: String,
    ids: IdGenerator,
    signer: Option<Signer>,
    every_records: u64,
    every_ms: u64,
    since_checkpoint: u64,
    last_checkpoint_ms: u64,
}

impl Chain {
    /// A new chain for the VM started at `start_ms`: its id is a UUIDv7 of that time with
    /// random bits from the VM's `seed`.
    pub fn new(config: &TrailConfig, gateway: &str, seed: u64, start_ms: u64) -> Chain {
        let mut ids = IdGenerator::new(seed ^ 0xc4a1_5eed);
        Chain {
            id: ids.next(start_ms),
            gateway: gateway.to_string(),
            next: 1,
            head: GENESIS.to_string(),
            ids,
            signer: config.signer(),
            every_records: config.checkpoint_records,
            every_ms: config.checkpoint_interval_ms,
            since_checkpoint: 0,
            last_checkpoint_ms: start_ms,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Links a record given as JSON. Anything but a JSON object (never one of ours) is kept
    /// as a string in an `unparseable` record rather than lost.
    pub fn link(&mut self, json: &str) -> Linked {
        let members = match serde_json::from_slice::<Value>(json.as_bytes()) {
            Ok(Value::Object(m)) => m,
            _ => {
                let mut m = Map::new();
                m.insert("schema_version".into(), SCHEMA_VERSION.into());
                m.insert("record_type".into(), "unparseable".into());
                m.insert("raw".into(), json.into());
                m
            }
        };
        self.link_members(members)
    }

    /// Links a record given as its members.
    pub fn link_members(&mut self, mut members: Map<String, Value>) -> Linked {
        let seq = self.next;
        let mut link = Map::new();
        link.insert("id".into(), self.id.clone().into());
        link.insert("seq".into(), seq.into());
        link.insert("prev".into(), self.head.clone().into());
        members.insert("chain".into(), Value::Object(link));
        self.seal(canonical(&Value::Object(members)), seq)
    }

    /// Links a decision record, written in canonical form straight from the struct (the same
    /// bytes as [`Self::link_members`] of its members, without building them).
    pub fn link_record(&mut self, record: &AuditRecord) -> Linked {
        let seq = self.next;
        let link = Link {
            id: &self.id,
            seq,
            prev: &self.head,
        };
        let json = record.canonical_linked(&link);
        self.seal(json, seq)
    }

    /// Makes `json` (the canonical form of record `seq`) the head.
    fn seal(&mut self, json: String, seq: u64) -> Linked {
        self.head = link_hash(&json);
        self.next += 1;
        self.since_checkpoint += 1;
        Linked { json, seq }
    }

    /// Whether a checkpoint is due at `now_ms` (a key is configured, records were linked
    /// since the last one, and the count or the interval is reached).
    pub fn checkpoint_due(&self, now_ms: u64) -> bool {
        self.signer.is_some()
            && self.since_checkpoint > 0
            && ((self.every_records > 0 && self.since_checkpoint >= self.every_records)
                || (self.every_ms > 0
                    && now_ms.saturating_sub(self.last_checkpoint_ms) >= self.every_ms))
    }

    /// A signed checkpoint of the head, linked; `closing` marks the chain's last one (the VM
    /// stops). None without a key, or when nothing was linked since the last checkpoint.
    pub fn checkpoint(&mut self, now_ms: u64, closing: bool) -> Option<Linked> {
        let signer = self.signer.clone()?;
        if self.since_checkpoint == 0 {
            return None;
        }
        let mut m = Map::new();
        m.insert("schema_version".into(), SCHEMA_VERSION.into());
        m.insert("record_type".into(), "checkpoint".into());
        m.insert("record_id".into(), self.ids.next(now_ms).into());
        m.insert(
            "timestamp".into(),
            super::time::iso8601_millis(now_ms).into(),
        );
        m.insert("gateway".into(), self.gateway.clone().into());
        m.insert("records".into(), self.since_checkpoint.into());
        m.insert("key_id".into(), signer.key_id.clone().into());
        m.insert("algorithm".into(), ALGORITHM.into());
        if closing {
            m.insert("closing".into(), true.into());
        }
        let mut link = Map::new();
        link.insert("id".into(), self.id.clone().into());
        link.insert("seq".into(), self.next.into());
        link.insert("prev".into(), self.head.clone().into());
        m.insert("chain".into(), Value::Object(link));
        let signature = signer.sign(canonical(&Value::Object(m.clone())).as_bytes());
        m.remove("chain");
        m.insert("signature".into(), signature.into());
        let linked = self.link_members(m);
        self.since_checkpoint = 0;
        self.last_checkpoint_ms = now_ms;
        Some(linked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test cases 1, 2 and 6 (a key longer than the block).
        let cases: [(&[u8], &[u8], &str); 3] = [
            (
                &[0x0b; 20],
                b"Hi There",
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe",
                b"what do ya want for nothing?",
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First",
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
        ];
        for (key, msg, want) in cases {
            assert_eq!(hex(&hmac_sha256(key, msg)), want);
        }
    }

    #[test]
    fn canonical_form_is_rfc_8785() {
        // RFC 8785 §3.2.2 and its appendix examples: sorted members, ES6 numbers, escapes.
        let v: Value = serde_json::from_str(
            r#"{"numbers": [33.33, 1E30, 4.50, 2e-3, 0.000000000000000000000000001, 25.0, -0.0, 100, 1e21, 1e20, 123e18, 0.000001, 1.5e-7, -12.5],
               "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
               "literals": [null, true, false], "\u00e9": 1, "z": {"b": 2, "a": 1}}"#,
        )
        .unwrap();
        assert_eq!(
            canonical(&v),
            r#"{"literals":[null,true,false],"numbers":[33.33,1e+30,4.5,0.002,1e-27,25,0,100,1e+21,100000000000000000000,123000000000000000000,0.000001,1.5e-7,-12.5],"string":"€$\u000f\nA'B\"\\\\\"/","z":{"a":1,"b":2},"é":1}"#
        );
        // Keys by UTF-16 code units: U+1F600 (surrogates D83D…) sorts before U+FB01.
        let v = json!({"\u{fb01}": 1, "\u{1f600}": 2});
        assert_eq!(canonical(&v), "{\"\u{1f600}\":2,\"\u{fb01}\":1}");
        // Already canonical text is unchanged by a round trip.
        let text = canonical(&v);
        assert_eq!(canonical(&serde_json::from_str(&text).unwrap()), text);
    }

    /// Escapes written run by run are the escapes written character by character.
    #[test]
    fn strings_escape_as_character_by_character() {
        fn reference(s: &str) -> String {
            let mut out = String::from("\"");
            for c in s.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\u{8}' => out.push_str("\\b"),
                    '\t' => out.push_str("\\t"),
                    '\n' => out.push_str("\\n"),
                    '\u{c}' => out.push_str("\\f"),
                    '\r' => out.push_str("\\r"),
                    c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
                    c => out.push(c),
                }
            }
            out.push('"');
            out
        }
        let controls: String = (0u8..0x20).map(char::from).collect();
        for s in [
            "",
            "plain",
            "\"",
            "\\",
            "a\"b\\c\u{7f}d\u{85}e\u{2028}",
            "é€😀\n\t\r",
            "end\\",
            "\"start",
            controls.as_str(),
        ] {
            let mut out = String::new();
            write_string(s, &mut out);
            assert_eq!(out, reference(s), "{s:?}");
        }
    }

    fn signed() -> TrailConfig {
        TrailConfig {
            checkpoint_records: 3,
            checkpoint_interval_ms: 10_000,
            key_id: Some("k1".into()),
            hmac_key: Some(base64::engine::general_purpose::STANDARD.encode([7u8; 32])),
        }
    }

    #[test]
    fn records_link_to_the_hash_of_the_one_before() {
        let mut chain = Chain::new(&TrailConfig::default(), "gw", 1, 1_000);
        let a = chain.link(r#"{"record_type":"decision","b":1,"a":null}"#);
        let b = chain.link(r#"{"record_type":"gap"}"#);
        assert_eq!((a.seq, b.seq), (1, 2));
        let va: Value = serde_json::from_str(&a.json).unwrap();
        let vb: Value = serde_json::from_str(&b.json).unwrap();
        assert_eq!(va["chain"]["prev"], GENESIS);
        assert_eq!(va["chain"]["id"], chain.id());
        assert_eq!(vb["chain"]["prev"], link_hash(&a.json));
        assert_eq!(canonical(&va), a.json, "shipped in canonical form");
        assert!(a.json.starts_with(r#"{"a":null,"b":1,"chain":"#));
        // Not JSON: kept, as a string.
        let c = chain.link("oops");
        let vc: Value = serde_json::from_str(&c.json).unwrap();
        assert_eq!(
            (vc["record_type"].as_str(), vc["raw"].as_str()),
            (Some("unparseable"), Some("oops"))
        );
        assert!(!chain.checkpoint_due(u64::MAX), "no key, no checkpoint");
    }

    #[test]
    fn checkpoints_sign_the_head_every_n_records_or_t_ms() {
        let mut chain = Chain::new(&signed(), "gw", 1, 0);
        assert!(!chain.checkpoint_due(60_000), "nothing to checkpoint");
        let a = chain.link("{}");
        assert!(!chain.checkpoint_due(9_999));
        assert!(chain.checkpoint_due(10_000), "by time");
        chain.link("{}");
        chain.link("{}");
        assert!(chain.checkpoint_due(1), "by count");
        let cp = chain.checkpoint(2, false).unwrap();
        assert_eq!(cp.seq, 4);
        let mut v: Value = serde_json::from_str(&cp.json).unwrap();
        assert_eq!(v["records"], 3);
        assert_eq!(v["key_id"], "k1");
        assert_eq!(v["algorithm"], ALGORITHM);
        let signature = v.as_object_mut().unwrap().remove("signature").unwrap();
        let want = hex(&hmac_sha256(&[7u8; 32], canonical(&v).as_bytes()));
        assert_eq!(signature, want.as_str());
        assert!(!chain.checkpoint_due(100_000), "nothing since");
        assert!(chain.checkpoint(3, true).is_none());
        let next = chain.link("{}");
        let vn: Value = serde_json::from_str(&next.json).unwrap();
        assert_eq!(vn["chain"]["prev"], link_hash(&cp.json));
        assert_ne!(a.json, next.json);
        let last = chain.checkpoint(5, true).unwrap();
        assert!(last.json.contains(r#""closing":true"#));
    }

    #[test]
    fn the_key_is_checked_and_never_shown() {
        let c = signed();
        assert!(c.validate().is_ok());
        let shown = format!("{c:?} {:?}", c.signer());
        assert!(!shown.contains(c.hmac_key.as_deref().unwrap()), "{shown}");
        assert!(shown.contains("k1"));
        let short = TrailConfig {
            hmac_key: Some(base64::engine::general_purpose::STANDARD.encode([7u8; 31])),
            ..signed()
        };
        let e = short.validate().unwrap_err().to_string();
        assert!(e.contains("hmac_key") && e.contains("32 bytes"), "{e}");
        let e = TrailConfig {
            hmac_key: Some("not base64!".into()),
            ..signed()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("not base64") && !e.contains("not base64!\""),
            "{e}"
        );
        let e = TrailConfig {
            key_id: None,
            ..signed()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("key_id"), "{e}");
        let e = TrailConfig {
            key_id: Some("a b".into()),
            ..signed()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("key_id"), "{e}");
    }
}
