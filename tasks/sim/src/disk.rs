//! The embedded on-disk store: the default incident store and notifier of the local demo, one
//! [redb](https://www.redb.org) file (by default `.autoheal/store.redb`). It implements the same
//! ports as [`crate::MemoryStore`], with the same semantics, and survives the process: `autoheal
//! incidents list` reads what a run recorded.
//!
//! Layout (schema version [`SCHEMA_VERSION`], in the `meta` table):
//!
//! | table | key | value |
//! |---|---|---|
//! | `meta` | `"schema_version"` | `u64` |
//! | `incidents` | incident id | [`IncidentRecord`] as JSON |
//! | `leases` | instance id | [`Lease`] as JSON |
//! | `policies` | instance id | [`InstancePolicy`] as JSON |
//! | `heals` | `u64` sequence (insertion order) | [`HealRecord`] as JSON |
//! | `transitions` | `u64` sequence | [`Transition`] as JSON |
//! | `notifications` | `u64` sequence | [`Notification`] as JSON |
//! | `runs` | `"scenario"`, `"execution:<name>"` | the scenario run, and each execution's start second and input, as JSON (what `autoheal replay --local` replays) |
//!
//! Every write is one write transaction. redb runs one write transaction at a time, so the
//! lease's check-then-put is atomic, as DynamoDB's conditional put is on AWS.

use std::fmt::Display;
use std::path::{Path, PathBuf};

use autoheal_core::error::PortError;
use autoheal_core::incident::{HealRecord, History, IncidentRecord, Transition};
use autoheal_core::ports::{
    IncidentQuery, IncidentStore, Lease, Notification, Notifier, PortResult,
};
use autoheal_core::{IncidentId, InstanceId, InstancePolicy, Timestamp};
use redb::{
    Database, DatabaseError, Key, ReadTransaction, ReadableDatabase, ReadableTable, StorageError,
    TableDefinition, TableError, TableHandle, WriteTransaction,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Where the demo keeps its store, relative to the working directory.
pub const DEFAULT_PATH: &str = ".autoheal/store.redb";

/// The layout version this code reads and writes; a file of another version is refused.
pub const SCHEMA_VERSION: u64 = 1;

const SCHEMA_KEY: &str = "schema_version";

/// A table whose values are JSON documents.
type Json<K> = TableDefinition<'static, K, &'static str>;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const INCIDENTS: Json<&str> = TableDefinition::new("incidents");
const LEASES: Json<&str> = TableDefinition::new("leases");
const POLICIES: Json<&str> = TableDefinition::new("policies");
const HEALS: Json<u64> = TableDefinition::new("heals");
const TRANSITIONS: Json<u64> = TableDefinition::new("transitions");
const NOTIFICATIONS: Json<u64> = TableDefinition::new("notifications");
const RUNS: Json<&str> = TableDefinition::new("runs");

/// The embedded incident store and notifier (one redb file).
#[derive(Debug)]
pub struct DiskStore {
    db: Database,
    path: PathBuf,
}

/// A failure of the file underneath (I/O, a failed commit): reported as a service failure, so
/// it is retryable like a DynamoDB 5xx.
fn tx_err(e: impl Display) -> PortError {
    PortError::Service {
        service: "embedded store",
        message: e.to_string(),
        source: None,
    }
}

fn to_json<T: Serialize>(value: &T) -> PortResult<String> {
    serde_json::to_string(value).map_err(|e| {
        PortError::InvalidRequest(format!("embedded store: cannot encode a record: {e}"))
    })
}

/// Opens (creating) a table of the layout inside a write transaction.
fn create<K: Key + 'static>(tx: &WriteTransaction, def: Json<K>) -> Result<(), TableError> {
    tx.open_table(def).map(drop)
}

/// Empties a table: deletes and creates it again.
fn reset<K: Key + 'static>(tx: &WriteTransaction, def: Json<K>) -> PortResult<()> {
    tx.delete_table(def).map_err(tx_err)?;
    create(tx, def).map_err(tx_err)
}

