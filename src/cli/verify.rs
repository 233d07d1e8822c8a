//! `policy-gateway trail verify`: checks exported records against their hash chains (README
//! "The audit trail's chain", which a third party can implement without this code).
//!
//! Per chain: records present (distinct sequence numbers), sequence numbers missing between
//! the first and the last present (with the gap record that explains them, if any), records
//! whose hash is not what the next record (or a checkpoint) committed to (altered), two
//! different records with one sequence number (conflicting), the same record twice
//! (duplicates: delivery is at least once), records out of chain order in the export
//! (reordered: the chain restores the order), and checkpoint signatures (checked with the
//! keys given, failing, or unchecked without a key).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use serde_json::{json, Value};

use super::records::{self, str_of};
use super::{Exit, Failure};
use crate::audit::chain::{self, Signer, GENESIS};

/// Check exported records against their hash chains
///
/// Reads exported records from any sink (the same readers as `trail`), groups them by chain,
/// and reports, per chain: records present, missing sequence ranges (explained by a gap
/// record, or not), altered records, conflicting copies, duplicates, records out of order and
/// checkpoint signatures. Missing records before the first and after the last record present
/// are outside the export, not findings, unless a gap record names them.
#[derive(Debug, Clone, clap::Args)]
#[command(
    verbatim_doc_comment,
    after_help = "\
Examples:
  policy-gateway trail verify --key k2026=trail.key s3-export/
  policy-gateway trail verify --sink splunk_hec --format json hec-export.jsonl
  policy-gateway trail verify --format csv es-export.json > findings.csv

A key file holds the base64 HMAC key of the gateway's audit.trail.hmac_key. Without a key for
a checkpoint's key_id, its signature is reported unchecked: links are still verified, but a
trail rewritten from some record on with new hashes is only caught by a checked signature.

Exit status: 0 intact (missing records, if any, explained by gap records; duplicates and
reordering are reported, not failures), 1 tampering found (altered or conflicting records,
records missing without a gap record, a checkpoint signature that fails, a chained schema's
record without its chain), 2 usage error, or records that cannot be read."
)]
pub struct Args {
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// A checkpoint key: its key_id and a file holding the key in base64 (repeatable)
    #[arg(long = "key", value_name = "KEY_ID=FILE", value_parser = key_arg)]
    pub keys: Vec<(String, String)>,
    /// The sink the export came from (splunk_hec, datadog, elasticsearch, s3,
    /// azure_monitor): only its gap records explain missing records
    #[arg(long)]
    pub sink: Option<String>,
    /// The export holds every chain from its first record: a chain that does not start at
    /// sequence number 1 is missing its head (without it, records before the first present
    /// are taken to be outside the export, as in an export of a time window)
    #[arg(long)]
    pub whole_chains: bool,
    #[command(flatten)]
    pub inputs: records::Inputs,
}

/// What `trail verify` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A summary per chain, then each finding
    Table,
    /// One JSON document
    Json,
    /// RFC 4180 CSV: per chain a summary row, then one row per finding
    Csv,
}

fn key_arg(v: &str) -> Result<(String, String), String> {
    match v.split_once('=') {
        Some((id, path)) if chain::valid_key_id(id) && !path.is_empty() => {
            Ok((id.to_string(), path.to_string()))
        }
        _ => Err("expected KEY_ID=FILE (key ids: 1 to 64 of A-Z a-z 0-9 . _ -)".into()),
    }
}

/// What was found about one range of one chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub kind: Kind,
    pub from_seq: u64,
    pub to_seq: u64,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Missing, with no gap record for it: tampering (or a loss nothing recorded).
    Missing,
    /// Missing, and a gap record says the sink lost them.
    MissingExplained,
    Altered,
    Conflicting,
    BadSignature,
    Duplicate,
    Reordered,
    UncheckedSignature,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Missing => "missing",
            Kind::MissingExplained => "missing_explained",
            Kind::Altered => "altered",
            Kind::Conflicting => "conflicting",
            Kind::BadSignature => "bad_signature",
            Kind::Duplicate => "duplicate",
            Kind::Reordered => "reordered",
            Kind::UncheckedSignature => "unchecked_signature",
        }
    }

    /// Whether this finding means the trail was tampered with.
    pub fn is_tampering(self) -> bool {
        matches!(
            self,
            Kind::Missing | Kind::Altered | Kind::Conflicting | Kind::BadSignature
        )
    }
}

