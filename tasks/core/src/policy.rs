//! Healing policy: the global policy (per deployment or scenario) and per-instance policy.
//!
//! Every field has a default, so `{}` is a valid policy. Unknown fields and impossible values
//! are rejected at load with the file, the JSON path and the fix.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, last_field, parse_json};
use crate::ids::{InstanceId, ServiceName};

/// What the decision engine may choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Nothing to do (recovered, opted out, or fleet-wide overload: "slow is not dead").
    None,
    /// Dry-run: decided and recorded, nothing changed.
    Observe,
    /// Free disk space (logs, configured temp paths) through SSM, then restart the services.
    Cleanup,
    /// Drain, restart the configured services through SSM, verify, restore.
    RestartService,
    /// Drain, reboot through EC2, verify, restore.
    Reboot,
    /// Replace through the Auto Scaling group (terminate without decrement, launch, verify).
    Replace,
    /// Drain and keep out of service for a person to investigate (no heal loop).
    Quarantine,
    /// Healing would be unsafe now (fleet safety, cooldown, exhausted ladder): notify, do nothing.
    Hold,
}

impl Action {
    pub const ALL: [Action; 8] = [
        Self::None,
        Self::Observe,
        Self::Cleanup,
        Self::RestartService,
        Self::Reboot,
        Self::Replace,
        Self::Quarantine,
        Self::Hold,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Observe => "observe",
            Self::Cleanup => "cleanup",
            Self::RestartService => "restart_service",
            Self::Reboot => "reboot",
            Self::Replace => "replace",
            Self::Quarantine => "quarantine",
            Self::Hold => "hold",
        }
    }

    /// The action changes something on the host, the load balancer or the group: a heal.
    pub fn is_mutating(self) -> bool {
        matches!(
            self,
            Self::Cleanup | Self::RestartService | Self::Reboot | Self::Replace | Self::Quarantine
        )
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Flapping: this many serving↔failing transitions within the window mean quarantine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlappingPolicy {
    pub transitions: u32,
    pub window_s: u64,
}

impl Default for FlappingPolicy {
    fn default() -> Self {
        Self {
            transitions: 4,
            window_s: 1800,
        }
    }
}

/// Attempts allowed per rung of the escalation ladder within `attempt_window_s`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LadderPolicy {
    pub attempt_window_s: u64,
    pub max_attempts: MaxAttempts,
}

impl Default for LadderPolicy {
    fn default() -> Self {
        Self {
            attempt_window_s: 86_400,
            max_attempts: MaxAttempts::default(),
        }
    }
}

/// Per-rung attempt limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaxAttempts {
    pub cleanup: u32,
    pub restart_service: u32,
    pub reboot: u32,
    pub replace: u32,
}

impl Default for MaxAttempts {
    fn default() -> Self {
        Self {
            cleanup: 1,
            restart_service: 2,
            reboot: 1,
            replace: 1,
        }
    }
}

impl MaxAttempts {
    /// The limit for a ladder rung (non-ladder actions have none).
    pub fn for_action(&self, a: Action) -> u32 {
        match a {
            Action::Cleanup => self.cleanup,
            Action::RestartService => self.restart_service,
            Action::Reboot => self.reboot,
            Action::Replace => self.replace,
            _ => u32::MAX,
        }
    }
}

/// The policy of one deployment (or one scenario).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GlobalPolicy {
    /// Policy format version; 1.
    pub version: u32,
    /// Decide and record, but change nothing: every heal becomes `observe`.
    pub dry_run: bool,
    /// A heal may not take a serving target out if fewer than this share of the group's targets
    /// would still serve.
    pub min_healthy_percent: u8,
    /// More than this share of a group failing at once means a mass failure (a dependency
    /// outage is suspected): hold every heal in the group.
    pub max_unhealthy_percent: u8,
    /// Groups smaller than this are exempt from the mass-failure check (one target down in a
    /// group of two is not evidence of an outage).
    pub outage_min_targets: u32,
    /// At least this share of a group timing out or anomalous means fleet-wide overload: slow
    /// targets are left alone ("slow is not dead").
    pub overload_slow_percent: u8,
    /// Heals in flight at once per target group.
    pub max_concurrent_heals: u32,
    /// Seconds after a heal of an instance before it may be healed again.
    pub cooldown_s: u64,
    /// Seconds after an instance launched during which failing health checks are expected (it
    /// is still booting) and nothing heals it: the Auto Scaling health-check grace period.
    pub launch_grace_s: u64,
    pub flapping: FlappingPolicy,
    pub ladder: LadderPolicy,
    /// Actions that wait for a person's approval before they run.
    pub approval_required_for: BTreeSet<Action>,
    /// Services restarted by `restart_service` unless an instance policy names others.
    pub services: Vec<ServiceName>,
    /// Per-instance policy, by instance id (the store's instance policy overrides these).
    pub instances: BTreeMap<InstanceId, InstancePolicy>,
}

