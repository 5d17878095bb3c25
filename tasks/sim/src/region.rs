//! A simulated AWS region behind the ports: ELB target groups with the real health-check state
//! machine, EC2 hosts whose faults are host state, Auto Scaling replacement with launch and boot
//! times, and SSM commands with latency that fail to deliver when the agent cannot be reached.
//!
//! Time is tokio's clock (virtual under the runner's paused runtime). The region advances
//! lazily: every port call first processes, in time order, everything due up to now (scenario
//! faults, health checks on the interval grid, restarts, reboots, launches, draining). No fault
//! kind ever crosses a port: hosts answer with raw outputs ([`crate::host`]).

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use autoheal_core::error::PortError;
use autoheal_core::health::{Anomaly, AnomalyResult, HealthState, ReasonCode, TargetHealth};
use autoheal_core::incident::Transition;
use autoheal_core::observe::{
    AgentPing, CommandResult, CommandStatus, InstanceInfo, InstanceState, StatusCheck,
};
use autoheal_core::ports::*;
use autoheal_core::{AsgName, InstanceId, ServiceName, TargetGroupArn, Timestamp};

use crate::host::{diagnostics_for, elb_check, stdout_for};
use crate::scenario::{FaultKind, Lb, Protocol, Scenario, Timings};
use crate::store::MemoryStore;

/// Where a host is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Up {
    Running,
    /// A service restart: the port is closed until it is done.
    Restarting,
    /// Rebooting: unreachable until it is done.
    Rebooting,
    /// Launched, not yet running.
    Launching,
    /// Running, the application still starting.
    Booting,
    Terminated,
}

#[derive(Debug, Clone)]
struct Host {
    group: usize,
    /// Index within the group at creation (overload hits every other host).
    index: usize,
    faults: BTreeSet<FaultKind>,
    agent_down: bool,
    up: Up,
    booted_at: u64,
    flapping_until: Option<u64>,
    recurs_every_s: Option<u64>,
    /// Scenario second it launched (`None`: before the scenario began).
    launched_at: Option<u64>,
}

impl Host {
    /// The host still answers, but slowly: hung or starved, not down.
    fn answers_slowly(&self) -> bool {
        self.up == Up::Running
            && [
                FaultKind::AppHang,
                FaultKind::CpuRunaway,
                FaultKind::MemoryLeak,
            ]
            .iter()
            .any(|f| self.faults.contains(f))
    }
}

#[derive(Debug, Clone)]
struct Target {
    state: HealthState,
    reason: Option<ReasonCode>,
    ok: u32,
    fail: u32,
}

impl Target {
    /// A target just registered (by a person, autoheal or the Auto Scaling group).
    fn initial() -> Target {
        Target {
            state: HealthState::Initial,
            reason: Some(ReasonCode::InitialHealthChecking),
            ok: 0,
            fail: 0,
        }
    }
}

#[derive(Debug, Clone)]
struct Group {
    arn: TargetGroupArn,
    asg: AsgName,
    lb: Lb,
    protocol: Protocol,
    services: Vec<ServiceName>,
    fleet: Option<FaultKind>,
    targets: BTreeMap<InstanceId, Target>,
    /// Instances the scenario gives the group (its Auto Scaling desired capacity).
    size: usize,
}

#[derive(Debug, Clone)]
enum Event {
    FaultStart(usize),
    FaultEnd(usize),
    Ready(InstanceId),
    Launched(InstanceId),
    Drained(InstanceId),
    LeakReturns(InstanceId),
}

/// One mutating call the region received, for scoring (never read by the handlers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// Scenario second.
    pub at_s: u64,
    /// Index of the target group in the scenario.
    pub group: usize,
    /// `deregister`, `register`, `reboot`, `terminate`, `standby`, `exit-standby`,
    /// `set-unhealthy`, or `send <document>`.
    pub verb: String,
    pub instance: InstanceId,
}

impl Call {
    /// A call that changes the host itself (not only its registration).
    pub fn is_heal(&self) -> bool {
        self.verb == "reboot"
            || self.verb == "terminate"
            || self.verb == "send autoheal-RestartServices"
    }
}

/// ELB's Describe API as a fleet scan meets it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ElbApi {
    pub latency_min_ms: u64,
    pub latency_max_ms: u64,
    /// Token bucket size.
    pub burst: u32,
    /// Tokens per second.
    pub per_s: f64,
}

/// Calls the ELB API model counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ElbApiCounts {
    pub describe_target_groups: u64,
    pub describe_target_health: u64,
    pub throttled_attempts: u64,
    /// Calls that failed with `Throttled` after the SDK's attempts.
    pub throttle_failures: u64,
    pub max_in_flight: u64,
    #[serde(skip)]
    in_flight: u64,
}

#[derive(Debug)]
struct ElbApiState {
    api: ElbApi,
    dice: crate::chaos::Dice,
    /// Tokens, and the scenario second they were counted at.
    bucket: Mutex<(f64, f64)>,
    counts: Mutex<ElbApiCounts>,
}

/// When a scenario fault reached which host (ground truth for scoring).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultHit {
    /// Index into the scenario's faults.
    pub fault: usize,
    pub group: usize,
    /// The host, for a host fault; `None` for a fleet-wide one.
    pub instance: Option<InstanceId>,
    pub at_s: u64,
}

/// A group's targets as the load balancer counts them now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupCount {
    /// Targets `healthy`.
    pub serving: u32,
    /// Targets `unhealthy` (what CloudWatch's UnHealthyHostCount counts).
    pub unhealthy: u32,
    /// Targets registered in any state.
    pub registered: u32,
}

#[derive(Debug, Clone)]
struct Command {
    ready_at: u64,
    result: CommandResult,
}

