//! Profiling aid for the classifier's feature families: `prof_features <case> <stage> <flags>
//! <iters>` normalises (`norm`) or normalises and scores (`score`) one 16 KiB text `iters`
//! times with the embedded weights under the header flags `flags` (a number: the feature
//! kinds; 0 is the word pass alone). Run it under callgrind at two iteration counts: the
//! difference per iteration is one evaluation's instructions, so each family's cost is the
//! difference between flag sets. Cases: `chat` (the engine benchmark's typical chat body),
//! `cjk` (Chinese and Japanese prose of the same length).
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
use policy_gateway::detect::injection_model::{Model, Scratch};
use policy_gateway::detect::normalize::Normalized;
use std::hint::black_box;
#[allow(dead_code)]
#[path = "../benches/support/inputs.rs"]
mod inputs;

const CJK: &str = "我们的季度规划会议讨论了下两个版本的路线图、平台团队的招聘计划，以及计费服务迁移到新集群的事宜。\
请为领导层更新起草一份摘要，突出数据迁移时间表的风险。四半期の計画会議では、次の二つのリリースのロードマップ、\
プラットフォームチームの採用計画、請求サービスの新しいクラスタへの移行について話し合いました。中立的な口調で三百語以内にまとめてください。";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let body = match args[1].as_str() {
        // The typical text's body with CJK prose of the same length (cut at a character).
        "cjk" => {
            let mut t = CJK.repeat(16384 / CJK.len() + 1);
            let mut end = 16384;
            while !t.is_char_boundary(end) {
                end -= 1;
            }
            t.truncate(end);
            inputs::chat_body(&t, end)
        }
        _ => inputs::chat_body(inputs::TYPICAL, 16384),
    };
    let text = String::from_utf8(body).unwrap();
    let score = args[2] == "score";
    let flags: u8 = args[3].parse().unwrap();
    let iters: u32 = args[4].parse().unwrap();
    let mut file = include_bytes!("../src/detect/injection_model.bin").to_vec();
    file[7] = flags;
    let model = Model::parse(Box::leak(file.into_boxed_slice())).unwrap();
    let mut norm = Normalized::default();
    let mut scratch = Scratch::default();
    let mut words = 0usize;
    for _ in 0..iters {
        norm.normalize(black_box(&text));
        if score {
            let s = model.score(norm.bytes(), &mut scratch, |_| words += 1);
            black_box(s);
        }
    }
    black_box(words);
    eprintln!("{} bytes", text.len());
}