fn insert_records(tx: &WriteTransaction, records: &[IncidentRecord]) -> PortResult<()> {
    let mut table = tx.open_table(INCIDENTS).map_err(tx_err)?;
    for r in records {
        table
            .insert(r.incident.id.as_str(), to_json(r)?.as_str())
            .map_err(tx_err)?;
    }
    Ok(())
}

impl DiskStore {
    /// Opens the store at `path`, creating the file (and its parent directories) if needed.
    /// The file's integrity is checked on open: a corrupt file, a file of another schema version
    /// or a file that is not a redb database fails with an error naming the file and the fix.
    pub fn open(path: &Path) -> Result<DiskStore, PortError> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| {
                PortError::InvalidRequest(format!(
                    "embedded store {}: cannot create the directory {}: {e}; check that it can \
                     be created and written",
                    path.display(),
                    dir.display()
                ))
            })?;
        }
        let db = Database::builder()
            .set_check_integrity_on_open(true)
            .create(path)
            .map_err(|e| open_err(path, &e))?;
        let store = DiskStore {
            db,
            path: path.to_path_buf(),
        };
        store.check_schema()?;
        Ok(store)
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every incident, by detection time then id.
    pub fn incidents(&self) -> Result<Vec<IncidentRecord>, PortError> {
        let mut all: Vec<IncidentRecord> = self.scan_all(INCIDENTS)?;
        autoheal_core::incident::sort_by_detection(&mut all);
        Ok(all)
    }

    /// Every heal attempt recorded, in the order recorded.
    pub fn heals(&self) -> Result<Vec<HealRecord>, PortError> {
        self.scan_all(HEALS)
    }

    /// Every health transition recorded, in the order recorded.
    pub fn transitions(&self) -> Result<Vec<Transition>, PortError> {
        self.scan_all(TRANSITIONS)
    }

    /// Every notification sent, in the order sent.
    pub fn notifications(&self) -> Result<Vec<Notification>, PortError> {
        self.scan_all(NOTIFICATIONS)
    }

    /// Sets (replaces) the policy of one instance.
    pub fn set_policy(&self, i: &InstanceId, p: &InstancePolicy) -> Result<(), PortError> {
        let json = to_json(p)?;
        self.write(|tx| {
            let mut table = tx.open_table(POLICIES).map_err(tx_err)?;
            table.insert(i.as_str(), json.as_str()).map_err(tx_err)?;
            Ok(())
        })
    }

    /// Puts (replaces) these incidents in one transaction: all or none.
    pub fn put_all(&self, records: &[IncidentRecord]) -> Result<(), PortError> {
        self.write(|tx| insert_records(tx, records))
    }

    /// Records the scenario a run used and each execution's start second and input.
    pub fn put_run(
        &self,
        scenario: &serde_json::Value,
        executions: &[(String, u64, serde_json::Value)],
    ) -> Result<(), PortError> {
        let scenario = to_json(scenario)?;
        let rows = executions
            .iter()
            .map(|(name, at_s, input)| {
                Ok((
                    format!("execution:{name}"),
                    to_json(&serde_json::json!({"at_s": at_s, "input": input}))?,
                ))
            })
            .collect::<PortResult<Vec<(String, String)>>>()?;
        self.write(|tx| {
            let mut table = tx.open_table(RUNS).map_err(tx_err)?;
            table
                .insert("scenario", scenario.as_str())
                .map_err(tx_err)?;
            for (k, v) in &rows {
                table.insert(k.as_str(), v.as_str()).map_err(tx_err)?;
            }
            Ok(())
        })
    }

    /// A row of the `runs` table, if the file has it.
    pub fn run_row(&self, key: &str) -> Result<Option<serde_json::Value>, PortError> {
        let tx = self.read()?;
        let table = match tx.open_table(RUNS) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(tx_err(e)),
        };
        let Some(v) = table.get(key).map_err(tx_err)? else {
            return Ok(None);
        };
        serde_json::from_str(v.value()).map(Some).map_err(|e| {
            PortError::InvalidRequest(format!(
                "embedded store {}: the row {key:?} is not JSON: {e}",
                self.path.display()
            ))
        })
    }

    /// Deletes every row of every table (the schema version stays), in one transaction.
    pub fn clear(&self) -> Result<(), PortError> {
        self.write(|tx| {
            reset(tx, RUNS)?;
            reset(tx, INCIDENTS)?;
            reset(tx, LEASES)?;
            reset(tx, POLICIES)?;
            reset(tx, HEALS)?;
            reset(tx, TRANSITIONS)?;
            reset(tx, NOTIFICATIONS)
        })
    }

    /// Runs `f` in one write transaction and commits it if `f` succeeds; on an error the
    /// transaction is dropped, which rolls it back.
    fn write<T>(&self, f: impl FnOnce(&WriteTransaction) -> PortResult<T>) -> PortResult<T> {
        let tx = self.db.begin_write().map_err(tx_err)?;
        let out = f(&tx)?;
        tx.commit().map_err(tx_err)?;
        Ok(out)
    }

    fn read(&self) -> PortResult<ReadTransaction> {
        self.db.begin_read().map_err(tx_err)
    }

    /// Records the schema version in a new file, refuses a file of another version, and creates
    /// the tables (a table of the same name with other types also means another version).
    fn check_schema(&self) -> PortResult<()> {
        self.write(|tx| {
            let mut meta = tx.open_table(META).map_err(|e| self.layout_err(e))?;
            let found = meta.get(SCHEMA_KEY).map_err(tx_err)?.map(|v| v.value());
            match found {
                Some(SCHEMA_VERSION) => {}
                Some(v) => {
                    return Err(self.version_err(&format!("the file has schema version {v}")));
                }
                None => {
                    meta.insert(SCHEMA_KEY, SCHEMA_VERSION).map_err(tx_err)?;
                }
            }
            drop(meta);
            self.create_tables(tx)
        })
    }

    fn create_tables(&self, tx: &WriteTransaction) -> PortResult<()> {
        let err = |e| self.layout_err(e);
        create(tx, INCIDENTS).map_err(err)?;
        create(tx, LEASES).map_err(err)?;
        create(tx, POLICIES).map_err(err)?;
        create(tx, HEALS).map_err(err)?;
        create(tx, TRANSITIONS).map_err(err)?;
        create(tx, NOTIFICATIONS).map_err(err)
    }

    fn layout_err(&self, e: TableError) -> PortError {
        match e {
            TableError::Storage(s) => tx_err(s),
            other => self.version_err(&other.to_string()),
        }
    }

    fn version_err(&self, detail: &str) -> PortError {
        let p = self.path.display();
        PortError::InvalidRequest(format!(
            "embedded store {p}: {detail}, but this autoheal reads schema version \
             {SCHEMA_VERSION}: the file was written by another version of autoheal; delete {p} \
             (or the whole .autoheal/ directory) to start afresh"
        ))
    }

    fn decode<T: DeserializeOwned>(&self, table: &str, text: &str) -> PortResult<T> {
        serde_json::from_str(text).map_err(|e| {
            let p = self.path.display();
            PortError::InvalidRequest(format!(
                "embedded store {p}: a row of table `{table}` does not decode ({e}): the file was \
                 written by another version of autoheal; delete {p} (or the whole .autoheal/ \
                 directory) to start afresh"
            ))
        })
    }

    /// Every value of a table, in key order; a table that does not exist is empty.
    fn scan<K: Key + 'static, T: DeserializeOwned>(
        &self,
        tx: &ReadTransaction,
        def: Json<K>,
    ) -> PortResult<Vec<T>> {
        let table = match tx.open_table(def) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(tx_err(e)),
        };
        let mut out = Vec::new();
        for row in table.iter().map_err(tx_err)? {
            let (_, v) = row.map_err(tx_err)?;
            out.push(self.decode(def.name(), v.value())?);
        }
        Ok(out)
    }

    fn scan_all<K: Key + 'static, T: DeserializeOwned>(&self, def: Json<K>) -> PortResult<Vec<T>> {
        let tx = self.read()?;
        self.scan(&tx, def)
    }

    /// The value under `key`, decoded.
    fn get_json<T: DeserializeOwned>(
        &self,
        table: &(impl ReadableTable<&'static str, &'static str> + TableHandle),
        key: &str,
    ) -> PortResult<Option<T>> {
        match table.get(key).map_err(tx_err)? {
            Some(v) => self.decode(table.name(), v.value()).map(Some),
            None => Ok(None),
        }
    }

    /// The value under `key` in a read transaction; a table that does not exist is empty.
    fn lookup<T: DeserializeOwned>(
        &self,
        def: Json<&'static str>,
        key: &str,
    ) -> PortResult<Option<T>> {
        let tx = self.read()?;
        let table = match tx.open_table(def) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(tx_err(e)),
        };
        self.get_json(&table, key)
    }

    /// Appends a row to a sequence-keyed table (the next key after the last).
    fn append<T: Serialize>(&self, def: Json<u64>, value: &T) -> PortResult<()> {
        let json = to_json(value)?;
        self.write(|tx| {
            let mut table = tx.open_table(def).map_err(tx_err)?;
            let next = table
                .last()
                .map_err(tx_err)?
                .map_or(0, |(k, _)| k.value().saturating_add(1));
            table.insert(next, json.as_str()).map_err(tx_err)?;
            Ok(())
        })
    }

    /// The incidents a query selects (by instance, since, limit), by id.
    pub fn query(&self, q: &IncidentQuery) -> PortResult<Vec<IncidentRecord>> {
        let all: Vec<IncidentRecord> = self.scan_all(INCIDENTS)?;
        Ok(all
            .into_iter()
            .filter(|r| {
                q.instance
                    .as_ref()
                    .is_none_or(|i| &r.incident.instance == i)
            })
            .filter(|r| q.since.is_none_or(|s| r.incident.detected_at >= s))
            .take(q.limit.map_or(usize::MAX, |l| l as usize))
            .collect())
    }

    /// The check and the put in one write transaction: atomic.
    fn acquire(
        &self,
        i: &InstanceId,
        holder: &IncidentId,
        now: Timestamp,
        ttl_s: u64,
    ) -> PortResult<Lease> {
        self.write(|tx| {
            let mut table = tx.open_table(LEASES).map_err(tx_err)?;
            let current: Option<Lease> = self.get_json(&table, i.as_str())?;
            Lease::check(current.as_ref(), holder, now)?;
            let lease = Lease {
                instance: i.clone(),
                holder: holder.clone(),
                expires_at: now.plus_secs(ttl_s),
            };
            table
                .insert(i.as_str(), to_json(&lease)?.as_str())
                .map_err(tx_err)?;
            Ok(lease)
        })
    }

    fn release(&self, i: &InstanceId, holder: &IncidentId) -> PortResult<()> {
        self.write(|tx| {
            let mut table = tx.open_table(LEASES).map_err(tx_err)?;
            let current: Option<Lease> = self.get_json(&table, i.as_str())?;
            if current.is_some_and(|l| &l.holder == holder) {
                table.remove(i.as_str()).map_err(tx_err)?;
            }
            Ok(())
        })
    }

    fn leases(&self, ids: &[InstanceId], now: Timestamp) -> PortResult<Vec<Lease>> {
        let all: Vec<Lease> = self.scan_all(LEASES)?;
        Ok(all
            .into_iter()
            .filter(|l| ids.contains(&l.instance) && l.expires_at > now)
            .collect())
    }

    /// Heals and transitions read in one transaction (one consistent snapshot).
    fn history_of(&self, i: &InstanceId, since: Timestamp) -> PortResult<History> {
        let tx = self.read()?;
        let heals: Vec<HealRecord> = self.scan(&tx, HEALS)?;
        let transitions: Vec<Transition> = self.scan(&tx, TRANSITIONS)?;
        Ok(History {
            heals: heals
                .into_iter()
                .filter(|h| &h.instance == i && h.started_at >= since)
                .collect(),
            transitions: transitions
                .into_iter()
                .filter(|x| &x.instance == i && x.at >= since)
                .collect(),
        })
    }
}

