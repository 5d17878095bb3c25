//! One function per Task state. Inputs are what the state's `Parameters` build; outputs are what
//! the state machine reads from `$.detect`, `$.lease`, `$.diagnosis`, `$.decision`, `$.drain`,
//! `$.heal`, `$.verify`, `$.record`.

use std::collections::BTreeMap;

use autoheal_core::decision::{DecisionInput, assess_fleet, decide as decide_pure};
use autoheal_core::facts::Observation;
use autoheal_core::health::{GroupSnapshot, HealthState, ReasonCode, TargetHealth};
use autoheal_core::incident::{
    HealOutcome, HealRecord, Incident, IncidentRecord, IncidentStatus, Step,
};
use autoheal_core::limits::{MAX_CANDIDATES_PER_EXECUTION, MAX_VERIFY_ATTEMPTS};
use autoheal_core::observe::{CommandResult, CommandStatus, InstanceInfo};
use autoheal_core::ports::{
    CommandRequest, DocumentRef, Notification, Severity, TargetGroupInfo, TargetGroupSelector,
};
use autoheal_core::{
    Action, AsgName, Decision, Diagnosis, GlobalPolicy, IncidentId, InstanceId, RuleSet,
    ServiceName, TargetGroupArn, Timestamp,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{Config, TaskError, World, input, output, pause, stamped};

/// One target to heal, as Detect hands it to the Map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub incident_id: IncidentId,
    pub instance: InstanceId,
    pub port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<HealthState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<ReasonCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asg: Option<AsgName>,
    /// When Detect found it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detected_at: Option<autoheal_core::Timestamp>,
}

#[derive(Debug, Deserialize)]
struct Scope {
    target_group_arn: TargetGroupArn,
    #[serde(default)]
    instance_id: Option<InstanceId>,
}

#[derive(Debug, Deserialize)]
struct DetectIn {
    scope: Scope,
    #[serde(default)]
    policy: Option<Value>,
}

fn policy_of(v: Option<&Value>) -> Result<GlobalPolicy, TaskError> {
    match v {
        None | Some(Value::Null) => Ok(GlobalPolicy::default()),
        Some(v) => GlobalPolicy::from_value("execution input: policy", v)
            .map_err(|e| TaskError::invalid_input(e.to_string())),
    }
}

async fn group_info(w: &impl World, tg: &TargetGroupArn) -> Result<TargetGroupInfo, TaskError> {
    w.target_groups(&TargetGroupSelector::Arns(vec![tg.clone()]))
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| {
            TaskError::new(
                "TargetNotFound",
                format!("target group {tg} does not exist"),
            )
        })
}

async fn snapshot(
    w: &impl World,
    tg: &TargetGroupArn,
    except: Option<&InstanceId>,
) -> Result<GroupSnapshot, TaskError> {
    let targets = w.describe_target_health(tg).await?;
    let ids: Vec<InstanceId> = targets.iter().map(|t| t.instance.clone()).collect();
    let in_flight = w
        .active_leases(&ids, w.now())
        .await?
        .into_iter()
        .map(|l| l.instance)
        .filter(|i| Some(i) != except)
        .collect();
    Ok(GroupSnapshot {
        target_group: tg.clone(),
        targets,
        in_flight,
    })
}

/// Detect: the group's health, the fleet-safety verdict, and one incident per target that needs
/// attention (at most `MAX_CANDIDATES_PER_EXECUTION`; the rest wait for the next execution).
pub async fn detect(w: &impl World, cfg: &Config, v: Value) -> Result<Value, TaskError> {
    let i: DetectIn = input("detect", v)?;
    let policy = policy_of(i.policy.as_ref())?;
    let tg = group_info(w, &i.scope.target_group_arn).await?;
    let snap = snapshot(w, &tg.arn, None).await?;
    let fleet = assess_fleet(&snap, &policy);
    let now = w.now();
    let bucket = now.secs()
        - now
            .secs()
            .rem_euclid(i64::try_from(cfg.incident_bucket_s.max(1)).unwrap_or(3600));
    let mut attention: Vec<&TargetHealth> = snap
        .targets
        .iter()
        .filter(|t| t.needs_attention())
        .filter(|t| {
            i.scope
                .instance_id
                .as_ref()
                .is_none_or(|only| &t.instance == only)
        })
        .collect();
    let deferred = attention.len().saturating_sub(MAX_CANDIDATES_PER_EXECUTION);
    attention.truncate(MAX_CANDIDATES_PER_EXECUTION);
    let ids: Vec<InstanceId> = attention.iter().map(|t| t.instance.clone()).collect();
    let infos: BTreeMap<InstanceId, InstanceInfo> = w
        .describe_instances(&ids)
        .await?
        .into_iter()
        .map(|i| (i.instance.clone(), i))
        .collect();
    // A booting instance fails its checks until its application is up: leave it alone for the
    // launch grace period (decide checks again, for a target detected just before).
    let booting = |t: &TargetHealth| {
        infos
            .get(&t.instance)
            .and_then(|i| i.launched_at)
            .is_some_and(|l| now.seconds_since(l) < policy.launch_grace_s)
    };
    let in_grace = attention.iter().filter(|t| booting(t)).count();
    attention.retain(|t| !booting(t));
    let candidates: Vec<Target> = attention
        .into_iter()
        .map(|t| Target {
            incident_id: IncidentId::for_target(&tg.arn, &t.instance, bucket),
            instance: t.instance.clone(),
            port: t.port,
            state: Some(t.state),
            reason: t.reason.clone(),
            asg: infos.get(&t.instance).and_then(|i| i.asg.clone()),
            detected_at: Some(now),
        })
        .collect();
    output(&json!({
        "target_group": tg,
        "verdict": fleet.verdict,
        "reason": fleet.reason,
        "counts": fleet.counts,
        "max_concurrent_heals": policy.max_concurrent_heals,
        "policy": policy,
        "candidates": candidates,
        "deferred": deferred,
        "in_launch_grace": in_grace,
    }))
}