impl Default for GlobalPolicy {
    fn default() -> Self {
        Self {
            version: 1,
            dry_run: false,
            min_healthy_percent: 50,
            max_unhealthy_percent: 50,
            outage_min_targets: 3,
            overload_slow_percent: 30,
            max_concurrent_heals: 1,
            cooldown_s: 600,
            launch_grace_s: 300,
            flapping: FlappingPolicy::default(),
            ladder: LadderPolicy::default(),
            approval_required_for: BTreeSet::from([Action::Replace]),
            services: Vec::new(),
            instances: BTreeMap::new(),
        }
    }
}

/// Policy for one instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InstancePolicy {
    /// Never heal this instance (as the tag `autoheal:skip=true`).
    pub skip: bool,
    /// Overrides the global cooldown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cooldown_s: Option<u64>,
    /// Only these heal actions may run on this instance; absent means all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_actions: Option<BTreeSet<Action>>,
    /// Overrides the global service list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub services: Option<Vec<ServiceName>>,
}

impl InstancePolicy {
    /// The action may run on this instance.
    pub fn allows(&self, a: Action) -> bool {
        self.allowed_actions
            .as_ref()
            .is_none_or(|set| set.contains(&a))
    }

    /// Validates an instance policy coming from the store or a file section.
    pub fn validate(&self, file: &str, path: &str) -> Result<(), ConfigError> {
        if let Some(set) = &self.allowed_actions
            && let Some(bad) = set.iter().find(|a| !a.is_mutating())
        {
            return Err(ConfigError::new(
                file,
                format!("{path}.allowed_actions"),
                format!("`{bad}` is not a heal action"),
                "list only cleanup, restart_service, reboot, replace or quarantine",
            ));
        }
        Ok(())
    }
}

impl GlobalPolicy {
    /// Loads a policy file from disk.
    pub fn load(path: &std::path::Path) -> Result<GlobalPolicy, ConfigError> {
        let (file, text) = crate::config::read_file(path)?;
        Self::parse(&file, &text)
    }

    /// Parses and validates policy text; `file` names the source in errors.
    pub fn parse(file: &str, text: &str) -> Result<GlobalPolicy, ConfigError> {
        let p: GlobalPolicy = parse_json(file, text, policy_fix)?;
        p.validate(file)?;
        Ok(p)
    }

    /// Parses a policy from an already-parsed JSON value (a scenario's `policy` section).
    pub fn from_value(file: &str, value: &serde_json::Value) -> Result<GlobalPolicy, ConfigError> {
        Self::parse(file, &value.to_string())
    }

