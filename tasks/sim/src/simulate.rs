//! A whole scenario on the virtual clock: the region, the triggers that start executions of the
//! real state machine as they would on AWS, and the scoring against the scenario's ground truth.
//!
//! Under the policy `autoheal`, a CloudWatch alarm on each group's `UnHealthyHostCount`
//! (maximum over the period, threshold ≥ 1, one period) starts an execution when it goes to
//! ALARM, and an EventBridge schedule starts one per group every `schedule_s` (gray failures
//! and targets a standing alarm does not announce again). Execution names are deterministic,
//! scope and minute (`web-20270115T0803`), so the alarm and the schedule for one group in one
//! minute are one execution; a start while an execution of the same scope runs is counted as
//! skipped, not duplicated. The executions run concurrently on one clock.
//!
//! Under `asg-replace`, the baseline of DESIGN.md §4: an Auto Scaling group with ELB health
//! checks replaces every instance the load balancer marks unhealthy once it is past the
//! health-check grace period, with no diagnosis and no fleet guard.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

use autoheal_asl::{Event, RunOptions, Runner, StateMachine, Status};
use autoheal_core::ports::FleetControl;
use autoheal_core::{GlobalPolicy, IncidentRecord};
use autoheal_handlers::{Config, InProcess};
use serde::Serialize;
use serde_json::{Value, json};

use crate::chaos::{Chaos, ChaosCounts, Dice};
use crate::region::{Call, FaultHit, Region};
use crate::scenario::{FaultKind, Operator, OperatorAnswer, Scenario};
use autoheal_core::ports::Clock as _;

/// Which policy heals the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PolicyKind {
    #[serde(rename = "autoheal")]
    Autoheal,
    #[serde(rename = "asg-replace")]
    AsgReplace,
}

impl PolicyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Autoheal => "autoheal",
            Self::AsgReplace => "asg-replace",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "autoheal" => Some(Self::Autoheal),
            "asg-replace" => Some(Self::AsgReplace),
            _ => None,
        }
    }
}

/// Settings of a simulation.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// The handlers' settings.
    pub config: Config,
    /// Seconds between two samples of the fleet (capacity, alarm datapoints, the baseline's
    /// health checks).
    pub sample_s: u64,
    /// The Auto Scaling health-check grace period of the baseline.
    pub asg_grace_s: u64,
    /// Virtual seconds after the scenario's end that running executions may take to finish.
    pub finish_budget_s: u64,
    /// History events of all executions together.
    pub max_history_events: usize,
    /// Keep every execution's history (for graphs); otherwise only its counts.
    pub keep_histories: bool,
    /// Throttling, task crashes, duplicate triggers, instances vanishing ([`crate::chaos`]).
    pub chaos: Chaos,
    /// ELB's Describe API with latency and a rate limit (a fleet scan's bottleneck).
    pub elb_api: Option<crate::region::ElbApi>,
    /// Groups per second a schedule run scans (the trigger's `AUTOHEAL_SCAN_RATE_PER_S`).
    pub scan_rate_per_s: f64,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            config: Config::default(),
            sample_s: 10,
            asg_grace_s: 300,
            finish_budget_s: 3600,
            max_history_events: 5_000_000,
            keep_histories: true,
            chaos: Chaos::default(),
            elb_api: None,
            scan_rate_per_s: autoheal_handlers::trigger::DEFAULT_SCAN_RATE_PER_S,
        }
    }
}

/// Why a simulation could not run or finish.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("{0}")]
    Invalid(String),
    #[error(
        "scenario {scenario}: {running} execution(s) still running {budget_s} s after the scenario's end (the budget); the first is {first}. Lengthen duration_s or shorten the faults"
    )]
    TimeBudget {
        scenario: String,
        running: usize,
        budget_s: u64,
        first: String,
    },
    #[error(
        "scenario {scenario}: the executions wrote more than {budget} history events; shorten duration_s or the fleet"
    )]
    EventBudget { scenario: String, budget: usize },
}

/// One incident (autoheal) or one replacement (asg-replace), or a fault nothing acted on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentOutcome {
    pub target_group: String,
    /// The instance, or `*` for a fleet-wide fault.
    pub instance: String,
    /// The fault the scenario put on this host (ground truth), or `none`.
    pub fault: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault_at_s: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detected_at_s: Option<u64>,
    /// The class autoheal diagnosed (asg-replace diagnoses nothing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagnosis: Option<String>,
    /// The class the decision acted on: the diagnosis, or Flapping / Dependency when the
    /// history or the fleet says so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// What was done, escalations joined with `>` (`restart_service>reboot`).
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restored_at_s: Option<u64>,
    /// `healed`, `held`, `escalated`, `failed`, `no_action`, `replaced`, `missed`, ...
    pub outcome: String,
    /// Seconds from the fault to the group's full capacity again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_to_restore_s: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution: Option<String>,
    /// Why the decision was what it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The figures of one run (DESIGN.md §6).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub mttr_median_s: Option<f64>,
    pub mttr_p95_s: Option<f64>,
    /// Median of (time to restore − the load balancer's own floor) over service-level faults.
    pub overhead_median_s: Option<f64>,
    pub replacements: u32,
    pub restarts: u32,
    pub reboots: u32,
    pub heals_during_fleet_faults: u32,
    pub capacity_lost_target_s: u64,
    pub min_healthy_ratio: f64,
    pub blast_radius_violations: u32,
    /// The most state transitions per incident of an execution that restarted a service.
    pub state_transitions: u32,
    pub executions: u32,
    /// Starts not made because an execution of the same scope was running or had the name.
    pub starts_deduplicated: u32,
    pub incidents: u32,
    /// Fleet faults during which every heal was held back.
    pub held_back: u32,
    /// Faults whose diagnosis matched the fault model, of those diagnosed.
    pub diagnosed_right: u32,
    pub diagnosed: u32,
    /// Heal actions (restart, reboot, terminate) carried out more than once for one attempt:
    /// the host-changing calls on an execution's instances beyond the heal states it entered.
    pub double_heals: u32,
    /// Incidents that took a lease but never ended recorded as healed, held, escalated,
    /// observed, no action, or failed with a reason.
    pub lost_incidents: u32,
    /// Leases that would still block their instance longer than the lease TTL after the run.
    pub stuck_leases: u32,
    /// What chaos did, when the run had any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chaos: Option<ChaosCounts>,
}