/// An error of `Database::create`, with the file and the fix.
fn open_err(path: &Path, e: &DatabaseError) -> PortError {
    let p = path.display();
    let fix = match e {
        DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch => {
            "another autoheal process has it open: wait for it to finish or stop it".to_string()
        }
        DatabaseError::Storage(StorageError::Io(io))
            if io.kind() != std::io::ErrorKind::InvalidData =>
        {
            "check that the file and its directory can be read and written".to_string()
        }
        _ => format!(
            "the file is corrupt, is not an autoheal store, or was written by another version of \
             autoheal; delete {p} (or the whole .autoheal/ directory) to start afresh"
        ),
    };
    PortError::InvalidRequest(format!("embedded store {p}: {e}; {fix}"))
}

impl IncidentStore for DiskStore {
    async fn put_incident(&self, r: &IncidentRecord) -> PortResult<()> {
        self.write(|tx| insert_records(tx, std::slice::from_ref(r)))
    }
    async fn get_incident(&self, id: &IncidentId) -> PortResult<Option<IncidentRecord>> {
        self.lookup(INCIDENTS, id.as_str())
    }
    async fn list_incidents(&self, q: &IncidentQuery) -> PortResult<Vec<IncidentRecord>> {
        self.query(q)
    }
    async fn acquire_lease(
        &self,
        i: &InstanceId,
        holder: &IncidentId,
        now: Timestamp,
        ttl_s: u64,
    ) -> PortResult<Lease> {
        self.acquire(i, holder, now, ttl_s)
    }
    async fn release_lease(&self, i: &InstanceId, holder: &IncidentId) -> PortResult<()> {
        self.release(i, holder)
    }
    async fn active_leases(&self, ids: &[InstanceId], now: Timestamp) -> PortResult<Vec<Lease>> {
        self.leases(ids, now)
    }
    async fn instance_policy(&self, i: &InstanceId) -> PortResult<Option<InstancePolicy>> {
        self.lookup(POLICIES, i.as_str())
    }
    async fn history(&self, i: &InstanceId, since: Timestamp) -> PortResult<History> {
        self.history_of(i, since)
    }
    async fn record_heal(&self, h: &HealRecord) -> PortResult<()> {
        self.append(HEALS, h)
    }
    async fn record_transition(&self, tr: &Transition) -> PortResult<()> {
        self.append(TRANSITIONS, tr)
    }
}