    /// Checks ranges and relations the types cannot express.
    pub fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let e = |path: &str, message: String| {
            ConfigError::new(file, path, message, policy_fix(path, ""))
        };
        if self.version != 1 {
            return Err(e(
                "version",
                format!("policy version {} is not supported", self.version),
            ));
        }
        for (path, v) in [
            ("min_healthy_percent", self.min_healthy_percent),
            ("max_unhealthy_percent", self.max_unhealthy_percent),
            ("overload_slow_percent", self.overload_slow_percent),
        ] {
            if v > 100 {
                return Err(e(path, format!("{v} is more than 100 percent")));
            }
        }
        if self.max_unhealthy_percent == 0 {
            return Err(e("max_unhealthy_percent", "0 would hold every heal".into()));
        }
        if self.overload_slow_percent == 0 {
            return Err(e(
                "overload_slow_percent",
                "0 would call every group overloaded".into(),
            ));
        }
        if self.max_concurrent_heals == 0 {
            return Err(e("max_concurrent_heals", "0 would never heal".into()));
        }
        if self.flapping.transitions < 2 {
            return Err(e(
                "flapping.transitions",
                format!(
                    "{} transitions cannot tell flapping from one failure",
                    self.flapping.transitions
                ),
            ));
        }
        if self.flapping.window_s == 0 {
            return Err(e(
                "flapping.window_s",
                "an empty window never sees flapping".into(),
            ));
        }
        if self.ladder.attempt_window_s == 0 {
            return Err(e(
                "ladder.attempt_window_s",
                "an empty window forgets every attempt at once".into(),
            ));
        }
        if let Some(bad) = self.approval_required_for.iter().find(|a| !a.is_mutating()) {
            return Err(e(
                "approval_required_for",
                format!("`{bad}` is not a heal action"),
            ));
        }
        for (id, p) in &self.instances {
            p.validate(file, &format!("instances[\"{id}\"]"))?;
        }
        Ok(())
    }

    /// The policy of one instance: the store's entry when there is one, else this file's.
    pub fn instance<'a>(
        &'a self,
        id: &InstanceId,
        stored: Option<&'a InstancePolicy>,
    ) -> &'a InstancePolicy {
        static DEFAULT: InstancePolicy = InstancePolicy {
            skip: false,
            cooldown_s: None,
            allowed_actions: None,
            services: None,
        };
        stored
            .or_else(|| self.instances.get(id))
            .unwrap_or(&DEFAULT)
    }
}

