//! `policy-gateway simulate`: replays recorded or scripted traffic through the filter's own
//! exchange (`crate::exchange::replay`), from a plugin configuration (`--config`, the same
//! JSON the filter gets) or a policy alone (`--policy`). Attribution sources, the candidate
//! policy, `on_uninspectable`, response inspection and streamed responses all behave as in the
//! filter; only ids and times differ.

use std::io::{BufRead, Write};
use std::rc::Rc;

use crate::audit::IdGenerator;
use crate::config::PluginConfig;
pub use crate::exchange::replay::{config_for_policy, parse_line, simulate, Simulated, Traffic};

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
    let policy_file = super::take_flag(&mut args, "--policy")?;
    let config_file = super::take_flag(&mut args, "--config")?;
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
    let config = match (policy_file, config_file) {
        (Some(p), None) => {
            let bytes = std::fs::read(&p).map_err(|e| format!("{p}: cannot read: {e}"))?;
            config_for_policy(&bytes).map_err(|e| format!("{p}: {e}"))?
        }
        (None, Some(c)) => {
            let bytes = std::fs::read(&c).map_err(|e| format!("{c}: cannot read: {e}"))?;
            Rc::new(PluginConfig::from_json(&bytes).map_err(|e| format!("{c}: {e}"))?)
        }
        _ => return Err("one of --policy FILE or --config PLUGIN.json is required".into()),
    };
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
        let sim = simulate(&config, &parse_line(&line), i + 1, &mut ids, now_ms());
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
    ]
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