/// The verdict on one chain.
#[derive(Debug, Clone, Default)]
pub struct ChainReport {
    pub id: String,
    pub gateway: String,
    /// Distinct sequence numbers present.
    pub present: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    pub checkpoints_ok: u64,
    /// Highest sequence number covered by a checked signature (0: none).
    pub signed_through: u64,
    /// A closing checkpoint is present (the VM stopped and said so).
    pub closed: bool,
    pub findings: Vec<Finding>,
}

impl ChainReport {
    fn count(&self, kind: Kind) -> u64 {
        self.findings
            .iter()
            .filter(|f| f.kind == kind)
            .map(|f| f.to_seq - f.from_seq + 1)
            .sum()
    }

    pub fn tampered(&self) -> bool {
        self.findings.iter().any(|f| f.kind.is_tampering())
    }

    fn status(&self) -> &'static str {
        if self.tampered() {
            "TAMPERED"
        } else if self.count(Kind::MissingExplained) > 0 {
            "intact, with losses"
        } else {
            "intact"
        }
    }
}

/// The whole verdict.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub chains: Vec<ChainReport>,
    /// Records without a chain: of a schema before 1.2 (reported), or claiming 1.2 or later
    /// (tampering: a chained schema's record always has its chain).
    pub unchained_old: u64,
    pub unchained_forged: u64,
}

impl Report {
    pub fn tampered(&self) -> bool {
        self.unchained_forged > 0 || self.chains.iter().any(ChainReport::tampered)
    }
}

/// One record as read: its chain fields, hash and where it was read.
struct Entry<'a> {
    record: &'a Value,
    seq: u64,
    prev: String,
    hash: String,
    origin: usize,
}

/// A gap record's claim: sink `sink` lost `from..=to` of chain `chain`.
struct Loss {
    chain: String,
    sink: String,
    cause: String,
    from: u64,
    to: u64,
    /// Where the gap record itself is: chain and seq.
    at: String,
    /// The gateway that wrote the gap record.
    gateway: String,
}

/// Verifies records (as read, duplicates kept) from inputs `origins` (an input index per
/// record, for reordering), with checkpoint keys, counting only the gap records of `sink` when
/// given; with `whole_chains`, a chain's records before the first present are missing too.
pub fn verify(
    loaded: &[Value],
    origins: &[usize],
    keys: &[Signer],
    sink: Option<&str>,
    whole_chains: bool,
) -> Report {
    let mut report = Report::default();
    let mut chains: BTreeMap<&str, Vec<Entry<'_>>> = BTreeMap::new();
    let mut losses = Vec::new();
    for (i, r) in loaded.iter().enumerate() {
        let link = r.get("chain");
        let id = link.and_then(|c| c.get("id")).and_then(Value::as_str);
        let seq = link.and_then(|c| c.get("seq")).and_then(Value::as_u64);
        let prev = link.and_then(|c| c.get("prev")).and_then(Value::as_str);
        let (Some(id), Some(seq), Some(prev)) = (id, seq, prev) else {
            if chained_schema(r) {
                report.unchained_forged += 1;
            } else {
                report.unchained_old += 1;
            }
            continue;
        };
        if str_of(r, "record_type") == Some("gap") {
            if let Some(loss) = loss_of(r, id, seq) {
                losses.push(loss);
            }
        }
        chains.entry(id).or_default().push(Entry {
            record: r,
            seq,
            prev: prev.to_string(),
            hash: chain::link_hash(&chain::canonical(r)),
            origin: origins.get(i).copied().unwrap_or(0),
        });
    }
    let losses: Vec<Loss> = losses
        .into_iter()
        .filter(|l| sink.is_none_or(|s| l.sink == s))
        .collect();
    for (id, entries) in &chains {
        report
            .chains
            .push(verify_chain(id, entries, keys, &losses, whole_chains));
    }
    // A chain whose every record the sink lost (a VM that served only requests of a rejected
    // batch, say) is known only from gap records: reported with what they announce.
    let mut lost_only: BTreeMap<&str, &Loss> = BTreeMap::new();
    for l in losses
        .iter()
        .filter(|l| !chains.contains_key(l.chain.as_str()))
    {
        lost_only.entry(l.chain.as_str()).or_insert(l);
    }
    for (id, first) in lost_only {
        let of_chain = || losses.iter().filter(|l| l.chain == id);
        let from = of_chain().map(|l| l.from).min().unwrap_or(first.from);
        let to = of_chain().map(|l| l.to).max().unwrap_or(first.to);
        let mut rep = ChainReport {
            id: id.to_string(),
            gateway: first.gateway.clone(),
            ..ChainReport::default()
        };
        explain(&mut rep, id, from, to, &losses);
        report.chains.push(rep);
    }
    report.chains.sort_by(|a, b| a.id.cmp(&b.id));
    report
}