#[derive(Debug)]
struct State {
    timings: Timings,
    faults: Vec<crate::scenario::FaultEvent>,
    groups: Vec<Group>,
    hosts: BTreeMap<InstanceId, Host>,
    events: BTreeMap<(u64, u64), Event>,
    seq: u64,
    /// Seconds processed so far.
    t: u64,
    next_check: u64,
    commands: BTreeMap<String, Command>,
    next_instance: u64,
    calls: Vec<Call>,
    hits: Vec<FaultHit>,
    transitions: Vec<Transition>,
    /// Group positions by ARN and by name; the live host in each (group, index) slot.
    by_arn: HashMap<TargetGroupArn, usize>,
    by_name: HashMap<String, usize>,
    slots: HashMap<(usize, usize), InstanceId>,
}

/// The simulated region of one scenario.
#[derive(Debug)]
pub struct Region {
    state: Mutex<State>,
    /// The scenario's API outages.
    outages: Vec<crate::scenario::Outage>,
    /// Chaos: the dice and the probability that a call attempt is throttled.
    chaos: Option<(std::sync::Arc<crate::chaos::Dice>, f64)>,
    /// ELB's Describe API as a fleet scan meets it: latency and a rate limit.
    elb_api: Option<ElbApiState>,
    pub store: MemoryStore,
    start: tokio::time::Instant,
    epoch: i64,
}

fn arn_of(name: &str) -> Result<TargetGroupArn, PortError> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    TargetGroupArn::parse(format!(
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/{name}/{h:016x}"
    ))
    .map_err(|e| PortError::InvalidRequest(e.to_string()))
}

fn not_found(tg: &TargetGroupArn, target: &str) -> PortError {
    PortError::TargetNotFound {
        target_group: tg.to_string(),
        target: target.to_owned(),
    }
}

fn instance_id(n: u64) -> Result<InstanceId, PortError> {
    InstanceId::parse(format!("i-{:017x}", 0x0a00_0000_0000_0000_u64 + n))
        .map_err(|e| PortError::InvalidRequest(e.to_string()))
}

impl State {
    /// The group of `tg`, or `TargetNotFound` naming it (and the target asked about).
    fn group(&self, tg: &TargetGroupArn, target: &str) -> Result<&Group, PortError> {
        self.by_arn
            .get(tg)
            .and_then(|&i| self.groups.get(i))
            .ok_or_else(|| not_found(tg, target))
    }

    fn group_mut(&mut self, tg: &TargetGroupArn, target: &str) -> Result<&mut Group, PortError> {
        let i = *self.by_arn.get(tg).ok_or_else(|| not_found(tg, target))?;
        self.groups.get_mut(i).ok_or_else(|| not_found(tg, target))
    }

    fn call(&mut self, verb: impl Into<String>, instance: &InstanceId) {
        let group = self.hosts.get(instance).map_or(usize::MAX, |h| h.group);
        self.calls.push(Call {
            at_s: self.t,
            group,
            verb: verb.into(),
            instance: instance.clone(),
        });
    }

    fn schedule(&mut self, at: u64, e: Event) {
        self.seq += 1;
        self.events.insert((at, self.seq), e);
    }

    /// What the load balancer's check sees on `host` at time `t`.
    fn probe(&self, host: &Host, t: u64) -> Option<ReasonCode> {
        match host.up {
            Up::Running => {}
            Up::Restarting => return Some(ReasonCode::FailedHealthChecks),
            _ => return Some(ReasonCode::Timeout),
        }
        let g = &self.groups[host.group];
        // Flapping: failing long enough for the load balancer to mark the target unhealthy,
        // then passing long enough to mark it healthy again, over and over.
        let i = self.timings.health_check_interval_s.max(1);
        let fail = (u64::from(self.timings.unhealthy_threshold) + 1) * i;
        let pass = (u64::from(self.timings.healthy_threshold) + 1) * i;
        if let Some(until) = host.flapping_until
            && t < until
            && (t / i * i) % (fail + pass) < fail
        {
            return Some(ReasonCode::FailedHealthChecks);
        }
        let fleet = self.fleet_for(host);
        if host.faults.is_empty() && fleet.is_none() {
            return None;
        }
        let faults: Vec<FaultKind> = host.faults.iter().copied().collect();
        elb_check(&faults, fleet, g.protocol)
    }

    /// The fleet-wide fault that reaches this host: an outage reaches every host; an overload
    /// every other one (slow, not dead) while the whole group serves, and every host once any of
    /// them is out (taken out of service, the surge lands on fewer hosts: the death spiral of
    /// replacing slow hosts).
    fn fleet_for(&self, host: &Host) -> Option<FaultKind> {
        match self.groups[host.group].fleet {
            Some(FaultKind::Overload) if host.index % 2 == 1 && self.full_strength(host.group) => {
                None
            }
            other => other,
        }
    }

    /// Every host of the group is up and registered (none booting, restarting or drained).
    fn full_strength(&self, group: usize) -> bool {
        let g = &self.groups[group];
        let up = self
            .hosts
            .values()
            .filter(|h| h.group == group && h.up == Up::Running)
            .count();
        up >= g.size
            && g.targets
                .values()
                .filter(|t| {
                    !matches!(
                        t.state,
                        HealthState::Draining | HealthState::UnhealthyDraining
                    )
                })
                .count()
                >= g.size
    }

