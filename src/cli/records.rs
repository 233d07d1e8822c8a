//! Reading exported audit records: JSON lines, gzip or not, from files or directories (the S3
//! sink's `dt=/hour=/…jsonl.gz` tree), as any sink delivered them, back into plain records.
//!
//! Each line is unwrapped to the record it carries: the record itself (S3, Azure Monitor rows,
//! `simulate` output), a Splunk HEC event (`{"event": …}`) or a Splunk search export
//! (`{"result": {"_raw": "…"}}`), a Datadog log (`{"message": "<record JSON>"}`), an
//! Elasticsearch document or hit (ECS documents keep the record under `policy_gateway`;
//! `_source`). Lines that carry no record are counted and skipped, never fatal.

mod gunzip;

use std::path::{Path, PathBuf};

use serde_json::Value;

/// Records read from some inputs, and what was skipped.
#[derive(Debug, Default)]
pub struct Loaded {
    pub records: Vec<Value>,
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
        Some(r) => loaded.records.push(r),
        None => loaded.skipped += 1,
    }
}

/// The audit record a delivered or exported line carries, if any.
pub fn unwrap_record(v: Value) -> Option<Value> {
    let obj = v.as_object()?;
    if obj.contains_key("record_id") && obj.contains_key("record_type") {
        return Some(v);
    }
    let nested = ["policy_gateway", "event", "_source", "result"]
        .iter()
        .filter_map(|k| obj.get(*k).filter(|i| i.is_object()).cloned());
    let embedded = ["message", "_raw"]
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

/// Reads and selects records; `args` must hold only inputs by now (options taken out).
pub fn select(args: &[String], filter: &Filter) -> Result<Selection, String> {
    if let Some(flag) = args.iter().find(|a| a.starts_with("--")) {
        return Err(format!("unknown option \"{flag}\""));
    }
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
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// ISO 8601 bounds, compared as text (records use one fixed UTC format): from inclusive,
    /// to exclusive. A date alone (`2026-11-26`) works as the start of that day.
    pub from: Option<String>,
    pub to: Option<String>,
    pub user: Option<String>,
    pub project: Option<String>,
    pub reason_code: Option<String>,
    pub decision: Option<String>,
    pub policy_id: Option<String>,
    pub rule: Option<String>,
    pub record_type: Option<String>,
}

impl Filter {
    /// Takes the filter flags out of `args`.
    pub fn from_args(args: &mut Vec<String>) -> Result<Filter, String> {
        use super::take_flag;
        let f = Filter {
            from: take_flag(args, "--from")?,
            to: take_flag(args, "--to")?,
            user: take_flag(args, "--user")?,
            project: take_flag(args, "--project")?,
            reason_code: take_flag(args, "--reason")?,
            decision: take_flag(args, "--decision")?,
            policy_id: take_flag(args, "--policy")?,
            rule: take_flag(args, "--rule")?,
            record_type: take_flag(args, "--type")?,
        };
        for (name, v) in [("--from", &f.from), ("--to", &f.to)] {
            if let Some(v) = v {
                let ok = v.len() >= 10
                    && v.bytes().take(10).enumerate().all(|(i, b)| {
                        if i == 4 || i == 7 {
                            b == b'-'
                        } else {
                            b.is_ascii_digit()
                        }
                    });
                if !ok {
                    return Err(format!(
                        "{name}: \"{v}\" is not an ISO 8601 time (2026-11-26 or 2026-11-26T09:30:00Z)"
                    ));
                }
            }
        }
        if let Some(d) = &f.decision {
            if !["allow", "rewrite", "redact", "escalate", "refuse"].contains(&d.as_str()) {
                return Err(format!(
                    "--decision: \"{d}\" is not allow, rewrite, redact, escalate or refuse"
                ));
            }
        }
        Ok(f)
    }

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

    #[test]
    fn filters() {
        let mut args: Vec<String> = ["--from", "2026-11-26", "--to", "2026-11-27", "--rule", "r1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let f = Filter::from_args(&mut args).unwrap();
        assert!(args.is_empty());
        assert!(f.accepts(&record("a")));
        let mut late = record("b");
        late["timestamp"] = json!("2026-11-27T00:00:00.000Z");
        assert!(!f.accepts(&late));
        let mut other = record("c");
        other["triggered_rules"] = json!(["r2"]);
        assert!(!f.accepts(&other));
        let mut bad = vec!["--from".to_string(), "yesterday".to_string()];
        assert!(Filter::from_args(&mut bad).unwrap_err().contains("--from"));
    }
}