/// One execution of the state machine.
#[derive(Debug, Clone, Serialize)]
pub struct ExecutionRun {
    pub name: String,
    pub trigger: String,
    pub target_group: String,
    pub started_at_s: u64,
    pub ended_at_s: u64,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    pub incidents: Vec<String>,
    /// State transitions per incident: the execution's own states plus its share of the
    /// iterations of the Map (all of them when it handled one target).
    pub state_transitions: u32,
    pub events: usize,
    #[serde(skip)]
    pub history: Vec<Event>,
    /// The execution's input (what a replay runs again).
    #[serde(skip)]
    pub input: Value,
    /// Heal states (restart, cleanup, reboot, replace) the execution entered.
    #[serde(skip)]
    pub heals_entered: u32,
}

/// A sample of every group's serving targets.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub t_s: u64,
    pub serving: Vec<u32>,
}

/// Everything a run produced.
#[derive(Debug, Clone, Serialize)]
pub struct Simulation {
    pub scenario: String,
    pub policy: PolicyKind,
    pub incidents: Vec<IncidentOutcome>,
    pub summary: Summary,
    pub executions: Vec<ExecutionRun>,
    /// Group names and sizes, in scenario order (the timeline's columns).
    pub groups: Vec<(String, u32)>,
    #[serde(skip)]
    pub timeline: Vec<Sample>,
    #[serde(skip)]
    pub records: Vec<IncidentRecord>,
    /// Every notification the executions sent, in order.
    #[serde(skip)]
    pub notifications: Vec<autoheal_core::ports::Notification>,
    /// What the ELB API model counted (zeros without one).
    #[serde(skip)]
    pub elb_api: crate::region::ElbApiCounts,
    /// Seconds the run covered (the scenario and the time its executions took to finish).
    pub ended_at_s: u64,
}

/// The class the fault model expects for a fault kind (DESIGN.md §4).
pub fn expected_class(kind: FaultKind) -> &'static str {
    match kind {
        FaultKind::AppCrash | FaultKind::AppHang => "Application",
        FaultKind::MemoryLeak | FaultKind::CpuRunaway | FaultKind::Overload => "ResourceBottleneck",
        FaultKind::DiskFull => "DiskFull",
        FaultKind::DiskCorruption => "DiskCorruption",
        FaultKind::SsmAgentDown => "AgentFailure",
        FaultKind::OsHang => "OSLevel",
        FaultKind::NetworkMisconfig => "Network",
        FaultKind::HardwareFailure => "Hardware",
        FaultKind::DependencyOutage => "Dependency",
        FaultKind::Flapping => "Flapping",
    }
}

struct Shared {
    events: usize,
    runs: Vec<ExecutionRun>,
    dice: std::sync::Arc<Dice>,
}

/// Runs scenario `s` under `policy` on the state machine `sm` (placeholders substituted).
pub fn simulate(
    s: &Scenario,
    sm: &StateMachine,
    policy: PolicyKind,
    opts: &SimOptions,
) -> Result<Simulation, SimError> {
    let global = s
        .policy("scenario")
        .map_err(|e| SimError::Invalid(e.to_string()))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|e| SimError::Invalid(format!("cannot start the runtime: {e}")))?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, run(s, sm, policy, &global, opts))
}

