//! Profiling aid for the text cache: `prof_conversation cached|uncached [n]` builds a 20-turn
//! conversation (`benches/support/conversation.rs`) and replays its first `n` requests (default
//! 20) turn by turn through `engine::evaluate_cached` with `policies/default.json`, as one
//! verified user, with a text cache or without. Prints per request its bytes of text and the
//! bytes judged (stderr). Under cachegrind, `n` minus `n - 1` is request `n` alone, `n` minus 0
//! the first `n` requests without the setup.
#![allow(clippy::unwrap_used)]
use std::hint::black_box;

use policy_gateway::engine::text_cache::{Cached, Identity, Lane, Limits, TextCache};
use policy_gateway::engine::{self, RequestInfo, VaultUse};
use policy_gateway::llm::Phase;
use policy_gateway::policy::Policy;

#[path = "../benches/support/conversation.rs"]
mod conversation;

fn main() {
    let cached = std::env::args().nth(1).as_deref() == Some("cached");
    let n: usize = std::env::args().nth(2).map_or(20, |s| s.parse().unwrap());
    let policy = Policy::from_json(include_bytes!("../policies/default.json")).unwrap();
    let info = RequestInfo {
        request_id: "prof",
        path: Some("/v1/chat/completions"),
        user: Some("alice"),
        project: Some("p"),
    };
    let identity = Identity {
        user: "alice",
        user_verified: true,
        project: Some("p"),
        project_verified: true,
    };
    let rollout = engine::rollout(&policy, &info);
    let bodies = conversation::requests(20);
    let mut cache = TextCache::with_random_key(Limits::default());
    let mut judged_before = 0u64;
    for (k, body) in bodies.iter().take(n).enumerate() {
        let c = cache.as_mut().filter(|_| cached).and_then(|c| {
            let scope = c.scope(Some(identity), Lane::Active)?;
            Some(Cached::new(c, scope))
        });
        let out = black_box(engine::evaluate_cached(
            &policy,
            &info,
            &rollout,
            Phase::Request,
            engine::parse_body(black_box(body)),
            VaultUse::None,
            c,
        ));
        let hit = cache.as_ref().map_or(0, |c| c.stats().hit_bytes);
        let judged = out.text_bytes - (hit - judged_before);
        judged_before = hit;
        eprintln!(
            "turn {:2}: body {:6} B, text {:6} B, judged {:6} B, from cache {:2} texts, {}",
            k + 1,
            body.len(),
            out.text_bytes,
            judged,
            out.cached_texts,
            out.decision.name()
        );
    }
}
