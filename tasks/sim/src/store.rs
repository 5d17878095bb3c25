//! An in-memory incident store and notifier: incidents, leases with expiry, instance policy,
//! heal and health history, and the notifications sent. The embedded on-disk store
//! ([`crate::disk`]) is another implementation of the same port.

use std::collections::BTreeMap;
use std::sync::Mutex;

use autoheal_core::error::PortError;
use autoheal_core::incident::{HealRecord, History, IncidentRecord, Transition};
use autoheal_core::ports::{
    IncidentQuery, IncidentStore, Lease, Notification, Notifier, PortResult,
};
use autoheal_core::{IncidentId, InstanceId, InstancePolicy, Timestamp};

#[derive(Debug, Default)]
struct Tables {
    incidents: BTreeMap<IncidentId, IncidentRecord>,
    /// At most one lease per instance.
    leases: BTreeMap<InstanceId, Lease>,
    heals: Vec<HealRecord>,
    transitions: Vec<Transition>,
    /// Positions in `heals` and `transitions` by instance (a simulated fleet has thousands).
    heals_of: BTreeMap<InstanceId, Vec<usize>>,
    transitions_of: BTreeMap<InstanceId, Vec<usize>>,
    policies: BTreeMap<InstanceId, InstancePolicy>,
    notifications: Vec<Notification>,
    /// Every incident that ever took a lease (what must end recorded).
    holders: std::collections::BTreeSet<IncidentId>,
    /// Every lease held: instance, holder, taken, released (or its expiry when never released).
    lease_log: Vec<(InstanceId, IncidentId, Timestamp, Timestamp)>,
}

/// The store and notifier of a simulated (or test) world.
#[derive(Debug, Default)]
pub struct MemoryStore {
    tables: Mutex<Tables>,
}

impl MemoryStore {
    fn with<T>(&self, f: impl FnOnce(&mut Tables) -> T) -> Result<T, PortError> {
        let mut t = self
            .tables
            .lock()
            .map_err(|_| PortError::InvalidRequest("the store's lock is poisoned".into()))?;
        Ok(f(&mut t))
    }

