//! DynamoDB: [`IncidentStore`] over the three tables of the CDK stack (`cdk/lib/autoheal.ts`),
//! with the semantics of the in-memory and embedded stores (`tasks/sim/src/store.rs`,
//! `tasks/sim/src/disk.rs`).
//!
//! # Tables
//!
//! The stack creates every table with a string partition key, TTL on `expires_at`, and one GSI
//! on the incidents table. This adapter uses exactly those names and types:
//!
//! | table (variable) | key | items |
//! |---|---|---|
//! | incidents (`AUTOHEAL_INCIDENTS_TABLE`) | `incident_id` S; GSI [`INCIDENTS_INDEX`] = `instance_id` S + `detected_at` S | incidents, heal attempts and health transitions |
//! | leases (`AUTOHEAL_LEASES_TABLE`) | `instance_id` S | one lease per instance |
//! | policies (`AUTOHEAL_POLICIES_TABLE`) | `instance_id` S | one instance policy per instance |
//!
//! **Incidents table.** The stack has no table of its own for history, so heal attempts and
//! transitions live next to the incidents, told apart by a `kind` attribute (`incident`, `heal`,
//! `transition`). Every item carries:
//!
//! | attribute | type | value |
//! |---|---|---|
//! | `incident_id` | S | the incident id; `heal#<instance>#<secs>#<action>#<outcome>#<incident or ->` for a heal; `transition#<instance>#<secs>#<from>#<to>` for a transition. Incident ids cannot contain `#`, so the three never collide |
//! | `kind` | S | `incident`, `heal` or `transition` |
//! | `instance_id` | S | the instance (GSI partition key) |
//! | `detected_at` | S | the time in RFC 3339 UTC (`2026-11-24T21:00:00Z`): the incident's detection, the heal's start, the transition's time. The GSI sort key is a *string* in the stack; fixed-width RFC 3339 sorts lexicographically in time order, so `>=` key conditions work |
//! | `expires_at` | N | epoch seconds of the write + `AUTOHEAL_RECORD_TTL_DAYS` days (the stack's TTL attribute); left out when the setting is 0 (kept forever) |
//! | `record` | S | the whole domain value ([`IncidentRecord`], [`HealRecord`], [`Transition`]) as JSON |
//!
//! A heal's key is made of the record's own fields, so writing the same record twice (a Lambda
//! retry) stores it once. `list_incidents` of an instance and `history` are one Query of the GSI
//! (`instance_id = :i AND detected_at >= :since`, filtered on `kind`); `list_incidents` without
//! an instance is a Scan of the table filtered on `kind` (an operator's listing: no task role is
//! granted `dynamodb:Scan`). Like the other stores, incidents are listed in incident-id order
//! and `limit` applies after that order (so every page is read before the limit is applied).
//!
//! **Leases table.** `instance_id` S, `holder` S (the incident id), `expires_at` N (epoch
//! seconds, also the table's TTL attribute, so DynamoDB eventually deletes expired leases). A
//! lease is taken with one conditional PutItem,
//! `attribute_not_exists(instance_id) OR expires_at <= :now OR holder = :holder`: free, expired,
//! or already ours (re-acquiring extends it). A failed condition returns the item that failed it
//! (`ReturnValuesOnConditionCheckFailure=ALL_OLD`; a strongly consistent GetItem if it is not
//! there) and becomes `LeaseHeld` with its holder and expiry; if that item no longer blocks (it
//! was released in between), the put is tried again. Release is a DeleteItem conditional on
//! `holder = :holder`; a failed condition is not an error (another incident holds it now, or it
//! is gone). `active_leases` is a strongly consistent BatchGetItem in chunks of 100 keys, with
//! unprocessed keys retried with backoff.
//!
//! **Policies table.** `instance_id` S and `policy` S: the instance policy (docs/policy.md) as
//! JSON, e.g. `{"allowed_actions": ["restart_service", "reboot"], "cooldown_s": 1800}`. An absent
//! item is no policy; an item that does not decode is `InvalidInput` naming the instance and the
//! fix.

use std::collections::HashMap;
use std::time::Duration;

use autoheal_core::error::PortError;
use autoheal_core::incident::{HealOutcome, HealRecord, History, IncidentRecord, Transition};
use autoheal_core::ports::{Clock, IncidentQuery, IncidentStore, Lease, PortResult};
use autoheal_core::{IncidentId, InstanceId, InstancePolicy, Timestamp};
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, ReturnValuesOnConditionCheckFailure,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Aws;
use crate::Settings;
use crate::error::{self, Call};

/// One DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// The incidents table's GSI (`AUTOHEAL_INCIDENTS_INDEX` in the stack, `INCIDENTS_INDEX` in
/// `cdk/lib/tasks.ts`).
pub const INCIDENTS_INDEX: &str = "InstanceId-Timestamp";