/// Whether a record's schema version is one whose records always carry `chain` (1.2 on),
/// or it has none at all.
fn chained_schema(r: &Value) -> bool {
    let Some(v) = str_of(r, "schema_version") else {
        return true;
    };
    let mut parts = v.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (1, 2)
}

fn loss_of(r: &Value, id: &str, seq: u64) -> Option<Loss> {
    let u = |k: &str| r.get(k).and_then(Value::as_u64);
    Some(Loss {
        chain: str_of(r, "lost_chain")?.to_string(),
        sink: str_of(r, "sink").unwrap_or("-").to_string(),
        cause: str_of(r, "cause").unwrap_or("-").to_string(),
        from: u("from_seq")?,
        to: u("to_seq")?,
        at: format!("{id} #{seq}"),
        gateway: str_of(r, "gateway").unwrap_or("-").to_string(),
    })
}

fn finding(kind: Kind, from_seq: u64, to_seq: u64, detail: String) -> Finding {
    Finding {
        kind,
        from_seq,
        to_seq,
        detail,
    }
}

fn verify_chain(
    id: &str,
    entries: &[Entry<'_>],
    keys: &[Signer],
    losses: &[Loss],
    whole_chains: bool,
) -> ChainReport {
    let mut rep = ChainReport {
        id: id.to_string(),
        ..ChainReport::default()
    };
    // One copy per (seq, hash); copies of a seq with different hashes conflict.
    let mut by_seq: BTreeMap<u64, Vec<&Entry<'_>>> = BTreeMap::new();
    for e in entries {
        let copies = by_seq.entry(e.seq).or_default();
        if copies.iter().any(|c| c.hash == e.hash) {
            rep.findings.push(finding(
                Kind::Duplicate,
                e.seq,
                e.seq,
                "delivered more than once".into(),
            ));
        } else {
            copies.push(e);
        }
    }
    rep.gateway = entries
        .iter()
        .find_map(|e| str_of(e.record, "gateway"))
        .unwrap_or("-")
        .to_string();
    rep.present = by_seq.len() as u64;
    rep.first_seq = by_seq.keys().next().copied().unwrap_or(0);
    rep.last_seq = by_seq.keys().next_back().copied().unwrap_or(0);
    for (seq, copies) in &by_seq {
        if copies.len() > 1 {
            rep.findings.push(finding(
                Kind::Conflicting,
                *seq,
                *seq,
                format!("{} different records", copies.len()),
            ));
        }
    }
    // Links: each record's prev is the hash of the record before it.
    if let Some(first) = by_seq.get(&1) {
        for c in first.iter().filter(|c| c.prev != GENESIS) {
            rep.findings.push(finding(
                Kind::Altered,
                1,
                1,
                format!("first record's prev is {}, not the genesis value", c.prev),
            ));
        }
    }
    let mut missing: Vec<(u64, u64)> = Vec::new();
    let of_chain = || losses.iter().filter(|l| l.chain == id);
    if whole_chains && rep.first_seq > 1 {
        missing.push((1, rep.first_seq - 1));
    } else if let Some(start) = of_chain().map(|l| l.from.max(1)).min() {
        // Before the first record present: a gap record naming seqs before it says the chain
        // began that early (a chain's first records lost in a rejected batch, say).
        if start < rep.first_seq {
            missing.push((start, rep.first_seq - 1));
        }
    }
    let mut prev_seq: Option<u64> = None;
    for (seq, copies) in &by_seq {
        if let Some(p) = prev_seq {
            if *seq == p + 1 {
                let before = by_seq.get(&p).map(Vec::as_slice).unwrap_or_default();
                let linked = copies
                    .iter()
                    .any(|c| before.iter().any(|b| b.hash == c.prev));
                if !linked {
                    rep.findings.push(finding(
                        Kind::Altered,
                        p,
                        p,
                        format!("its hash is not the prev that record {seq} committed to"),
                    ));
                }
            } else {
                missing.push((p + 1, seq - 1));
            }
        }
        prev_seq = Some(*seq);
    }
    // After the last record present: a gap record naming seqs past it says the chain went
    // on that far (the end of a worker chain lost in the audit shipper, say).
    if let Some(last) = prev_seq {
        let end = of_chain().map(|l| l.to).max().unwrap_or(0);
        if end > last {
            missing.push((last + 1, end));
        }
    }
    for (from, to) in missing {
        explain(&mut rep, id, from, to, losses);
    }
    // Checkpoints.
    let mut checked = BTreeSet::new();
    for (seq, copies) in &by_seq {
        for c in copies
            .iter()
            .filter(|c| str_of(c.record, "record_type") == Some("checkpoint"))
        {
            let key_id = str_of(c.record, "key_id").unwrap_or("-");
            let Some(key) = keys.iter().find(|k| k.key_id == key_id) else {
                rep.findings.push(finding(
                    Kind::UncheckedSignature,
                    *seq,
                    *seq,
                    format!("no key given for key_id {key_id}"),
                ));
                continue;
            };
            let mut unsigned = c.record.clone();
            let signature = unsigned.as_object_mut().and_then(|m| m.remove("signature"));
            let want = key.sign(chain::canonical(&unsigned).as_bytes());
            if signature.as_ref().and_then(Value::as_str) == Some(want.as_str()) {
                rep.checkpoints_ok += 1;
                checked.insert(*seq);
                if c.record.get("closing").and_then(Value::as_bool) == Some(true) {
                    rep.closed = true;
                }
            } else {
                rep.findings.push(finding(
                    Kind::BadSignature,
                    *seq,
                    *seq,
                    format!("signature does not verify with key {key_id}"),
                ));
            }
        }
    }
    // A checked checkpoint at seq n signs records before it through its prev, as far back
    // as the links hold without a break.
    let broken: BTreeSet<u64> = rep
        .findings
        .iter()
        .filter(|f| f.kind.is_tampering())
        .flat_map(|f| f.from_seq..=f.to_seq)
        .collect();
    if let Some(n) = checked.iter().next_back() {
        if !broken.iter().any(|b| b < n) && rep.first_seq <= *n {
            rep.signed_through = *n;
        }
    }
    // Reordering: in each input, a record read after one of a higher sequence number.
    let mut last_in: BTreeMap<usize, u64> = BTreeMap::new();
    let mut reordered = BTreeSet::new();
    for e in entries {
        let last = last_in.entry(e.origin).or_insert(0);
        if e.seq < *last {
            reordered.insert(e.seq);
        } else {
            *last = e.seq;
        }
    }
    for seq in reordered {
        rep.findings.push(finding(
            Kind::Reordered,
            seq,
            seq,
            "read after a later record of its chain (order restored from the chain)".into(),
        ));
    }
    rep.findings.sort_by_key(|f| (f.from_seq, f.kind));
    rep
}

/// Records `from..=to` of chain `id` are missing: explained where gap records cover them.
fn explain(rep: &mut ChainReport, id: &str, from: u64, to: u64, losses: &[Loss]) {
    let mut seq = from;
    while seq <= to {
        let cover = losses
            .iter()
            .filter(|l| l.chain == id && l.from <= seq && seq <= l.to)
            .max_by_key(|l| l.to);
        match cover {
            Some(l) => {
                let end = l.to.min(to);
                rep.findings.push(finding(
                    Kind::MissingExplained,
                    seq,
                    end,
                    format!(
                        "gap record {} (sink {}, cause {}) announces {}-{}",
                        l.at, l.sink, l.cause, l.from, l.to
                    ),
                ));
                seq = end + 1;
            }
            None => {
                let next = losses
                    .iter()
                    .filter(|l| l.chain == id && l.from > seq && l.from <= to)
                    .map(|l| l.from)
                    .min()
                    .unwrap_or(to + 1);
                rep.findings.push(finding(
                    Kind::Missing,
                    seq,
                    next - 1,
                    "no gap record announces them".into(),
                ));
                seq = next;
            }
        }
    }
}

pub fn run(args: &Args, out: &mut dyn Write, err: &mut dyn Write) -> Result<Exit, Failure> {
    let mut keys = Vec::new();
    for (id, path) in &args.keys {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
        let key = chain::decode_key(&text)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| format!("{path}: not a base64 key"))?;
        keys.push(Signer::new(id, key));
    }
    if args.inputs.records.is_empty() {
        return Err(
            "name the exported records: FILE or DIRECTORY... (- for stdin)"
                .to_string()
                .into(),
        );
    }
    let loaded = records::load(&args.inputs.records)?;
    let report = verify(
        &loaded.records,
        &loaded.origins,
        &keys,
        args.sink.as_deref(),
        args.whole_chains,
    );
    let w = |e: std::io::Error| e.to_string();
    let text = match args.format {
        Format::Table => table(&report),
        Format::Json => format!("{}\n", super::table::json(&to_json(&report))),
        Format::Csv => csv(&report),
    };
    write!(out, "{text}").map_err(w)?;
    let _ = writeln!(
        err,
        "trail verify: {} records read ({} files, {} lines skipped), {} chains: {}",
        loaded.records.len(),
        loaded.files,
        loaded.skipped,
        report.chains.len(),
        if report.tampered() {
            "TAMPERING FOUND"
        } else {
            "no tampering found"
        }
    );
    Ok(if report.tampered() {
        Exit::Invalid
    } else {
        Exit::Ok
    })
}