async fn run(
    s: &Scenario,
    sm: &StateMachine,
    policy: PolicyKind,
    global: &GlobalPolicy,
    opts: &SimOptions,
) -> Result<Simulation, SimError> {
    let dice = std::sync::Arc::new(Dice::new(s.seed));
    let mut region = Region::new(s).map_err(|e| SimError::Invalid(e.to_string()))?;
    if opts.chaos.throttle > 0.0 {
        region = region.with_throttling(std::sync::Arc::clone(&dice), opts.chaos.throttle);
    }
    if let Some(api) = opts.elb_api {
        region = region.with_elb_api(api, s.seed);
    }
    let region = Rc::new(region);
    let sm = Rc::new(sm.clone());
    let shared = Rc::new(RefCell::new(Shared {
        events: 0,
        runs: Vec::new(),
        dice: std::sync::Arc::clone(&dice),
    }));
    // Replays started by duplicate triggers run beside the executions they duplicate.
    let mut extra: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    // Chaos `vanish`: incidents drawn, and instances to terminate (someone else's doing).
    let mut vanish_drawn: BTreeSet<autoheal_core::IncidentId> = BTreeSet::new();
    let mut vanishing: Vec<(u64, autoheal_core::InstanceId)> = Vec::new();
    let policy_json = serde_json::to_value(global)
        .map_err(|e| SimError::Invalid(format!("the policy does not serialise: {e}")))?;
    let arns = region.target_group_arns();
    let names: Vec<String> = s
        .fleet
        .target_groups
        .iter()
        .map(|g| g.name.clone())
        .collect();
    let sizes: Vec<u32> = s.fleet.target_groups.iter().map(|g| g.instances).collect();
    let t0 = tokio::time::Instant::now();
    let step = opts.sample_s.max(1);
    let period = s.timings.alarm_period_s.max(step);
    let schedule = s.timings.schedule_s.max(step);
    let mut timeline = Vec::new();
    let mut alarm = vec![false; arns.len()];
    let mut peak = vec![0_u32; arns.len()];
    let mut running: BTreeMap<usize, tokio::task::JoinHandle<()>> = BTreeMap::new();
    let mut started: BTreeSet<String> = BTreeSet::new();
    let mut dedup = 0_u32;
    let mut t = 0;
    let deadline = s.duration_s + opts.finish_budget_s;
    loop {
        tokio::time::sleep_until(t0 + Duration::from_secs(t)).await;
        let counts = region.counts();
        timeline.push(Sample {
            t_s: t,
            serving: counts.iter().map(|c| c.serving).collect(),
        });
        running.retain(|_, h| !h.is_finished());
        extra.retain(|h| !h.is_finished());
        if shared.borrow().events > opts.max_history_events {
            return Err(SimError::EventBudget {
                scenario: s.name.clone(),
                budget: opts.max_history_events,
            });
        }
        if t >= s.duration_s {
            if policy == PolicyKind::AsgReplace || (running.is_empty() && extra.is_empty()) {
                break;
            }
            if t >= deadline {
                let first = shared
                    .borrow()
                    .runs
                    .iter()
                    .map(|r| r.name.clone())
                    .next()
                    .unwrap_or_default();
                return Err(SimError::TimeBudget {
                    scenario: s.name.clone(),
                    running: running.len(),
                    budget_s: opts.finish_budget_s,
                    first,
                });
            }
            t += step;
            continue;
        }
        match policy {
            PolicyKind::AsgReplace => {
                for g in 0..arns.len() {
                    for (id, age) in region.unhealthy_targets(g) {
                        if age.is_none_or(|a| a >= opts.asg_grace_s) {
                            // A replacement of an instance someone else terminated is no error.
                            let _ = region.terminate_in_group(&id, false).await;
                        }
                    }
                }
            }
            PolicyKind::Autoheal => {
                if opts.chaos.vanish > 0.0 {
                    for l in region.store.leases() {
                        if vanish_drawn.insert(l.holder.clone()) && dice.chance(opts.chaos.vanish) {
                            // Mid-heal: a little after the lease was taken.
                            vanishing.push((t + 20, l.instance.clone()));
                        }
                    }
                    for (_, id) in vanishing.iter().filter(|(at, _)| *at <= t) {
                        if region.vanish(id).is_ok() {
                            dice.count(|c| c.vanished += 1);
                        }
                    }
                    vanishing.retain(|(at, _)| *at > t);
                }
                for (g, c) in counts.iter().enumerate() {
                    peak[g] = peak[g].max(c.unhealthy);
                }
                let mut starts: Vec<(usize, &str)> = Vec::new();
                if t > 0 && t % period == 0 {
                    for g in 0..arns.len() {
                        let now_alarm = peak[g] >= 1;
                        if now_alarm && !alarm[g] {
                            starts.push((g, "alarm"));
                        }
                        alarm[g] = now_alarm;
                        peak[g] = counts[g].unhealthy;
                    }
                }
                if t > 0 && t % schedule == 0 {
                    starts.extend((0..arns.len()).map(|g| (g, "schedule")));
                }
                for (g, source) in starts {
                    // The trigger's own naming: group and minute.
                    let name = autoheal_handlers::trigger::execution_name(
                        &arns[g],
                        region_time(&region, t),
                    );
                    if running.contains_key(&g) || !started.insert(name.clone()) {
                        dedup += 1;
                        continue;
                    }
                    let mut trigger =
                        json!({"source": source, "at": region_time(&region, t).to_rfc3339()});
                    if source == "schedule" {
                        // As the trigger does: each group of a schedule run waits its turn.
                        trigger["delay_s"] = json!(autoheal_handlers::trigger::scan_delay_s(
                            g,
                            opts.scan_rate_per_s
                        ));
                    }
                    let input = json!({
                        "scope": {"target_group_arn": arns[g]},
                        "trigger": trigger,
                        "policy": policy_json,
                    });
                    // Chaos: the same start N more times at once. The alarm and the schedule
                    // of this minute fold into this execution by name; replays under other
                    // names really run beside it.
                    for k in 1..=opts.chaos.duplicate_triggers {
                        dedup += 1;
                        dice.count(|c| c.duplicate_starts += 2);
                        extra.push(tokio::task::spawn_local(execute(
                            Rc::clone(&region),
                            Rc::clone(&sm),
                            Rc::clone(&shared),
                            opts.clone(),
                            Launch {
                                name: format!("{name}-replay-{k}"),
                                trigger: "replay".to_owned(),
                                group: names[g].clone(),
                                at_s: t,
                                input: input.clone(),
                            },
                            s.operator.clone(),
                        )));
                    }
                    let handle = tokio::task::spawn_local(execute(
                        Rc::clone(&region),
                        Rc::clone(&sm),
                        Rc::clone(&shared),
                        opts.clone(),
                        Launch {
                            name,
                            trigger: source.to_owned(),
                            group: names[g].clone(),
                            at_s: t,
                            input,
                        },
                        s.operator.clone(),
                    ));
                    running.insert(g, handle);
                }
            }
        }
        t += step;
    }
    let ended_at_s = t;
    let runs = std::mem::take(&mut shared.borrow_mut().runs);
    Ok(score(
        s,
        policy,
        global,
        &region,
        Scored {
            names,
            sizes,
            timeline,
            runs,
            dedup,
            ended_at_s,
            chaos: (!opts.chaos.is_none()).then(|| dice.counts()),
            lease_ttl_s: opts.config.lease_ttl_s,
        },
    ))
}

/// Scenario second `t` as the region's wall-clock time.
fn region_time(region: &Region, t: u64) -> autoheal_core::Timestamp {
    autoheal_core::Timestamp(region.epoch()).plus_secs(t)
}

struct Launch {
    name: String,
    trigger: String,
    group: String,
    at_s: u64,
    input: Value,
}

/// The handlers as Lambda runs them on a bad day (chaos `task_crash`): an invocation fails
/// before the function runs, after it ran (its side effect done, its answer lost), or times out
/// after it ran.
struct Crashy<'w, W: autoheal_handlers::World> {
    inner: InProcess<'w, W>,
    dice: std::sync::Arc<Dice>,
    p: f64,
}