    fn check(&mut self, t: u64) {
        let (healthy_th, unhealthy_th) = (
            self.timings.healthy_threshold,
            self.timings.unhealthy_threshold,
        );
        let mut results = Vec::new();
        for gi in 0..self.groups.len() {
            results.clear();
            results.extend(
                self.groups[gi]
                    .targets
                    .keys()
                    .map(|id| match self.hosts.get(id) {
                        Some(h) => self.probe(h, t),
                        None => Some(ReasonCode::Timeout),
                    }),
            );
            let group = &mut self.groups[gi];
            for ((id, target), result) in group.targets.iter_mut().zip(results.drain(..)) {
                let before = target.state;
                if matches!(
                    before,
                    HealthState::Draining | HealthState::UnhealthyDraining
                ) {
                    continue;
                }
                match result {
                    None => {
                        target.ok += 1;
                        target.fail = 0;
                        if matches!(before, HealthState::Initial | HealthState::Unhealthy)
                            && target.ok >= healthy_th
                        {
                            target.state = HealthState::Healthy;
                            target.reason = None;
                        }
                    }
                    Some(reason) => {
                        target.fail += 1;
                        target.ok = 0;
                        if matches!(before, HealthState::Healthy | HealthState::Initial)
                            && target.fail >= unhealthy_th
                        {
                            target.state = HealthState::Unhealthy;
                        }
                        if target.state == HealthState::Unhealthy {
                            target.reason = Some(reason);
                        }
                    }
                }
                if target.state != before {
                    let to = target.state;
                    self.transitions.push(Transition {
                        instance: id.clone(),
                        at: Timestamp(t as i64),
                        from: before,
                        to,
                    });
                }
            }
        }
    }

    fn apply(&mut self, at: u64, e: Event) -> Result<(), PortError> {
        match e {
            Event::FaultStart(i) => {
                let f = self.faults[i].clone();
                let Some(gi) = self.by_name.get(&f.target_group).copied() else {
                    return Ok(());
                };
                if f.kind.is_fleet_wide() {
                    self.groups[gi].fleet = Some(f.kind);
                    self.hits.push(FaultHit {
                        fault: i,
                        group: gi,
                        instance: None,
                        at_s: at,
                    });
                } else if let Some(n) = f.instance {
                    let Some(id) = self.slots.get(&(gi, n as usize)).cloned() else {
                        return Ok(());
                    };
                    self.hits.push(FaultHit {
                        fault: i,
                        group: gi,
                        instance: Some(id.clone()),
                        at_s: at,
                    });
                    if let Some(h) = self.hosts.get_mut(&id) {
                        match f.kind {
                            FaultKind::Flapping => h.flapping_until = f.duration_s.map(|d| at + d),
                            FaultKind::SsmAgentDown => {
                                h.agent_down = true;
                                if let Some(w) = f.with {
                                    h.faults.insert(w);
                                }
                            }
                            k => {
                                h.faults.insert(k);
                                h.recurs_every_s = f.recurs_every_s;
                            }
                        }
                    }
                }
                if let Some(d) = f.duration_s
                    && f.kind != FaultKind::Flapping
                {
                    self.schedule(at + d, Event::FaultEnd(i));
                }
            }
            Event::FaultEnd(i) => {
                let f = self.faults[i].clone();
                if let Some(gi) = self.by_name.get(&f.target_group).copied() {
                    if f.kind.is_fleet_wide() {
                        self.groups[gi].fleet = None;
                    } else if let Some(n) = f.instance
                        && let Some(id) = self.slots.get(&(gi, n as usize))
                        && let Some(h) = self.hosts.get_mut(id)
                    {
                        h.faults.remove(&f.kind);
                        if f.kind == FaultKind::SsmAgentDown {
                            h.agent_down = false;
                        }
                    }
                }
            }
            Event::Ready(id) => {
                if let Some(h) = self.hosts.get_mut(&id)
                    && matches!(h.up, Up::Restarting | Up::Rebooting | Up::Booting)
                {
                    if h.up == Up::Rebooting {
                        h.booted_at = at;
                    }
                    h.up = Up::Running;
                }
            }
            Event::Launched(id) => {
                let boot_s = self.timings.boot_s;
                if let Some(h) = self.hosts.get_mut(&id) {
                    h.up = Up::Booting;
                    h.booted_at = at;
                    let g = h.group;
                    self.groups[g].targets.insert(id.clone(), Target::initial());
                    self.schedule(at + boot_s, Event::Ready(id));
                }
            }
            Event::Drained(id) => {
                for g in &mut self.groups {
                    if g.targets.get(&id).is_some_and(|t| {
                        matches!(
                            t.state,
                            HealthState::Draining | HealthState::UnhealthyDraining
                        )
                    }) {
                        g.targets.remove(&id);
                    }
                }
            }
            Event::LeakReturns(id) => {
                if let Some(h) = self.hosts.get_mut(&id)
                    && h.up != Up::Terminated
                {
                    h.faults.insert(FaultKind::MemoryLeak);
                }
            }
        }
        Ok(())
    }

    /// Processes everything due up to `now` in time order.
    fn advance(&mut self, now: u64) -> Result<(), PortError> {
        loop {
            let next_event = self.events.keys().next().copied();
            match next_event {
                Some((at, seq)) if at <= now && at <= self.next_check => {
                    if let Some(e) = self.events.remove(&(at, seq)) {
                        self.t = at;
                        self.apply(at, e)?;
                    }
                }
                _ if self.next_check <= now => {
                    let t = self.next_check;
                    self.t = t;
                    self.check(t);
                    self.next_check += self.timings.health_check_interval_s;
                }
                _ => break,
            }
        }
        self.t = now;
        Ok(())
    }

    fn host(&self, id: &InstanceId) -> Result<&Host, PortError> {
        self.hosts
            .get(id)
            .filter(|h| h.up != Up::Terminated)
            .ok_or_else(|| PortError::InstanceNotFound(id.to_string()))
    }

    fn reachable(&self, h: &Host) -> bool {
        h.up == Up::Running
            && !h.agent_down
            && !h.faults.contains(&FaultKind::OsHang)
            && !h.faults.contains(&FaultKind::HardwareFailure)
    }
}

