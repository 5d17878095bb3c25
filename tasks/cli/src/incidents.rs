//! `autoheal incidents list|show` over the embedded store (what `autoheal demo` writes).

use std::fmt::Write as _;
use std::path::PathBuf;

use autoheal_core::IncidentRecord;
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
    /// The store file, e.g. .autoheal/demo/incidents/web-app-crash.redb.
    #[arg(long)]
    pub store: PathBuf,
    /// Only this instance's incidents.
    #[arg(long)]
    pub instance: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    pub id: String,
    #[arg(long)]
    pub store: PathBuf,
    #[arg(long)]
    pub json: bool,
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
            let all = open(&a.store)?
                .incidents()
                .map_err(|e| CliError(e.to_string()))?;
            let rows: Vec<&IncidentRecord> = all
                .iter()
                .filter(|r| {
                    a.instance
                        .as_deref()
                        .is_none_or(|i| r.incident.instance.as_str() == i)
                })
                .collect();
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
            let _ = writeln!(out, "{} incident(s) in {}", rows.len(), a.store.display());
            Ok(Output {
                stdout: out,
                code: 0,
            })
        }
        IncidentsCommand::Show(a) => {
            let all = open(&a.store)?
                .incidents()
                .map_err(|e| CliError(e.to_string()))?;
            let Some(r) = all.iter().find(|r| r.incident.id.as_str() == a.id) else {
                return Err(CliError(format!(
                    "no incident {:?} in {}; `autoheal incidents list --store {}` lists them",
                    a.id,
                    a.store.display(),
                    a.store.display()
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