/// The fix for a bad policy field, by its name.
fn policy_fix(path: &str, message: &str) -> String {
    let field = last_field(path);
    let fix = match field {
        "version" => "set \"version\": 1",
        "dry_run" | "skip" => "use true or false",
        "min_healthy_percent" => "use a whole number from 0 to 100, e.g. 50",
        "max_unhealthy_percent" => "use a whole number from 1 to 100, e.g. 50",
        "overload_slow_percent" => "use a whole number from 1 to 100, e.g. 30",
        "outage_min_targets" => "use a whole number of targets ≥ 0, e.g. 3",
        "max_concurrent_heals" => "use a whole number ≥ 1, e.g. 1",
        "cooldown_s" | "launch_grace_s" | "window_s" | "attempt_window_s" => {
            "use a whole number of seconds ≥ 0 (≥ 1 for windows), e.g. 600"
        }
        "transitions" => "use a whole number ≥ 2, e.g. 4",
        "cleanup" | "restart_service" | "reboot" | "replace" => {
            "use a whole number of attempts ≥ 0 (0 disables the rung)"
        }
        "approval_required_for" | "allowed_actions" => {
            "list heal actions: cleanup, restart_service, reboot, replace, quarantine"
        }
        "services" => "list systemd unit names, e.g. [\"app.service\"]",
        "instances" => {
            "key instance policies by instance id, e.g. {\"i-0123456789abcdef0\": {\"skip\": true}}"
        }
        _ if message.contains("unknown field") => {
            return format!(
                "remove `{field}` or correct its spelling (the fields are listed in docs/policy.md)"
            );
        }
        _ => "see docs/policy.md",
    };
    fix.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<GlobalPolicy, ConfigError> {
        GlobalPolicy::parse("policy.json", text)
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        fn value() -> impl Strategy<Value = serde_json::Value> {
            prop_oneof![
                any::<i64>().prop_map(|n| serde_json::json!(n)),
                any::<f64>().prop_map(|n| serde_json::json!(n)),
                any::<bool>().prop_map(serde_json::Value::Bool),
                "\\PC{0,10}".prop_map(serde_json::Value::String),
                prop::collection::vec("[a-z_]{0,16}", 0..4).prop_map(|v| serde_json::json!(v)),
                Just(serde_json::json!({"transitions": 3, "window_s": -1})),
                Just(
                    serde_json::json!({"i-0123abcd": {"allowed_actions": ["reboot"], "cooldown_s": 5}})
                ),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

            #[test]
            fn arbitrary_policies_load_or_fail_cleanly(fields in prop::collection::vec((
                prop::sample::select(vec![
                    "version", "dry_run", "min_healthy_percent", "max_unhealthy_percent", "outage_min_targets",
                    "overload_slow_percent", "max_concurrent_heals", "cooldown_s", "flapping", "ladder",
                    "approval_required_for", "services", "instances", "bogus",
                ]),
                value(),
            ), 0..8)) {
                let obj: serde_json::Map<String, serde_json::Value> =
                    fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
                if let Ok(p) = parse(&serde_json::Value::Object(obj).to_string()) {
                    prop_assert!(p.min_healthy_percent <= 100 && p.max_concurrent_heals >= 1);
                }
            }

            #[test]
            fn arbitrary_text_never_panics_the_policy_loader(s in "\\PC{0,200}") {
                let _ = parse(&s);
            }
        }
    }

    #[test]
    fn errors_name_the_file() {
        let err =
            GlobalPolicy::parse("deploy/policy.json", r#"{"dry_run": "yes"}"#).expect_err("type");
        assert!(
            err.to_string()
                .starts_with("deploy/policy.json: at dry_run: "),
            "{err}"
        );
        assert_eq!(err.fix, "use true or false");
    }

    #[test]
    fn an_empty_policy_is_the_default() {
        assert_eq!(parse("{}").expect("valid"), GlobalPolicy::default());
    }

    #[test]
    fn a_scenario_style_partial_policy_keeps_the_other_defaults() {
        let p =
            parse(r#"{"dry_run": false, "min_healthy_percent": 60, "max_concurrent_heals": 2}"#)
                .expect("valid");
        assert_eq!(p.min_healthy_percent, 60);
        assert_eq!(p.max_concurrent_heals, 2);
        assert_eq!(p.cooldown_s, GlobalPolicy::default().cooldown_s);
    }

    #[test]
    fn min_healthy_over_100_is_rejected_with_the_fix() {
        let err = parse(r#"{"min_healthy_percent": 120}"#).expect_err("impossible");
        assert_eq!(err.path, "min_healthy_percent");
        assert!(err.fix.contains("0 to 100"), "{err}");
    }

    #[test]
    fn a_negative_cooldown_is_rejected_with_the_fix() {
        let err = parse(r#"{"cooldown_s": -5}"#).expect_err("negative");
        assert_eq!(err.path, "cooldown_s");
        assert!(err.message.contains("-5"), "{err}");
        assert!(err.fix.contains("seconds"), "{err}");
    }

    #[test]
    fn a_negative_instance_cooldown_names_the_instance() {
        let err =
            parse(r#"{"instances": {"i-0123abcd": {"cooldown_s": -1}}}"#).expect_err("negative");
        assert_eq!(err.path, "instances.i-0123abcd.cooldown_s");
    }

    #[test]
    fn unknown_fields_are_rejected_with_their_name() {
        let err = parse(r#"{"min_healty_percent": 50}"#).expect_err("typo");
        assert_eq!(err.path, "min_healty_percent");
        assert!(err.fix.contains("min_healty_percent"), "{err}");
    }

    #[test]
    fn zero_concurrency_and_one_transition_flapping_are_rejected() {
        assert_eq!(
            parse(r#"{"max_concurrent_heals": 0}"#)
                .expect_err("zero")
                .path,
            "max_concurrent_heals"
        );
        assert_eq!(
            parse(r#"{"flapping": {"transitions": 1}}"#)
                .expect_err("one")
                .path,
            "flapping.transitions"
        );
    }

    #[test]
    fn approval_for_a_non_heal_action_is_rejected() {
        let err = parse(r#"{"approval_required_for": ["hold"]}"#).expect_err("hold");
        assert_eq!(err.path, "approval_required_for");
    }

    #[test]
    fn bad_service_names_and_instance_ids_are_rejected() {
        let err = parse(r#"{"services": ["app; reboot"]}"#).expect_err("injection");
        assert_eq!(err.path, "services[0]");
        let err = parse(r#"{"instances": {"web-1": {"skip": true}}}"#).expect_err("bad id");
        assert!(err.message.contains("instance id"), "{err}");
    }

    #[test]
    fn instance_allowed_actions_must_be_heals() {
        let err = parse(r#"{"instances": {"i-0123abcd": {"allowed_actions": ["observe"]}}}"#)
            .expect_err("observe");
        assert_eq!(err.path, "instances[\"i-0123abcd\"].allowed_actions");
    }

    #[test]
    fn the_store_policy_wins_over_the_file() {
        let p = parse(r#"{"instances": {"i-0123abcd": {"skip": true}}}"#).expect("valid");
        let id = InstanceId::parse("i-0123abcd").expect("valid");
        assert!(p.instance(&id, None).skip);
        let stored = InstancePolicy::default();
        assert!(!p.instance(&id, Some(&stored)).skip);
    }
}