#[derive(Debug, Deserialize)]
struct LeaseIn {
    operation: String,
    incident_id: IncidentId,
    instance: InstanceId,
    /// The execution taking the lease (`$$.Execution.Id`).
    #[serde(default)]
    execution: Option<String>,
}

/// Who holds a lease: the incident as one execution handles it, `<incident id>_<8 hex digits of
/// the execution ARN>`. A retried task or a redriven execution is the same holder and takes its
/// own lease again; another execution of the same incident (a replay started beside it, a
/// duplicate trigger) is not, and finds the lease held.
pub fn lease_holder(incident: &IncidentId, execution: Option<&str>) -> IncidentId {
    let Some(e) = execution.filter(|e| !e.is_empty()) else {
        return incident.clone();
    };
    let mut h: u32 = 0x811c_9dc5;
    for b in e.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    IncidentId::parse(format!("{incident}_{h:08x}")).unwrap_or_else(|_| incident.clone())
}

/// The incident of a lease holder ([`lease_holder`]): the holder without its execution part.
pub fn lease_incident(holder: &IncidentId) -> &str {
    holder
        .as_str()
        .split_once('_')
        .map_or(holder.as_str(), |(incident, _)| incident)
}

/// Lease: one incident per instance, handled by one execution (`acquire` fails with
/// `LeaseHeld`), released at the end.
pub async fn lease(w: &impl World, cfg: &Config, v: Value) -> Result<Value, TaskError> {
    let i: LeaseIn = input("lease", v)?;
    let holder = lease_holder(&i.incident_id, i.execution.as_deref());
    match i.operation.as_str() {
        "acquire" => output(
            &w.acquire_lease(&i.instance, &holder, w.now(), cfg.lease_ttl_s)
                .await?,
        ),
        "release" => {
            w.release_lease(&i.instance, &holder).await?;
            Ok(json!({"released": true}))
        }
        other => Err(TaskError::invalid_input(format!(
            "lease: operation {other:?} is not acquire or release"
        ))),
    }
}

/// Common input of the per-target tasks.
#[derive(Debug, Deserialize)]
struct TargetIn {
    target: Target,
    target_group: TargetGroupInfo,
    #[serde(default)]
    policy: Option<Value>,
    /// The escalation this heal is (`$.escalations.count`): with the action, the attempt's key.
    #[serde(default)]
    attempt: u32,
}

/// The mark of one heal attempt in the incident's steps: `<action> #<escalation>`.
fn attempt_key(i: &TargetIn, action: Action) -> String {
    format!("{action} #{}", i.attempt)
}

/// The side effect of the attempt failed (an error reached us): forget the attempt, so the
/// retry makes it. Best effort: if this write fails too, the retry skips the effect and the
/// verification that follows finds the instance still failing.
async fn forget_try(w: &impl World, i: &TargetIn, action: Action) {
    let key = attempt_key(i, action);
    if let Ok(Some(mut r)) = w.get_incident(&i.target.incident_id).await {
        r.steps
            .retain(|s| !(s.name == "started" && s.detail == key));
        let _ = w.put_incident(&r).await;
    }
}

/// At most once per attempt under Step Functions retries: the attempt (`<action> #<n>`) is
/// written into the incident's steps before its side effect, and a retried invocation of the
/// same attempt (the first ran, but its answer was lost) finds it and does not repeat the
/// restart, reboot or termination. `false`: this attempt's side effect was already made.
async fn first_try(w: &impl World, i: &TargetIn, action: Action) -> Result<bool, TaskError> {
    let key = attempt_key(i, action);
    let now = w.now();
    let existing = w.get_incident(&i.target.incident_id).await?;
    if existing.as_ref().is_some_and(|r| {
        r.steps
            .iter()
            .any(|s| s.name == "started" && s.detail == key)
    }) {
        return Ok(false);
    }
    let mut record = existing.unwrap_or_else(|| {
        new_open_record(&i.target.incident_id, &i.target_group.arn, &i.target, now)
    });
    record.steps.push(Step {
        name: "started".to_owned(),
        at: now,
        detail: key,
    });
    record.updated_at = now;
    w.put_incident(&record).await?;
    Ok(true)
}