    pub fn incidents(&self) -> Vec<IncidentRecord> {
        self.with(|t| t.incidents.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn heals(&self) -> Vec<HealRecord> {
        self.with(|t| t.heals.clone()).unwrap_or_default()
    }

    pub fn transitions(&self) -> Vec<Transition> {
        self.with(|t| t.transitions.clone()).unwrap_or_default()
    }

    pub fn notifications(&self) -> Vec<Notification> {
        self.with(|t| t.notifications.clone()).unwrap_or_default()
    }

    /// The leases held now (expired or not).
    pub fn leases(&self) -> Vec<Lease> {
        self.with(|t| t.leases.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Records when a lease was released (the simulated region knows the time). A lease no
    /// longer held keeps the end it had (its earlier release or its expiry, both before now).
    pub fn released_at(&self, i: &InstanceId, holder: &IncidentId, now: Timestamp) {
        let _ = self.with(|t| {
            if let Some(e) = t
                .lease_log
                .iter_mut()
                .rev()
                .find(|e| &e.0 == i && &e.1 == holder)
            {
                e.3 = e.3.min(now);
            }
        });
    }

    /// Every lease held: instance, holder, taken, released or expired.
    pub fn lease_log(&self) -> Vec<(InstanceId, IncidentId, Timestamp, Timestamp)> {
        self.with(|t| t.lease_log.clone()).unwrap_or_default()
    }

    /// Every incident that ever took a lease.
    pub fn lease_holders(&self) -> Vec<IncidentId> {
        self.with(|t| t.holders.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn set_policy(&self, i: InstanceId, p: InstancePolicy) {
        let _ = self.with(|t| t.policies.insert(i, p));
    }

    /// Records a health transition (the world calls this as its load balancer changes a state).
    pub fn push_transition(&self, tr: Transition) {
        let _ = self.with(|t| t.push_transition(tr));
    }
}

impl Tables {
    fn push_transition(&mut self, tr: Transition) {
        self.transitions_of
            .entry(tr.instance.clone())
            .or_default()
            .push(self.transitions.len());
        self.transitions.push(tr);
    }

    fn push_heal(&mut self, h: HealRecord) {
        self.heals_of
            .entry(h.instance.clone())
            .or_default()
            .push(self.heals.len());
        self.heals.push(h);
    }
}

impl IncidentStore for MemoryStore {
    async fn put_incident(&self, r: &IncidentRecord) -> PortResult<()> {
        self.with(|t| {
            t.incidents.insert(r.incident.id.clone(), r.clone());
        })
    }
    async fn get_incident(&self, id: &IncidentId) -> PortResult<Option<IncidentRecord>> {
        self.with(|t| t.incidents.get(id).cloned())
    }
    async fn list_incidents(&self, q: &IncidentQuery) -> PortResult<Vec<IncidentRecord>> {
        self.with(|t| {
            t.incidents
                .values()
                .filter(|r| {
                    q.instance
                        .as_ref()
                        .is_none_or(|i| &r.incident.instance == i)
                })
                .filter(|r| q.since.is_none_or(|s| r.incident.detected_at >= s))
                .take(q.limit.map_or(usize::MAX, |l| l as usize))
                .cloned()
                .collect()
        })
    }
    async fn acquire_lease(
        &self,
        i: &InstanceId,
        holder: &IncidentId,
        now: Timestamp,
        ttl_s: u64,
    ) -> PortResult<Lease> {
        self.with(|t| {
            Lease::check(t.leases.get(i), holder, now)?;
            let lease = Lease {
                instance: i.clone(),
                holder: holder.clone(),
                expires_at: now.plus_secs(ttl_s),
            };
            let renewed = t
                .leases
                .get(i)
                .is_some_and(|l| &l.holder == holder && l.expires_at > now);
            t.leases.insert(i.clone(), lease.clone());
            t.holders.insert(holder.clone());
            match t
                .lease_log
                .iter_mut()
                .rev()
                .find(|e| &e.0 == i && &e.1 == holder)
            {
                Some(e) if renewed => e.3 = lease.expires_at,
                _ => t
                    .lease_log
                    .push((i.clone(), holder.clone(), now, lease.expires_at)),
            }
            Ok(lease)
        })?
    }
    async fn release_lease(&self, i: &InstanceId, holder: &IncidentId) -> PortResult<()> {
        self.with(|t| {
            if t.leases.get(i).is_some_and(|l| &l.holder == holder) {
                t.leases.remove(i);
            }
        })
    }
    async fn active_leases(&self, ids: &[InstanceId], now: Timestamp) -> PortResult<Vec<Lease>> {
        self.with(|t| {
            ids.iter()
                .filter_map(|i| t.leases.get(i))
                .filter(|l| l.expires_at > now)
                .cloned()
                .collect()
        })
    }
    async fn instance_policy(&self, i: &InstanceId) -> PortResult<Option<InstancePolicy>> {
        self.with(|t| t.policies.get(i).cloned())
    }
    async fn history(&self, i: &InstanceId, since: Timestamp) -> PortResult<History> {
        self.with(|t| History {
            heals: t
                .heals_of
                .get(i)
                .into_iter()
                .flatten()
                .filter_map(|n| t.heals.get(*n))
                .filter(|h| h.started_at >= since)
                .cloned()
                .collect(),
            transitions: t
                .transitions_of
                .get(i)
                .into_iter()
                .flatten()
                .filter_map(|n| t.transitions.get(*n))
                .filter(|x| x.at >= since)
                .cloned()
                .collect(),
        })
    }
    async fn record_heal(&self, h: &HealRecord) -> PortResult<()> {
        self.with(|t| t.push_heal(h.clone()))
    }
    async fn record_transition(&self, tr: &Transition) -> PortResult<()> {
        self.with(|t| t.push_transition(tr.clone()))
    }
}

impl Notifier for MemoryStore {
    async fn notify(&self, n: &Notification) -> PortResult<()> {
        self.with(|t| t.notifications.push(n.clone()))
    }
}