impl Notifier for DiskStore {
    async fn notify(&self, n: &Notification) -> PortResult<()> {
        self.append(NOTIFICATIONS, n)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicU64, Ordering};

    use autoheal_core::incident::{HealOutcome, Incident, IncidentStatus};
    use autoheal_core::ports::Severity;
    use autoheal_core::{Action, HealthState, TargetGroupArn};

    use super::*;

    /// A fresh directory under the system's temp dir, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            static N: AtomicU64 = AtomicU64::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let dir =
                std::env::temp_dir().join(format!("autoheal-disk-test-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            Self(dir)
        }

        /// The store file, two directories down (open creates them).
        fn file(&self) -> PathBuf {
            self.0.join(".autoheal").join("store.redb")
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn inst(n: u32) -> InstanceId {
        InstanceId::parse(format!("i-{n:08x}")).expect("valid instance id")
    }

    fn inc(s: &str) -> IncidentId {
        IncidentId::parse(s).expect("valid incident id")
    }

    fn tg() -> TargetGroupArn {
        TargetGroupArn::parse(
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef",
        )
        .expect("valid arn")
    }

    fn record(id: &str, instance: u32, detected_at: i64) -> IncidentRecord {
        IncidentRecord {
            incident: Incident {
                id: inc(id),
                target_group: tg(),
                instance: inst(instance),
                asg: None,
                detected_at: Timestamp(detected_at),
                tags: BTreeMap::from([("team".to_string(), "web".to_string())]),
                launched_at: None,
            },
            status: IncidentStatus::Open,
            diagnosis: None,
            decision: None,
            steps: Vec::new(),
            failure: None,
            execution_arn: None,
            updated_at: Timestamp(detected_at),
        }
    }

    fn heal(instance: u32, at: i64) -> HealRecord {
        HealRecord {
            instance: inst(instance),
            action: Action::RestartService,
            started_at: Timestamp(at),
            outcome: HealOutcome::Healed,
            incident: Some(inc("a")),
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

    #[tokio::test]
    async fn incidents_survive_a_reopen_of_the_file() {
        let dir = TempDir::new();
        let (late, early, other) = (
            record("b", 1, 300),
            record("c", 1, 100),
            record("a", 2, 200),
        );
        {
            let store = DiskStore::open(&dir.file()).expect("opens");
            store.put_incident(&late).await.expect("put");
            store
                .put_all(&[early.clone(), other.clone()])
                .expect("put all");
        }
        let store = DiskStore::open(&dir.file()).expect("reopens");
        assert_eq!(
            store.get_incident(&inc("b")).await.expect("get"),
            Some(late.clone())
        );
        assert_eq!(store.get_incident(&inc("zz")).await.expect("get"), None);
        assert_eq!(
            store.incidents().expect("all"),
            vec![early.clone(), other.clone(), late.clone()]
        );
        let q = |instance, since, limit| IncidentQuery {
            instance,
            since,
            limit,
        };
        let ids = |v: Vec<IncidentRecord>| -> Vec<String> {
            v.into_iter().map(|r| r.incident.id.to_string()).collect()
        };
        let all = store
            .list_incidents(&q(None, None, None))
            .await
            .expect("list");
        assert_eq!(ids(all), ["a", "b", "c"]);
        let one = store
            .list_incidents(&q(Some(inst(1)), None, None))
            .await
            .expect("list");
        assert_eq!(ids(one), ["b", "c"]);
        let since = store
            .list_incidents(&q(None, Some(Timestamp(200)), None))
            .await
            .expect("list");
        assert_eq!(ids(since), ["a", "b"]);
        let limited = store
            .list_incidents(&q(None, None, Some(1)))
            .await
            .expect("list");
        assert_eq!(ids(limited), ["a"]);
    }

    #[tokio::test]
    async fn leases_follow_the_memory_store_rules() {
        let dir = TempDir::new();
        let store = DiskStore::open(&dir.file()).expect("opens");
        let i = inst(1);
        let a = store
            .acquire_lease(&i, &inc("a"), Timestamp(100), 60)
            .await
            .expect("free lease");
        assert_eq!(a.expires_at, Timestamp(160));

        let held = store.acquire_lease(&i, &inc("b"), Timestamp(120), 60).await;
        let Err(PortError::LeaseHeld { holder, .. }) = &held else {
            panic!("expected LeaseHeld, got {held:?}");
        };
        assert_eq!(holder, "a");

        let again = store
            .acquire_lease(&i, &inc("a"), Timestamp(130), 60)
            .await
            .expect("the holder re-acquires");
        assert_eq!(again.expires_at, Timestamp(190));

        let b = store
            .acquire_lease(&i, &inc("b"), Timestamp(190), 60)
            .await
            .expect("an expired lease is taken over");
        assert_eq!(b.holder, inc("b"));

        store.release_lease(&i, &inc("a")).await.expect("no-op");
        let active = store
            .active_leases(&[i.clone(), inst(2)], Timestamp(200))
            .await;
        assert_eq!(active.expect("active"), vec![b.clone()]);
        assert!(
            store
                .active_leases(std::slice::from_ref(&i), Timestamp(250))
                .await
                .expect("active")
                .is_empty()
        );

        store.release_lease(&i, &inc("b")).await.expect("release");
        assert!(
            store
                .active_leases(std::slice::from_ref(&i), Timestamp(200))
                .await
                .expect("active")
                .is_empty()
        );
        store
            .acquire_lease(&i, &inc("a"), Timestamp(200), 60)
            .await
            .expect("a released lease is free");
    }

    #[tokio::test]
    async fn history_returns_heals_and_transitions_since_a_time() {
        let dir = TempDir::new();
        let store = DiskStore::open(&dir.file()).expect("opens");
        for h in [heal(1, 100), heal(1, 300), heal(2, 300), heal(1, 200)] {
            store.record_heal(&h).await.expect("heal");
        }
        for t in [transition(1, 50), transition(1, 250), transition(2, 250)] {
            store.record_transition(&t).await.expect("transition");
        }
        let h = store
            .history(&inst(1), Timestamp(200))
            .await
            .expect("history");
        assert_eq!(h.heals, vec![heal(1, 300), heal(1, 200)]);
        assert_eq!(h.transitions, vec![transition(1, 250)]);
        assert_eq!(store.heals().expect("heals").len(), 4);
        assert_eq!(store.transitions().expect("transitions").len(), 3);
    }

    #[tokio::test]
    async fn policies_notifications_and_clear() {
        let dir = TempDir::new();
        let store = DiskStore::open(&dir.file()).expect("opens");
        let p = InstancePolicy {
            skip: true,
            cooldown_s: Some(600),
            ..InstancePolicy::default()
        };
        store.set_policy(&inst(1), &p).expect("policy");
        assert_eq!(store.instance_policy(&inst(1)).await.expect("get"), Some(p));
        assert_eq!(store.instance_policy(&inst(2)).await.expect("get"), None);

        let n = Notification {
            subject: "healed i-00000001".into(),
            severity: Severity::Info,
            target_group: tg(),
            incidents: vec![record("a", 1, 100)],
            held_back: Vec::new(),
            execution_url: None,
            approval_token: None,
        };
        store.notify(&n).await.expect("notify");
        store.notify(&n).await.expect("notify");
        assert_eq!(store.notifications().expect("sent"), vec![n.clone(), n]);

        store.put_all(&[record("a", 1, 100)]).expect("put");
        store.record_heal(&heal(1, 100)).await.expect("heal");
        store.clear().expect("clear");
        assert!(store.incidents().expect("all").is_empty());
        assert!(store.heals().expect("heals").is_empty());
        assert!(store.notifications().expect("sent").is_empty());
        assert_eq!(store.instance_policy(&inst(1)).await.expect("get"), None);
        // The store is usable after a clear, and sequences start again.
        store.record_heal(&heal(1, 100)).await.expect("heal");
        assert_eq!(store.heals().expect("heals"), vec![heal(1, 100)]);
    }

    #[test]
    fn another_schema_version_is_refused_with_the_fix() {
        let dir = TempDir::new();
        {
            let store = DiskStore::open(&dir.file()).expect("opens");
            let tx = store.db.begin_write().expect("write");
            {
                let mut meta = tx.open_table(META).expect("meta");
                meta.insert(SCHEMA_KEY, 99_u64).expect("insert");
            }
            tx.commit().expect("commit");
        }
        let err = DiskStore::open(&dir.file()).expect_err("refused");
        let msg = err.to_string();
        assert!(matches!(err, PortError::InvalidRequest(_)), "{msg}");
        assert!(msg.contains("schema version 99"), "{msg}");
        assert!(msg.contains(&dir.file().display().to_string()), "{msg}");
        assert!(msg.contains("to start afresh"), "{msg}");
    }

    #[test]
    fn a_file_that_is_not_a_store_is_refused_with_the_fix() {
        let dir = TempDir::new();
        let file = dir.file();
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        std::fs::write(&file, "this is not a redb database at all").expect("write");
        let msg = DiskStore::open(&file).expect_err("refused").to_string();
        assert!(msg.contains(&file.display().to_string()), "{msg}");
        assert!(msg.contains("to start afresh"), "{msg}");
    }
}
