//! `policy-gateway simulate`: replay recorded or scripted traffic through a policy.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};

use serde_json::Value;

use crate::audit::record::RecordMeta;
use crate::audit::{AuditRecord, IdGenerator};
use crate::engine::{self, RequestInfo, Verdict};
use crate::llm::Phase;
use crate::policy::Policy;

/// One exchange of simulated traffic.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exchange {
    pub request: Vec<u8>,
    pub headers: BTreeMap<String, String>,
    pub path: Option<String>,
    pub response: Option<Vec<u8>>,
}

const WRAPPER_KEYS: &[&str] = &["request", "headers", "response", "path"];

/// Reads one traffic line: a request body, or a `{"request", "headers", "response", "path"}`
/// wrapper. A wrapper's `request`/`response` may be a JSON string holding a raw body, to
/// simulate malformed bodies; a line that is not JSON at all is itself a (malformed) body.
pub fn parse_line(line: &str) -> Exchange {
    let Ok(value) = serde_json::from_str::<Value>(line) else {
        return Exchange {
            request: line.as_bytes().to_vec(),
            ..Exchange::default()
        };
    };
    let is_wrapper = value.as_object().is_some_and(|o| {
        o.contains_key("request") && o.keys().all(|k| WRAPPER_KEYS.contains(&k.as_str()))
    });
    if !is_wrapper {
        return Exchange {
            request: line.as_bytes().to_vec(),
            ..Exchange::default()
        };
    }
    let body = |v: Option<&Value>| -> Option<Vec<u8>> {
        match v? {
            Value::String(raw) => Some(raw.as_bytes().to_vec()),
            other => serde_json::to_vec(other).ok(),
        }
    };
    let headers = value
        .get("headers")
        .and_then(Value::as_object)
        .map(|h| {
            h.iter()
                .filter_map(|(k, v)| Some((k.to_ascii_lowercase(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    Exchange {
        request: body(value.get("request")).unwrap_or_default(),
        headers,
        path: value
            .get("path")
            .and_then(Value::as_str)
            .map(str::to_string),
        response: body(value.get("response")),
    }
}

/// What the client got, in words, for tables.
pub fn client_view(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Forward {
            body: None,
            flagged,
        } => {
            format!("forwarded{}", if *flagged { ", flagged" } else { "" })
        }
        Verdict::Forward {
            body: Some(_),
            flagged,
        } => format!(
            "forwarded changed{}",
            if *flagged { ", flagged" } else { "" }
        ),
        Verdict::Respond {
            status, held: true, ..
        } => format!("{status} held for review"),
        Verdict::Respond { status, .. } => format!("{status} refused"),
    }
}

/// The result of simulating one exchange.
#[derive(Debug, Clone)]
pub struct Simulated {
    pub record: AuditRecord,
    pub client: String,
    /// The request body as forwarded upstream (None when answered locally).
    pub forwarded: Option<Vec<u8>>,
}

/// Runs one exchange through the engine exactly as the filter would.
pub fn simulate(
    policy: &Policy,
    ex: &Exchange,
    line_no: usize,
    ids: &mut IdGenerator,
    epoch_ms: u64,
) -> Simulated {
    let fallback_id = format!("sim-{line_no}");
    let request_id = ex
        .headers
        .get("x-request-id")
        .map(String::as_str)
        .unwrap_or(&fallback_id);
    // Parsed once: the body's `user` (attribution) and the evaluation share it.
    let parsed = engine::parse_body(&ex.request);
    let body_user = parsed
        .json()
        .and_then(|v| v.get("user").and_then(Value::as_str).map(str::to_string));
    let info = RequestInfo {
        request_id,
        path: ex
            .path
            .as_deref()
            .or(ex.headers.get(":path").map(String::as_str)),
        user: ex
            .headers
            .get("x-user-id")
            .map(String::as_str)
            .or(body_user.as_deref()),
        project: ex.headers.get("x-project-id").map(String::as_str),
    };
    let rollout = engine::rollout(policy, &info);
    let request = engine::evaluate_parsed(policy, &info, &rollout, Phase::Request, parsed);
    let forwarded = match &request.verdict {
        Verdict::Forward { body, .. } => Some(body.clone().unwrap_or_else(|| ex.request.clone())),
        Verdict::Respond { .. } => None,
    };
    let response = match (&forwarded, &ex.response) {
        (Some(_), Some(resp)) => Some(engine::evaluate(
            policy,
            &info,
            &rollout,
            Phase::Response,
            resp,
        )),
        _ => None,
    };
    let client = match &response {
        Some(r) if matches!(r.verdict, Verdict::Respond { .. }) => {
            format!("response: {}", client_view(&r.verdict))
        }
        _ => client_view(&request.verdict),
    };
    let record_id = ids.next(epoch_ms);
    let record = AuditRecord::build(
        policy,
        &info,
        &rollout,
        &request,
        response.as_ref(),
        RecordMeta {
            record_id: &record_id,
            epoch_ms,
        },
    );
    Simulated {
        record,
        client,
        forwarded,
    }
}

pub fn run(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    match run_inner(args.to_vec(), out) {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(err, "simulate: {}", super::table::display(&e));
            2
        }
    }
}

fn run_inner(mut args: Vec<String>, out: &mut dyn Write) -> Result<(), String> {
    let policy_file =
        super::take_flag(&mut args, "--policy")?.ok_or("--policy FILE is required")?;
    let input = super::take_flag(&mut args, "--input")?.ok_or("--input FILE is required")?;
    let format = super::take_format(&mut args, &["json", "table"])?;
    let seed = match super::take_flag(&mut args, "--seed")? {
        Some(s) => s
            .parse::<u64>()
            .map_err(|_| format!("--seed {s}: not a number"))?,
        None => default_seed(),
    };
    if let Some(extra) = args.first() {
        return Err(format!("unexpected argument \"{extra}\""));
    }
    let policy = super::check::load(&policy_file).map_err(|e| format!("{policy_file}: {e}"))?;
    let reader: Box<dyn BufRead> = if input == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        let f = std::fs::File::open(&input).map_err(|e| format!("{input}: {e}"))?;
        Box::new(std::io::BufReader::new(f))
    };
    let mut ids = IdGenerator::new(seed);
    let mut rows = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| format!("{input}: line {}: {e}", i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let sim = simulate(&policy, &parse_line(&line), i + 1, &mut ids, now_ms());
        if format == "json" {
            writeln!(out, "{}", super::table::json(&sim.record.to_json()))
                .map_err(|e| e.to_string())?;
        } else {
            rows.push(table_row(&sim));
        }
    }
    if format == "table" {
        let header = [
            "request_id",
            "decision",
            "enforced",
            "reason_code",
            "rules",
            "client",
            "user",
            "model",
            "injection",
        ];
        write!(out, "{}", super::table::render(&header, &rows)).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn table_row(sim: &Simulated) -> Vec<String> {
    let r = &sim.record;
    vec![
        r.request_id.clone(),
        r.decision.to_string(),
        if r.enforced { "yes" } else { "no" }.into(),
        r.reason_code.clone(),
        if r.triggered_rules.is_empty() {
            "-".into()
        } else {
            r.triggered_rules.join(",")
        },
        sim.client.clone(),
        r.policy_user.clone().unwrap_or_else(|| "-".into()),
        r.model.clone().unwrap_or_else(|| "-".into()),
        injection_score(r),
    ]
}

/// The highest prompt-injection score of the exchange (request or response), or `-`.
fn injection_score(r: &AuditRecord) -> String {
    let response = r.response.as_ref().and_then(|p| p.prompt_injection_score);
    match (r.request.prompt_injection_score, response) {
        (None, None) => "-".into(),
        (a, b) => format!("{:.2}", a.unwrap_or(0.0).max(b.unwrap_or(0.0))),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn default_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    crate::audit::id::splitmix64(nanos ^ (u64::from(std::process::id()) << 32))
}
