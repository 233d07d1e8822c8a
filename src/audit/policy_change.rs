//! The `policy_change` record: written when a gateway starts enforcing a policy (a start, or a
//! configuration reload that changes the policy or the candidate), so the trail shows which
//! policy version was in force when, and what it replaced.
//!
//! Every VM of a plugin configures itself; the filter keeps what was last announced in the
//! host's shared data (one value per gateway instance) and only the VM that swaps it in (a
//! compare-and-swap) writes the record, so one configuration gives one record, not one per
//! worker.

use serde::{Deserialize, Serialize};

use super::SCHEMA_VERSION;
use crate::config::PluginConfig;

/// What a gateway last announced, as kept in shared data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Announced {
    pub policy_id: String,
    pub policy_sha256: String,
    pub candidate_policy_id: Option<String>,
    pub candidate_sha256: Option<String>,
}

/// Read by hand through a `Value`, as the derive read it (other keys ignored, the candidate's
/// fields optional): a derived `Deserialize` over serde_json's reader links serde's
/// `Unexpected` and with it core's float `Display` (~19 KB) into the filter module.
impl<'de> Deserialize<'de> for Announced {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Announced, D::Error> {
        use serde::de::Error as _;
        use serde_json::Value;
        let value = Value::deserialize(d)?;
        let text = |key: &str| match value.get(key) {
            Some(Value::String(s)) => Ok(Some(s.clone())),
            None | Some(Value::Null) => Ok(None),
            Some(_) => Err(D::Error::custom(format_args!("`{key}` is not a string"))),
        };
        let required = |key: &str| {
            text(key)?.ok_or_else(|| D::Error::custom(format_args!("missing field `{key}`")))
        };
        if !value.is_object() {
            return Err(D::Error::custom("an announced policy is an object"));
        }
        Ok(Announced {
            policy_id: required("policy_id")?,
            policy_sha256: required("policy_sha256")?,
            candidate_policy_id: text("candidate_policy_id")?,
            candidate_sha256: text("candidate_sha256")?,
        })
    }
}

impl Announced {
    pub fn of(config: &PluginConfig) -> Announced {
        Announced {
            policy_id: config.policy.policy_id.clone(),
            policy_sha256: config.policy_sha256.clone(),
            candidate_policy_id: config.candidate.as_ref().map(|c| c.policy_id.clone()),
            candidate_sha256: config.candidate_sha256.clone(),
        }
    }

    /// The shared-data key of a gateway instance.
    pub fn key(instance_id: &str) -> String {
        format!("policy_gateway.announced.{instance_id}")
    }
}

/// The record of a policy change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyChangeRecord {
    pub schema_version: &'static str,
    pub record_type: &'static str,
    pub record_id: String,
    pub timestamp: String,
    /// The policy now enforced, `<id>@<version>`.
    pub policy_id: String,
    /// The one it replaced, when this gateway announced one before.
    pub previous_policy_id: Option<String>,
    /// SHA-256 of the policy document (keys sorted, no whitespace): equal ids with different
    /// content show up here.
    pub policy_sha256: String,
    pub previous_policy_sha256: Option<String>,
    pub rule_count: usize,
    pub rollout_mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary_percent: Option<f64>,
    /// The candidate policy evaluated in shadow beside it, if any.
    pub candidate_policy_id: Option<String>,
    pub gateway: String,
}

/// The record to write when `current` replaces `previous`; None when nothing changed.
pub fn record(
    config: &PluginConfig,
    previous: Option<&Announced>,
    record_id: &str,
    epoch_ms: u64,
) -> Option<PolicyChangeRecord> {
    let current = Announced::of(config);
    if previous == Some(&current) {
        return None;
    }
    let rollout = &config.policy.rollout;
    Some(PolicyChangeRecord {
        schema_version: SCHEMA_VERSION,
        record_type: "policy_change",
        record_id: record_id.to_string(),
        timestamp: super::time::iso8601_millis(epoch_ms),
        policy_id: current.policy_id,
        previous_policy_id: previous.map(|p| p.policy_id.clone()),
        policy_sha256: current.policy_sha256,
        previous_policy_sha256: previous.map(|p| p.policy_sha256.clone()),
        rule_count: config.policy.rules.len(),
        rollout_mode: rollout.mode.name(),
        canary_percent: (rollout.mode == crate::policy::RolloutMode::Canary)
            .then(|| f64::from(rollout.canary_basis_points) / 100.0),
        candidate_policy_id: current.candidate_policy_id,
        gateway: config.instance_id.clone(),
    })
}

impl PolicyChangeRecord {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn config(version: &str, mode: serde_json::Value) -> PluginConfig {
        let doc = json!({"instance_id": "gw-1", "policy": {"id": "p", "version": version, "rollout": mode,
            "rules": [{"id": "r", "category": "c", "match": {"detectors": ["email"]}, "action": "redact", "reason_code": "E"}]}});
        PluginConfig::from_json(doc.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn first_start_then_a_change_then_nothing() {
        let v1 = config("1", json!({"mode": "enforce"}));
        let first = record(&v1, None, "id1", 0).unwrap();
        assert_eq!(first.policy_id, "p@1");
        assert_eq!(first.previous_policy_id, None);
        assert_eq!(first.rule_count, 1);
        assert_eq!(first.policy_sha256.len(), 64);
        let announced = Announced::of(&v1);
        assert!(record(&v1, Some(&announced), "id2", 0).is_none());
        let v2 = config("2", json!({"mode": "canary", "canary_percent": 12.5}));
        let change = record(&v2, Some(&announced), "id3", 86_400_000).unwrap();
        assert_eq!(change.previous_policy_id.as_deref(), Some("p@1"));
        assert_eq!(
            change.previous_policy_sha256,
            Some(first.policy_sha256.clone())
        );
        assert_ne!(change.policy_sha256, first.policy_sha256);
        assert_eq!(change.canary_percent, Some(12.5));
        assert_eq!(change.timestamp, "1970-01-02T00:00:00.000Z");
        let v: serde_json::Value = serde_json::from_str(&change.to_json()).unwrap();
        assert_eq!(v["record_type"], "policy_change");
        // The same content with keys in another order hashes the same.
        assert_eq!(
            Announced::of(&config("1", json!({"mode": "enforce"}))),
            announced
        );
    }

    /// What the filter keeps in shared data reads back as it was written; a value written
    /// before the candidate fields, or with fields this version does not know, reads as the
    /// derive read it; anything else is no announcement.
    #[test]
    fn announced_reads_back_from_shared_data() {
        let mut a = Announced::of(&config("1", json!({"mode": "enforce"})));
        a.candidate_policy_id = Some("q@2".into());
        let text = serde_json::to_vec(&a).unwrap();
        assert_eq!(serde_json::from_slice::<Announced>(&text).unwrap(), a);
        let old = json!({"policy_id": "p@1", "policy_sha256": "ab", "later": [1.5]});
        let read: Announced = serde_json::from_value(old).unwrap();
        assert_eq!(
            read,
            Announced {
                policy_id: "p@1".into(),
                policy_sha256: "ab".into(),
                candidate_policy_id: None,
                candidate_sha256: None,
            }
        );
        for bad in [
            json!({"policy_sha256": "ab"}),
            json!({"policy_id": 1, "policy_sha256": "ab"}),
            json!({"policy_id": "p@1", "policy_sha256": "ab", "candidate_sha256": 2.5}),
            json!(["p@1", "ab"]),
            json!(null),
        ] {
            assert!(
                serde_json::from_value::<Announced>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }
}
