//! Reading exported audit records: JSON lines, gzip or not, from files or directories (the S3
//! sink's `dt=/hour=/…jsonl.gz` tree), as any sink delivered them, back into plain records.
//!
//! Each line is unwrapped to the record it carries: the record itself (S3, Azure Monitor rows,
//! `simulate` output), a Splunk HEC event (`{"event": …}`) or a Splunk search export
//! (`{"result": {"_raw": "…"}}`), a Datadog log (`{"message": "<record JSON>"}`), an
//! Elasticsearch document or hit (ECS documents keep the record under `policy_gateway`;
//! `_source`), an OCSF event of any sink (the record is its `raw_data`). Lines that carry no
//! record are counted and skipped, never fatal.

mod gunzip;

use std::path::{Path, PathBuf};

use serde_json::Value;

/// Records read from some inputs, and what was skipped.
#[derive(Debug, Default)]
pub struct Loaded {
    pub records: Vec<Value>,
    /// For each record, the number of the file it was read from (from 1, in reading order).
    pub origins: Vec<usize>,
    /// Lines that were not JSON or carried no record.
    pub skipped: usize,
    pub files: usize,
}

/// Reads every file named (directories recursively, in path order; `-` is stdin).
pub fn load(inputs: &[String]) -> Result<Loaded, String> {
    let mut loaded = Loaded::default();
    for input in inputs {
        if input == "-" {
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
                .map_err(|e| format!("stdin: {e}"))?;
            read_bytes(&buf, "stdin", &mut loaded)?;
            continue;
        }
        let mut files = Vec::new();
        collect(Path::new(input), &mut files)?;
        for f in files {
            let bytes = std::fs::read(&f).map_err(|e| format!("{}: {e}", f.display()))?;
            read_bytes(&bytes, &f.display().to_string(), &mut loaded)?;
        }
    }
    Ok(loaded)
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_dir() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for e in entries {
        collect(&e, out)?;
    }
    Ok(())
}

fn read_bytes(bytes: &[u8], name: &str, loaded: &mut Loaded) -> Result<(), String> {
    loaded.files += 1;
    let text = if bytes.starts_with(&[0x1f, 0x8b]) {
        gunzip::gunzip(bytes).map_err(|e| format!("{name}: {e}"))?
    } else {
        bytes.to_vec()
    };
    let text = String::from_utf8_lossy(&text);
    let trimmed = text.trim_start();
    // A whole JSON array (an API export) or JSON lines.
    if trimmed.starts_with('[') {
        if let Ok(Value::Array(items)) = serde_json::from_str::<Value>(trimmed) {
            for item in items {
                push(item, loaded);
            }
            return Ok(());
        }
    }
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<Value>(line) {
            Ok(v) => push(v, loaded),
            Err(_) => loaded.skipped += 1,
        }
    }
    Ok(())
}

fn push(v: Value, loaded: &mut Loaded) {
    match unwrap_record(v) {
        Some(r) => {
            loaded.records.push(r);
            loaded.origins.push(loaded.files);
        }
        None => loaded.skipped += 1,
    }
}

/// The audit record a delivered or exported line carries, if any. The `@timestamp` the
/// Elasticsearch sink adds to native documents is taken off (records never have one), so the
/// record is as the gateway chained it.
pub fn unwrap_record(mut v: Value) -> Option<Value> {
    let obj = v.as_object_mut()?;
    if obj.contains_key("record_id") && obj.contains_key("record_type") {
        obj.remove("@timestamp");
        return Some(v);
    }
    let obj = v.as_object()?;
    let nested = ["policy_gateway", "event", "_source", "result"]
        .iter()
        .filter_map(|k| obj.get(*k).filter(|i| i.is_object()).cloned());
    let embedded = ["message", "_raw", "raw_data"]
        .iter()
        .filter_map(|k| obj.get(*k).and_then(Value::as_str))
        .filter_map(|text| serde_json::from_str::<Value>(text).ok());
    nested.chain(embedded).find_map(unwrap_record)
}

/// The records named by the remaining arguments that pass the filter, each once (delivery is
/// at least once: the same `record_id` twice is one record), in time order.
#[derive(Debug, Default)]
pub struct Selection {
    pub records: Vec<Value>,
    /// Records read before filtering, files read, lines that carried no record.
    pub read: usize,
    pub files: usize,
    pub skipped: usize,
}