impl<W: autoheal_handlers::World> autoheal_asl::TaskResources for Crashy<'_, W> {
    async fn invoke(
        &self,
        call: autoheal_asl::TaskCall,
    ) -> Result<autoheal_asl::TaskOutput, autoheal_asl::StatesError> {
        // A task waiting for a person is not a function run.
        if call.token.is_some() || !self.dice.chance(self.p) {
            return self.inner.invoke(call).await;
        }
        let roll = self.dice.roll();
        if roll < 1.0 / 3.0 {
            self.dice.count(|c| c.crashes_before += 1);
            return Err(autoheal_asl::StatesError::new(
                "Lambda.ServiceException",
                "simulated: the invocation failed before the function ran",
            ));
        }
        // The function runs, side effects and all; then its answer is lost.
        let _ = self.inner.invoke(call).await;
        if roll < 2.0 / 3.0 {
            self.dice.count(|c| c.crashes_after += 1);
            Err(autoheal_asl::StatesError::new(
                "Lambda.ServiceException",
                "simulated: the function ran but its answer was lost",
            ))
        } else {
            self.dice.count(|c| c.timeouts_after += 1);
            Err(autoheal_asl::StatesError::new(
                "Sandbox.Timedout",
                "simulated: the function ran past its timeout",
            ))
        }
    }
}

/// How often the simulated operator looks at their notifications.
const OPERATOR_POLL: Duration = Duration::from_secs(5);

/// The simulated operator: for each task waiting for a callback whose token an approval
/// notification carried, answer `op.after_s` after first seeing it (SendTaskSuccess with
/// `{"approved": true}`, or SendTaskFailure `ApprovalDenied`). `seen` keeps when each token was
/// first seen. The token comes from the notification, as a person reads it in Slack.
fn answer_approvals(
    region: &Region,
    tokens: &autoheal_asl::TaskTokens,
    op: &Operator,
    seen: &mut BTreeMap<String, tokio::time::Instant>,
) {
    let waiting = tokens.waiting();
    if waiting.is_empty() {
        return;
    }
    let notified: BTreeSet<String> = region
        .store
        .notifications()
        .into_iter()
        .filter_map(|n| n.approval_token)
        .collect();
    let now = tokio::time::Instant::now();
    for w in waiting {
        if !notified.contains(&w.token) {
            continue;
        }
        let first = *seen.entry(w.token.clone()).or_insert(now);
        if now.duration_since(first) < Duration::from_secs(op.after_s) {
            continue;
        }
        // A token that stopped waiting in between (timed out) is the operator's late answer:
        // Step Functions answers it with TaskTimedOut, and nothing changes.
        let _ = match op.answer {
            OperatorAnswer::Approve => tokens.succeed(
                &w.token,
                json!({"approved": true, "by": "operator", "reason": "approved by the on-call operator"}),
            ),
            OperatorAnswer::Deny => tokens.fail(&w.token, "ApprovalDenied", &op.reason),
            OperatorAnswer::Ignore => Ok(()),
        };
    }
}

async fn execute(
    region: Rc<Region>,
    sm: Rc<StateMachine>,
    shared: Rc<RefCell<Shared>>,
    opts: SimOptions,
    l: Launch,
    operator: Option<Operator>,
) {
    let resources = Crashy {
        inner: InProcess::new(&*region, opts.config.clone()),
        dice: std::sync::Arc::clone(&shared.borrow().dice),
        p: opts.chaos.task_crash,
    };
    let runner = Runner::new(
        &sm,
        &resources,
        RunOptions {
            execution_name: l.name.clone(),
            state_machine_name: "autoheal".into(),
            start_time_ms: region_time(&region, l.at_s).secs() * 1000,
            history_payloads: opts.keep_histories,
            ..RunOptions::default()
        },
    );
    let input = l.input.clone();
    let e = match operator {
        None => runner.run(l.input).await,
        Some(op) => {
            let tokens = runner.tokens();
            let run = runner.run(l.input);
            tokio::pin!(run);
            let mut answered: BTreeMap<String, tokio::time::Instant> = BTreeMap::new();
            loop {
                tokio::select! {
                    e = &mut run => break e,
                    () = tokio::time::sleep(OPERATOR_POLL) => {
                        answer_approvals(&region, &tokens, &op, &mut answered);
                    }
                }
            }
        }
    };
    let output = e.output.clone().unwrap_or(Value::Null);
    let incidents = output
        .get("incidents")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|i| i.get("incident_id").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    // Per incident: the execution's own states plus its share of the Map's iterations.
    let entered: Vec<&str> = e
        .events
        .iter()
        .filter(|ev| ev.kind.ends_with("StateEntered"))
        .filter_map(|ev| ev.detail_str("name"))
        .collect();
    let outer = entered.iter().filter(|n| sm.state(n).is_some()).count();
    let inner = entered.len() - outer;
    let k: usize = output
        .get("incidents")
        .and_then(Value::as_array)
        .map_or(0, Vec::len)
        .max(1);
    let transitions = outer + inner.div_ceil(k);
    let heals_entered = entered
        .iter()
        .filter(|n| {
            matches!(
                **n,
                "Restart service"
                    | "Clean up disk"
                    | "Reboot instance"
                    | "Replace via Auto Scaling"
            )
        })
        .count();
    let mut sh = shared.borrow_mut();
    sh.events += e.events.len();
    sh.runs.push(ExecutionRun {
        name: l.name,
        trigger: l.trigger,
        target_group: l.group,
        started_at_s: l.at_s,
        ended_at_s: l.at_s + e.duration_s.max(0.0) as u64,
        status: format!("{:?}", e.status).to_uppercase(),
        verdict: output
            .get("verdict")
            .and_then(Value::as_str)
            .map(str::to_owned),
        incidents,
        state_transitions: u32::try_from(transitions).unwrap_or(u32::MAX),
        events: e.events.len(),
        history: if opts.keep_histories || e.status != Status::Succeeded {
            e.events
        } else {
            Vec::new()
        },
        input,
        heals_entered: u32::try_from(heals_entered).unwrap_or(u32::MAX),
    });
}

