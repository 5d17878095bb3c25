//! The trigger: EventBridge events (a CloudWatch alarm's state change, the schedule) and manual
//! starts become executions of the state machine, one per scope (target group) with a
//! deterministic name: the group's name and the minute (`web-20270115T0803`). The alarm, the
//! schedule and a manual start for one group in one minute share the name, so Step Functions
//! runs them once (a second StartExecution with the same name is reported as already running).
//!
//! Events of other sources and alarms that are not ALARM are answered with what was ignored and
//! why; an alarm without a `TargetGroup` dimension is `InvalidInput`, with the fix.

use autoheal_core::ports::{
    Clock, ExecutionStarter, StartOutcome, TargetGroupCatalog, TargetGroupSelector,
};
use autoheal_core::{IncidentId, InstanceId, TargetGroupArn, Timestamp};
use serde_json::{Value, json};

use crate::TaskError;

/// What the trigger is told (the Lambda's environment, cdk/README.md).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TriggerConfig {
    /// `AUTOHEAL_TARGET_GROUP_ARNS`, comma-separated: the groups a schedule run covers.
    pub target_groups: Vec<TargetGroupArn>,
    /// `AUTOHEAL_TARGET_GROUP_TAG` (`key=value`): or the groups carrying this tag.
    pub tag: Option<(String, String)>,
    /// `AUTOHEAL_POLICY`: the policy every execution gets.
    pub policy: Value,
    /// `AUTOHEAL_SCAN_RATE_PER_S`: how many groups a schedule run starts scanning per second
    /// (default [`DEFAULT_SCAN_RATE_PER_S`]). Each scan calls DescribeTargetGroups and
    /// DescribeTargetHealth, whose account-wide rate limit all groups share: the executions
    /// start at once, but each waits its turn (`trigger.delay_s`) before it detects.
    pub scan_rate_per_s: Option<f64>,
}

/// Groups per second a schedule run scans: two Describe calls each stay under ELB's sustained
/// Describe rate (10 per second) with room for the alarms' runs.
pub const DEFAULT_SCAN_RATE_PER_S: f64 = 4.0;

/// The wait of the `index`-th group of a schedule run, in whole seconds.
pub fn scan_delay_s(index: usize, rate_per_s: f64) -> u64 {
    let rate = if rate_per_s.is_finite() && rate_per_s > 0.0 {
        rate_per_s
    } else {
        DEFAULT_SCAN_RATE_PER_S
    };
    (index as f64 / rate).floor() as u64
}

impl TriggerConfig {
    /// Reads the trigger's environment; bad values are errors that name the variable.
    pub fn from_env() -> Result<TriggerConfig, TaskError> {
        let var = |k: &str| std::env::var(k).unwrap_or_default();
        let mut target_groups = Vec::new();
        for a in var("AUTOHEAL_TARGET_GROUP_ARNS")
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            target_groups.push(TargetGroupArn::parse(a).map_err(|e| {
                TaskError::invalid_input(format!("AUTOHEAL_TARGET_GROUP_ARNS: {e}"))
            })?);
        }
        let tag = match var("AUTOHEAL_TARGET_GROUP_TAG") {
            t if t.is_empty() => None,
            t => Some(
                t.split_once('=')
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .ok_or_else(|| {
                        TaskError::invalid_input(format!(
                            "AUTOHEAL_TARGET_GROUP_TAG {t:?} is not key=value, e.g. autoheal:watch=true"
                        ))
                    })?,
            ),
        };
        let policy = match var("AUTOHEAL_POLICY") {
            p if p.is_empty() => json!({}),
            p => serde_json::from_str(&p).map_err(|e| {
                TaskError::invalid_input(format!("AUTOHEAL_POLICY is not JSON: {e}"))
            })?,
        };
        let scan_rate_per_s = match var("AUTOHEAL_SCAN_RATE_PER_S") {
            r if r.is_empty() => None,
            r => Some(
                r.parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x > 0.0)
                    .ok_or_else(|| {
                        TaskError::invalid_input(format!(
                            "AUTOHEAL_SCAN_RATE_PER_S {r:?} is not a positive number of groups per second, e.g. 4"
                        ))
                    })?,
            ),
        };
        Ok(TriggerConfig {
            target_groups,
            tag,
            policy,
            scan_rate_per_s,
        })
    }
}