const SUMMARY: [&str; 9] = [
    "chain",
    "gateway",
    "records",
    "seq",
    "missing",
    "altered",
    "duplicates",
    "signed_through",
    "status",
];

fn table(report: &Report) -> String {
    let rows: Vec<Vec<String>> = report
        .chains
        .iter()
        .map(|c| {
            let missing = c.count(Kind::Missing);
            let explained = c.count(Kind::MissingExplained);
            vec![
                c.id.clone(),
                c.gateway.clone(),
                c.present.to_string(),
                match c.present {
                    0 => "-".to_string(),
                    _ => format!("{}-{}", c.first_seq, c.last_seq),
                },
                format!("{missing} (+{explained} in gap records)"),
                (c.count(Kind::Altered) + c.count(Kind::Conflicting)).to_string(),
                c.count(Kind::Duplicate).to_string(),
                match c.signed_through {
                    0 => "-".to_string(),
                    n if c.closed => format!("{n} (closed)"),
                    n => n.to_string(),
                },
                c.status().to_string(),
            ]
        })
        .collect();
    let mut text = super::table::render(&SUMMARY, &rows);
    let findings = finding_rows(report, false);
    if !findings.is_empty() {
        text.push('\n');
        text.push_str(&super::table::render(&FINDING_COLUMNS, &findings));
    }
    if report.unchained_old + report.unchained_forged > 0 {
        text.push_str(&format!(
            "\n{} records without a chain: {} of schema versions before 1.2, {} claiming a \
             chained schema (tampering)\n",
            report.unchained_old + report.unchained_forged,
            report.unchained_old,
            report.unchained_forged
        ));
    }
    text
}