struct Scored {
    names: Vec<String>,
    sizes: Vec<u32>,
    timeline: Vec<Sample>,
    runs: Vec<ExecutionRun>,
    dedup: u32,
    ended_at_s: u64,
    chaos: Option<ChaosCounts>,
    lease_ttl_s: u64,
}

fn percentile(sorted: &[u64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * (sorted.len() - 1) as f64).round() as usize;
    sorted.get(rank.min(sorted.len() - 1)).map(|v| *v as f64)
}

fn median(v: &mut [u64]) -> Option<f64> {
    v.sort_unstable();
    if v.is_empty() {
        return None;
    }
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2] as f64
    } else {
        (v[n / 2 - 1] + v[n / 2]) as f64 / 2.0
    })
}

/// The first sample at or after `from` where group `g` served fewer than all its targets, then
/// the first after that where it served all again.
fn restored_after(timeline: &[Sample], g: usize, size: u32, from: u64) -> Option<u64> {
    let mut dipped = false;
    for s in timeline.iter().filter(|s| s.t_s >= from) {
        let serving = s.serving.get(g).copied().unwrap_or(0);
        if serving < size {
            dipped = true;
        } else if dipped {
            return Some(s.t_s);
        }
    }
    None
}

fn score(
    s: &Scenario,
    policy: PolicyKind,
    global: &GlobalPolicy,
    region: &Region,
    r: Scored,
) -> Simulation {
    let epoch = region.epoch();
    let calls = region.call_log();
    let hits = region.fault_hits();
    let records = region.store.incidents();
    let heals = region.store.heals();
    let secs = |ts: autoheal_core::Timestamp| u64::try_from(ts.0 - epoch).unwrap_or(0);
    let group_index: BTreeMap<&str, usize> = r
        .names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let group_of = |name: &str| group_index.get(name).copied();
    let floor = u64::from(s.timings.unhealthy_threshold + s.timings.healthy_threshold)
        * s.timings.health_check_interval_s;
    // The latest host fault on an instance at or before a time.
    let mut hits_of: BTreeMap<&str, Vec<&FaultHit>> = BTreeMap::new();
    for h in &hits {
        if let Some(i) = &h.instance {
            hits_of.entry(i.as_str()).or_default().push(h);
        }
    }
    let fault_on = |instance: &str, at: u64| -> Option<&FaultHit> {
        hits_of
            .get(instance)?
            .iter()
            .copied()
            .filter(|h| h.at_s <= at)
            .max_by_key(|h| h.at_s)
    };
    let mut heals_of: BTreeMap<&autoheal_core::IncidentId, Vec<&str>> = BTreeMap::new();
    for h in &heals {
        if let Some(id) = &h.incident {
            heals_of.entry(id).or_default().push(h.action.as_str());
        }
    }
    let fleet_hits: Vec<&FaultHit> = hits.iter().filter(|h| h.instance.is_none()).collect();
    let mut rows = Vec::new();
    // What autoheal concluded about each fault: the class of its last incident.
    let mut concluded: BTreeMap<usize, String> = BTreeMap::new();
    let mut seen_faults = BTreeSet::new();
    match policy {
        PolicyKind::Autoheal => {
            let mut recs = records.clone();
            recs.sort_by_key(|x| (x.incident.detected_at, x.incident.id.to_string()));
            for rec in &recs {
                let inst = rec.incident.instance.as_str();
                let detected = secs(rec.incident.detected_at);
                let hit = fault_on(inst, detected);
                let kind = hit.map(|h| s.faults[h.fault].kind);
                let g = group_of(rec.incident.target_group.name()).unwrap_or(0);
                let first_for_fault = hit.is_some_and(|h| seen_faults.insert(h.fault));
                let (restored, ttr) = match hit {
                    Some(h) if first_for_fault => {
                        let restored = restored_after(&r.timeline, g, r.sizes[g], h.at_s);
                        (restored, restored.map(|x| x - h.at_s))
                    }
                    _ => (None, None),
                };
                let class = rec.diagnosis.as_ref().map(|d| d.class.as_str().to_owned());
                let decided = rec
                    .decision
                    .as_ref()
                    .map(|d| d.class.as_str().to_owned())
                    .or_else(|| class.clone());
                // An incident that found nothing to do (the target had left, or recovered) does
                // not overrule an earlier conclusion.
                let acted = rec
                    .decision
                    .as_ref()
                    .is_some_and(|d| d.action != autoheal_core::Action::None);
                if let (Some(h), Some(c)) = (hit, &decided)
                    && (acted || !concluded.contains_key(&h.fault))
                {
                    concluded.insert(h.fault, c.clone());
                }
                let taken: Vec<&str> = heals_of.get(&rec.incident.id).cloned().unwrap_or_default();
                let action = if taken.is_empty() {
                    rec.decision
                        .as_ref()
                        .map_or("none", |d| d.action.as_str())
                        .to_owned()
                } else {
                    taken.join(">")
                };
                rows.push(IncidentOutcome {
                    target_group: rec.incident.target_group.name().to_owned(),
                    instance: inst.to_owned(),
                    fault: kind.map_or("none", FaultKind::as_str).to_owned(),
                    fault_at_s: hit.map(|h| h.at_s),
                    detected_at_s: Some(detected),
                    diagnosis: class,
                    class: decided,
                    action,
                    restored_at_s: restored,
                    outcome: rec.status.as_str().to_owned(),
                    time_to_restore_s: ttr,
                    incident_id: Some(rec.incident.id.to_string()),
                    execution: rec
                        .execution_arn
                        .as_deref()
                        .and_then(|a| a.rsplit(':').next())
                        .map(str::to_owned),
                    // The decision's reason, and what the person asked answered.
                    reason: rec
                        .decision
                        .as_ref()
                        .map(
                            |d| match rec.steps.iter().find(|st| st.name == "approval") {
                                Some(a) => format!(
                                    "{}; {} after {} s",
                                    d.reason,
                                    a.detail,
                                    a.at.seconds_since(rec.incident.detected_at)
                                ),
                                None => d.reason.clone(),
                            },
                        )
                        .map(|reason| match &rec.failure {
                            // A failed incident says why it failed.
                            Some(f) => format!("{reason}; failed: {f}"),
                            None => reason,
                        }),
                });
            }
        }
        PolicyKind::AsgReplace => {
            for c in calls.iter().filter(|c| c.verb == "terminate") {
                let inst = c.instance.as_str();
                let hit =
                    fault_on(inst, c.at_s).filter(|h| !s.faults[h.fault].kind.is_fleet_wide());
                let first_for_fault = hit.is_some_and(|h| seen_faults.insert(h.fault));
                let (restored, ttr) = match hit {
                    Some(h) if first_for_fault => {
                        let restored =
                            restored_after(&r.timeline, c.group, r.sizes[c.group], h.at_s);
                        (restored, restored.map(|x| x - h.at_s))
                    }
                    _ => (None, None),
                };
                let fleet = fleet_fault_at(s, &fleet_hits, c.group, c.at_s);
                rows.push(IncidentOutcome {
                    target_group: r.names.get(c.group).cloned().unwrap_or_default(),
                    instance: inst.to_owned(),
                    fault: hit
                        .map(|h| s.faults[h.fault].kind)
                        .or(fleet)
                        .map_or("none", FaultKind::as_str)
                        .to_owned(),
                    fault_at_s: hit.map(|h| h.at_s),
                    detected_at_s: Some(c.at_s),
                    diagnosis: None,
                    class: None,
                    action: "replace".to_owned(),
                    restored_at_s: restored,
                    outcome: "replaced".to_owned(),
                    time_to_restore_s: ttr,
                    incident_id: None,
                    execution: None,
                    reason: Some("the load balancer marks it unhealthy".to_owned()),
                });
            }
        }
    }
    // Host faults nothing acted on, and the fleet-wide faults.
    let mut held_back = 0;
    for h in &hits {
        let f = &s.faults[h.fault];
        let g = h.group;
        let name = r.names.get(g).cloned().unwrap_or_default();
        if f.kind.is_fleet_wide() {
            let end = f.duration_s.map_or(u64::MAX, |d| h.at_s + d);
            let touched = calls
                .iter()
                .filter(|c| c.group == g && c.is_heal() && c.at_s >= h.at_s && c.at_s <= end)
                .count();
            let verdicts: Vec<&ExecutionRun> = r
                .runs
                .iter()
                .filter(|e| {
                    e.target_group == name && e.started_at_s >= h.at_s && e.started_at_s <= end
                })
                .collect();
            let held = verdicts.iter().any(|e| {
                matches!(
                    e.verdict.as_deref(),
                    Some("dependency_outage_suspected" | "overloaded")
                )
            });
            if policy == PolicyKind::Autoheal && touched == 0 {
                held_back += 1;
            }
            let restored = restored_after(&r.timeline, g, r.sizes[g], h.at_s);
            rows.push(IncidentOutcome {
                target_group: name,
                instance: "*".to_owned(),
                fault: f.kind.as_str().to_owned(),
                fault_at_s: Some(h.at_s),
                detected_at_s: verdicts.first().map(|e| e.started_at_s),
                diagnosis: (policy == PolicyKind::Autoheal && held).then(|| {
                    if f.kind == FaultKind::DependencyOutage {
                        "Dependency".to_owned()
                    } else {
                        "ResourceBottleneck".to_owned()
                    }
                }),
                class: None,
                action: if touched == 0 {
                    if f.kind == FaultKind::DependencyOutage {
                        "hold"
                    } else {
                        "none"
                    }
                    .to_owned()
                } else {
                    format!("{touched} heal(s)")
                },
                restored_at_s: restored,
                outcome: if touched == 0 {
                    "held"
                } else {
                    "healed-during-fleet-fault"
                }
                .to_owned(),
                time_to_restore_s: restored.map(|x| x - h.at_s),
                incident_id: None,
                execution: verdicts.first().map(|e| e.name.clone()),
                reason: None,
            });
        } else if !seen_faults.contains(&h.fault) {
            let restored = restored_after(&r.timeline, g, r.sizes[g], h.at_s);
            rows.push(IncidentOutcome {
                target_group: name,
                instance: h.instance.as_ref().map_or("*", |i| i.as_str()).to_owned(),
                fault: f.kind.as_str().to_owned(),
                fault_at_s: Some(h.at_s),
                detected_at_s: None,
                diagnosis: None,
                class: None,
                action: "none".to_owned(),
                restored_at_s: restored,
                outcome: "missed".to_owned(),
                time_to_restore_s: restored.map(|x| x - h.at_s),
                incident_id: None,
                execution: None,
                reason: None,
            });
        }
    }
    let mut diagnosed = 0;
    let mut right = 0;
    for (fault, class) in &concluded {
        diagnosed += 1;
        if class == expected_class(s.faults[*fault].kind) {
            right += 1;
        }
    }
    for row in rows.iter_mut().filter(|r| r.instance == "*") {
        if let Some(c) = &row.diagnosis {
            row.class = Some(c.clone());
            diagnosed += 1;
            let kind = FaultKind::ALL.iter().find(|k| k.as_str() == row.fault);
            if kind.is_some_and(|k| expected_class(*k) == c) {
                right += 1;
            }
        }
    }
    rows.sort_by_key(|x| {
        (
            x.fault_at_s.or(x.detected_at_s),
            x.target_group.clone(),
            x.instance.clone(),
        )
    });

    // Time to restore over the host faults (first row of each), overhead over service faults.
    let mut ttrs: Vec<u64> = Vec::new();
    let mut overheads: Vec<u64> = Vec::new();
    let mut counted = BTreeSet::new();
    for row in &rows {
        let (Some(ttr), Some(at)) = (row.time_to_restore_s, row.fault_at_s) else {
            continue;
        };
        if row.instance == "*" || !counted.insert((row.instance.clone(), at)) {
            continue;
        }
        ttrs.push(ttr);
        let service = FaultKind::ALL
            .iter()
            .find(|k| k.as_str() == row.fault)
            .is_some_and(|k| k.is_service_level());
        if service {
            overheads.push(ttr.saturating_sub(floor));
        }
    }
    ttrs.sort_unstable();
    let mut lost = 0_u64;
    let mut min_ratio = 1.0_f64;
    for (i, sample) in r.timeline.iter().enumerate() {
        let dt = r
            .timeline
            .get(i + 1)
            .map_or(0, |n| n.t_s.saturating_sub(sample.t_s));
        if sample.t_s > s.duration_s {
            break;
        }
        for (g, size) in r.sizes.iter().enumerate() {
            let serving = sample.serving.get(g).copied().unwrap_or(0);
            lost += u64::from(size.saturating_sub(serving)) * dt;
            if *size > 0 {
                min_ratio = min_ratio.min(f64::from(serving) / f64::from(*size));
            }
        }
    }
    let count = |verb: &str| {
        u32::try_from(calls.iter().filter(|c| c.verb == verb).count()).unwrap_or(u32::MAX)
    };
    let heals_in_fleet = u32::try_from(
        calls
            .iter()
            .filter(|c| c.is_heal() && fleet_fault_at(s, &fleet_hits, c.group, c.at_s).is_some())
            .count(),
    )
    .unwrap_or(u32::MAX);
    let restart_runs = r
        .runs
        .iter()
        .filter(|e| {
            e.history.iter().any(|ev| {
                ev.kind == "TaskStateEntered" && ev.detail_str("name") == Some("Restart service")
            })
        })
        .map(|e| e.state_transitions)
        .max()
        .unwrap_or(0);
    let summary = Summary {
        mttr_median_s: median(&mut ttrs.clone()),
        mttr_p95_s: percentile(&ttrs, 0.95),
        overhead_median_s: median(&mut overheads),
        replacements: count("terminate"),
        restarts: count("send autoheal-RestartServices"),
        reboots: count("reboot"),
        heals_during_fleet_faults: heals_in_fleet,
        capacity_lost_target_s: lost,
        min_healthy_ratio: (min_ratio * 1000.0).round() / 1000.0,
        blast_radius_violations: blast_radius(
            policy,
            global,
            s,
            &calls,
            &region.store.lease_log(),
            epoch,
        ),
        state_transitions: restart_runs,
        executions: u32::try_from(r.runs.len()).unwrap_or(u32::MAX),
        starts_deduplicated: r.dedup,
        incidents: u32::try_from(records.len()).unwrap_or(u32::MAX),
        held_back,
        diagnosed_right: right,
        diagnosed,
        double_heals: double_heals(&r.runs, &records, &calls),
        lost_incidents: lost_incidents(region, &records),
        stuck_leases: {
            let after = region.now().plus_secs(r.lease_ttl_s);
            u32::try_from(
                region
                    .store
                    .leases()
                    .iter()
                    .filter(|l| l.expires_at > after)
                    .count(),
            )
            .unwrap_or(u32::MAX)
        },
        chaos: r.chaos,
    };
    let mut runs = r.runs;
    runs.sort_by(|a, b| (a.started_at_s, &a.name).cmp(&(b.started_at_s, &b.name)));
    Simulation {
        scenario: s.name.clone(),
        policy,
        incidents: rows,
        summary,
        executions: runs,
        groups: r.names.into_iter().zip(r.sizes).collect(),
        timeline: r.timeline,
        records,
        notifications: region.store.notifications(),
        elb_api: region.elb_api_counts(),
        ended_at_s: r.ended_at_s,
    }
}

