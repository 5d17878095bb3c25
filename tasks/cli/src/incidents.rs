//! `autoheal incidents list|show` over the embedded store (what `autoheal demo` writes).

use std::fmt::Write as _;
use std::path::PathBuf;

use autoheal_core::ports::{Clock, IncidentQuery, SystemClock};
use autoheal_core::{IncidentRecord, InstanceId, Timestamp};
use autoheal_sim::DiskStore;
use clap::{Args, Subcommand};

use crate::{CliError, Output};

#[derive(Debug, Subcommand)]
pub enum IncidentsCommand {
    /// One line per incident, oldest first.
    List(ListArgs),
    /// One incident, whole.
    Show(ShowArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// The embedded store file, e.g. .autoheal/demo/incidents/web-app-crash.redb.
    #[arg(long, conflicts_with = "table")]
    pub store: Option<PathBuf>,
    /// The stack's DynamoDB incidents table (default AUTOHEAL_INCIDENTS_TABLE; `aws` feature).
    #[arg(long)]
    pub table: Option<String>,
    /// Only this instance's incidents.
    #[arg(long)]
    pub instance: Option<String>,
    /// Only incidents detected since: an RFC 3339 time or an age (`30m`, `24h`, `7d`).
    #[arg(long)]
    pub since: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    pub id: String,
    #[arg(long, conflicts_with = "table")]
    pub store: Option<PathBuf>,
    #[arg(long)]
    pub table: Option<String>,
    #[arg(long)]
    pub json: bool,
}

/// Where the incidents are.
enum Source {
    Store(PathBuf),
    Table(String),
}

impl Source {
    fn of(store: Option<&PathBuf>, table: Option<&String>) -> Result<Source, CliError> {
        match (store, table) {
            (Some(p), _) => Ok(Source::Store(p.clone())),
            (None, Some(t)) => Ok(Source::Table(t.clone())),
            (None, None) => match std::env::var("AUTOHEAL_INCIDENTS_TABLE") {
                Ok(t) if !t.trim().is_empty() => Ok(Source::Table(t)),
                _ => Err(CliError(
                    "name the incidents: --store FILE (what `make demo` or `autoheal simulate --store` wrote) or --table NAME (the stack's IncidentsTable output; or set AUTOHEAL_INCIDENTS_TABLE)".to_owned(),
                )),
            },
        }
    }

    fn describe(&self) -> String {
        match self {
            Source::Store(p) => p.display().to_string(),
            Source::Table(t) => format!("DynamoDB table {t}"),
        }
    }

    fn flag(&self) -> String {
        match self {
            Source::Store(p) => format!("--store {}", p.display()),
            Source::Table(t) => format!("--table {t}"),
        }
    }

    fn list(&self, q: &IncidentQuery) -> Result<Vec<IncidentRecord>, CliError> {
        match self {
            Source::Store(p) => {
                let mut all = open(p)?.query(q).map_err(|e| CliError(e.to_string()))?;
                autoheal_core::incident::sort_by_detection(&mut all);
                Ok(all)
            }
            Source::Table(t) => table_list(t, q),
        }
    }
}

#[cfg(feature = "aws")]
fn table_list(table: &str, q: &IncidentQuery) -> Result<Vec<IncidentRecord>, CliError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError(format!("cannot start the runtime: {e}")))?;
    rt.block_on(async {
        let mut aws = autoheal_aws::Aws::from_env().await;
        aws.settings.incidents_table = table.to_owned();
        if aws.settings.incidents_index.is_empty() {
            "InstanceId-Timestamp".clone_into(&mut aws.settings.incidents_index);
        }
        let mut all = autoheal_core::ports::IncidentStore::list_incidents(&aws, q)
            .await
            .map_err(|e| CliError(format!("DynamoDB table {table}: {e}")))?;
        autoheal_core::incident::sort_by_detection(&mut all);
        Ok(all)
    })
}

#[cfg(not(feature = "aws"))]
fn table_list(_: &str, _: &IncidentQuery) -> Result<Vec<IncidentRecord>, CliError> {
    Err(CliError(
        "reading the DynamoDB table needs the operator build: `make build-cli` (cargo build --release -p autoheal --features aws), then target/release/autoheal incidents ...; this build reads --store files only".to_owned(),
    ))
}