const FINDING_COLUMNS: [&str; 5] = ["chain", "finding", "from_seq", "to_seq", "detail"];

fn finding_rows(report: &Report, all: bool) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for c in &report.chains {
        for f in &c.findings {
            // Duplicates and reordering are normal for some sinks: listed in CSV and JSON;
            // the table keeps their counts only, unless a few.
            if !all && matches!(f.kind, Kind::Duplicate | Kind::Reordered) && c.count(f.kind) > 5 {
                continue;
            }
            rows.push(vec![
                c.id.clone(),
                f.kind.name().to_string(),
                f.from_seq.to_string(),
                f.to_seq.to_string(),
                f.detail.clone(),
            ]);
        }
    }
    rows
}

/// Per chain a `summary` row (its sequence range, and its counts in `detail`), so the CSV of
/// an intact trail still says what was checked; then one row per finding.
fn csv(report: &Report) -> String {
    let findings = finding_rows(report, true);
    let mut rows = Vec::with_capacity(report.chains.len() + findings.len());
    for c in &report.chains {
        rows.push(vec![
            c.id.clone(),
            "summary".to_string(),
            c.first_seq.to_string(),
            c.last_seq.to_string(),
            format!(
                "{} records; missing {} (+{} in gap records); altered {}; duplicates {}; \
                 reordered {}; checkpoints verified {}, failed {}; signed through {}{}; {}",
                c.present,
                c.count(Kind::Missing),
                c.count(Kind::MissingExplained),
                c.count(Kind::Altered) + c.count(Kind::Conflicting),
                c.count(Kind::Duplicate),
                c.count(Kind::Reordered),
                c.checkpoints_ok,
                c.count(Kind::BadSignature),
                c.signed_through,
                if c.closed { " (closed)" } else { "" },
                c.status()
            ),
        ]);
        rows.extend(
            findings
                .iter()
                .filter(|r| r.first() == Some(&c.id))
                .cloned(),
        );
    }
    super::table::csv(&FINDING_COLUMNS, &rows)
}