impl Region {
    /// The region of a scenario at its start (all hosts running and healthy, faults scheduled).
    pub fn new(s: &Scenario) -> Result<Region, PortError> {
        let mut st = State {
            timings: s.timings.clone(),
            faults: s.faults.clone(),
            groups: Vec::new(),
            hosts: BTreeMap::new(),
            events: BTreeMap::new(),
            seq: 0,
            t: 0,
            next_check: s.timings.health_check_interval_s,
            commands: BTreeMap::new(),
            next_instance: 0,
            calls: Vec::new(),
            hits: Vec::new(),
            by_arn: HashMap::new(),
            by_name: HashMap::new(),
            slots: HashMap::new(),
            transitions: Vec::new(),
        };
        for (gi, g) in s.fleet.target_groups.iter().enumerate() {
            let mut targets = BTreeMap::new();
            for n in 0..g.instances as usize {
                st.next_instance += 1;
                let id = instance_id(st.next_instance)?;
                st.slots.insert((gi, n), id.clone());
                st.hosts.insert(
                    id.clone(),
                    Host {
                        group: gi,
                        index: n,
                        faults: BTreeSet::new(),
                        agent_down: false,
                        up: Up::Running,
                        booted_at: 0,
                        flapping_until: None,
                        recurs_every_s: None,
                        launched_at: None,
                    },
                );
                targets.insert(
                    id,
                    Target {
                        state: HealthState::Healthy,
                        reason: None,
                        ok: s.timings.healthy_threshold,
                        fail: 0,
                    },
                );
            }
            let arn = arn_of(&g.name)?;
            st.by_arn.insert(arn.clone(), gi);
            st.by_name.insert(g.name.clone(), gi);
            st.groups.push(Group {
                arn,
                asg: AsgName::parse(g.asg.clone())
                    .map_err(|e| PortError::InvalidRequest(e.to_string()))?,
                lb: g.lb,
                protocol: g.protocol,
                services: g.services.clone(),
                fleet: None,
                targets,
                size: g.instances as usize,
            });
        }
        for (i, f) in s.faults.iter().enumerate() {
            st.schedule(f.at_s, Event::FaultStart(i));
        }
        // The services of each group are its instances' stored policy, as a deployment
        // configures them.
        let store = MemoryStore::default();
        for (id, h) in &st.hosts {
            let services = st.groups[h.group].services.clone();
            store.set_policy(
                id.clone(),
                autoheal_core::InstancePolicy {
                    services: Some(services),
                    ..Default::default()
                },
            );
        }
        Ok(Region {
            state: Mutex::new(st),
            outages: s.outages.clone(),
            chaos: None,
            elb_api: None,
            store,
            start: tokio::time::Instant::now(),
            epoch: 1_800_000_000,
        })
    }

    /// A call to `service`: an error while one of the scenario's outages of it lasts (as AWS
    /// answers 503 Service Unavailable; the error is `AwsServiceError`, retryable).
    /// ELB's Describe calls (DescribeTargetGroups, DescribeTargetHealth) take `latency_ms` and
    /// share a token bucket of `burst` refilled at `per_s`; an attempt that finds it empty is
    /// throttled and the SDK retries it (3 attempts, full-jitter backoff from 1 s).
    pub fn with_elb_api(mut self, api: ElbApi, seed: u64) -> Region {
        self.elb_api = Some(ElbApiState {
            api,
            dice: crate::chaos::Dice::new(seed),
            bucket: Mutex::new((f64::from(api.burst), 0.0)),
            counts: Mutex::new(ElbApiCounts::default()),
        });
        self
    }

    /// What the ELB API model saw.
    pub fn elb_api_counts(&self) -> ElbApiCounts {
        self.elb_api
            .as_ref()
            .and_then(|e| e.counts.lock().ok().map(|c| *c))
            .unwrap_or_default()
    }

    /// One Describe call under the ELB API model.
    async fn elb_describe(&self, describe_target_health: bool) -> Result<(), PortError> {
        let Some(e) = &self.elb_api else {
            return Ok(());
        };
        let count = |f: &dyn Fn(&mut ElbApiCounts)| {
            if let Ok(mut c) = e.counts.lock() {
                f(&mut c);
            }
        };
        count(&|c| {
            c.in_flight += 1;
            c.max_in_flight = c.max_in_flight.max(c.in_flight);
        });
        let mut backoff_s = 1.0;
        for _ in 0..crate::chaos::SDK_ATTEMPTS {
            let span = e.api.latency_max_ms.saturating_sub(e.api.latency_min_ms);
            let ms = e.api.latency_min_ms + (e.dice.roll() * span as f64) as u64;
            tokio::time::sleep(Duration::from_millis(ms)).await;
            let now = self.start.elapsed().as_secs_f64();
            let taken = e.bucket.lock().is_ok_and(|mut b| {
                let (tokens, last) = *b;
                let tokens = (tokens + (now - last) * e.api.per_s).min(f64::from(e.api.burst));
                if tokens >= 1.0 {
                    *b = (tokens - 1.0, now);
                    true
                } else {
                    *b = (tokens, now);
                    false
                }
            });
            if taken {
                count(&|c| {
                    c.in_flight -= 1;
                    if describe_target_health {
                        c.describe_target_health += 1;
                    } else {
                        c.describe_target_groups += 1;
                    }
                });
                return Ok(());
            }
            count(&|c| c.throttled_attempts += 1);
            tokio::time::sleep(Duration::from_secs_f64(e.dice.roll() * backoff_s)).await;
            backoff_s = (backoff_s * 2.0).min(20.0);
        }
        count(&|c| {
            c.in_flight -= 1;
            c.throttle_failures += 1;
        });
        Err(PortError::Throttled {
            service: "elasticloadbalancing",
            message: "Rate exceeded".to_owned(),
            source: None,
        })
    }

    /// Throttles every call attempt with this probability (the SDK retries each call up to
    /// [`crate::chaos::SDK_ATTEMPTS`] times), counting on `dice`.
    pub fn with_throttling(mut self, dice: std::sync::Arc<crate::chaos::Dice>, p: f64) -> Region {
        self.chaos = Some((dice, p));
        self
    }