/// The deterministic name of the execution for one target group in one minute:
/// `<group name>-<yyyymmddThhmm>` (a valid Step Functions execution name, ≤ 80 characters).
pub fn execution_name(tg: &TargetGroupArn, at: Timestamp) -> String {
    let stamp: String = at
        .to_rfc3339()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(13)
        .collect();
    format!("{}-{stamp}", tg.name())
}

/// What an event asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Start one execution per group.
    Start {
        source: &'static str,
        groups: Vec<TargetGroupArn>,
        alarm: Option<String>,
        at: Timestamp,
    },
    /// Run every configured group (the schedule).
    Scan { at: Timestamp },
    /// Nothing to start, and why.
    Ignore { reason: String },
}

fn event_time(v: &Value, now: Timestamp) -> Timestamp {
    v.get("time")
        .and_then(Value::as_str)
        .and_then(Timestamp::from_rfc3339)
        .unwrap_or(now)
}

/// Reads an EventBridge event (or a manual request `{"target_group_arn": …}`).
pub fn parse_event(v: &Value, now: Timestamp) -> Result<Request, TaskError> {
    if let Some(tg) = v.get("target_group_arn").and_then(Value::as_str) {
        let tg = TargetGroupArn::parse(tg)
            .map_err(|e| TaskError::invalid_input(format!("target_group_arn: {e}")))?;
        return Ok(Request::Start {
            source: "manual",
            groups: vec![tg],
            alarm: None,
            at: now,
        });
    }
    let source = v.get("source").and_then(Value::as_str).unwrap_or_default();
    let kind = v
        .get("detail-type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let at = event_time(v, now);
    match (source, kind) {
        ("aws.events" | "aws.scheduler", "Scheduled Event") => Ok(Request::Scan { at }),
        ("aws.cloudwatch", "CloudWatch Alarm State Change") => alarm(v, at),
        _ => Ok(Request::Ignore {
            reason: format!(
                "an event of source {source:?} and detail-type {kind:?} is neither a CloudWatch alarm state change nor a scheduled event"
            ),
        }),
    }
}

fn alarm(v: &Value, at: Timestamp) -> Result<Request, TaskError> {
    let detail = v.get("detail").cloned().unwrap_or(Value::Null);
    // Alarm names are at most 255 characters; a longer one is cut in what we say about it.
    let name: String = detail
        .get("alarmName")
        .and_then(Value::as_str)
        .unwrap_or("(unnamed)")
        .chars()
        .take(255)
        .collect();
    let state = detail
        .pointer("/state/value")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if state != "ALARM" {
        return Ok(Request::Ignore {
            reason: format!("alarm {name} went to {state:?}, not ALARM: nothing to heal"),
        });
    }
    let (region, account) = (
        v.get("region").and_then(Value::as_str).unwrap_or_default(),
        v.get("account").and_then(Value::as_str).unwrap_or_default(),
    );
    let metrics = detail
        .pointer("/configuration/metrics")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut groups = Vec::new();
    for m in &metrics {
        if let Some(dim) = m
            .pointer("/metricStat/metric/dimensions/TargetGroup")
            .and_then(Value::as_str)
        {
            let arn = format!("arn:aws:elasticloadbalancing:{region}:{account}:{dim}");
            let arn = TargetGroupArn::parse(&arn).map_err(|e| {
                TaskError::invalid_input(format!("alarm {name}: dimension TargetGroup: {e}"))
            })?;
            if !groups.contains(&arn) {
                groups.push(arn);
            }
        }
    }
    if groups.is_empty() {
        return Err(TaskError::invalid_input(format!(
            "alarm {name} has no TargetGroup dimension: autoheal's alarms watch UnHealthyHostCount per target group (AWS/ApplicationELB or AWS/NetworkELB with TargetGroup and LoadBalancer)"
        )));
    }
    Ok(Request::Start {
        source: "alarm",
        groups,
        alarm: Some(name),
        at,
    })
}

/// The groups autoheal is configured for: `AUTOHEAL_TARGET_GROUP_ARNS`, or else the groups
/// carrying `AUTOHEAL_TARGET_GROUP_TAG`; `None` when neither is set.
async fn configured_groups<W: TargetGroupCatalog>(
    w: &W,
    cfg: &TriggerConfig,
) -> Result<Option<Vec<TargetGroupArn>>, TaskError> {
    if !cfg.target_groups.is_empty() {
        return Ok(Some(cfg.target_groups.clone()));
    }
    let Some((key, value)) = &cfg.tag else {
        return Ok(None);
    };
    Ok(Some(
        w.target_groups(&TargetGroupSelector::Tag {
            key: key.clone(),
            value: value.clone(),
        })
        .await?
        .into_iter()
        .map(|g| g.arn)
        .collect(),
    ))
}

/// Handles one event: starts what it asks for and says what it started, found running or
/// ignored.
pub async fn trigger<W>(w: &W, cfg: &TriggerConfig, event: Value) -> Result<Value, TaskError>
where
    W: TargetGroupCatalog + ExecutionStarter + Clock,
{
    let (source, groups, alarm, at) = match parse_event(&event, w.now())? {
        Request::Ignore { reason } => return Ok(json!({"ignored": reason})),
        Request::Start {
            source,
            groups,
            alarm,
            at,
        } => (source, groups, alarm, at),
        Request::Scan { at } => (
            "schedule",
            configured_groups(w, cfg).await?.unwrap_or_default(),
            None,
            at,
        ),
    };
    // An alarm names its group in a dimension anyone who can edit the alarm controls: only the
    // groups autoheal is configured for are acted on (the others are ignored, with the reason).
    let groups = if source == "alarm" {
        match configured_groups(w, cfg).await? {
            None => groups,
            Some(allowed) => {
                let (ok, refused): (Vec<_>, Vec<_>) =
                    groups.into_iter().partition(|g| allowed.contains(g));
                if ok.is_empty() && !refused.is_empty() {
                    return Ok(json!({"ignored": format!(
                        "alarm {} names target group {}, which autoheal is not configured to heal (AUTOHEAL_TARGET_GROUP_ARNS / AUTOHEAL_TARGET_GROUP_TAG)",
                        alarm.as_deref().unwrap_or("(unnamed)"),
                        refused.iter().map(|g| g.name()).collect::<Vec<_>>().join(", ")
                    )}));
                }
                ok
            }
        }
    } else {
        groups
    };
    // A manual start may name one instance of the group (`autoheal start --instance`).
    let only = match event.get("instance_id") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            serde_json::from_value::<InstanceId>(v.clone())
                .map_err(|e| TaskError::invalid_input(format!("instance_id: {e}")))?,
        ),
    };
    let mut started = Vec::new();
    let mut running = Vec::new();
    let rate = cfg.scan_rate_per_s.unwrap_or(DEFAULT_SCAN_RATE_PER_S);
    for (index, tg) in groups.into_iter().enumerate() {
        let name = execution_name(&tg, at);
        let id = IncidentId::parse(name.clone())
            .map_err(|e| TaskError::invalid_input(format!("execution name {name}: {e}")))?;
        let mut trig = json!({"source": source, "at": at.to_rfc3339()});
        if source == "schedule" {
            trig["delay_s"] = json!(scan_delay_s(index, rate));
        }
        if let (Some(a), Some(o)) = (&alarm, trig.as_object_mut()) {
            o.insert("alarm_name".into(), json!(a));
        }
        let mut scope = json!({"target_group_arn": tg});
        if let (Some(i), Some(o)) = (&only, scope.as_object_mut()) {
            o.insert("instance_id".into(), json!(i));
        }
        let input = json!({
            "scope": scope,
            "trigger": trig,
            "policy": cfg.policy,
        });
        match w.start_execution(&id, &input).await? {
            StartOutcome::Started { execution_arn } => started.push(execution_arn),
            StartOutcome::AlreadyRunning { execution_arn } => running.push(execution_arn),
        }
    }
    Ok(json!({"source": source, "started": started, "already_running": running}))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TG: &str =
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef";

    fn alarm_event(state: &str, dims: Value) -> Value {
        json!({
            "version": "0", "id": "e", "detail-type": "CloudWatch Alarm State Change",
            "source": "aws.cloudwatch", "account": "123456789012", "time": "2027-01-15T08:03:09Z",
            "region": "us-east-1", "resources": ["arn:aws:cloudwatch:us-east-1:123456789012:alarm:autoheal-web-UnHealthyHostCount"],
            "detail": {"alarmName": "autoheal-web-UnHealthyHostCount",
                "state": {"value": state, "reason": "Threshold Crossed", "timestamp": "2027-01-15T08:03:09.000+0000"},
                "previousState": {"value": "OK"},
                "configuration": {"metrics": [{"id": "m1", "metricStat": {"metric": {
                    "namespace": "AWS/ApplicationELB", "name": "UnHealthyHostCount", "dimensions": dims},
                    "period": 60, "stat": "Maximum"}, "returnData": true}]}}
        })
    }

    #[test]
    fn an_alarm_names_its_target_group_and_the_minute() {
        let e = alarm_event(
            "ALARM",
            json!({"TargetGroup": "targetgroup/web/0123456789abcdef", "LoadBalancer": "app/lb/1"}),
        );
        let r = parse_event(&e, Timestamp(0)).expect("parses");
        let Request::Start { groups, at, .. } = r else {
            panic!("{r:?}")
        };
        assert_eq!(groups[0].as_str(), TG);
        assert_eq!(execution_name(&groups[0], at), "web-20270115T0803");
    }

    #[test]
    fn ok_and_insufficient_data_are_ignored_with_the_reason() {
        for s in ["OK", "INSUFFICIENT_DATA"] {
            let r = parse_event(&alarm_event(s, json!({})), Timestamp(0)).expect("parses");
            assert!(
                matches!(&r, Request::Ignore { reason } if reason.contains(s)),
                "{r:?}"
            );
        }
    }

    #[test]
    fn an_alarm_without_a_target_group_dimension_is_an_error_with_the_fix() {
        let e = alarm_event("ALARM", json!({"InstanceId": "i-0123456789abcdef0"}));
        let err = parse_event(&e, Timestamp(0)).expect_err("no dimension");
        assert_eq!(err.name, "InvalidInput");
        assert!(err.cause.contains("TargetGroup dimension"), "{err}");
    }

    #[test]
    fn schedules_scan_and_other_sources_are_ignored() {
        let s = json!({"source": "aws.events", "detail-type": "Scheduled Event", "time": "2027-01-15T08:05:00Z", "detail": {}});
        assert_eq!(
            parse_event(&s, Timestamp(0)).expect("parses"),
            Request::Scan {
                at: Timestamp(1_800_000_300)
            }
        );
        let o =
            json!({"source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification"});
        assert!(matches!(
            parse_event(&o, Timestamp(0)).expect("parses"),
            Request::Ignore { .. }
        ));
    }

    /// Step Functions' name idempotency: a second start with a name is reported, not run.
    #[derive(Default)]
    struct Fake {
        names: std::sync::Mutex<Vec<String>>,
        inputs: std::sync::Mutex<Vec<Value>>,
    }

    impl TargetGroupCatalog for Fake {
        async fn target_groups(
            &self,
            _: &TargetGroupSelector,
        ) -> autoheal_core::ports::PortResult<Vec<autoheal_core::ports::TargetGroupInfo>> {
            Ok(Vec::new())
        }
    }

    impl ExecutionStarter for Fake {
        async fn start_execution(
            &self,
            name: &IncidentId,
            input: &Value,
        ) -> autoheal_core::ports::PortResult<StartOutcome> {
            if let Ok(mut i) = self.inputs.lock() {
                i.push(input.clone());
            }
            let mut names = self
                .names
                .lock()
                .map_err(|_| autoheal_core::PortError::InvalidRequest("poisoned".into()))?;
            let execution_arn =
                format!("arn:aws:states:us-east-1:123456789012:execution:autoheal:{name}");
            if names.contains(&name.to_string()) {
                return Ok(StartOutcome::AlreadyRunning { execution_arn });
            }
            names.push(name.to_string());
            Ok(StartOutcome::Started { execution_arn })
        }
        async fn redrive(&self, _: &str) -> autoheal_core::ports::PortResult<()> {
            Ok(())
        }
    }

    impl Clock for Fake {
        fn now(&self) -> Timestamp {
            Timestamp(1_800_000_189)
        }
    }

    #[tokio::test]
    async fn alarm_schedule_and_manual_start_for_one_group_in_one_minute_run_once() {
        let w = Fake::default();
        let cfg = TriggerConfig {
            target_groups: vec![TargetGroupArn::parse(TG).expect("arn")],
            tag: None,
            policy: json!({"dry_run": true}),
            scan_rate_per_s: None,
        };
        let a = alarm_event(
            "ALARM",
            json!({"TargetGroup": "targetgroup/web/0123456789abcdef", "LoadBalancer": "app/lb/1"}),
        );
        let s = json!({"source": "aws.events", "detail-type": "Scheduled Event", "time": "2027-01-15T08:03:30Z"});
        let m = json!({"target_group_arn": TG});
        let first = trigger(&w, &cfg, a).await.expect("alarm");
        assert_eq!(
            first["started"].as_array().map(Vec::len),
            Some(1),
            "{first}"
        );
        for e in [s, m] {
            let out = trigger(&w, &cfg, e).await.expect("start");
            assert_eq!(out["started"], json!([]), "{out}");
            assert_eq!(out["already_running"].as_array().map(Vec::len), Some(1));
        }
        let names = w.names.lock().map(|n| n.clone()).unwrap_or_default();
        assert_eq!(names, ["web-20270115T0803"]);
        let ignored = trigger(&w, &cfg, alarm_event("OK", json!({})))
            .await
            .expect("ok");
        assert!(
            ignored["ignored"]
                .as_str()
                .is_some_and(|r| r.contains("OK"))
        );
    }

    #[tokio::test]
    async fn a_manual_start_may_narrow_the_run_to_one_instance() {
        let w = Fake::default();
        let cfg = TriggerConfig::default();
        let m = json!({"target_group_arn": TG, "instance_id": "i-0123456789abcdef0"});
        trigger(&w, &cfg, m).await.expect("start");
        let inputs = w.inputs.lock().map(|i| i.clone()).unwrap_or_default();
        assert_eq!(
            inputs[0]["scope"],
            json!({"target_group_arn": TG, "instance_id": "i-0123456789abcdef0"})
        );
        let bad = json!({"target_group_arn": TG, "instance_id": "web-1; rm -rf /"});
        let e = trigger(&w, &cfg, bad)
            .await
            .expect_err("not an instance id");
        assert_eq!(e.name, "InvalidInput");
        assert!(e.cause.starts_with("instance_id:"), "{}", e.cause);
    }

    #[tokio::test]
    async fn an_alarm_for_a_group_autoheal_does_not_watch_is_ignored_with_the_reason() {
        let w = Fake::default();
        let cfg = TriggerConfig {
            target_groups: vec![
                TargetGroupArn::parse(
                    "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/api/0123456789abcdef",
                )
                .expect("arn"),
            ],
            ..TriggerConfig::default()
        };
        let a = alarm_event(
            "ALARM",
            json!({"TargetGroup": "targetgroup/web/0123456789abcdef", "LoadBalancer": "app/lb/1"}),
        );
        let out = trigger(&w, &cfg, a).await.expect("handled");
        assert!(
            out["ignored"]
                .as_str()
                .is_some_and(|r| r.contains("web, which autoheal is not configured to heal")),
            "{out}"
        );
        assert!(w.names.lock().map(|n| n.is_empty()).unwrap_or(false));
    }

    #[test]
    fn a_schedule_run_spreads_its_groups_at_the_scan_rate() {
        assert_eq!(
            (0..9).map(|i| scan_delay_s(i, 4.0)).collect::<Vec<_>>(),
            [0, 0, 0, 0, 1, 1, 1, 1, 2]
        );
        assert_eq!(scan_delay_s(999, 4.0), 249);
        assert_eq!(
            scan_delay_s(10, 0.0),
            2,
            "a bad rate falls back to the default"
        );
    }
}