/// Attribute names.
pub mod attr {
    /// Partition key of the incidents table.
    pub const INCIDENT_ID: &str = "incident_id";
    /// Partition key of the leases and policies tables; GSI partition key of incidents.
    pub const INSTANCE_ID: &str = "instance_id";
    /// GSI sort key of incidents (RFC 3339 string).
    pub const DETECTED_AT: &str = "detected_at";
    /// The TTL attribute of every table (epoch seconds).
    pub const EXPIRES_AT: &str = "expires_at";
    /// `incident`, `heal` or `transition`.
    pub const KIND: &str = "kind";
    /// The domain value as JSON.
    pub const RECORD: &str = "record";
    /// A lease's holder (incident id).
    pub const HOLDER: &str = "holder";
    /// An instance policy as JSON.
    pub const POLICY: &str = "policy";
}

pub const KIND_INCIDENT: &str = "incident";
pub const KIND_HEAL: &str = "heal";
pub const KIND_TRANSITION: &str = "transition";

const SERVICE: &str = "dynamodb";

/// BatchGetItem takes at most 100 keys.
pub const BATCH_GET_MAX: usize = 100;
/// Rounds of BatchGetItem for unprocessed keys before giving up (as throttled).
const BATCH_GET_ROUNDS: u32 = 5;
/// Conditional puts of a lease before giving up when it keeps changing under us.
const LEASE_ATTEMPTS: u32 = 3;

/// Free, expired, or already ours.
pub const LEASE_CONDITION: &str = "attribute_not_exists(#i) OR #e <= :now OR #h = :holder";
/// Only the holder releases.
pub const RELEASE_CONDITION: &str = "#h = :holder";

impl IncidentStore for Aws {
    async fn put_incident(&self, record: &IncidentRecord) -> PortResult<()> {
        let table = incidents_table(self)?;
        let item = incident_item(record, expiry_from_now(self))?;
        put(self, table, item, record.incident.id.as_str()).await
    }