/// Host-changing calls on each execution's instances, during the execution, beyond the heal
/// states it entered (a retried task that repeated its side effect).
fn double_heals(runs: &[ExecutionRun], records: &[IncidentRecord], calls: &[Call]) -> u32 {
    // An incident belongs to the execution that recorded it (a duplicate that found the
    // instance leased lists it too, but healed nothing).
    let instance_of: BTreeMap<(&str, &str), &autoheal_core::InstanceId> = records
        .iter()
        .filter_map(|r| {
            let run = r.execution_arn.as_deref()?.rsplit(':').next()?;
            Some(((r.incident.id.as_str(), run), &r.incident.instance))
        })
        .collect();
    let mut heal_calls: BTreeMap<&autoheal_core::InstanceId, Vec<u64>> = BTreeMap::new();
    for c in calls.iter().filter(|c| c.is_heal()) {
        heal_calls.entry(&c.instance).or_default().push(c.at_s);
    }
    let mut double = 0_u32;
    for run in runs {
        let made: usize = run
            .incidents
            .iter()
            .filter_map(|id| instance_of.get(&(id.as_str(), run.name.as_str())))
            .filter_map(|i| heal_calls.get(i))
            .map(|times| {
                times
                    .iter()
                    .filter(|t| (run.started_at_s..=run.ended_at_s).contains(t))
                    .count()
            })
            .sum();
        double += u32::try_from(made.saturating_sub(run.heals_entered as usize)).unwrap_or(0);
    }
    double
}