    /// A call under chaos: `Throttled` when every SDK attempt was throttled.
    fn throttled(&self, service: &'static str) -> Result<(), PortError> {
        let Some((dice, p)) = &self.chaos else {
            return Ok(());
        };
        for _ in 0..crate::chaos::SDK_ATTEMPTS {
            if !dice.chance(*p) {
                return Ok(());
            }
            dice.count(|c| c.throttled_attempts += 1);
        }
        dice.count(|c| c.throttled_calls += 1);
        Err(PortError::Throttled {
            service,
            message: "Rate exceeded (simulated chaos)".to_owned(),
            source: None,
        })
    }

    fn available(&self, service: crate::scenario::ApiService) -> Result<(), PortError> {
        self.throttled(service.as_str())?;
        if self.outages.is_empty() {
            return Ok(());
        }
        let t = self.elapsed_s();
        match self
            .outages
            .iter()
            .find(|o| o.service == service && t >= o.at_s && t < o.at_s + o.duration_s)
        {
            Some(_) => Err(PortError::Service {
                service: service.as_str(),
                message: "503 Service Unavailable (a simulated outage of the API)".to_owned(),
                source: None,
            }),
            None => Ok(()),
        }
    }

    /// Lets the virtual clock run to scenario second `at_s`, looking at the fleet every `step_s`
    /// as a simulation does, so its health checks and faults happen on the way.
    pub async fn advance_to(&self, at_s: u64, step_s: u64) {
        let mut t = self.elapsed_s();
        while t < at_s {
            t = (t + step_s.max(1)).min(at_s);
            tokio::time::sleep_until(self.start + Duration::from_secs(t)).await;
            let _ = self.counts();
        }
    }

    /// The epoch second the scenario starts at.
    pub fn epoch(&self) -> i64 {
        self.epoch
    }

    /// Seconds since the scenario started.
    pub fn elapsed_s(&self) -> u64 {
        self.start.elapsed().as_secs()
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> Result<T, PortError>) -> Result<T, PortError> {
        let now = self.elapsed_s();
        let mut st = self
            .state
            .lock()
            .map_err(|_| PortError::InvalidRequest("the region's lock is poisoned".into()))?;
        st.advance(now)?;
        for tr in std::mem::take(&mut st.transitions) {
            self.store.push_transition(Transition {
                at: Timestamp(self.epoch + tr.at.0),
                ..tr
            });
        }
        f(&mut st)
    }

    /// The target groups' ARNs, in scenario order.
    pub fn target_group_arns(&self) -> Vec<TargetGroupArn> {
        self.with(|s| Ok(s.groups.iter().map(|g| g.arn.clone()).collect()))
            .unwrap_or_default()
    }

    /// Every mutating call so far (`reboot i-…`, `terminate i-…`, `send <document> i-…`).
    pub fn calls(&self) -> Vec<String> {
        self.call_log()
            .into_iter()
            .map(|c| format!("{} {}", c.verb, c.instance))
            .collect()
    }

    /// Every mutating call so far, with its time and group.
    pub fn call_log(&self) -> Vec<Call> {
        self.with(|s| Ok(s.calls.clone())).unwrap_or_default()
    }

    /// When each scenario fault reached which host so far (ground truth for scoring).
    pub fn fault_hits(&self) -> Vec<FaultHit> {
        self.with(|s| Ok(s.hits.clone())).unwrap_or_default()
    }

    /// Every group's counts now, in scenario order.
    pub fn counts(&self) -> Vec<GroupCount> {
        self.with(|s| {
            Ok(s.groups
                .iter()
                .map(|g| {
                    let mut c = GroupCount::default();
                    for t in g.targets.values() {
                        c.registered += 1;
                        match t.state {
                            HealthState::Healthy => c.serving += 1,
                            HealthState::Unhealthy => c.unhealthy += 1,
                            _ => {}
                        }
                    }
                    c
                })
                .collect())
        })
        .unwrap_or_default()
    }

    /// The targets of group `group` the load balancer marks unhealthy now, with the seconds since
    /// their instance launched (`None`: before the scenario).
    pub fn unhealthy_targets(&self, group: usize) -> Vec<(InstanceId, Option<u64>)> {
        self.with(|s| {
            let t = s.t;
            Ok(s.groups.get(group).map_or_else(Vec::new, |g| {
                g.targets
                    .iter()
                    .filter(|(_, x)| x.state == HealthState::Unhealthy)
                    .map(|(id, _)| {
                        let age = s
                            .hosts
                            .get(id)
                            .and_then(|h| h.launched_at)
                            .map(|l| t.saturating_sub(l));
                        (id.clone(), age)
                    })
                    .collect()
            }))
        })
        .unwrap_or_default()
    }

    /// Seconds of the scenario processed so far.
    pub fn now_s(&self) -> u64 {
        self.with(|s| Ok(s.t)).unwrap_or(0)
    }

    /// Targets serving in a group now.
    pub fn serving(&self, tg: &TargetGroupArn) -> usize {
        self.with(|s| {
            Ok(s.group(tg, "").map_or(0, |g| {
                g.targets
                    .values()
                    .filter(|t| t.state == HealthState::Healthy)
                    .count()
            }))
        })
        .unwrap_or(0)
    }
}