    async fn get_incident(&self, id: &IncidentId) -> PortResult<Option<IncidentRecord>> {
        let table = incidents_table(self)?;
        let call = Call::new(SERVICE, "GetItem").instance(id.as_str(), &[]);
        let out = self
            .ddb
            .get_item()
            .table_name(table)
            .key(attr::INCIDENT_ID, s(id.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| error::map(call, e))?;
        out.item()
            .map(|item| decode_record(table, item))
            .transpose()
    }

    async fn list_incidents(&self, query: &IncidentQuery) -> PortResult<Vec<IncidentRecord>> {
        let table = incidents_table(self)?;
        let items = match &query.instance {
            Some(i) => query_instance(self, table, i, query.since, &[KIND_INCIDENT]).await?,
            None => scan_incidents(self, table, query.since).await?,
        };
        let records = items
            .iter()
            .filter(|item| get_s(item, attr::KIND) == Some(KIND_INCIDENT))
            .map(|item| decode_record(table, item))
            .collect::<PortResult<Vec<IncidentRecord>>>()?;
        Ok(select_incidents(records, query))
    }

    async fn acquire_lease(
        &self,
        instance: &InstanceId,
        holder: &IncidentId,
        now: Timestamp,
        ttl_s: u64,
    ) -> PortResult<Lease> {
        let table = leases_table(self)?;
        let lease = Lease {
            instance: instance.clone(),
            holder: holder.clone(),
            expires_at: now.plus_secs(ttl_s),
        };
        for _ in 0..LEASE_ATTEMPTS {
            let current = match put_lease(self, table, &lease, now).await? {
                LeasePut::Taken => return Ok(lease),
                LeasePut::Refused(Some(current)) => Some(current),
                LeasePut::Refused(None) => read_lease(self, table, instance).await?,
            };
            if let Some(current) = current
                && blocks(&current, holder, now)
            {
                return Err(lease_held(&current));
            }
            // Released or expired since the put: try again.
        }
        Err(PortError::Service {
            service: SERVICE,
            message: format!(
                "PutItem of the lease of {instance} failed its condition {LEASE_ATTEMPTS} times \
                 while the lease kept changing"
            ),
            source: None,
        })
    }

    async fn release_lease(&self, instance: &InstanceId, holder: &IncidentId) -> PortResult<()> {
        let table = leases_table(self)?;
        let call = Call::new(SERVICE, "DeleteItem").instance(instance.as_str(), &[]);
        let answer = self
            .ddb
            .delete_item()
            .table_name(table)
            .key(attr::INSTANCE_ID, s(instance.as_str()))
            .condition_expression(RELEASE_CONDITION)
            .expression_attribute_names("#h", attr::HOLDER)
            .expression_attribute_values(":holder", s(holder.as_str()))
            .send()
            .await;
        match answer {
            Ok(_) => Ok(()),
            // Another incident holds it now, or it is gone: nothing of ours to release.
            Err(e)
                if e.as_service_error()
                    .is_some_and(DeleteItemError::is_conditional_check_failed_exception) =>
            {
                Ok(())
            }
            Err(e) => Err(error::map(call, e)),
        }
    }

    async fn active_leases(
        &self,
        instances: &[InstanceId],
        now: Timestamp,
    ) -> PortResult<Vec<Lease>> {
        if instances.is_empty() {
            return Ok(Vec::new());
        }
        let table = leases_table(self)?;
        // BatchGetItem rejects a request with the same key twice.
        let mut unique: Vec<&InstanceId> = instances.iter().collect();
        unique.sort();
        unique.dedup();
        let mut found: HashMap<InstanceId, Lease> = HashMap::new();
        for chunk in unique.chunks(BATCH_GET_MAX) {
            for lease in batch_get_leases(self, table, chunk).await? {
                found.insert(lease.instance.clone(), lease);
            }
        }
        Ok(live_leases(instances, &found, now))
    }

    async fn instance_policy(&self, instance: &InstanceId) -> PortResult<Option<InstancePolicy>> {
        let table = policies_table(self)?;
        let call = Call::new(SERVICE, "GetItem").instance(instance.as_str(), &[]);
        let out = self
            .ddb
            .get_item()
            .table_name(table)
            .key(attr::INSTANCE_ID, s(instance.as_str()))
            .send()
            .await
            .map_err(|e| error::map(call, e))?;
        out.item()
            .map(|item| policy_from_item(table, instance, item))
            .transpose()
    }

    async fn history(&self, instance: &InstanceId, since: Timestamp) -> PortResult<History> {
        let table = incidents_table(self)?;
        let items = query_instance(
            self,
            table,
            instance,
            Some(since),
            &[KIND_HEAL, KIND_TRANSITION],
        )
        .await?;
        history_from_items(table, &items, instance, since)
    }

    async fn record_heal(&self, heal: &HealRecord) -> PortResult<()> {
        let table = incidents_table(self)?;
        let item = heal_item(heal, expiry_from_now(self))?;
        put(self, table, item, heal.instance.as_str()).await
    }

    async fn record_transition(&self, transition: &Transition) -> PortResult<()> {
        let table = incidents_table(self)?;
        let item = transition_item(transition, expiry_from_now(self))?;
        put(self, table, item, transition.instance.as_str()).await
    }
}

/// When a record written now expires (`None`: kept forever).
fn expiry_from_now(aws: &Aws) -> Option<Timestamp> {
    record_expiry(aws.now(), aws.settings.record_ttl_days)
}

// ---- tables ------------------------------------------------------------------------------------

fn incidents_table(aws: &Aws) -> PortResult<&str> {
    Settings::require(&aws.settings.incidents_table, "AUTOHEAL_INCIDENTS_TABLE")
}

fn leases_table(aws: &Aws) -> PortResult<&str> {
    Settings::require(&aws.settings.leases_table, "AUTOHEAL_LEASES_TABLE")
}

/// The stack names this variable `AUTOHEAL_POLICIES_TABLE`.
fn policies_table(aws: &Aws) -> PortResult<&str> {
    Settings::require(&aws.settings.policy_table, "AUTOHEAL_POLICIES_TABLE")
}

// ---- calls -------------------------------------------------------------------------------------

/// An unconditional PutItem (incidents, heals, transitions).
async fn put(aws: &Aws, table: &str, item: Item, subject: &str) -> PortResult<()> {
    let call = Call::new(SERVICE, "PutItem").instance(subject, &[]);
    aws.ddb
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .send()
        .await
        .map_err(|e| error::map(call, e))?;
    Ok(())
}

/// Every item of `kinds` of one instance since a time, from the GSI, all pages.
async fn query_instance(
    aws: &Aws,
    table: &str,
    instance: &InstanceId,
    since: Option<Timestamp>,
    kinds: &[&str],
) -> PortResult<Vec<Item>> {
    let call = Call::new(SERVICE, "Query").instance(instance.as_str(), &[]);
    let key_condition = instance_key_condition(since.is_some());
    let filter = kinds_filter(kinds.len());
    let mut items = Vec::new();
    let mut start: Option<Item> = None;
    loop {
        let mut req = aws
            .ddb
            .query()
            .table_name(table)
            .index_name(if aws.settings.incidents_index.is_empty() {
                INCIDENTS_INDEX
            } else {
                aws.settings.incidents_index.as_str()
            })
            .key_condition_expression(key_condition)
            .filter_expression(&filter)
            .expression_attribute_names("#i", attr::INSTANCE_ID)
            .expression_attribute_names("#k", attr::KIND)
            .expression_attribute_values(":i", s(instance.as_str()))
            .set_exclusive_start_key(start.take());
        if let Some(t) = since {
            req = req
                .expression_attribute_names("#t", attr::DETECTED_AT)
                .expression_attribute_values(":since", s(time_key(t)));
        }
        for (n, kind) in kinds.iter().enumerate() {
            req = req.expression_attribute_values(format!(":k{n}"), s(*kind));
        }
        let out = req.send().await.map_err(|e| error::map(call, e))?;
        items.extend(out.items().iter().cloned());
        match out.last_evaluated_key() {
            Some(k) if !k.is_empty() => start = Some(k.clone()),
            _ => return Ok(items),
        }
    }
}

/// Every incident item since a time, all pages of a Scan.
async fn scan_incidents(aws: &Aws, table: &str, since: Option<Timestamp>) -> PortResult<Vec<Item>> {
    let call = Call::new(SERVICE, "Scan");
    let filter = if since.is_some() {
        "#k = :k0 AND #t >= :since"
    } else {
        "#k = :k0"
    };
    let mut items = Vec::new();
    let mut start: Option<Item> = None;
    loop {
        let mut req = aws
            .ddb
            .scan()
            .table_name(table)
            .filter_expression(filter)
            .expression_attribute_names("#k", attr::KIND)
            .expression_attribute_values(":k0", s(KIND_INCIDENT))
            .set_exclusive_start_key(start.take());
        if let Some(t) = since {
            req = req
                .expression_attribute_names("#t", attr::DETECTED_AT)
                .expression_attribute_values(":since", s(time_key(t)));
        }
        let out = req.send().await.map_err(|e| error::map(call, e))?;
        items.extend(out.items().iter().cloned());
        match out.last_evaluated_key() {
            Some(k) if !k.is_empty() => start = Some(k.clone()),
            _ => return Ok(items),
        }
    }
}

/// What the conditional put of a lease did.
enum LeasePut {
    Taken,
    /// The condition failed; the item that failed it, when DynamoDB returned it.
    Refused(Option<Lease>),
}

async fn put_lease(aws: &Aws, table: &str, lease: &Lease, now: Timestamp) -> PortResult<LeasePut> {
    let call = Call::new(SERVICE, "PutItem").instance(lease.instance.as_str(), &[]);
    let answer = aws
        .ddb
        .put_item()
        .table_name(table)
        .set_item(Some(lease_item(lease)))
        .condition_expression(LEASE_CONDITION)
        .expression_attribute_names("#i", attr::INSTANCE_ID)
        .expression_attribute_names("#e", attr::EXPIRES_AT)
        .expression_attribute_names("#h", attr::HOLDER)
        .expression_attribute_values(":now", n(now.secs()))
        .expression_attribute_values(":holder", s(lease.holder.as_str()))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .send()
        .await;
    let e = match answer {
        Ok(_) => return Ok(LeasePut::Taken),
        Err(e) => e,
    };
    let refused = match e.as_service_error() {
        Some(PutItemError::ConditionalCheckFailedException(c)) => Some(c.item().cloned()),
        _ => None,
    };
    match refused {
        Some(Some(item)) if !item.is_empty() => {
            Ok(LeasePut::Refused(Some(lease_from_item(table, &item)?)))
        }
        Some(_) => Ok(LeasePut::Refused(None)),
        None => Err(error::map(call, e)),
    }
}

/// The current lease of an instance (strongly consistent).
async fn read_lease(aws: &Aws, table: &str, instance: &InstanceId) -> PortResult<Option<Lease>> {
    let call = Call::new(SERVICE, "GetItem").instance(instance.as_str(), &[]);
    let out = aws
        .ddb
        .get_item()
        .table_name(table)
        .key(attr::INSTANCE_ID, s(instance.as_str()))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| error::map(call, e))?;
    out.item()
        .filter(|item| !item.is_empty())
        .map(|item| lease_from_item(table, item))
        .transpose()
}

