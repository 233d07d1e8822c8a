//! `make eval-injection`: the shipped prompt-injection detector (phrase tier + classifier,
//! exactly as the filter runs it) on the held-out split of the training corpus
//! (`training/injection/data/*.jsonl`, rows with `"split": "test"`). Prints recall per
//! source, category and language, and the false-alarm rate on the benign texts, at the
//! default `min_score` and at the other scores given (`-- 0.5 0.8`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;

use policy_gateway::detect::prompt_injection;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = args
        .iter()
        .find(|a| a.parse::<f64>().is_err())
        .cloned()
        .unwrap_or_else(|| "training/injection/data".into());
    let mut thresholds: Vec<f64> = args.iter().filter_map(|a| a.parse().ok()).collect();
    if thresholds.is_empty() {
        thresholds = vec![prompt_injection::DEFAULT_MIN_SCORE, 0.8];
    }
    let mut rows = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    paths.sort();
    for p in paths {
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
            if v["split"] != "test" {
                continue;
            }
            rows.push(v);
        }
    }
    let start = std::time::Instant::now();
    let mut bytes = 0usize;
    let scored: Vec<(f64, &serde_json::Value)> = rows
        .iter()
        .map(|v| {
            let text = v["text"].as_str().unwrap_or_default();
            bytes += text.len();
            let mut found = Vec::new();
            (prompt_injection::assess(text, &mut found), v)
        })
        .collect();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "held-out split: {} texts ({} attacks, {} benign), {:.1} MB scored natively in {:.2} s\n",
        scored.len(),
        scored.iter().filter(|(_, v)| v["label"] == 1).count(),
        scored.iter().filter(|(_, v)| v["label"] == 0).count(),
        bytes as f64 / 1e6,
        secs
    );
    for t in thresholds {
        report(&scored, t);
    }
}

fn report(scored: &[(f64, &serde_json::Value)], t: f64) {
    println!("## min_score {t}\n");
    let s = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or("-").to_string();
    for (title, key) in [
        ("source", "source"),
        ("category", "category"),
        ("language", "lang"),
    ] {
        let mut attacks: BTreeMap<String, (u32, u32)> = BTreeMap::new();
        let mut benign: BTreeMap<String, (u32, u32)> = BTreeMap::new();
        for (score, v) in scored {
            let hit = *score >= t;
            let map = if v["label"] == 1 {
                &mut attacks
            } else {
                &mut benign
            };
            let e = map.entry(s(v, key)).or_default();
            e.0 += u32::from(hit);
            e.1 += 1;
        }
        println!("| {title} | attacks | recall | benign | false alarms |");
        println!("|---|---:|---:|---:|---:|");
        let keys: std::collections::BTreeSet<&String> =
            attacks.keys().chain(benign.keys()).collect();
        for k in keys {
            let cell = |m: &BTreeMap<String, (u32, u32)>| match m.get(k) {
                Some((h, n)) => (
                    n.to_string(),
                    format!("{:.3}", f64::from(*h) / f64::from(*n)),
                ),
                None => ("0".into(), "-".into()),
            };
            let (an, ar) = cell(&attacks);
            let (bn, br) = cell(&benign);
            println!("| {k} | {an} | {ar} | {bn} | {br} |");
        }
        println!();
    }
    let benign: Vec<_> = scored.iter().filter(|(_, v)| v["label"] == 0).collect();
    let fa = benign.iter().filter(|(sc, _)| *sc >= t).count();
    let attacks: Vec<_> = scored.iter().filter(|(_, v)| v["label"] == 1).collect();
    let hits = attacks.iter().filter(|(sc, _)| *sc >= t).count();
    let en_direct: Vec<_> = attacks
        .iter()
        .filter(|(_, v)| v["lang"] == "en" && v["category"] == "direct")
        .collect();
    let non_en: Vec<_> = attacks.iter().filter(|(_, v)| v["lang"] != "en").collect();
    // The bar names these ten languages besides English.
    const NAMED: [&str; 10] = ["es", "fr", "de", "it", "pt", "nl", "ru", "zh", "ja", "ko"];
    let named: Vec<_> = attacks
        .iter()
        .filter(|(_, v)| NAMED.contains(&v["lang"].as_str().unwrap_or_default()))
        .collect();
    // XSafety's goal hijackings share a few phrasings across items (split by item, not by
    // phrasing): the ten languages without them say how far the rest generalises.
    let named_rest: Vec<_> = named
        .iter()
        .copied()
        .filter(|(_, v)| v["source"] != "xsafety")
        .collect();
    let rate = |xs: &[&&(f64, &serde_json::Value)]| {
        xs.iter().filter(|(sc, _)| *sc >= t).count() as f64 / xs.len().max(1) as f64
    };
    println!(
        "summary at {t}: recall {:.3} of {} attacks (direct English {:.3} of {}; non-English {:.3} of {}, the ten named languages {:.3} of {}, without XSafety {:.3} of {}); false alarms {:.4} ({} of {} benign)\n",
        hits as f64 / attacks.len().max(1) as f64,
        attacks.len(),
        rate(&en_direct),
        en_direct.len(),
        rate(&non_en),
        non_en.len(),
        rate(&named),
        named.len(),
        rate(&named_rest),
        named_rest.len(),
        fa as f64 / benign.len().max(1) as f64,
        fa,
        benign.len()
    );
}