impl TargetGroupCatalog for Region {
    async fn target_groups(&self, sel: &TargetGroupSelector) -> PortResult<Vec<TargetGroupInfo>> {
        self.available(crate::scenario::ApiService::Elasticloadbalancing)?;
        self.elb_describe(false).await?;
        self.with(|s| {
            Ok(s.groups
                .iter()
                .filter(|g| match sel {
                    TargetGroupSelector::Arns(a) => a.contains(&g.arn),
                    TargetGroupSelector::Tag { .. } => true,
                })
                .map(|g| TargetGroupInfo {
                    arn: g.arn.clone(),
                    lb: if g.lb == Lb::Alb {
                        LbKind::Alb
                    } else {
                        LbKind::Nlb
                    },
                    protocol: format!("{:?}", g.protocol).to_uppercase(),
                    port: 8080,
                    health_check_port: Some(8080),
                    health_check_path: (g.protocol != Protocol::Tcp).then(|| "/healthz".to_owned()),
                })
                .collect())
        })
    }
}

impl TargetHealthSource for Region {
    async fn describe_target_health(&self, tg: &TargetGroupArn) -> PortResult<Vec<TargetHealth>> {
        self.available(crate::scenario::ApiService::Elasticloadbalancing)?;
        self.elb_describe(true).await?;
        self.with(|s| {
            let g = s.group(tg, "")?;
            // ALB's anomaly detection compares each target with the rest of its group: a target
            // that answers slowly while most do not is anomalous (a uniform slowdown is not).
            let slow: BTreeSet<&InstanceId> = if g.lb == Lb::Alb {
                g.targets
                    .keys()
                    .filter(|id| s.hosts.get(*id).is_some_and(|h| h.answers_slowly()))
                    .collect()
            } else {
                BTreeSet::new()
            };
            let relative = g.targets.len() >= 3 && slow.len() * 2 < g.targets.len();
            Ok(g.targets
                .iter()
                .map(|(id, t)| TargetHealth {
                    instance: id.clone(),
                    port: 8080,
                    state: t.state,
                    reason: t.reason.clone(),
                    description: None,
                    anomaly: (g.lb == Lb::Alb).then(|| Anomaly {
                        result: if relative && slow.contains(id) {
                            AnomalyResult::Anomalous
                        } else {
                            AnomalyResult::Normal
                        },
                        mitigation_in_effect: false,
                    }),
                })
                .collect())
        })
    }
}

impl TargetRegistry for Region {
    async fn register(&self, tg: &TargetGroupArn, i: &InstanceId, _: u16) -> PortResult<()> {
        self.available(crate::scenario::ApiService::Elasticloadbalancing)?;
        self.with(|s| {
            s.call("register", i);
            let g = s.group_mut(tg, i.as_str())?;
            g.targets.insert(i.clone(), Target::initial());
            Ok(())
        })
    }
    async fn deregister(&self, tg: &TargetGroupArn, i: &InstanceId, _: u16) -> PortResult<()> {
        self.available(crate::scenario::ApiService::Elasticloadbalancing)?;
        self.with(|s| {
            s.call("deregister", i);
            let delay = s.timings.deregistration_delay_s;
            let t = s.t;
            let g = s.group_mut(tg, i.as_str())?;
            if let Some(target) = g.targets.get_mut(i) {
                target.state = if target.state == HealthState::Unhealthy {
                    HealthState::UnhealthyDraining
                } else {
                    HealthState::Draining
                };
                target.reason = Some(ReasonCode::DeregistrationInProgress);
                s.schedule(t + delay, Event::Drained(i.clone()));
            }
            Ok(())
        })
    }
}

impl InstanceInventory for Region {
    async fn describe_instances(&self, ids: &[InstanceId]) -> PortResult<Vec<InstanceInfo>> {
        self.available(crate::scenario::ApiService::Ec2)?;
        let epoch = self.epoch;
        self.with(|s| {
            Ok(ids
                .iter()
                .filter_map(|id| {
                    let h = s.hosts.get(id).filter(|h| h.up != Up::Terminated)?;
                    let hw = h.faults.contains(&FaultKind::HardwareFailure);
                    Some(InstanceInfo {
                        instance: id.clone(),
                        state: if h.up == Up::Launching {
                            InstanceState::Pending
                        } else {
                            InstanceState::Running
                        },
                        instance_status: if hw || h.faults.contains(&FaultKind::OsHang) {
                            StatusCheck::Impaired
                        } else if h.up == Up::Launching {
                            StatusCheck::Initializing
                        } else {
                            StatusCheck::Ok
                        },
                        system_status: if hw {
                            StatusCheck::Impaired
                        } else {
                            StatusCheck::Ok
                        },
                        tags: BTreeMap::from([("autoheal:managed".to_owned(), "true".to_owned())]),
                        asg: Some(s.groups[h.group].asg.clone()),
                        // Hosts of the initial fleet launched a day before the scenario.
                        launched_at: Some(Timestamp(
                            epoch + h.launched_at.map_or(-86_400, |l| l as i64),
                        )),
                    })
                })
                .collect())
        })
    }
}

/// GetCommandInvocation returns at most this many characters of a command's output.
pub const SSM_STDOUT_LIMIT: usize = 24_000;

/// What SSM hands back of a command's output: the first 24,000 characters.
fn ssm_stdout(full: String) -> String {
    if full.chars().count() <= SSM_STDOUT_LIMIT {
        full
    } else {
        full.chars().take(SSM_STDOUT_LIMIT).collect()
    }
}

/// Faults a reboot clears (it restarts everything on the host, but cannot mend a disk or the
/// hardware).
const REBOOT_CLEARS: [FaultKind; 6] = [
    FaultKind::AppCrash,
    FaultKind::AppHang,
    FaultKind::MemoryLeak,
    FaultKind::CpuRunaway,
    FaultKind::OsHang,
    FaultKind::NetworkMisconfig,
];

impl InstanceControl for Region {
    async fn reboot(&self, i: &InstanceId) -> PortResult<()> {
        self.available(crate::scenario::ApiService::Ec2)?;
        self.with(|s| {
            s.call("reboot", i);
            let reboot_s = s.timings.reboot_s;
            let t = s.t;
            let h = s
                .hosts
                .get_mut(i)
                .filter(|h| h.up != Up::Terminated)
                .ok_or_else(|| PortError::InstanceNotFound(i.to_string()))?;
            for f in REBOOT_CLEARS {
                h.faults.remove(&f);
            }
            h.agent_down = false;
            h.up = Up::Rebooting;
            s.schedule(t + reboot_s, Event::Ready(i.clone()));
            Ok(())
        })
    }
}