fn to_json(report: &Report) -> Value {
    let chains: Vec<Value> = report
        .chains
        .iter()
        .map(|c| {
            json!({
                "chain": c.id,
                "gateway": c.gateway,
                "records": c.present,
                "first_seq": c.first_seq,
                "last_seq": c.last_seq,
                "missing": c.count(Kind::Missing),
                "missing_explained": c.count(Kind::MissingExplained),
                "altered": c.count(Kind::Altered),
                "conflicting": c.count(Kind::Conflicting),
                "duplicates": c.count(Kind::Duplicate),
                "reordered": c.count(Kind::Reordered),
                "checkpoints_verified": c.checkpoints_ok,
                "checkpoints_failed": c.count(Kind::BadSignature),
                "checkpoints_unchecked": c.count(Kind::UncheckedSignature),
                "signed_through": c.signed_through,
                "closed": c.closed,
                "status": c.status(),
                "findings": c.findings.iter().map(|f| json!({
                    "finding": f.kind.name(),
                    "from_seq": f.from_seq,
                    "to_seq": f.to_seq,
                    "detail": f.detail,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "tampered": report.tampered(),
        "chains": chains,
        "unchained_old": report.unchained_old,
        "unchained_forged": report.unchained_forged,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::chain::{Chain, TrailConfig};

    fn key() -> Vec<u8> {
        vec![5u8; 32]
    }

    fn config() -> TrailConfig {
        TrailConfig {
            checkpoint_records: 4,
            checkpoint_interval_ms: 0,
            key_id: Some("k1".into()),
            hmac_key: Some(base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                key(),
            )),
        }
    }

    /// A chain of `n` decision records with a checkpoint after every 4, as the outbox makes it.
    fn trail(n: u64) -> (Vec<Value>, String) {
        let mut chain = Chain::new(&config(), "gw", 3, 1_000);
        let mut out = Vec::new();
        for i in 0..n {
            let r = json!({"schema_version": "1.2", "record_type": "decision", "record_id": format!("r{i}"),
                "timestamp": "2026-11-26T10:00:00.000Z", "decision": "allow", "gateway": "gw"});
            out.push(chain.link(&r.to_string()).json);
            if chain.checkpoint_due(1_000 + i) {
                out.push(chain.checkpoint(1_000 + i, false).unwrap().json);
            }
        }
        let id = chain.id().to_string();
        (
            out.iter()
                .map(|j| serde_json::from_str(j).unwrap())
                .collect(),
            id,
        )
    }

    fn run_on(records: &[Value], sink: Option<&str>) -> Report {
        let origins = vec![0; records.len()];
        verify(records, &origins, &[Signer::new("k1", key())], sink, false)
    }

    fn kinds(r: &Report) -> Vec<(Kind, u64, u64)> {
        kinds_of(r, &r.chains[0].id)
    }

    /// The findings of chain `id` (none if the report has no such chain).
    fn kinds_of(r: &Report, id: &str) -> Vec<(Kind, u64, u64)> {
        let c = r.chains.iter().find(|c| c.id == id);
        c.map_or(&[][..], |c| &c.findings)
            .iter()
            .map(|f| (f.kind, f.from_seq, f.to_seq))
            .collect()
    }

    #[test]
    fn an_intact_trail_verifies_with_its_checkpoints() {
        let (records, id) = trail(10);
        let r = run_on(&records, None);
        assert!(!r.tampered());
        let c = &r.chains[0];
        assert_eq!(
            (c.id.as_str(), c.present, c.first_seq, c.last_seq),
            (id.as_str(), 12, 1, 12)
        );
        assert_eq!((c.checkpoints_ok, c.signed_through), (2, 10));
        assert!(c.findings.is_empty(), "{:?}", c.findings);
        // A slice of the chain (an export of a time window) is no finding either.
        let r = run_on(&records[3..8], None);
        assert!(!r.tampered() && r.chains[0].findings.is_empty());
    }

    #[test]
    fn a_deleted_record_is_missing_unless_a_gap_record_announces_it() {
        let (mut records, id) = trail(10);
        records.remove(2); // seq 3
        let r = run_on(&records, None);
        assert!(r.tampered());
        assert_eq!(kinds(&r), [(Kind::Missing, 3, 3)]);
        // A gap record of this sink (in the chain of a later VM, say) explains it.
        let gap = json!({"record_type": "gap", "sink": "s3", "cause": "buffer_full", "lost_chain": id,
            "from_seq": 2, "to_seq": 3, "chain": {"id": "other", "seq": 1, "prev": GENESIS}});
        records.push(gap);
        let r = run_on(&records, Some("s3"));
        assert!(!r.tampered(), "{:?}", r.chains);
        let c = r.chains.iter().find(|c| c.id == id).unwrap();
        assert_eq!(c.findings[0].kind, Kind::MissingExplained);
        assert!(c.findings[0].detail.contains("sink s3"), "{:?}", c.findings);
        // Another sink's gap record explains nothing in this sink's export.
        assert!(run_on(&records, Some("splunk_hec")).tampered());
    }

    #[test]
    fn a_loss_at_the_end_of_a_chain_is_reported() {
        let (mut records, id) = trail(10);
        let end = records.len() as u64;
        // The chain's last two records lost, and a gap record (in another chain) says so.
        records.truncate(records.len() - 2);
        let gap = json!({"record_type": "gap", "sink": "s3", "cause": "rejected", "lost_chain": id,
            "from_seq": end - 1, "to_seq": end, "chain": {"id": "other", "seq": 1, "prev": GENESIS}});
        records.push(gap);
        let r = run_on(&records, Some("s3"));
        let found = kinds_of(&r, &id);
        assert_eq!(found, [(Kind::MissingExplained, end - 1, end)]);
        assert!(!r.tampered());
    }

    #[test]
    fn a_loss_at_the_start_of_a_chain_is_reported() {
        let (records, id) = trail(10);
        // The chain's first three records lost (a VM whose first requests fell in a rejected
        // batch), and a gap record (in another chain) says so.
        let gap = json!({"record_type": "gap", "sink": "splunk_hec", "cause": "rejected",
            "lost_chain": id, "from_seq": 1, "to_seq": 3,
            "chain": {"id": "other", "seq": 1, "prev": GENESIS}});
        let mut export = records[3..].to_vec();
        export.push(gap.clone());
        let r = run_on(&export, Some("splunk_hec"));
        let found = kinds_of(&r, &id);
        assert_eq!(found, [(Kind::MissingExplained, 1, 3)]);
        assert!(!r.tampered());
        // Records between the announced range and the first present are missing.
        let mut export = records[5..].to_vec();
        export.push(gap.clone());
        let r = run_on(&export, Some("splunk_hec"));
        let found = kinds_of(&r, &id);
        assert_eq!(
            found,
            [(Kind::MissingExplained, 1, 3), (Kind::Missing, 4, 5)]
        );
        assert!(r.tampered());
        // Another sink's gap record says nothing of this export's head (a time window).
        let r = run_on(&export, Some("s3"));
        assert!(!r.tampered() && r.chains.iter().all(|c| c.findings.is_empty()));
    }

    #[test]
    fn a_chain_lost_whole_is_reported_from_its_gap_records() {
        let (records, _) = trail(3);
        let gap = json!({"record_type": "gap", "sink": "s3", "cause": "rejected", "gateway": "gw-b",
            "lost_chain": "vm-b", "from_seq": 1, "to_seq": 4,
            "chain": {"id": "other", "seq": 1, "prev": GENESIS}});
        let mut export = records.clone();
        export.push(gap);
        let r = run_on(&export, Some("s3"));
        assert!(!r.tampered());
        let c = r
            .chains
            .iter()
            .find(|c| c.id == "vm-b")
            .expect("the lost chain is reported");
        assert_eq!((c.present, c.gateway.as_str()), (0, "gw-b"));
        assert_eq!(kinds_of(&r, "vm-b"), [(Kind::MissingExplained, 1, 4)]);
        assert_eq!(c.status(), "intact, with losses");
        // Only the named sink's gap records count.
        let r = run_on(&export, Some("splunk_hec"));
        assert!(r.chains.iter().all(|c| c.id != "vm-b"));
    }

    #[test]
    fn with_whole_chains_a_missing_head_is_missing() {
        let (records, _) = trail(10);
        let origins = vec![0; records.len()];
        let keys = [Signer::new("k1", key())];
        // Without the flag the first records may be outside the export (a time window).
        assert!(!verify(&records[2..], &origins, &keys, None, false).tampered());
        let r = verify(&records[2..], &origins, &keys, None, true);
        assert!(r.tampered());
        assert_eq!(kinds(&r), [(Kind::Missing, 1, 2)]);
        assert!(!verify(&records, &origins, &keys, None, true).tampered());
    }

    #[test]
    fn an_edited_record_breaks_its_link_and_a_rewritten_chain_its_signature() {
        let (records, _) = trail(10);
        let mut edited = records.clone();
        edited[5]["decision"] = json!("refuse");
        let r = run_on(&edited, None);
        assert!(r.tampered());
        assert_eq!(kinds(&r), [(Kind::Altered, 6, 6)]);
        // Rewriting every later link with new hashes keeps the links, not the signature.
        let mut chain_from = edited.clone();
        for i in 6..chain_from.len() {
            let prev = chain::link_hash(&chain::canonical(&chain_from[i - 1]));
            chain_from[i]["chain"]["prev"] = json!(prev);
        }
        let r = run_on(&chain_from, None);
        assert!(r.tampered());
        assert!(
            kinds(&r).contains(&(Kind::BadSignature, 10, 10)),
            "{:?}",
            kinds(&r)
        );
        assert!(!kinds(&r).iter().any(|k| k.0 == Kind::Altered));
        // Without the key, the rewrite passes the links: the signature is reported unchecked.
        let r = verify(&chain_from, &vec![0; chain_from.len()], &[], None, false);
        assert!(!r.tampered());
        assert!(kinds(&r).contains(&(Kind::UncheckedSignature, 10, 10)));
    }

    #[test]
    fn duplicates_and_reordering_are_reported_not_failures_but_conflicts_are() {
        let (records, _) = trail(6);
        let mut shuffled = records.clone();
        shuffled.swap(1, 4);
        shuffled.push(records[2].clone());
        let r = run_on(&shuffled, None);
        assert!(!r.tampered(), "{:?}", kinds(&r));
        let k = kinds(&r);
        assert!(k.contains(&(Kind::Duplicate, 3, 3)), "{k:?}");
        assert!(k.contains(&(Kind::Reordered, 2, 2)), "{k:?}");
        // The same seq with other content: a forged copy.
        let mut forged = records[3].clone();
        forged["decision"] = json!("refuse");
        let mut with_forgery = records.clone();
        with_forgery.push(forged);
        let r = run_on(&with_forgery, None);
        assert!(r.tampered());
        assert!(kinds(&r).contains(&(Kind::Conflicting, 4, 4)));
        // Swapping two records' chain positions (to reorder history) alters both.
        let mut swapped = records.clone();
        let (a, b) = (swapped[1]["chain"].clone(), swapped[2]["chain"].clone());
        swapped[1]["chain"] = b;
        swapped[2]["chain"] = a;
        let r = run_on(&swapped, None);
        assert!(r.tampered());
        assert!(
            kinds(&r).iter().filter(|k| k.0 == Kind::Altered).count() >= 2,
            "{:?}",
            kinds(&r)
        );
    }

    #[test]
    fn table_json_and_csv_give_each_chain_and_every_finding() {
        let (records, id) = trail(6);
        let intact = run_on(&records, None);
        let csv_intact = csv(&intact);
        let lines: Vec<&str> = csv_intact.lines().collect();
        assert_eq!(lines.len(), 2, "{csv_intact}");
        assert_eq!(lines[0], "chain,finding,from_seq,to_seq,detail");
        assert!(
            lines[1].starts_with(&format!("{id},summary,1,7,\"7 records; missing 0 "))
                && lines[1].ends_with("signed through 5; intact\""),
            "{csv_intact}"
        );
        assert!(table(&intact).contains(" intact"));
        assert_eq!(to_json(&intact)["tampered"], false);
        let mut tampered = records.clone();
        tampered.remove(2);
        tampered[4]["decision"] = json!("refuse");
        let r = run_on(&tampered, None);
        let csv_tampered = csv(&r);
        assert!(
            csv_tampered.contains(&format!("{id},missing,3,3,no gap record announces them"))
                && csv_tampered.contains(&format!("{id},altered,6,6,")),
            "{csv_tampered}"
        );
        assert!(csv_tampered.contains("; TAMPERED"), "{csv_tampered}");
        let t = table(&r);
        assert!(
            t.contains("TAMPERED") && t.contains("missing") && t.contains("altered"),
            "{t}"
        );
        let j = to_json(&r);
        assert_eq!(j["tampered"], true);
        assert_eq!(j["chains"][0]["missing"], 1);
        assert_eq!(j["chains"][0]["altered"], 1);
    }

    #[test]
    fn a_record_of_a_chained_schema_without_its_chain_is_tampering() {
        let (mut records, _) = trail(2);
        records
            .push(json!({"schema_version": "1.1", "record_type": "decision", "record_id": "old"}));
        assert!(!run_on(&records, None).tampered());
        records
            .push(json!({"schema_version": "1.2", "record_type": "decision", "record_id": "new"}));
        let r = run_on(&records, None);
        assert!(r.tampered());
        assert_eq!((r.unchained_old, r.unchained_forged), (1, 1));
    }
}
