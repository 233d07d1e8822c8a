//! What the triggered rules decide, for a whole body and a stream alike: the deciding rule
//! (the most severe, the first in policy order among equals), what the record says of it, and
//! the refusal or hold when it answers locally.

use super::{PhaseOutcome, Refusal};
use crate::policy::compile::Rule;
use crate::policy::document::EscalateMode;
use crate::policy::{Action, Policy};

/// The decision of the rules that triggered.
pub(super) struct Decision<'p> {
    /// The rule whose action decides, when any triggered.
    pub(super) rule: Option<&'p Rule>,
    /// The triggered rules, in policy order.
    triggered: Vec<&'p Rule>,
}

/// Decides among the triggered rules (indices of the policy's rules, in policy order).
pub(super) fn decide(policy: &Policy, triggered: impl IntoIterator<Item = usize>) -> Decision<'_> {
    let triggered: Vec<&Rule> = triggered
        .into_iter()
        .filter_map(|i| policy.rules.get(i))
        .collect();
    let rule = triggered
        .iter()
        .copied()
        .fold(None::<&Rule>, |best, r| match best {
            Some(b) if b.action >= r.action => Some(b),
            _ => Some(r),
        });
    Decision { rule, triggered }
}

impl Decision<'_> {
    /// Writes the decision into `out`: the deciding rule's action, reason code and escalation
    /// (when a rule triggered), and the triggered rules' ids and categories.
    pub(super) fn record(&self, out: &mut PhaseOutcome) {
        if let Some(rule) = self.rule {
            out.decision = rule.action;
            out.reason_code = rule.reason_code.clone();
            if rule.action == Action::Escalate {
                out.escalation = Some(rule.escalate_mode);
            }
        }
        for r in &self.triggered {
            out.triggered_rules.push(r.id.clone());
            if !out.triggered_categories.contains(&r.category) {
                out.triggered_categories.push(r.category.clone());
            }
        }
    }

    /// The local answer, when the deciding rule gives one.
    pub(super) fn refusal(&self) -> Option<Refusal> {
        self.rule.and_then(refusal_of)
    }
}

/// Whether `rule` answers locally when it decides: refuse, or escalate-hold.
pub(super) fn answers_locally(rule: &Rule) -> bool {
    rule.action == Action::Refuse
        || (rule.action == Action::Escalate && rule.escalate_mode == EscalateMode::Hold)
}

/// The local answer of `rule` when it gives one: its refuse reply, or its hold reply.
fn refusal_of(rule: &Rule) -> Option<Refusal> {
    if !answers_locally(rule) {
        return None;
    }
    let held = rule.action == Action::Escalate;
    let reply = if held { &rule.hold } else { &rule.refuse };
    Some(Refusal::of_rule(reply, &rule.reason_code, held))
}

/// Whether `rule` triggers: `content_hit` says whether any of its text matches was found.
pub(super) fn rule_triggers(
    rule: &Rule,
    content_hit: bool,
    model: Option<&str>,
    requested_max_tokens: Option<u64>,
) -> bool {
    let content = !rule.has_content_match() || content_hit;
    let model_ok = rule.models.as_ref().is_none_or(|m| m.triggers(model));
    let tokens_ok = rule
        .max_tokens
        .is_none_or(|max| requested_max_tokens.is_some_and(|n| n > max));
    content && model_ok && tokens_ok
}