/// The leases of at most 100 instances, retrying unprocessed keys with backoff.
async fn batch_get_leases(
    aws: &Aws,
    table: &str,
    instances: &[&InstanceId],
) -> PortResult<Vec<Lease>> {
    let call = Call::new(SERVICE, "BatchGetItem");
    let mut keys: Vec<Item> = instances.iter().map(|i| lease_key(i)).collect();
    let mut leases = Vec::new();
    let mut round: u32 = 0;
    while !keys.is_empty() {
        if round > 0 {
            if round >= BATCH_GET_ROUNDS {
                return Err(PortError::Throttled {
                    service: SERVICE,
                    message: format!(
                        "BatchGetItem on {table} left {} keys unprocessed after {round} rounds",
                        keys.len()
                    ),
                    source: None,
                });
            }
            tokio::time::sleep(backoff(round)).await;
        }
        round += 1;
        let request = KeysAndAttributes::builder()
            .set_keys(Some(keys))
            .consistent_read(true)
            .build()
            .map_err(|e| PortError::InvalidRequest(format!("BatchGetItem request: {e}")))?;
        let out = aws
            .ddb
            .batch_get_item()
            .request_items(table, request)
            .send()
            .await
            .map_err(|e| error::map(call, e))?;
        let found = out
            .responses()
            .and_then(|r| r.get(table))
            .map(Vec::as_slice)
            .unwrap_or_default();
        for item in found {
            leases.push(lease_from_item(table, item)?);
        }
        keys = out
            .unprocessed_keys()
            .and_then(|u| u.get(table))
            .map(|k| k.keys().to_vec())
            .unwrap_or_default();
    }
    Ok(leases)
}