fn services(
    policy: &GlobalPolicy,
    stored: Option<&autoheal_core::InstancePolicy>,
    instance: &InstanceId,
) -> Vec<ServiceName> {
    policy
        .instance(instance, stored)
        .services
        .clone()
        .unwrap_or_else(|| policy.services.clone())
}

fn join_services(s: &[ServiceName]) -> String {
    s.iter()
        .map(ServiceName::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The health-probe parameters of the diagnostics and verify documents: the target group's
/// health-check port (or the target's), protocol and path.
fn probe_params(
    tg: &TargetGroupInfo,
    target: &Target,
) -> Result<BTreeMap<String, Vec<String>>, TaskError> {
    let mut params = BTreeMap::new();
    params.insert(
        "HealthCheckPort".to_owned(),
        vec![tg.health_check_port.unwrap_or(target.port).to_string()],
    );
    // These reach a shell on the host (through SSM parameters): checked here, as the documents'
    // allowedPattern checks them again.
    let protocol = tg.protocol.to_uppercase();
    if !matches!(
        protocol.as_str(),
        "HTTP" | "HTTPS" | "TCP" | "TLS" | "UDP" | "TCP_UDP"
    ) {
        return Err(TaskError::invalid_input(format!(
            "target_group.protocol {:?} is not a load balancer protocol: use HTTP, HTTPS, TCP, TLS, UDP or TCP_UDP",
            tg.protocol.chars().take(40).collect::<String>()
        )));
    }
    params.insert("HealthCheckProtocol".to_owned(), vec![protocol]);
    if let Some(path) = &tg.health_check_path {
        let path = autoheal_core::HealthCheckPath::parse(path.as_str()).map_err(|e| {
            TaskError::invalid_input(format!("target_group.health_check_path: {e}"))
        })?;
        params.insert("HealthCheckPath".to_owned(), vec![path.as_str().to_owned()]);
    }
    Ok(params)
}

/// Sends a document and waits for its end (or the deadline).
async fn run_command(
    w: &impl World,
    cfg: &Config,
    instance: &InstanceId,
    document: &DocumentRef,
    parameters: BTreeMap<String, Vec<String>>,
) -> Result<CommandResult, TaskError> {
    let request = CommandRequest {
        instance: instance.clone(),
        document: document.clone(),
        parameters,
        timeout_s: u32::try_from(cfg.command_deadline_s).unwrap_or(u32::MAX),
    };
    let id = w.send(&request).await?;
    wait_command(w, cfg, instance, &id).await
}

/// Polls a sent command to its end (or the deadline).
async fn wait_command(
    w: &impl World,
    cfg: &Config,
    instance: &InstanceId,
    id: &str,
) -> Result<CommandResult, TaskError> {
    let id = id.to_owned();
    let mut waited = 0;
    loop {
        let r = w.result(&id, instance).await?;
        if r.status.is_terminal() {
            return Ok(r);
        }
        if waited >= cfg.command_deadline_s {
            return Ok(CommandResult {
                status: CommandStatus::TimedOut,
                ..r
            });
        }
        pause(cfg.poll_interval_s).await;
        waited += cfg.poll_interval_s;
    }
}

/// Diagnose: what the load balancer, EC2 and SSM say, and the diagnostics document from the
/// host, classified by the shipped rules. An unreachable agent is evidence, not an error.
pub async fn diagnose(w: &impl World, cfg: &Config, v: Value) -> Result<Value, TaskError> {
    let i: TargetIn = input("diagnose", v)?;
    let policy = policy_of(i.policy.as_ref())?;
    let instance = &i.target.instance;
    let target = w
        .describe_target_health(&i.target_group.arn)
        .await?
        .into_iter()
        .find(|t| &t.instance == instance)
        .ok_or_else(|| {
            TaskError::new(
                "TargetNotFound",
                format!("{instance} is not registered in {}", i.target_group.arn),
            )
        })?;
    let info = w
        .describe_instances(std::slice::from_ref(instance))
        .await?
        .into_iter()
        .next();
    let agent = w.agent_status(instance).await?;
    let stored = w.instance_policy(instance).await?;
    let mut params = BTreeMap::new();
    params.insert(
        "Services".to_owned(),
        vec![join_services(&services(&policy, stored.as_ref(), instance))],
    );
    params.extend(probe_params(&i.target_group, &i.target)?);
    let result = run_command(w, cfg, instance, &cfg.diagnostics_document, params).await?;
    let (diagnostics, diagnostics_error) = if result.status == CommandStatus::Success {
        match autoheal_core::parse_diagnostics(&result.stdout) {
            Ok(d) => (Some(d), None),
            Err(e) => (None, Some(e.to_string())),
        }
    } else {
        (None, None)
    };
    let obs = Observation {
        target,
        instance: info,
        command: Some(result.status),
        agent: Some(agent),
        diagnostics,
        diagnostics_error,
    };
    let rules = RuleSet::builtin().map_err(|e| TaskError::invalid_input(e.to_string()))?;
    Ok(stamped(output(&rules.diagnose(&obs))?, w.now()))
}

#[derive(Debug, Deserialize)]
struct DecideIn {
    incident_id: IncidentId,
    target: Target,
    target_group: TargetGroupInfo,
    diagnosis: Diagnosis,
    #[serde(default)]
    policy: Option<Value>,
    /// Escalations so far in this incident (the state machine's counter).
    #[serde(default)]
    escalations: u32,
}

/// Decide: the pure decision engine on the group's current health, the heals in flight, the
/// instance's history and policy.
pub async fn decide(w: &impl World, _cfg: &Config, v: Value) -> Result<Value, TaskError> {
    let i: DecideIn = input("decide", v)?;
    let policy = policy_of(i.policy.as_ref())?;
    let instance = &i.target.instance;
    let now = w.now();
    let mut snap = snapshot(w, &i.target_group.arn, Some(instance)).await?;
    // While escalating, the target is out of the group because this incident drained it: it is
    // the failing target being healed, not one that left the group.
    if i.escalations > 0 && snap.target(instance).is_none() {
        snap.targets.push(TargetHealth {
            instance: instance.clone(),
            port: i.target.port,
            state: HealthState::Unhealthy,
            reason: i.target.reason.clone(),
            description: Some("drained by this incident".to_owned()),
            anomaly: None,
        });
    }
    let info = w
        .describe_instances(std::slice::from_ref(instance))
        .await?
        .into_iter()
        .next();
    let history = w
        .history(
            instance,
            now.minus_secs(policy.ladder.attempt_window_s.max(policy.flapping.window_s)),
        )
        .await?;
    let stored = w.instance_policy(instance).await?;
    let incident = Incident {
        id: i.incident_id.clone(),
        target_group: i.target_group.arn.clone(),
        instance: instance.clone(),
        asg: i
            .target
            .asg
            .clone()
            .or_else(|| info.as_ref().and_then(|x| x.asg.clone())),
        detected_at: now,
        launched_at: info.as_ref().and_then(|x| x.launched_at),
        tags: info.map(|x| x.tags).unwrap_or_default(),
    };
    let decision = decide_pure(&DecisionInput {
        incident: &incident,
        diagnosis: &i.diagnosis,
        snapshot: &snap,
        instance_policy: policy.instance(instance, stored.as_ref()),
        history: &history,
        policy: &policy,
        now,
    });
    Ok(stamped(output(&decision)?, now))
}

/// Drain: take the target out of the load balancer so no request is lost. A target the load
/// balancer already marks unhealthy receives no new requests, so there is nothing to wait for;
/// a serving one (degraded, anomalous, flapping) gets the deregistration delay to finish its
/// requests, at most `drain_wait_max_s`.
pub async fn drain(w: &impl World, cfg: &Config, v: Value) -> Result<Value, TaskError> {
    let i: TargetIn = input("drain", v)?;
    let now = w
        .describe_target_health(&i.target_group.arn)
        .await?
        .into_iter()
        .find(|t| t.instance == i.target.instance);
    let Some(now) = now else {
        return Ok(stamped(
            json!({"deregistered": false, "wait_s": 0, "detail": "not registered"}),
            w.now(),
        ));
    };
    if matches!(
        now.state,
        HealthState::Draining | HealthState::UnhealthyDraining
    ) {
        return Ok(stamped(
            json!({"deregistered": true, "wait_s": 0, "detail": "already draining"}),
            w.now(),
        ));
    }
    w.deregister(&i.target_group.arn, &i.target.instance, i.target.port)
        .await?;
    let wait_s = if now.state.is_serving() {
        cfg.deregistration_delay_s.min(cfg.drain_wait_max_s)
    } else {
        0
    };
    Ok(stamped(
        json!({"deregistered": true, "wait_s": wait_s, "detail": format!("was {}", now.state.as_str())}),
        w.now(),
    ))
}

async fn restart_like(
    w: &impl World,
    cfg: &Config,
    v: Value,
    cleanup: bool,
) -> Result<Value, TaskError> {
    let i: TargetIn = input(
        if cleanup {
            "cleanup"
        } else {
            "restart_service"
        },
        v,
    )?;
    let policy = policy_of(i.policy.as_ref())?;
    let instance = &i.target.instance;
    let stored = w.instance_policy(instance).await?;
    let names = services(&policy, stored.as_ref(), instance);
    if names.is_empty() {
        return Err(TaskError::heal_failed(format!(
            "no services are configured for {instance}: set `services` in the policy or the instance policy"
        )));
    }
    let action = if cleanup {
        Action::Cleanup
    } else {
        Action::RestartService
    };
    if !first_try(w, &i, action).await? {
        return Ok(stamped(
            json!({"services": names, "cleanup": cleanup, "wait_s": cfg.restart_settle_s, "repeated": true}),
            w.now(),
        ));
    }
    let mut params = BTreeMap::new();
    params.insert("Services".to_owned(), vec![join_services(&names)]);
    params.insert("Cleanup".to_owned(), vec![cleanup.to_string()]);
    let request = CommandRequest {
        instance: instance.clone(),
        document: cfg.restart_document.clone(),
        parameters: params,
        timeout_s: u32::try_from(cfg.command_deadline_s).unwrap_or(u32::MAX),
    };
    // Only a send that failed is forgotten: once SSM has the command, a retry must not send it
    // again, whatever happens while it is polled.
    let id = match w.send(&request).await {
        Ok(id) => id,
        Err(e) => {
            forget_try(w, &i, action).await;
            return Err(e.into());
        }
    };
    let r = wait_command(w, cfg, instance, &id).await?;
    if r.status != CommandStatus::Success {
        return Err(TaskError::heal_failed(format!(
            "{} on {instance} ended {} (exit {:?}): {}",
            cfg.restart_document.name,
            r.status.as_str(),
            r.exit_code,
            r.stderr.chars().take(300).collect::<String>()
        )));
    }
    Ok(stamped(
        json!({"command_id": r.command_id, "services": names, "cleanup": cleanup, "wait_s": cfg.restart_settle_s}),
        w.now(),
    ))
}

/// Restart the configured services through `ssm/restart_services.yml`.
pub async fn restart_service(w: &impl World, cfg: &Config, v: Value) -> Result<Value, TaskError> {
    restart_like(w, cfg, v, false).await
}

/// Free disk space, then restart the services (the same document with `Cleanup=true`).
pub async fn cleanup(w: &impl World, cfg: &Config, v: Value) -> Result<Value, TaskError> {
    restart_like(w, cfg, v, true).await
}

/// Reboot through EC2.
pub async fn reboot(w: &impl World, cfg: &Config, v: Value) -> Result<Value, TaskError> {
    let i: TargetIn = input("reboot", v)?;
    if !first_try(w, &i, Action::Reboot).await? {
        return Ok(stamped(
            json!({"rebooted": true, "wait_s": cfg.reboot_settle_s, "repeated": true}),
            w.now(),
        ));
    }
    if let Err(e) = w.reboot(&i.target.instance).await {
        forget_try(w, &i, Action::Reboot).await;
        return Err(e.into());
    }
    Ok(stamped(
        json!({"rebooted": true, "wait_s": cfg.reboot_settle_s}),
        w.now(),
    ))
}

/// Replace through the Auto Scaling group: terminate without decrementing, so the group
/// launches a replacement that registers itself.
pub async fn replace(w: &impl World, cfg: &Config, v: Value) -> Result<Value, TaskError> {
    let i: TargetIn = input("replace", v)?;
    if i.target.asg.is_none() {
        return Err(TaskError::heal_failed(format!(
            "{} is in no Auto Scaling group: it cannot be replaced",
            i.target.instance
        )));
    }
    if !first_try(w, &i, Action::Replace).await? {
        return Ok(stamped(
            json!({"terminated": i.target.instance, "wait_s": cfg.replace_settle_s, "repeated": true}),
            w.now(),
        ));
    }
    let activity = match w.terminate_in_group(&i.target.instance, false).await {
        Ok(a) => a,
        Err(e) => {
            forget_try(w, &i, Action::Replace).await;
            return Err(e.into());
        }
    };
    Ok(stamped(
        json!({"terminated": i.target.instance, "activity_id": activity, "wait_s": cfg.replace_settle_s}),
        w.now(),
    ))
}

/// Quarantine: keep the drained target out and, in a group, in Standby, so the group replaces
/// its capacity while the instance waits for a person.
pub async fn quarantine(w: &impl World, _cfg: &Config, v: Value) -> Result<Value, TaskError> {
    let i: TargetIn = input("quarantine", v)?;
    if let Some(asg) = &i.target.asg {
        w.enter_standby(asg, &i.target.instance, false).await?;
    }
    Ok(stamped(
        json!({"quarantined": true, "standby": i.target.asg.is_some()}),
        w.now(),
    ))
}

#[derive(Debug, Deserialize)]
struct VerifyIn {
    target: Target,
    target_group: TargetGroupInfo,
    action: Action,
    #[serde(default)]
    attempt: u32,
}

/// Verify: a restarted or rebooted host must pass its local health check (ssm/verify_health.yml)
/// before it takes traffic again; after a replacement, the group must serve at full strength.
pub async fn verify(w: &impl World, cfg: &Config, v: Value) -> Result<Value, TaskError> {
    let i: VerifyIn = input("verify", v)?;
    let (healthy, detail) = if i.action == Action::Replace {
        let targets = w.describe_target_health(&i.target_group.arn).await?;
        let old_gone = targets
            .iter()
            .all(|t| t.instance != i.target.instance || !t.state.is_serving());
        let failing = targets
            .iter()
            .filter(|t| t.state.is_failing() && t.instance != i.target.instance)
            .count();
        let starting = targets
            .iter()
            .filter(|t| t.state == HealthState::Initial)
            .count();
        (
            old_gone && starting == 0 && failing == 0,
            format!(
                "{} targets, {starting} starting, {failing} failing",
                targets.len()
            ),
        )
    } else {
        let mut params = probe_params(&i.target_group, &i.target)?;
        params.insert("Attempts".to_owned(), vec!["1".to_owned()]);
        let r = run_command(w, cfg, &i.target.instance, &cfg.verify_document, params).await?;
        let ok = r.status == CommandStatus::Success;
        (ok, format!("verify_health ended {}", r.status.as_str()))
    };
    let (attempts, interval) = if i.action == Action::Replace {
        (cfg.replace_verify_attempts, cfg.replace_verify_interval_s)
    } else {
        (cfg.verify_attempts, cfg.verify_interval_s)
    };
    Ok(stamped(
        json!({
            "healthy": healthy,
            "attempt": i.attempt + 1,
            "max_attempts": attempts.clamp(1, MAX_VERIFY_ATTEMPTS),
            "retry_after_s": interval,
            "detail": detail,
        }),
        w.now(),
    ))
}

/// Restore: register the verified target again (and leave Standby).
pub async fn restore(w: &impl World, _cfg: &Config, v: Value) -> Result<Value, TaskError> {
    let i: TargetIn = input("restore", v)?;
    w.register(&i.target_group.arn, &i.target.instance, i.target.port)
        .await?;
    Ok(stamped(json!({"registered": true}), w.now()))
}

#[derive(Debug, Deserialize)]
struct RecordIn {
    operation: String,
    incident: Value,
}

/// The incident's state as the Map iteration carries it (all optional but the identity).
#[derive(Debug, Deserialize)]
struct Carried {
    incident_id: IncidentId,
    target: Target,
    target_group: TargetGroupInfo,
    #[serde(default)]
    diagnosis: Option<Diagnosis>,
    #[serde(default)]
    decision: Option<Decision>,
    #[serde(default)]
    verify: Option<Value>,
    #[serde(default)]
    approval: Option<Value>,
    #[serde(default)]
    execution_arn: Option<String>,
}

/// The first `…Error` a Catch wrote into the state, as `Name: cause`.
fn caught_error(state: &Value) -> Option<String> {
    state
        .as_object()?
        .iter()
        .find(|(k, _)| k.ends_with("Error"))
        .map(|(k, e)| {
            let name = e.get("Error").and_then(Value::as_str).unwrap_or("Unknown");
            let cause = e.get("Cause").and_then(Value::as_str).unwrap_or_default();
            format!("{name} in {}: {cause}", k.trim_end_matches("Error"))
        })
}

/// The stored record of the carried incident, or a new open one.
async fn open_record(
    w: &impl World,
    c: &Carried,
    now: Timestamp,
) -> Result<IncidentRecord, TaskError> {
    Ok(match w.get_incident(&c.incident_id).await? {
        Some(r) => IncidentRecord {
            updated_at: now,
            ..r
        },
        None => IncidentRecord {
            diagnosis: c.diagnosis.clone(),
            decision: c.decision.clone(),
            execution_arn: c.execution_arn.clone(),
            ..new_open_record(&c.incident_id, &c.target_group.arn, &c.target, now)
        },
    })
}

/// A new, open record of the incident of `target` (nothing found or decided yet).
fn new_open_record(
    id: &IncidentId,
    tg: &TargetGroupArn,
    target: &Target,
    now: Timestamp,
) -> IncidentRecord {
    IncidentRecord {
        incident: Incident {
            id: id.clone(),
            target_group: tg.clone(),
            instance: target.instance.clone(),
            asg: target.asg.clone(),
            detected_at: target.detected_at.unwrap_or(now),
            tags: BTreeMap::new(),
            launched_at: None,
        },
        status: IncidentStatus::Open,
        diagnosis: None,
        decision: None,
        steps: Vec::new(),
        failure: None,
        execution_arn: None,
        updated_at: now,
    }
}

/// Adds the steps not yet there (a diagnosis carried through an escalation is one step). The
/// `started` marks of finished attempts go: they guard an attempt only while it runs.
fn merge_steps(steps: &mut Vec<Step>, new: Vec<Step>) {
    steps.retain(|s| s.name != "started");
    for st in new {
        if !steps.iter().any(|x| x.name == st.name && x.at == st.at) {
            steps.push(st);
        }
    }
}

/// The steps an execution carried for one attempt, in the order they ran, from the stamped
/// results (`at`): diagnose, decide, approval, drain, the heal, verify, restore.
fn carried_steps(state: &Value, action: Action, now: Timestamp) -> Vec<Step> {
    let at = |v: &Value| {
        v.get("at")
            .and_then(Value::as_str)
            .and_then(Timestamp::from_rfc3339)
    };
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let mut steps = Vec::new();
    let push = |steps: &mut Vec<Step>, name: &str, v: &Value, detail: String| {
        if let Some(at) = at(v) {
            steps.push(Step {
                name: name.to_owned(),
                at,
                detail,
            });
        }
    };
    if let Some(d) = state.get("diagnosis") {
        let class = text(d, "class").unwrap_or_default();
        let conf = d.get("confidence").and_then(Value::as_f64).unwrap_or(0.0);
        push(
            &mut steps,
            "diagnose",
            d,
            format!("{class} ({:.0} %)", conf * 100.0),
        );
    }
    if let Some(d) = state.get("decision") {
        push(
            &mut steps,
            "decide",
            d,
            text(d, "action").unwrap_or_default(),
        );
    }
    if let Some(a) = state.get("approval") {
        // The approval's answer carries no time of its own: it came just before what followed.
        steps.push(Step {
            name: "approval".to_owned(),
            at: ["drain", "heal"]
                .iter()
                .find_map(|k| state.get(*k).and_then(at))
                .unwrap_or(now),
            detail: approval_detail(a),
        });
    }
    if let Some(d) = state.get("drain") {
        push(
            &mut steps,
            "drain",
            d,
            text(d, "detail").unwrap_or_else(|| "deregistered".to_owned()),
        );
    }
    if let Some(h) = state.get("heal") {
        let detail = match (text(h, "terminated"), h.get("services")) {
            (Some(i), _) => format!("terminated {i}; the group launches a replacement"),
            (None, Some(s)) => format!(
                "{}{}",
                if h.get("cleanup").and_then(Value::as_bool) == Some(true) {
                    "freed disk space, restarted "
                } else {
                    "restarted "
                },
                s.as_array()
                    .map(|a| a
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", "))
                    .unwrap_or_default()
            ),
            (None, None) if h.get("rebooted").is_some() => "rebooted".to_owned(),
            (None, None) if h.get("quarantined").is_some() => "quarantined".to_owned(),
            _ => "done".to_owned(),
        };
        push(&mut steps, action.as_str(), h, detail);
    }
    if let Some(v) = state.get("verify") {
        let healthy = v.get("healthy").and_then(Value::as_bool) == Some(true);
        let checks = v.get("attempt").and_then(Value::as_u64).unwrap_or(0);
        push(
            &mut steps,
            "verify",
            v,
            format!(
                "{} after {checks} check(s): {}",
                if healthy { "healthy" } else { "not healthy" },
                text(v, "detail").unwrap_or_default()
            ),
        );
    }
    if let Some(r) = state.get("restore") {
        push(
            &mut steps,
            "restore",
            r,
            "registered with the target group".to_owned(),
        );
    }
    steps
}

/// What the approval step answered, in words: `approved by …`, `denied: …`, or the timeout.
fn approval_detail(a: &Value) -> String {
    let text = |k: &str| a.get(k).and_then(Value::as_str).unwrap_or_default();
    match a.get("approved").and_then(Value::as_bool) {
        Some(true) if !text("by").is_empty() => format!("approved by {}", text("by")),
        Some(true) => "approved".to_owned(),
        _ if !text("reason").is_empty() => format!("not approved: {}", text("reason")),
        _ => "not approved".to_owned(),
    }
}

/// Record: write the incident (and the heal's outcome into the instance's history, which the
/// next decision's escalation ladder reads).
pub async fn record(w: &impl World, _cfg: &Config, v: Value) -> Result<Value, TaskError> {
    let i: RecordIn = input("record", v)?;
    let c: Carried = input("record: incident", i.incident.clone())?;
    let now = w.now();
    let action = c.decision.as_ref().map_or(Action::None, |d| d.action);
    let healed = c
        .verify
        .as_ref()
        .and_then(|v| v.get("healthy"))
        .and_then(Value::as_bool)
        == Some(true);
    let approved = c
        .approval
        .as_ref()
        .and_then(|a| a.get("approved"))
        .and_then(Value::as_bool);
    let status = match i.operation.as_str() {
        "attempt_failed" => {
            w.record_heal(&HealRecord {
                instance: c.target.instance.clone(),
                action,
                started_at: now,
                outcome: HealOutcome::Failed,
                incident: Some(c.incident_id.clone()),
            })
            .await?;
            // The attempt's steps stay with the incident (the next rung overwrites them in the
            // execution's state), open until the final record.
            let mut record = open_record(w, &c, now).await?;
            merge_steps(&mut record.steps, carried_steps(&i.incident, action, now));
            w.put_incident(&record).await?;
            return Ok(json!({"recorded": true, "action": action}));
        }
        "record_failure" => IncidentStatus::Failed,
        "record" if approved == Some(false) => IncidentStatus::Held,
        "record" if healed => IncidentStatus::Healed,
        "record" => match action {
            Action::None => IncidentStatus::NoAction,
            Action::Observe => IncidentStatus::Observed,
            Action::Hold => IncidentStatus::Held,
            Action::Quarantine => IncidentStatus::Escalated,
            _ => IncidentStatus::Escalated,
        },
        other => {
            return Err(TaskError::invalid_input(format!(
                "record: operation {other:?} is not record, record_failure or attempt_failed"
            )));
        }
    };
    if status == IncidentStatus::Healed {
        w.record_heal(&HealRecord {
            instance: c.target.instance.clone(),
            action,
            started_at: now,
            outcome: HealOutcome::Healed,
            incident: Some(c.incident_id.clone()),
        })
        .await?;
    }
    let existing = w.get_incident(&c.incident_id).await?;
    let detected_at = existing
        .as_ref()
        .map(|r| r.incident.detected_at)
        .or(c.target.detected_at)
        .unwrap_or(now);
    let mut steps = existing.map(|r| r.steps).unwrap_or_default();
    merge_steps(&mut steps, carried_steps(&i.incident, action, now));
    steps.push(Step {
        name: i.operation.clone(),
        at: now,
        detail: status.as_str().to_owned(),
    });
    let record = IncidentRecord {
        incident: Incident {
            id: c.incident_id.clone(),
            target_group: c.target_group.arn.clone(),
            instance: c.target.instance.clone(),
            asg: c.target.asg.clone(),
            detected_at,
            tags: BTreeMap::new(),
            launched_at: None,
        },
        status,
        diagnosis: c.diagnosis,
        decision: c.decision,
        steps,
        failure: if status == IncidentStatus::Failed {
            caught_error(&i.incident)
        } else {
            None
        },
        execution_arn: c.execution_arn,
        updated_at: now,
    };
    w.put_incident(&record).await?;
    Ok(json!({
        "incident_id": c.incident_id,
        "instance": c.target.instance,
        "status": status,
        "action": action,
        "failure": record.failure,
        "mttr_s": (status == IncidentStatus::Healed).then(|| now.seconds_since(detected_at)),
    }))
}

#[derive(Debug, Deserialize)]
struct NotifyIn {
    kind: String,
    #[serde(default)]
    detect: Option<Value>,
    #[serde(default)]
    incidents: Option<Vec<Value>>,
    #[serde(default)]
    execution_arn: Option<String>,
    #[serde(default)]
    task_token: Option<String>,
    #[serde(default)]
    target_group: Option<TargetGroupInfo>,
    #[serde(default)]
    decision: Option<Decision>,
}

/// The Step Functions console page of an execution (`arn:aws:states:<region>:…:execution:…`).
pub fn console_url(execution_arn: &str) -> String {
    let region = execution_arn.split(':').nth(3).unwrap_or("us-east-1");
    format!(
        "https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{execution_arn}"
    )
}

/// Notify: the execution's summary (what was found, done and held back), or an approval request
/// carrying the task token.
pub async fn notify(w: &impl World, _cfg: &Config, v: Value) -> Result<Value, TaskError> {
    let raw = v.clone();
    let i: NotifyIn = input("notify", v)?;
    let tg = match (
        &i.target_group,
        i.detect.as_ref().and_then(|d| d.get("target_group")),
    ) {
        (Some(t), _) => t.arn.clone(),
        (None, Some(t)) => input::<TargetGroupInfo>("notify: detect.target_group", t.clone())?.arn,
        (None, None) => return Err(TaskError::invalid_input("notify: no target group")),
    };
    let held_back: Vec<String> = match i.detect.as_ref() {
        Some(d)
            if d.get("verdict").and_then(Value::as_str) == Some("dependency_outage_suspected") =>
        {
            vec![
                d.get("reason")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            ]
        }
        _ => Vec::new(),
    };
    // The full record of each incident of this execution, as the store has it.
    let mut records = Vec::new();
    for id in i
        .incidents
        .iter()
        .flatten()
        .filter_map(|x| x.get("incident_id").and_then(Value::as_str))
    {
        if let Ok(id) = IncidentId::parse(id)
            && let Some(r) = w.get_incident(&id).await?
        {
            records.push(r);
        }
    }
    // An approval request is about the incident waiting for it: what was found and decided.
    if i.kind == "approval_request" {
        let c: Carried = input("notify: approval_request", raw.clone())?;
        let now = w.now();
        let action = c.decision.as_ref().map_or(Action::None, |d| d.action);
        let mut r = open_record(w, &c, now).await?;
        r.diagnosis = c.diagnosis.clone();
        r.decision = c.decision.clone();
        merge_steps(&mut r.steps, carried_steps(&raw, action, now));
        records.push(r);
    }
    let n = Notification {
        subject: match i.kind.as_str() {
            "approval_request" => format!(
                "autoheal: approve {} in {}?",
                i.decision.as_ref().map_or("a heal", |d| d.action.as_str()),
                tg.name()
            ),
            _ if !held_back.is_empty() => format!(
                "autoheal: held back in {}: dependency outage suspected",
                tg.name()
            ),
            _ => format!(
                "autoheal: {} incident(s) in {}",
                i.incidents.as_ref().map_or(0, Vec::len),
                tg.name()
            ),
        }
        .chars()
        .take(100)
        .collect(),
        severity: if held_back.is_empty() {
            Severity::Info
        } else {
            Severity::Warning
        },
        target_group: tg,
        incidents: records,
        held_back,
        execution_url: i.execution_arn.as_deref().map(console_url),
        approval_token: i.task_token,
    };
    w.notify(&n).await?;
    Ok(json!({"sent": true, "subject": n.subject}))
}