/// Incidents that took a lease and did not end recorded: no record, still open, or failed
/// without a reason.
fn lost_incidents(region: &Region, records: &[IncidentRecord]) -> u32 {
    let by_id: BTreeMap<&str, &IncidentRecord> = records
        .iter()
        .map(|r| (r.incident.id.as_str(), r))
        .collect();
    let lost = region
        .store
        .lease_holders()
        .iter()
        .map(|h| autoheal_handlers::lease_incident(h).to_owned())
        .collect::<BTreeSet<String>>()
        .iter()
        .filter(|h| match by_id.get(h.as_str()) {
            None => true,
            Some(r) => {
                r.status == autoheal_core::IncidentStatus::Open
                    || (r.status == autoheal_core::IncidentStatus::Failed && r.failure.is_none())
            }
        })
        .count();
    u32::try_from(lost).unwrap_or(u32::MAX)
}

/// The fleet-wide fault on group `g` at time `t`, if any.
fn fleet_fault_at(s: &Scenario, hits: &[&FaultHit], g: usize, t: u64) -> Option<FaultKind> {
    hits.iter()
        .filter(|h| h.group == g && h.instance.is_none())
        .map(|h| (h, &s.faults[h.fault]))
        .find(|(h, f)| t >= h.at_s && f.duration_s.is_none_or(|d| t <= h.at_s + d))
        .map(|(_, f)| f.kind)
}