/// 100 ms, 200 ms, 400 ms, ... capped at 1.6 s.
fn backoff(round: u32) -> Duration {
    Duration::from_millis(50u64 << round.clamp(1, 5))
}

// ---- items -------------------------------------------------------------------------------------

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// A string attribute.
pub fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

/// A number attribute holding an integer.
pub fn get_n(item: &Item, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

/// The GSI sort key of a time: RFC 3339 UTC, which sorts as the times do.
pub fn time_key(t: Timestamp) -> String {
    t.to_rfc3339()
}

/// When a record written at `now` expires; `None` (kept forever) for a TTL of 0 days.
pub fn record_expiry(now: Timestamp, ttl_days: u32) -> Option<Timestamp> {
    (ttl_days > 0).then(|| now.plus_secs(u64::from(ttl_days).saturating_mul(86_400)))
}

/// The key condition of the GSI query for one instance.
pub fn instance_key_condition(with_since: bool) -> &'static str {
    if with_since {
        "#i = :i AND #t >= :since"
    } else {
        "#i = :i"
    }
}

/// `#k IN (:k0, :k1, ...)` for `count` kinds.
pub fn kinds_filter(count: usize) -> String {
    let values: Vec<String> = (0..count).map(|n| format!(":k{n}")).collect();
    format!("#k IN ({})", values.join(", "))
}

fn to_json<T: Serialize>(what: &str, value: &T) -> PortResult<String> {
    serde_json::to_string(value).map_err(|e| {
        PortError::InvalidRequest(format!("DynamoDB: cannot encode {what} as JSON: {e}"))
    })
}

/// An item of the incidents table.
fn entry(
    key: String,
    kind: &str,
    instance: &InstanceId,
    at: Timestamp,
    expires_at: Option<Timestamp>,
    record: String,
) -> Item {
    let mut item = HashMap::from([
        (attr::INCIDENT_ID.to_owned(), s(key)),
        (attr::KIND.to_owned(), s(kind)),
        (attr::INSTANCE_ID.to_owned(), s(instance.as_str())),
        (attr::DETECTED_AT.to_owned(), s(time_key(at))),
        (attr::RECORD.to_owned(), s(record)),
    ]);
    if let Some(t) = expires_at {
        item.insert(attr::EXPIRES_AT.to_owned(), n(t.secs()));
    }
    item
}

pub fn incident_item(r: &IncidentRecord, expires_at: Option<Timestamp>) -> PortResult<Item> {
    Ok(entry(
        r.incident.id.to_string(),
        KIND_INCIDENT,
        &r.incident.instance,
        r.incident.detected_at,
        expires_at,
        to_json("an incident", r)?,
    ))
}

fn outcome_name(o: HealOutcome) -> &'static str {
    match o {
        HealOutcome::InProgress => "in_progress",
        HealOutcome::Healed => "healed",
        HealOutcome::Failed => "failed",
    }
}

/// The partition key of a heal attempt: its own fields, so a rewrite replaces it.
pub fn heal_key(h: &HealRecord) -> String {
    format!(
        "{KIND_HEAL}#{}#{}#{}#{}#{}",
        h.instance,
        h.started_at.secs(),
        h.action.as_str(),
        outcome_name(h.outcome),
        h.incident.as_ref().map_or("-", IncidentId::as_str)
    )
}

pub fn heal_item(h: &HealRecord, expires_at: Option<Timestamp>) -> PortResult<Item> {
    Ok(entry(
        heal_key(h),
        KIND_HEAL,
        &h.instance,
        h.started_at,
        expires_at,
        to_json("a heal record", h)?,
    ))
}

/// The partition key of a transition: its own fields.
pub fn transition_key(t: &Transition) -> String {
    format!(
        "{KIND_TRANSITION}#{}#{}#{}#{}",
        t.instance,
        t.at.secs(),
        t.from.as_str(),
        t.to.as_str()
    )
}

pub fn transition_item(t: &Transition, expires_at: Option<Timestamp>) -> PortResult<Item> {
    Ok(entry(
        transition_key(t),
        KIND_TRANSITION,
        &t.instance,
        t.at,
        expires_at,
        to_json("a transition", t)?,
    ))
}

/// The domain value in an item's `record` attribute.
pub fn decode_record<T: DeserializeOwned>(table: &str, item: &Item) -> PortResult<T> {
    let key = get_s(item, attr::INCIDENT_ID).unwrap_or("?");
    let text = get_s(item, attr::RECORD).ok_or_else(|| {
        PortError::InvalidRequest(format!(
            "DynamoDB table {table}: item {key} has no string attribute `{}`: it was not written \
             by autoheal; delete the item",
            attr::RECORD
        ))
    })?;
    serde_json::from_str(text).map_err(|e| {
        PortError::InvalidRequest(format!(
            "DynamoDB table {table}: the `{}` of item {key} does not decode ({e}): it was written \
             by another version of autoheal; delete the item or run the matching autoheal",
            attr::RECORD
        ))
    })
}