/// Reads and selects the records in `args` (files, directories, `-`).
pub fn select(args: &[String], filter: &Filter) -> Result<Selection, String> {
    if args.is_empty() {
        return Err("name the exported records: FILE or DIRECTORY... (- for stdin)".into());
    }
    let loaded = load(args)?;
    let read = loaded.records.len();
    let mut seen = std::collections::HashSet::new();
    let mut records: Vec<Value> = loaded
        .records
        .into_iter()
        .filter(|r| filter.accepts(r))
        .filter(|r| seen.insert(str_of(r, "record_id").unwrap_or_default().to_string()))
        .collect();
    records.sort_by(|a, b| str_of(a, "timestamp").cmp(&str_of(b, "timestamp")));
    Ok(Selection {
        records,
        read,
        files: loaded.files,
        skipped: loaded.skipped,
    })
}

/// Field access on a record.
pub fn str_of<'a>(r: &'a Value, key: &str) -> Option<&'a str> {
    r.get(key).and_then(Value::as_str)
}

/// A record's triggered rule ids.
pub fn rules_of(r: &Value) -> Vec<&str> {
    r.get("triggered_rules")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Filters `trail` and the other commands share.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct Filter {
    /// Records at or after TIME (ISO 8601: 2026-11-26 or 2026-11-26T09:30:00Z)
    ///
    /// Compared as text (records use one UTC format); a date alone is the start of the day.
    #[arg(long, value_name = "TIME", value_parser = iso_time)]
    pub from: Option<String>,
    /// Records before TIME (ISO 8601)
    #[arg(long, value_name = "TIME", value_parser = iso_time)]
    pub to: Option<String>,
    /// Records of this user (policy_user)
    #[arg(long)]
    pub user: Option<String>,
    /// Records of this project (policy_project_id)
    #[arg(long)]
    pub project: Option<String>,
    /// Records with this reason code
    #[arg(long = "reason", value_name = "REASON_CODE")]
    pub reason_code: Option<String>,
    /// Records with this decision
    #[arg(long, value_parser = ["allow", "rewrite", "redact", "escalate", "refuse"])]
    pub decision: Option<String>,
    /// Records of this policy (id@version)
    #[arg(long = "policy", value_name = "POLICY_ID")]
    pub policy_id: Option<String>,
    /// Records in which this rule triggered
    #[arg(long, value_name = "RULE_ID")]
    pub rule: Option<String>,
    /// Records of this type [default: decision]
    #[arg(long = "type", value_name = "TYPE", value_parser = ["decision", "policy_change", "gap", "checkpoint"])]
    pub record_type: Option<String>,
}

/// Accepts an ISO 8601 date or time (`2026-11-26`, `2026-11-26T09:30:00Z`): the first ten
/// characters must be a date.
fn iso_time(v: &str) -> Result<String, String> {
    let ok = v.len() >= 10
        && v.bytes().take(10).enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if ok {
        Ok(v.to_string())
    } else {
        Err("not an ISO 8601 time (2026-11-26 or 2026-11-26T09:30:00Z)".into())
    }
}

/// The exported records to read: files or directories, `-` for standard input.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct Inputs {
    /// Exported audit records (files, directories, gzip or not, from any sink); - is stdin
    #[arg(value_name = "RECORDS", required = true, value_hint = clap::ValueHint::AnyPath)]
    pub records: Vec<String>,
}