/// `--since`: an RFC 3339 time, or an age before now (`90s`, `30m`, `24h`, `7d`).
pub fn parse_since(s: &str, now: Timestamp) -> Result<Timestamp, CliError> {
    if let Some(t) = Timestamp::from_rfc3339(s) {
        return Ok(t);
    }
    let bad = || {
        CliError(format!(
            "--since {s:?} is neither an RFC 3339 time (2026-11-24T00:00:00Z) nor an age (90s, 30m, 24h, 7d)"
        ))
    };
    let (num, unit) = s.split_at(s.len().saturating_sub(1));
    let n: u64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        _ => return Err(bad()),
    };
    Ok(Timestamp(
        now.secs()
            .saturating_sub(i64::try_from(secs).map_err(|_| bad())?),
    ))
}

fn open(path: &std::path::Path) -> Result<DiskStore, CliError> {
    if !path.is_file() {
        return Err(CliError(format!(
            "{}: no such store; run `make demo` (it writes .autoheal/demo/incidents/<scenario>.redb) or name an existing file",
            path.display()
        )));
    }
    DiskStore::open(path).map_err(|e| CliError(e.to_string()))
}

fn json<T: serde::Serialize>(v: &T) -> Result<Output, CliError> {
    let text = serde_json::to_string_pretty(v)
        .map_err(|e| CliError(format!("cannot print the incidents: {e}")))?;
    Ok(Output {
        stdout: text + "\n",
        code: 0,
    })
}

pub fn incidents_cmd(c: &IncidentsCommand) -> Result<Output, CliError> {
    match c {
        IncidentsCommand::List(a) => {
            let source = Source::of(a.store.as_ref(), a.table.as_ref())?;
            let query = IncidentQuery {
                instance: match &a.instance {
                    Some(i) => Some(
                        InstanceId::parse(i).map_err(|e| CliError(format!("--instance: {e}")))?,
                    ),
                    None => None,
                },
                since: match &a.since {
                    Some(s) => Some(parse_since(s, SystemClock.now())?),
                    None => None,
                },
                limit: None,
            };
            let all = source.list(&query)?;
            let rows: Vec<&IncidentRecord> = all.iter().collect();
            if a.json {
                return json(&rows);
            }
            let mut out = String::new();
            let _ = writeln!(
                out,
                "{:<44} {:<21} {:<20} {:<18} {:<16} {:<10}",
                "incident", "instance", "detected", "class", "action", "status"
            );
            for r in &rows {
                let _ = writeln!(
                    out,
                    "{:<44} {:<21} {:<20} {:<18} {:<16} {:<10}",
                    r.incident.id.as_str(),
                    r.incident.instance.as_str(),
                    r.incident.detected_at.to_rfc3339(),
                    r.decision.as_ref().map_or("-", |d| d.class.as_str()),
                    r.decision.as_ref().map_or("-", |d| d.action.as_str()),
                    r.status.as_str()
                );
            }
            let _ = writeln!(out, "{} incident(s) in {}", rows.len(), source.describe());
            Ok(Output {
                stdout: out,
                code: 0,
            })
        }
        IncidentsCommand::Show(a) => {
            let source = Source::of(a.store.as_ref(), a.table.as_ref())?;
            let all = source.list(&IncidentQuery::default())?;
            let Some(r) = all.iter().find(|r| r.incident.id.as_str() == a.id) else {
                return Err(CliError(format!(
                    "no incident {:?} in {}; `autoheal incidents list {}` lists them",
                    a.id,
                    source.describe(),
                    source.flag()
                )));
            };
            if a.json {
                return json(r);
            }
            let mut out = String::new();
            let _ = writeln!(out, "incident   {}", r.incident.id.as_str());
            let _ = writeln!(
                out,
                "target     {} in {}",
                r.incident.instance.as_str(),
                r.incident.target_group.name()
            );
            let _ = writeln!(out, "detected   {}", r.incident.detected_at.to_rfc3339());
            let _ = writeln!(out, "status     {}", r.status.as_str());
            if let Some(d) = &r.diagnosis {
                let _ = writeln!(out, "diagnosis  {}: {}", d.class.as_str(), d.summary);
            }
            if let Some(d) = &r.decision {
                let _ = writeln!(out, "decision   {}: {}", d.action.as_str(), d.reason);
            }
            if let Some(f) = &r.failure {
                let _ = writeln!(out, "failure    {f}");
            }
            for s in &r.steps {
                let _ = writeln!(out, "  {}  {:<16} {}", s.at.to_rfc3339(), s.name, s.detail);
            }
            if let Some(e) = &r.execution_arn {
                let _ = writeln!(out, "execution  {e}");
            }
            Ok(Output {
                stdout: out,
                code: 0,
            })
        }
    }
}