/// The heals and transitions of one instance since a time, in time order.
pub fn history_from_items(
    table: &str,
    items: &[Item],
    instance: &InstanceId,
    since: Timestamp,
) -> PortResult<History> {
    let mut history = History::default();
    for item in items {
        match get_s(item, attr::KIND) {
            Some(KIND_HEAL) => {
                let h: HealRecord = decode_record(table, item)?;
                if &h.instance == instance && h.started_at >= since {
                    history.heals.push(h);
                }
            }
            Some(KIND_TRANSITION) => {
                let t: Transition = decode_record(table, item)?;
                if &t.instance == instance && t.at >= since {
                    history.transitions.push(t);
                }
            }
            _ => {}
        }
    }
    history.heals.sort_by_key(|h| h.started_at);
    history.transitions.sort_by_key(|t| t.at);
    Ok(history)
}

/// The query applied as the other stores apply it: instance and time filters, incident-id
/// order, then the limit.
pub fn select_incidents(records: Vec<IncidentRecord>, q: &IncidentQuery) -> Vec<IncidentRecord> {
    let mut selected: Vec<IncidentRecord> = records
        .into_iter()
        .filter(|r| {
            q.instance
                .as_ref()
                .is_none_or(|i| &r.incident.instance == i)
        })
        .filter(|r| q.since.is_none_or(|s| r.incident.detected_at >= s))
        .collect();
    selected.sort_by(|a, b| a.incident.id.cmp(&b.incident.id));
    selected.dedup_by(|a, b| a.incident.id == b.incident.id);
    if let Some(limit) = q.limit {
        selected.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    }
    selected
}

fn lease_key(instance: &InstanceId) -> Item {
    HashMap::from([(attr::INSTANCE_ID.to_owned(), s(instance.as_str()))])
}

pub fn lease_item(l: &Lease) -> Item {
    HashMap::from([
        (attr::INSTANCE_ID.to_owned(), s(l.instance.as_str())),
        (attr::HOLDER.to_owned(), s(l.holder.as_str())),
        (attr::EXPIRES_AT.to_owned(), n(l.expires_at.secs())),
    ])
}

pub fn lease_from_item(table: &str, item: &Item) -> PortResult<Lease> {
    let bad = |what: String| {
        PortError::InvalidRequest(format!(
            "DynamoDB table {table}: a lease item has {what}: it was not written by autoheal; \
             delete it (leases are items of `{}` S, `{}` S, `{}` N)",
            attr::INSTANCE_ID,
            attr::HOLDER,
            attr::EXPIRES_AT
        ))
    };
    let instance = get_s(item, attr::INSTANCE_ID)
        .ok_or_else(|| bad(format!("no string `{}`", attr::INSTANCE_ID)))?;
    let instance = InstanceId::parse(instance).map_err(|e| bad(e.to_string()))?;
    let holder =
        get_s(item, attr::HOLDER).ok_or_else(|| bad(format!("no string `{}`", attr::HOLDER)))?;
    let holder = IncidentId::parse(holder).map_err(|e| bad(e.to_string()))?;
    let expires_at = get_n(item, attr::EXPIRES_AT)
        .ok_or_else(|| bad(format!("no integer `{}`", attr::EXPIRES_AT)))?;
    Ok(Lease {
        instance,
        holder,
        expires_at: Timestamp(expires_at),
    })
}

/// `current` keeps `holder` from taking the lease at `now`: another holder's, not expired.
pub fn blocks(current: &Lease, holder: &IncidentId, now: Timestamp) -> bool {
    &current.holder != holder && current.expires_at > now
}

pub fn lease_held(current: &Lease) -> PortError {
    PortError::LeaseHeld {
        instance: current.instance.to_string(),
        holder: current.holder.to_string(),
        expires_at: current.expires_at.to_string(),
    }
}

/// The unexpired leases of `instances`, in their order.
pub fn live_leases(
    instances: &[InstanceId],
    found: &HashMap<InstanceId, Lease>,
    now: Timestamp,
) -> Vec<Lease> {
    instances
        .iter()
        .filter_map(|i| found.get(i))
        .filter(|l| l.expires_at > now)
        .cloned()
        .collect()
}