impl Filter {
    /// Whether a record passes every filter given. Decision records only, unless `--type`.
    pub fn accepts(&self, r: &Value) -> bool {
        let eq = |key: &str, want: &Option<String>| {
            want.as_deref().is_none_or(|w| str_of(r, key) == Some(w))
        };
        let ts = str_of(r, "timestamp").unwrap_or_default();
        let record_type = self.record_type.as_deref().unwrap_or("decision");
        str_of(r, "record_type") == Some(record_type)
            && self.from.as_deref().is_none_or(|f| ts >= f)
            && self.to.as_deref().is_none_or(|t| ts < t)
            && eq("policy_user", &self.user)
            && eq("policy_project_id", &self.project)
            && eq("reason_code", &self.reason_code)
            && eq("decision", &self.decision)
            && eq("policy_id", &self.policy_id)
            && self
                .rule
                .as_deref()
                .is_none_or(|rule| rules_of(r).contains(&rule))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(id: &str) -> Value {
        json!({"record_type": "decision", "record_id": id, "timestamp": "2026-11-26T10:00:00.000Z",
               "decision": "redact", "policy_id": "default@1", "triggered_rules": ["r1"]})
    }

    #[test]
    fn every_sink_shape_unwraps_to_the_record() {
        let r = record("a");
        let shapes = [
            r.clone(),
            json!({"time": 1, "event": r.clone(), "sourcetype": "x"}),
            json!({"result": {"_raw": r.to_string()}}),
            json!({"message": r.to_string(), "ddsource": "policy-gateway"}),
            json!({"@timestamp": "x", "event": {"action": "redact"}, "policy_gateway": r.clone()}),
            json!({"_index": "i", "_source": {"policy_gateway": r.clone()}}),
            json!({"_index": "i", "_source": {"@timestamp": "t", "record_id": "a",
                "record_type": "decision", "timestamp": "2026-11-26T10:00:00.000Z",
                "decision": "redact", "policy_id": "default@1", "triggered_rules": ["r1"]}}),
            crate::audit::ocsf::to_ocsf(&r.to_string()),
            json!({"event": crate::audit::ocsf::to_ocsf(&r.to_string())}),
            json!({"message": crate::audit::ocsf::to_ocsf(&r.to_string()).to_string()}),
            json!({"_source": crate::audit::ocsf::to_ocsf(&r.to_string())}),
        ];
        for s in shapes {
            assert_eq!(unwrap_record(s.clone()), Some(r.clone()), "{s}");
        }
        assert_eq!(unwrap_record(json!({"hello": "world"})), None);
        assert_eq!(unwrap_record(json!("text")), None);
    }

    #[test]
    fn reads_gzip_jsonl_and_arrays_and_counts_junk() {
        let dir = std::env::temp_dir().join(format!("pg-records-{}", std::process::id()));
        let sub = dir.join("dt=2026-11-26").join("hour=10");
        std::fs::create_dir_all(&sub).unwrap();
        let lines = format!("{}\n{}\nnot json\n", record("a"), record("b"));
        std::fs::write(
            sub.join("x.jsonl.gz"),
            crate::sinks::gzip::gzip(lines.as_bytes()),
        )
        .unwrap();
        std::fs::write(
            dir.join("export.json"),
            json!([record("c"), {"x": 1}]).to_string(),
        )
        .unwrap();
        let loaded = load(&[dir.display().to_string()]).unwrap();
        let ids: Vec<&str> = loaded
            .records
            .iter()
            .filter_map(|r| str_of(r, "record_id"))
            .collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(loaded.skipped, 2);
        assert_eq!(loaded.files, 2);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(load(&["/nonexistent/x".into()])
            .unwrap_err()
            .contains("/nonexistent/x"));
    }

    /// The filter flags as a command line gives them.
    fn filter(args: &[&str]) -> Result<Filter, clap::Error> {
        #[derive(clap::Parser)]
        struct Cmd {
            #[command(flatten)]
            filter: Filter,
        }
        <Cmd as clap::Parser>::try_parse_from(std::iter::once("x").chain(args.iter().copied()))
            .map(|c| c.filter)
    }

    #[test]
    fn filters() {
        let f = filter(&["--from", "2026-11-26", "--to", "2026-11-27", "--rule", "r1"]).unwrap();
        assert!(f.accepts(&record("a")));
        let mut late = record("b");
        late["timestamp"] = json!("2026-11-27T00:00:00.000Z");
        assert!(!f.accepts(&late));
        let mut other = record("c");
        other["triggered_rules"] = json!(["r2"]);
        assert!(!f.accepts(&other));
        let bad = filter(&["--from", "yesterday"]).unwrap_err().to_string();
        assert!(bad.contains("--from"), "{bad}");
        assert!(bad.contains("not an ISO 8601 time"), "{bad}");
        let bad = filter(&["--decision", "deny"]).unwrap_err().to_string();
        assert!(bad.contains("[possible values: allow, rewrite, redact, escalate, refuse]"));
    }
}