/// Heal calls made while more heals than `max_concurrent_heals` were open in the same group.
/// A heal is open from its first mutating call until its incident is recorded (autoheal), or
/// until its replacement can have passed the healthy threshold (asg-replace).
fn blast_radius(
    policy: PolicyKind,
    global: &GlobalPolicy,
    s: &Scenario,
    calls: &[Call],
    leases: &[(
        autoheal_core::InstanceId,
        autoheal_core::IncidentId,
        autoheal_core::Timestamp,
        autoheal_core::Timestamp,
    )],
    epoch: i64,
) -> u32 {
    let secs = |ts: autoheal_core::Timestamp| u64::try_from(ts.0 - epoch).unwrap_or(0);
    let mutating: Vec<&Call> = calls
        .iter()
        .filter(|c| c.is_heal() || c.verb == "deregister")
        .collect();
    let mut calls_of: BTreeMap<&autoheal_core::InstanceId, Vec<&Call>> = BTreeMap::new();
    for c in &mutating {
        calls_of.entry(&c.instance).or_default().push(c);
    }
    // (group, instance, from, to)
    let windows: Vec<(usize, String, u64, u64)> = match policy {
        // A heal is in flight while its lease is held: from the lease's first host-changing or
        // deregistering call to its release (or expiry).
        PolicyKind::Autoheal => leases
            .iter()
            .filter_map(|(instance, _, from, to)| {
                let (from, to) = (secs(*from), secs(*to));
                let mine = calls_of.get(instance)?;
                let first = mine
                    .iter()
                    .filter(|c| c.at_s >= from && c.at_s <= to)
                    .map(|c| c.at_s)
                    .min()?;
                let g = mine.first().map(|c| c.group)?;
                Some((g, instance.to_string(), first, to))
            })
            .collect(),
        PolicyKind::AsgReplace => {
            let span = s.timings.launch_s
                + s.timings.boot_s
                + u64::from(s.timings.healthy_threshold) * s.timings.health_check_interval_s;
            mutating
                .iter()
                .map(|c| (c.group, c.instance.to_string(), c.at_s, c.at_s + span))
                .collect()
        }
    };
    let mut by_group: BTreeMap<usize, Vec<&(usize, String, u64, u64)>> = BTreeMap::new();
    for w in &windows {
        by_group.entry(w.0).or_default().push(w);
    }
    let mut violations = 0;
    for c in &mutating {
        let open: BTreeSet<&str> = by_group
            .get(&c.group)
            .into_iter()
            .flatten()
            .filter(|(_, _, from, to)| *from <= c.at_s && c.at_s <= *to)
            .map(|(_, i, _, _)| i.as_str())
            .collect();
        if open.len() > global.max_concurrent_heals as usize {
            violations += 1;
        }
    }
    violations
}

/// What a replay of one execution did.
#[derive(Debug, Clone)]
pub struct Replay {
    /// The execution (its history kept).
    pub run: ExecutionRun,
    /// The incidents the replayed execution recorded.
    pub records: Vec<IncidentRecord>,
}

/// Replays one execution of a scenario: a fresh region of the scenario advanced to the
/// execution's start second `at_s` (its faults and outages applied by then), then the stored
/// `input` run again through the state machine and the handlers (the scenario's operator
/// answers approvals). What else healed before `at_s` in the original run is not redone, so
/// the fleet around the incident can differ; the incident's own host is as the fault left it.
pub fn replay(
    s: &Scenario,
    sm: &StateMachine,
    name: &str,
    at_s: u64,
    input: Value,
    opts: &SimOptions,
) -> Result<Replay, SimError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|e| SimError::Invalid(format!("cannot start the runtime: {e}")))?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        let region = Rc::new(Region::new(s).map_err(|e| SimError::Invalid(e.to_string()))?);
        region.advance_to(at_s, opts.sample_s).await;
        let shared = Rc::new(RefCell::new(Shared {
            events: 0,
            runs: Vec::new(),
            dice: std::sync::Arc::new(Dice::new(s.seed)),
        }));
        execute(
            Rc::clone(&region),
            Rc::new(sm.clone()),
            Rc::clone(&shared),
            SimOptions {
                keep_histories: true,
                ..opts.clone()
            },
            Launch {
                name: name.to_owned(),
                trigger: "replay".to_owned(),
                group: String::new(),
                at_s,
                input,
            },
            s.operator.clone(),
        )
        .await;
        let run = shared
            .borrow_mut()
            .runs
            .pop()
            .ok_or_else(|| SimError::Invalid(format!("the replay of {name} did not run")))?;
        let mut records = Vec::new();
        for id in &run.incidents {
            if let Ok(id) = autoheal_core::IncidentId::parse(id.clone())
                && let Ok(Some(r)) =
                    autoheal_core::ports::IncidentStore::get_incident(&region.store, &id).await
            {
                records.push(r);
            }
        }
        Ok(Replay { run, records })
    })
}
