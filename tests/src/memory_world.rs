//! An in-memory world behind every port, for end-to-end tests of the real handlers on the real
//! state machine. It is test support, not the simulator (issue 4): health does not evolve with
//! health checks over time, it changes only when a heal acts. Each host keeps the raw outputs a
//! real host would give (the diagnostics document it would print, its agent and status checks),
//! never a fault kind.

use std::collections::BTreeMap;
use std::sync::Mutex;

use autoheal_core::error::PortError;
use autoheal_core::health::{HealthState, ReasonCode, TargetHealth};
use autoheal_core::incident::{HealRecord, History, IncidentRecord, Transition};
use autoheal_core::observe::{
    AgentPing, CommandResult, CommandStatus, InstanceInfo, InstanceState, StatusCheck,
};
use autoheal_core::ports::*;
use autoheal_core::{AsgName, IncidentId, InstanceId, InstancePolicy, TargetGroupArn, Timestamp};

use autoheal_sim::MemoryStore;

use crate::{fixture, iid, tg};

/// One host: what it answers, and what each heal does to it.
#[derive(Debug, Clone)]
pub struct Host {
    /// `tests/fixtures/diagnostics/<name>.json`: what ssm/diagnostics.yml prints on it now.
    pub prints: &'static str,
    pub reason: Option<ReasonCode>,
    pub agent: AgentPing,
    pub instance_status: StatusCheck,
    pub system_status: StatusCheck,
    /// A service restart makes it healthy.
    pub restart_fixes: bool,
    /// A reboot makes it healthy.
    pub reboot_fixes: bool,
}

impl Host {
    pub fn healthy() -> Host {
        Host {
            prints: "healthy",
            reason: None,
            agent: AgentPing::Online,
            instance_status: StatusCheck::Ok,
            system_status: StatusCheck::Ok,
            restart_fixes: true,
            reboot_fixes: true,
        }
    }

    /// A host whose diagnostics print `prints` and whose load balancer reports `reason`.
    pub fn failing(prints: &'static str, reason: ReasonCode) -> Host {
        Host {
            prints,
            reason: Some(reason),
            ..Host::healthy()
        }
    }

    fn is_healthy(&self) -> bool {
        self.prints == "healthy" && self.reason.is_none()
    }

    fn heal(&mut self) {
        *self = Host {
            restart_fixes: self.restart_fixes,
            reboot_fixes: self.reboot_fixes,
            ..Host::healthy()
        };
    }
}

#[derive(Debug, Default)]
struct State {
    hosts: BTreeMap<InstanceId, Host>,
    registered: BTreeMap<InstanceId, bool>,
    standby: Vec<InstanceId>,
    commands: BTreeMap<String, CommandResult>,
    launched: u32,
    /// Every mutating call, in order (`reboot i-…`, `terminate i-…`, `send autoheal-RestartServices i-…`).
    calls: Vec<String>,
}

/// The world: one target group `web` of an Auto Scaling group `web-asg`.
#[derive(Debug)]
pub struct MemoryWorld {
    state: Mutex<State>,
    /// Incidents, leases, policy, history and notifications.
    pub store: MemoryStore,
    start: tokio::time::Instant,
    epoch: i64,
}