impl FleetControl for Region {
    async fn describe_group(&self, name: &AsgName) -> PortResult<AsgInfo> {
        self.available(crate::scenario::ApiService::Autoscaling)?;
        self.with(|s| {
            let gi = s
                .groups
                .iter()
                .position(|g| &g.asg == name)
                .ok_or_else(|| PortError::InvalidRequest(format!("no group {name}")))?;
            let instances: Vec<AsgInstance> = s
                .hosts
                .iter()
                .filter(|(_, h)| h.group == gi && h.up != Up::Terminated)
                .map(|(id, h)| AsgInstance {
                    instance: id.clone(),
                    lifecycle_state: if h.up == Up::Launching {
                        "Pending"
                    } else {
                        "InService"
                    }
                    .to_owned(),
                    health_status: "Healthy".to_owned(),
                })
                .collect();
            let n = u32::try_from(instances.len()).unwrap_or(u32::MAX);
            Ok(AsgInfo {
                name: name.clone(),
                min_size: 1,
                max_size: n * 2,
                desired_capacity: n,
                instances,
            })
        })
    }
    async fn enter_standby(&self, _: &AsgName, i: &InstanceId, _: bool) -> PortResult<()> {
        self.available(crate::scenario::ApiService::Autoscaling)?;
        self.with(|s| {
            s.call("standby", i);
            Ok(())
        })
    }
    async fn exit_standby(&self, _: &AsgName, i: &InstanceId) -> PortResult<()> {
        self.available(crate::scenario::ApiService::Autoscaling)?;
        self.with(|s| {
            s.call("exit-standby", i);
            Ok(())
        })
    }
    async fn set_unhealthy(&self, i: &InstanceId) -> PortResult<()> {
        self.available(crate::scenario::ApiService::Autoscaling)?;
        self.with(|s| {
            s.call("set-unhealthy", i);
            Ok(())
        })
    }
    async fn terminate_in_group(&self, i: &InstanceId, _: bool) -> PortResult<String> {
        self.available(crate::scenario::ApiService::Autoscaling)?;
        self.with(|s| {
            s.call("terminate", i);
            terminate_host(s, i)
        })
    }
}

impl Region {
    /// Someone else terminates the instance (a person, another tool): not autoheal's call, so
    /// not in the call log; its Auto Scaling group replaces it.
    pub fn vanish(&self, i: &InstanceId) -> PortResult<()> {
        self.with(|s| terminate_host(s, i).map(drop))
    }
}

fn terminate_host(s: &mut State, i: &InstanceId) -> PortResult<String> {
    {
        {
            let (launch_s, delay, t) = (s.timings.launch_s, s.timings.deregistration_delay_s, s.t);
            let h = s
                .hosts
                .get_mut(i)
                .filter(|h| h.up != Up::Terminated)
                .ok_or_else(|| PortError::InstanceNotFound(i.to_string()))?;
            h.up = Up::Terminated;
            let (group, index) = (h.group, h.index);
            if let Some(target) = s.groups[group].targets.get_mut(i) {
                target.state = HealthState::Draining;
                target.reason = Some(ReasonCode::DeregistrationInProgress);
            }
            s.schedule(t + delay, Event::Drained(i.clone()));
            // As on AWS, the replacement launches at once, without waiting for the draining.
            s.next_instance += 1;
            let new = instance_id(s.next_instance)?;
            s.slots.insert((group, index), new.clone());
            s.hosts.insert(
                new.clone(),
                Host {
                    group,
                    index,
                    faults: BTreeSet::new(),
                    agent_down: false,
                    up: Up::Launching,
                    booted_at: t,
                    flapping_until: None,
                    recurs_every_s: None,
                    launched_at: Some(t),
                },
            );
            s.schedule(t + launch_s, Event::Launched(new));
            Ok(format!("activity-{}", s.next_instance))
        }
    }
}

