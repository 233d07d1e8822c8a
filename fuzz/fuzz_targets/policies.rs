//! The shipped policies, compiled once per fuzzing process (shared by the fuzz targets).

use std::sync::OnceLock;

use policy_gateway::policy::Policy;

pub fn shipped() -> &'static [Policy] {
    static POLICIES: OnceLock<Vec<Policy>> = OnceLock::new();
    POLICIES.get_or_init(|| {
        [
            include_str!("../../policies/default.json"),
            include_str!("../../policies/pii-strict.json"),
            include_str!("../../policies/secrets.json"),
        ]
        .iter()
        .map(|p| Policy::from_json(p.as_bytes()).expect("shipped policy compiles"))
        .collect()
    })
}