impl MemoryWorld {
    /// A group of `hosts` (instance `iid(n)` for host n), all registered.
    pub fn new(hosts: Vec<Host>) -> MemoryWorld {
        let mut s = State::default();
        for (n, h) in hosts.into_iter().enumerate() {
            s.registered.insert(iid(n), true);
            s.hosts.insert(iid(n), h);
        }
        MemoryWorld {
            state: Mutex::new(s),
            store: MemoryStore::default(),
            start: tokio::time::Instant::now(),
            epoch: 1_800_000_000,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> Result<T, PortError> {
        let mut s = self
            .state
            .lock()
            .map_err(|_| PortError::InvalidRequest("the world's lock is poisoned".into()))?;
        Ok(f(&mut s))
    }

    /// Every mutating call so far.
    pub fn calls(&self) -> Vec<String> {
        self.with(|s| s.calls.clone()).unwrap_or_default()
    }

    pub fn incidents(&self) -> Vec<IncidentRecord> {
        self.store.incidents()
    }

    pub fn notifications(&self) -> Vec<Notification> {
        self.store.notifications()
    }

    pub fn heals(&self) -> Vec<HealRecord> {
        self.store.heals()
    }

    /// The target's health as the load balancer reports it now.
    pub fn health_of(&self, i: &InstanceId) -> Option<HealthState> {
        self.with(|s| target_health(s, i).map(|t| t.state))
            .ok()
            .flatten()
    }

    pub fn set_policy(&self, i: InstanceId, p: InstancePolicy) {
        self.store.set_policy(i, p);
    }
}

fn target_health(s: &State, i: &InstanceId) -> Option<TargetHealth> {
    let host = s.hosts.get(i)?;
    let registered = *s.registered.get(i)?;
    let (state, reason) = if !registered {
        (
            HealthState::Draining,
            Some(ReasonCode::DeregistrationInProgress),
        )
    } else if host.is_healthy() {
        (HealthState::Healthy, None)
    } else {
        (
            HealthState::Unhealthy,
            host.reason.clone().or(Some(ReasonCode::FailedHealthChecks)),
        )
    };
    Some(TargetHealth {
        instance: i.clone(),
        port: 8080,
        state,
        reason,
        description: None,
        anomaly: None,
    })
}

fn group() -> TargetGroupInfo {
    TargetGroupInfo {
        arn: tg(),
        lb: LbKind::Alb,
        protocol: "HTTP".into(),
        port: 8080,
        health_check_port: Some(8080),
        health_check_path: Some("/healthz".into()),
    }
}

fn asg() -> Result<AsgName, PortError> {
    AsgName::parse("web-asg").map_err(|e| PortError::InvalidRequest(e.to_string()))
}

impl TargetGroupCatalog for MemoryWorld {
    async fn target_groups(&self, _: &TargetGroupSelector) -> PortResult<Vec<TargetGroupInfo>> {
        Ok(vec![group()])
    }
}

impl TargetHealthSource for MemoryWorld {
    async fn describe_target_health(&self, arn: &TargetGroupArn) -> PortResult<Vec<TargetHealth>> {
        if arn != &tg() {
            return Err(PortError::TargetNotFound {
                target_group: arn.to_string(),
                target: String::new(),
            });
        }
        self.with(|s| s.hosts.keys().filter_map(|i| target_health(s, i)).collect())
    }
}

impl TargetRegistry for MemoryWorld {
    async fn register(&self, _: &TargetGroupArn, i: &InstanceId, _: u16) -> PortResult<()> {
        self.with(|s| {
            s.calls.push(format!("register {i}"));
            s.registered.insert(i.clone(), true);
        })
    }
    async fn deregister(&self, _: &TargetGroupArn, i: &InstanceId, _: u16) -> PortResult<()> {
        self.with(|s| {
            s.calls.push(format!("deregister {i}"));
            s.registered.insert(i.clone(), false);
        })
    }
}

impl InstanceInventory for MemoryWorld {
    async fn describe_instances(&self, ids: &[InstanceId]) -> PortResult<Vec<InstanceInfo>> {
        let asg = asg()?;
        self.with(|s| {
            ids.iter()
                .filter_map(|i| {
                    s.hosts.get(i).map(|h| InstanceInfo {
                        instance: i.clone(),
                        state: InstanceState::Running,
                        instance_status: h.instance_status,
                        system_status: h.system_status,
                        tags: BTreeMap::from([("autoheal:managed".to_owned(), "true".to_owned())]),
                        asg: Some(asg.clone()),
                        launched_at: None,
                    })
                })
                .collect()
        })
    }
}

impl InstanceControl for MemoryWorld {
    async fn reboot(&self, i: &InstanceId) -> PortResult<()> {
        self.with(|s| {
            s.calls.push(format!("reboot {i}"));
            if let Some(h) = s.hosts.get_mut(i)
                && h.reboot_fixes
            {
                h.heal();
            }
        })
    }
}

impl FleetControl for MemoryWorld {
    async fn describe_group(&self, name: &AsgName) -> PortResult<AsgInfo> {
        let n = self.with(|s| s.hosts.len())?;
        let size = u32::try_from(n).unwrap_or(u32::MAX);
        Ok(AsgInfo {
            name: name.clone(),
            min_size: size,
            max_size: size * 2,
            desired_capacity: size,
            instances: Vec::new(),
        })
    }
    async fn enter_standby(&self, _: &AsgName, i: &InstanceId, _: bool) -> PortResult<()> {
        self.with(|s| {
            s.calls.push(format!("standby {i}"));
            s.standby.push(i.clone());
        })
    }
    async fn exit_standby(&self, _: &AsgName, i: &InstanceId) -> PortResult<()> {
        self.with(|s| {
            s.calls.push(format!("exit-standby {i}"));
            s.standby.retain(|x| x != i);
        })
    }
    async fn set_unhealthy(&self, i: &InstanceId) -> PortResult<()> {
        self.with(|s| s.calls.push(format!("set-unhealthy {i}")))
    }
    async fn terminate_in_group(&self, i: &InstanceId, _: bool) -> PortResult<String> {
        self.with(|s| {
            s.calls.push(format!("terminate {i}"));
            s.hosts.remove(i);
            s.registered.remove(i);
            s.launched += 1;
            let new = iid(1000 + s.launched as usize);
            s.hosts.insert(new.clone(), Host::healthy());
            s.registered.insert(new, true);
            format!("activity-{}", s.launched)
        })
    }
}

impl CommandRunner for MemoryWorld {
    async fn send(&self, r: &CommandRequest) -> PortResult<String> {
        let printed = self.with(|s| s.hosts.get(&r.instance).map(|h| h.prints))?;
        let stdout = match (r.document.name.as_str(), printed) {
            ("autoheal-Diagnostics", Some(name)) => fixture(&format!("diagnostics/{name}.json")),
            _ => String::new(),
        };
        self.with(|s| {
            s.calls
                .push(format!("send {} {}", r.document.name, r.instance));
            let id = format!("cmd-{}", s.commands.len() + 1);
            let Some(host) = s.hosts.get_mut(&r.instance) else {
                return Err(PortError::InstanceNotFound(r.instance.to_string()));
            };
            let status = if host.agent != AgentPing::Online {
                CommandStatus::Undeliverable
            } else {
                match r.document.name.as_str() {
                    "autoheal-RestartServices" => {
                        if host.restart_fixes {
                            host.heal();
                        }
                        CommandStatus::Success
                    }
                    "autoheal-VerifyHealth" if host.is_healthy() => CommandStatus::Success,
                    "autoheal-VerifyHealth" => CommandStatus::Failed,
                    _ => CommandStatus::Success,
                }
            };
            let exit_code = match status {
                CommandStatus::Success => Some(0),
                CommandStatus::Failed => Some(1),
                _ => None,
            };
            s.commands.insert(
                id.clone(),
                CommandResult {
                    command_id: id.clone(),
                    status,
                    stdout,
                    stderr: String::new(),
                    exit_code,
                },
            );
            Ok(id)
        })?
    }
    async fn result(&self, id: &str, _: &InstanceId) -> PortResult<CommandResult> {
        self.with(|s| s.commands.get(id).cloned())?
            .ok_or_else(|| PortError::InvalidRequest(format!("no command {id}")))
    }
    async fn agent_status(&self, i: &InstanceId) -> PortResult<AgentPing> {
        self.with(|s| s.hosts.get(i).map_or(AgentPing::NotRegistered, |h| h.agent))
    }
}

impl IncidentStore for MemoryWorld {
    async fn put_incident(&self, r: &IncidentRecord) -> PortResult<()> {
        self.store.put_incident(r).await
    }
    async fn get_incident(&self, id: &IncidentId) -> PortResult<Option<IncidentRecord>> {
        self.store.get_incident(id).await
    }
    async fn list_incidents(&self, q: &IncidentQuery) -> PortResult<Vec<IncidentRecord>> {
        self.store.list_incidents(q).await
    }
    async fn acquire_lease(
        &self,
        i: &InstanceId,
        holder: &IncidentId,
        now: Timestamp,
        ttl_s: u64,
    ) -> PortResult<Lease> {
        self.store.acquire_lease(i, holder, now, ttl_s).await
    }
    async fn release_lease(&self, i: &InstanceId, holder: &IncidentId) -> PortResult<()> {
        self.store.release_lease(i, holder).await
    }
    async fn active_leases(&self, ids: &[InstanceId], now: Timestamp) -> PortResult<Vec<Lease>> {
        self.store.active_leases(ids, now).await
    }
    async fn instance_policy(&self, i: &InstanceId) -> PortResult<Option<InstancePolicy>> {
        self.store.instance_policy(i).await
    }
    async fn history(&self, i: &InstanceId, since: Timestamp) -> PortResult<History> {
        self.store.history(i, since).await
    }
    async fn record_heal(&self, h: &HealRecord) -> PortResult<()> {
        self.store.record_heal(h).await
    }
    async fn record_transition(&self, t: &Transition) -> PortResult<()> {
        self.store.record_transition(t).await
    }
}

impl Notifier for MemoryWorld {
    async fn notify(&self, n: &Notification) -> PortResult<()> {
        self.store.notify(n).await
    }
}

impl Clock for MemoryWorld {
    fn now(&self) -> Timestamp {
        let elapsed = i64::try_from(self.start.elapsed().as_secs()).unwrap_or(i64::MAX);
        Timestamp(self.epoch.saturating_add(elapsed))
    }
}