/// The instance policy in a policies-table item.
pub fn policy_from_item(
    table: &str,
    instance: &InstanceId,
    item: &Item,
) -> PortResult<InstancePolicy> {
    let example = r#"{"allowed_actions": ["restart_service", "reboot"], "cooldown_s": 1800}"#;
    let text = get_s(item, attr::POLICY).ok_or_else(|| {
        PortError::InvalidRequest(format!(
            "DynamoDB table {table}: the item of {instance} has no string attribute `{}`; fix: \
             put the instance policy (docs/policy.md) as JSON in a string attribute `{}`, e.g. \
             {example}",
            attr::POLICY,
            attr::POLICY
        ))
    })?;
    let policy: InstancePolicy = serde_json::from_str(text).map_err(|e| {
        PortError::InvalidRequest(format!(
            "DynamoDB table {table}: the policy of {instance} is not a valid instance policy \
             ({e}); fix: use the fields skip, cooldown_s, allowed_actions and services of \
             docs/policy.md, e.g. {example}"
        ))
    })?;
    policy
        .validate(&format!("DynamoDB table {table}"), instance.as_str())
        .map_err(|e| PortError::InvalidRequest(e.to_string()))?;
    Ok(policy)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use autoheal_core::incident::{Incident, IncidentStatus};
    use autoheal_core::{Action, HealthState, TargetGroupArn};

    use super::*;

    fn inst(n: u32) -> InstanceId {
        InstanceId::parse(format!("i-{n:08x}")).expect("valid")
    }

    fn inc(id: &str) -> IncidentId {
        IncidentId::parse(id).expect("valid")
    }

    fn record(id: &str, instance: u32, detected_at: i64) -> IncidentRecord {
        IncidentRecord {
            incident: Incident {
                id: inc(id),
                target_group: TargetGroupArn::parse(
                    "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef",
                )
                .expect("valid"),
                instance: inst(instance),
                asg: None,
                detected_at: Timestamp(detected_at),
                tags: BTreeMap::new(),
                launched_at: None,
            },
            status: IncidentStatus::Open,
            diagnosis: None,
            decision: None,
            steps: vec![],
            failure: None,
            execution_arn: None,
            updated_at: Timestamp(detected_at),
        }
    }

    fn heal(instance: u32, at: i64, outcome: HealOutcome) -> HealRecord {
        HealRecord {
            instance: inst(instance),
            action: Action::RestartService,
            started_at: Timestamp(at),
            outcome,
            incident: Some(inc("web-1")),
        }
    }

    fn transition(instance: u32, at: i64) -> Transition {
        Transition {
            instance: inst(instance),
            at: Timestamp(at),
            from: HealthState::Healthy,
            to: HealthState::Unhealthy,
        }
    }

    #[test]
    fn incident_items_carry_the_stack_keys_and_round_trip() {
        let r = record("web-1", 1, 1_795_993_200);
        let item = incident_item(&r, Some(Timestamp(1_800_000_000))).expect("encodes");
        assert_eq!(get_s(&item, "incident_id"), Some("web-1"));
        assert_eq!(get_s(&item, "instance_id"), Some("i-00000001"));
        assert_eq!(get_s(&item, "detected_at"), Some("2026-11-29T23:00:00Z"));
        assert_eq!(get_s(&item, "kind"), Some("incident"));
        assert_eq!(get_n(&item, "expires_at"), Some(1_800_000_000));
        let back: IncidentRecord = decode_record("t", &item).expect("decodes");
        assert_eq!(back, r);
        let kept = incident_item(&r, None).expect("encodes");
        assert!(!kept.contains_key("expires_at"));
    }

    #[test]
    fn heal_and_transition_keys_are_distinct_and_never_incident_ids() {
        let a = heal_key(&heal(1, 100, HealOutcome::Failed));
        let b = heal_key(&heal(1, 100, HealOutcome::Healed));
        let c = transition_key(&transition(1, 100));
        assert_ne!(a, b);
        assert_eq!(a, "heal#i-00000001#100#restart_service#failed#web-1");
        assert_eq!(c, "transition#i-00000001#100#healthy#unhealthy");
        for k in [&a, &b, &c] {
            assert!(IncidentId::parse(k.as_str()).is_err(), "{k}");
        }
        let item = heal_item(&heal(1, 100, HealOutcome::Failed), None).expect("encodes");
        assert_eq!(get_s(&item, "kind"), Some("heal"));
        assert_eq!(get_s(&item, "detected_at"), Some("1970-01-01T00:01:40Z"));
    }

    #[test]
    fn time_keys_sort_as_the_times_do() {
        let times = [
            0,
            9,
            59,
            3600,
            86_399,
            951_782_400,
            1_795_993_200,
            4_102_444_800,
        ];
        for w in times.windows(2) {
            assert!(
                time_key(Timestamp(w[0])) < time_key(Timestamp(w[1])),
                "{w:?}"
            );
        }
    }

    #[test]
    fn record_expiry_is_days_after_now_or_never() {
        assert_eq!(
            record_expiry(Timestamp(1000), 1),
            Some(Timestamp(1000 + 86_400))
        );
        assert_eq!(record_expiry(Timestamp(1000), 0), None);
    }

    #[test]
    fn expressions_name_every_placeholder_they_use() {
        assert_eq!(kinds_filter(2), "#k IN (:k0, :k1)");
        assert_eq!(kinds_filter(1), "#k IN (:k0)");
        assert!(instance_key_condition(true).contains(":since"));
        assert!(!instance_key_condition(false).contains("#t"));
        assert!(LEASE_CONDITION.contains("attribute_not_exists(#i)"));
    }

    #[test]
    fn history_keeps_this_instances_heals_and_transitions_since_the_time_in_order() {
        let items: Vec<Item> = vec![
            heal_item(&heal(1, 300, HealOutcome::Healed), None).expect("ok"),
            heal_item(&heal(1, 200, HealOutcome::Failed), None).expect("ok"),
            heal_item(&heal(1, 50, HealOutcome::Failed), None).expect("ok"),
            heal_item(&heal(2, 300, HealOutcome::Failed), None).expect("ok"),
            transition_item(&transition(1, 250), None).expect("ok"),
            incident_item(&record("web-1", 1, 260), None).expect("ok"),
        ];
        let h = history_from_items("t", &items, &inst(1), Timestamp(100)).expect("decodes");
        let starts: Vec<i64> = h.heals.iter().map(|x| x.started_at.secs()).collect();
        assert_eq!(starts, vec![200, 300]);
        assert_eq!(h.transitions.len(), 1);
    }

    #[test]
    fn incidents_are_selected_like_the_other_stores_do() {
        let all = vec![
            record("web-c", 1, 300),
            record("web-a", 1, 100),
            record("web-b", 2, 200),
            record("web-d", 1, 400),
        ];
        let q = IncidentQuery {
            instance: Some(inst(1)),
            since: Some(Timestamp(150)),
            limit: Some(1),
        };
        let ids: Vec<String> = select_incidents(all.clone(), &q)
            .iter()
            .map(|r| r.incident.id.to_string())
            .collect();
        assert_eq!(ids, vec!["web-c"]);
        let ids: Vec<String> = select_incidents(all, &IncidentQuery::default())
            .iter()
            .map(|r| r.incident.id.to_string())
            .collect();
        assert_eq!(ids, vec!["web-a", "web-b", "web-c", "web-d"]);
    }

    #[test]
    fn leases_round_trip_and_block_like_the_other_stores() {
        let l = Lease {
            instance: inst(1),
            holder: inc("web-1"),
            expires_at: Timestamp(160),
        };
        let back = lease_from_item("leases", &lease_item(&l)).expect("decodes");
        assert_eq!(back, l);
        assert!(blocks(&l, &inc("web-2"), Timestamp(159)));
        // Expired at exactly its expiry (the stores test `expires_at > now`).
        assert!(!blocks(&l, &inc("web-2"), Timestamp(160)));
        // The holder re-acquires.
        assert!(!blocks(&l, &inc("web-1"), Timestamp(100)));
        match lease_held(&l) {
            PortError::LeaseHeld { holder, .. } => assert_eq!(holder, "web-1"),
            other => panic!("{other:?}"),
        }
        let mut broken = lease_item(&l);
        broken.remove("holder");
        assert!(lease_from_item("leases", &broken).is_err());
    }

    #[test]
    fn live_leases_are_unexpired_and_in_the_order_asked() {
        let lease = |i: u32, exp: i64| Lease {
            instance: inst(i),
            holder: inc("web-1"),
            expires_at: Timestamp(exp),
        };
        let found = HashMap::from([
            (inst(1), lease(1, 200)),
            (inst(2), lease(2, 50)),
            (inst(3), lease(3, 300)),
        ]);
        let live = live_leases(
            &[inst(3), inst(2), inst(4), inst(1)],
            &found,
            Timestamp(100),
        );
        let ids: Vec<&str> = live.iter().map(|l| l.instance.as_str()).collect();
        assert_eq!(ids, vec!["i-00000003", "i-00000001"]);
    }

    #[test]
    fn policies_decode_or_fail_naming_the_instance_and_the_fix() {
        let item = |json: &str| {
            HashMap::from([
                ("instance_id".to_owned(), s("i-00000001")),
                ("policy".to_owned(), s(json)),
            ])
        };
        let p =
            policy_from_item("policies", &inst(1), &item(r#"{"cooldown_s": 60}"#)).expect("valid");
        assert_eq!(p.cooldown_s, Some(60));
        for bad in [
            r#"{"cooldown": 60}"#,
            "not json",
            r#"{"allowed_actions": ["hold"]}"#,
        ] {
            let e = policy_from_item("policies", &inst(1), &item(bad)).expect_err(bad);
            let text = e.to_string();
            assert_eq!(e.error_name(), "InvalidInput");
            assert!(
                text.contains("i-00000001") && text.contains("fix"),
                "{text}"
            );
        }
        let no_attr = HashMap::from([("instance_id".to_owned(), s("i-00000001"))]);
        let e = policy_from_item("policies", &inst(1), &no_attr).expect_err("no policy");
        assert!(e.to_string().contains("`policy`"));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(9), Duration::from_millis(1600));
    }
}