impl CommandRunner for Region {
    async fn send(&self, r: &CommandRequest) -> PortResult<String> {
        self.available(crate::scenario::ApiService::Ssm)?;
        self.with(|s| {
            s.call(format!("send {}", r.document.name), &r.instance);
            let t = s.t;
            let (restart_s, latency) = (s.timings.restart_s, s.timings.ssm_command_s);
            let id = format!("cmd-{:06}", s.commands.len() + 1);
            let host = s.host(&r.instance)?.clone();
            let g = &s.groups[host.group];
            let param = |k: &str| {
                r.parameters
                    .get(k)
                    .and_then(|v| v.first())
                    .cloned()
                    .unwrap_or_default()
            };
            let (status, stdout) = if !s.reachable(&host) {
                (CommandStatus::Undeliverable, String::new())
            } else {
                match r.document.name.as_str() {
                    "autoheal-Diagnostics" => {
                        let faults: Vec<FaultKind> = host.faults.iter().copied().collect();
                        let d = diagnostics_for(
                            &faults,
                            s.fleet_for(&host),
                            &g.services,
                            8080,
                            g.protocol,
                            (g.protocol != Protocol::Tcp).then_some("/healthz"),
                            t.saturating_sub(host.booted_at) + 3600,
                        );
                        (CommandStatus::Success, ssm_stdout(stdout_for(&d)))
                    }
                    "autoheal-RestartServices" => {
                        let cleanup = param("Cleanup") == "true";
                        let stuck = host.faults.contains(&FaultKind::DiskCorruption)
                            || (host.faults.contains(&FaultKind::DiskFull) && !cleanup);
                        let h = s
                            .hosts
                            .get_mut(&r.instance)
                            .ok_or_else(|| PortError::InstanceNotFound(r.instance.to_string()))?;
                        if stuck {
                            (CommandStatus::Failed, String::new())
                        } else {
                            let leaked = h.faults.remove(&FaultKind::MemoryLeak);
                            for f in [
                                FaultKind::AppCrash,
                                FaultKind::AppHang,
                                FaultKind::CpuRunaway,
                                FaultKind::DiskFull,
                            ] {
                                h.faults.remove(&f);
                            }
                            h.up = Up::Restarting;
                            let recurs = h.recurs_every_s;
                            s.schedule(t + restart_s, Event::Ready(r.instance.clone()));
                            if let (true, Some(every)) = (leaked, recurs) {
                                s.schedule(t + every, Event::LeakReturns(r.instance.clone()));
                            }
                            (CommandStatus::Success, String::new())
                        }
                    }
                    "autoheal-VerifyHealth" => {
                        let faults: Vec<FaultKind> = host.faults.iter().copied().collect();
                        let ok = host.up == Up::Running
                            && elb_check(&faults, s.fleet_for(&host), g.protocol).is_none();
                        (
                            if ok {
                                CommandStatus::Success
                            } else {
                                CommandStatus::Failed
                            },
                            String::new(),
                        )
                    }
                    _ => (CommandStatus::Success, String::new()),
                }
            };
            let exit_code = match status {
                CommandStatus::Success => Some(0),
                CommandStatus::Failed => Some(1),
                _ => None,
            };
            s.commands.insert(
                id.clone(),
                Command {
                    ready_at: t + latency,
                    result: CommandResult {
                        command_id: id.clone(),
                        status,
                        stdout,
                        stderr: String::new(),
                        exit_code,
                    },
                },
            );
            Ok(id)
        })
    }
    async fn result(&self, id: &str, _: &InstanceId) -> PortResult<CommandResult> {
        self.available(crate::scenario::ApiService::Ssm)?;
        self.with(|s| {
            let c = s
                .commands
                .get(id)
                .ok_or_else(|| PortError::InvalidRequest(format!("no command {id}")))?;
            Ok(if s.t < c.ready_at {
                CommandResult {
                    status: CommandStatus::InProgress,
                    stdout: String::new(),
                    exit_code: None,
                    ..c.result.clone()
                }
            } else {
                c.result.clone()
            })
        })
    }
    async fn agent_status(&self, i: &InstanceId) -> PortResult<AgentPing> {
        self.available(crate::scenario::ApiService::Ssm)?;
        self.with(|s| {
            let h = s.host(i)?;
            Ok(if s.reachable(h) || matches!(h.up, Up::Restarting) {
                AgentPing::Online
            } else {
                AgentPing::ConnectionLost
            })
        })
    }
}

impl IncidentStore for Region {
    async fn put_incident(&self, r: &autoheal_core::IncidentRecord) -> PortResult<()> {
        self.throttled("dynamodb")?;
        self.with(|_| Ok(()))?;
        self.store.put_incident(r).await
    }
    async fn get_incident(
        &self,
        id: &autoheal_core::IncidentId,
    ) -> PortResult<Option<autoheal_core::IncidentRecord>> {
        self.throttled("dynamodb")?;
        self.store.get_incident(id).await
    }
    async fn list_incidents(
        &self,
        q: &IncidentQuery,
    ) -> PortResult<Vec<autoheal_core::IncidentRecord>> {
        self.throttled("dynamodb")?;
        self.store.list_incidents(q).await
    }
    async fn acquire_lease(
        &self,
        i: &InstanceId,
        h: &autoheal_core::IncidentId,
        now: Timestamp,
        ttl: u64,
    ) -> PortResult<Lease> {
        self.throttled("dynamodb")?;
        self.store.acquire_lease(i, h, now, ttl).await
    }
    async fn release_lease(&self, i: &InstanceId, h: &autoheal_core::IncidentId) -> PortResult<()> {
        self.throttled("dynamodb")?;
        self.store.release_lease(i, h).await?;
        self.store.released_at(i, h, self.now());
        Ok(())
    }
    async fn active_leases(&self, ids: &[InstanceId], now: Timestamp) -> PortResult<Vec<Lease>> {
        self.throttled("dynamodb")?;
        self.store.active_leases(ids, now).await
    }
    async fn instance_policy(
        &self,
        i: &InstanceId,
    ) -> PortResult<Option<autoheal_core::InstancePolicy>> {
        self.throttled("dynamodb")?;
        self.store.instance_policy(i).await
    }
    async fn history(
        &self,
        i: &InstanceId,
        since: Timestamp,
    ) -> PortResult<autoheal_core::History> {
        self.throttled("dynamodb")?;
        self.with(|_| Ok(()))?;
        self.store.history(i, since).await
    }
    async fn record_heal(&self, h: &autoheal_core::incident::HealRecord) -> PortResult<()> {
        self.throttled("dynamodb")?;
        self.store.record_heal(h).await
    }
    async fn record_transition(&self, t: &Transition) -> PortResult<()> {
        self.throttled("dynamodb")?;
        self.store.record_transition(t).await
    }
}

impl Notifier for Region {
    async fn notify(&self, n: &Notification) -> PortResult<()> {
        self.throttled("sns")?;
        self.store.notify(n).await
    }
}

impl Clock for Region {
    fn now(&self) -> Timestamp {
        Timestamp(
            self.epoch
                .saturating_add(i64::try_from(self.elapsed_s()).unwrap_or(i64::MAX)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssm_cuts_output_at_24000_characters_as_get_command_invocation_does() {
        assert_eq!(ssm_stdout("short".into()), "short");
        let long = "é".repeat(30_000);
        let cut = ssm_stdout(long);
        assert_eq!(cut.chars().count(), SSM_STDOUT_LIMIT);
    }
}
