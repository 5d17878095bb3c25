//! Operating autoheal (docs/operations.md): `approve`, `deny`, `replay`, `worker`, `start` over
//! AWS, and the local `invoke` and `replay --local` over the simulated fleet.
//!
//! The AWS commands need the `aws` feature (`make build-cli`); `make demo` builds without it, so
//! its build has no AWS SDK in it. Without the feature they exit 2 and say how to build it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use autoheal_asl::graph::{self, Format};
use autoheal_core::IncidentStatus;
use autoheal_sim::simulate::{ExecutionRun, SimOptions, replay};
use autoheal_sim::{DiskStore, Region, Scenario};
use clap::Args;
use serde_json::{Value, json};

use crate::{CliError, Output, json_file};

#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The task token from the approval notification (quote it whole).
    #[arg(long)]
    pub token: String,
    /// Who approves (recorded with the incident; default $USER).
    #[arg(long)]
    pub by: Option<String>,
    /// Why (recorded with the incident).
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct DenyArgs {
    /// The task token from the approval notification (quote it whole).
    #[arg(long)]
    pub token: String,
    /// Why not: recorded with the incident, which is held.
    #[arg(long)]
    pub reason: String,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The execution to replay on AWS (the notification's console link ends with it).
    #[arg(long, conflicts_with_all = ["incident", "local"])]
    pub execution_arn: Option<String>,
    /// `auto` (redrive when Step Functions allows it, otherwise restart), `redrive` or `restart`.
    #[arg(long, default_value = "auto")]
    pub mode: String,
    /// The incident to replay (with --local).
    #[arg(long, requires = "local")]
    pub incident: Option<String>,
    /// Replay against the simulator, from the embedded store a demo or simulate run wrote.
    #[arg(long, requires = "store")]
    pub local: bool,
    /// The embedded store (`.autoheal/demo/incidents/<scenario>.redb`).
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Replay without the scenario's API outages (the cause of the failure gone).
    #[arg(long)]
    pub clear_outages: bool,
    /// Where to write the execution graph (default: `replay-<incident>.html` beside the store).
    #[arg(long)]
    pub graph: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// `TASK=ARN` (repeatable), or the stack's ActivityArns output (comma-separated pairs).
    #[arg(long, required = true)]
    pub activity: Vec<String>,
    /// The worker's name in the executions' histories (default: the host name).
    #[arg(long)]
    pub name: Option<String>,
    /// Seconds between heartbeats while a task runs.
    #[arg(long, default_value_t = 20)]
    pub heartbeat_s: u64,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// A CloudWatch "Alarm State Change" event (what EventBridge would deliver), as JSON.
    #[arg(long, conflicts_with = "target_group")]
    pub alarm_event: Option<PathBuf>,
    /// The target group to check now.
    #[arg(long)]
    pub target_group: Option<String>,
    /// Only this instance of the group.
    #[arg(long, requires = "target_group")]
    pub instance: Option<String>,
    /// The state machine (default AUTOHEAL_STATE_MACHINE_ARN).
    #[arg(long)]
    pub state_machine_arn: Option<String>,
    /// The policy the execution gets, a JSON file (default AUTOHEAL_POLICY, the trigger
    /// function's). One of the two is required: a manual run must not heal by a policy
    /// nobody chose (a dry-run stack stays dry-run).
    #[arg(long)]
    pub policy: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InvokeArgs {
    /// The task: detect, lease, diagnose, decide, drain, restart_service, cleanup, reboot,
    /// replace, quarantine, verify, restore, record or notify.
    pub task: String,
    /// The task's input, as JSON (`-` for standard input).
    #[arg(long)]
    pub event: PathBuf,
    /// The simulated fleet: a scenario file or a built-in name (default web-app-crash).
    #[arg(long)]
    pub scenario: Option<String>,
    /// The scenario second to run the task at (its faults applied by then).
    #[arg(long, default_value_t = 0)]
    pub at_s: u64,
}

#[cfg_attr(feature = "aws", allow(dead_code))]
fn needs_aws(command: &str) -> CliError {
    CliError(format!(
        "`autoheal {command}` talks to AWS, and this autoheal was built without AWS support (the demo build); build the operator CLI with `make build-cli` (cargo build --release -p autoheal --features aws) and run target/release/autoheal"
    ))
}

/// `approve --token T`: SendTaskSuccess `{"approved": true, "by": …, "reason": …}`.
pub fn approve_cmd(a: &ApproveArgs) -> Result<Output, CliError> {
    let token = check_token(&a.token)?;
    let by =
        a.by.clone()
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "operator".to_owned());
    let output = json!({
        "approved": true,
        "by": by,
        "reason": a.reason.clone().unwrap_or_else(|| "approved".to_owned()),
    });
    aws::approve(token, &output)
}

/// `deny --token T --reason R`: SendTaskFailure `ApprovalDenied` with the reason.
pub fn deny_cmd(a: &DenyArgs) -> Result<Output, CliError> {
    let token = check_token(&a.token)?;
    if a.reason.trim().is_empty() {
        return Err(CliError(
            "--reason is empty: say why the heal is denied (it is recorded with the incident)"
                .to_owned(),
        ));
    }
    aws::deny(token, &a.reason)
}

/// Step Functions task tokens: printable ASCII, 1 to 2048 characters (the API's limit).
fn check_token(t: &str) -> Result<&str, CliError> {
    let t = t.trim();
    if t.is_empty() || t.len() > 2048 || !t.chars().all(|c| c.is_ascii_graphic()) {
        return Err(CliError(
            "--token is not a task token (1 to 2048 printable characters, no spaces): copy it whole from the approval notification and quote it".to_owned(),
        ));
    }
    Ok(t)
}

pub fn replay_cmd(a: &ReplayArgs) -> Result<Output, CliError> {
    if a.local {
        let (Some(id), Some(store)) = (&a.incident, &a.store) else {
            return Err(CliError(
                "replay --local needs --incident ID and --store FILE (`autoheal incidents list --store FILE` lists the ids)".to_owned(),
            ));
        };
        return replay_local(id, store, a);
    }
    let Some(arn) = &a.execution_arn else {
        return Err(CliError(
            "replay needs --execution-arn ARN (on AWS) or --incident ID --local --store FILE"
                .to_owned(),
        ));
    };
    if !matches!(a.mode.as_str(), "auto" | "redrive" | "restart") {
        return Err(CliError(format!(
            "--mode {:?} is not a mode; use auto, redrive or restart",
            a.mode
        )));
    }
    aws::replay(arn, &a.mode, a.json)
}

pub fn worker_cmd(a: &WorkerArgs) -> Result<Output, CliError> {
    let mut pairs = Vec::new();
    for arg in &a.activity {
        for one in arg.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            pairs.push(autoheal_handlers::worker::parse_activity(one).map_err(CliError)?);
        }
    }
    if a.heartbeat_s == 0 {
        return Err(CliError(
            "--heartbeat-s 0: use a number of seconds below the states' HeartbeatSeconds, e.g. 20"
                .to_owned(),
        ));
    }
    aws::worker(pairs, a)
}

pub fn start_cmd(a: &StartArgs) -> Result<Output, CliError> {
    let event = match (&a.alarm_event, &a.target_group) {
        (Some(f), _) => json_file(f)?,
        (None, Some(tg)) => {
            let tg = autoheal_core::TargetGroupArn::parse(tg)
                .map_err(|e| CliError(format!("--target-group: {e}")))?;
            let mut e = json!({"target_group_arn": tg});
            if let Some(i) = &a.instance {
                let i = autoheal_core::InstanceId::parse(i)
                    .map_err(|e| CliError(format!("--instance: {e}")))?;
                e["instance_id"] = json!(i);
            }
            e
        }
        (None, None) => {
            return Err(CliError(
                "start needs --alarm-event FILE or --target-group ARN".to_owned(),
            ));
        }
    };
    // What the event asks for is checked before anything talks to AWS.
    autoheal_handlers::trigger::parse_event(&event, autoheal_core::Timestamp(0))
        .map_err(|e| CliError(format!("{}: {}", e.name, e.cause)))?;
    let policy = match &a.policy {
        Some(p) => json_file(p)?,
        None => match std::env::var("AUTOHEAL_POLICY") {
            Ok(p) if !p.trim().is_empty() => serde_json::from_str(&p)
                .map_err(|e| CliError(format!("AUTOHEAL_POLICY is not JSON: {e}")))?,
            _ => {
                return Err(CliError(
                    "say which policy the run gets: --policy FILE, or AUTOHEAL_POLICY (the trigger function's, e.g. `aws lambda get-function-configuration --function-name <TriggerFunction> --query Environment.Variables.AUTOHEAL_POLICY`)".to_owned(),
                ));
            }
        },
    };
    autoheal_core::GlobalPolicy::from_value("--policy", &policy)
        .map_err(|e| CliError(e.to_string()))?;
    aws::start(event, policy, a)
}

/// `invoke TASK --event F`: one handler against the simulated fleet of a scenario.
pub fn invoke_cmd(a: &InvokeArgs) -> Result<Output, CliError> {
    if !autoheal_handlers::in_process::FUNCTIONS
        .iter()
        .any(|(_, f)| *f == a.task)
    {
        return Err(CliError(format!(
            "{:?} is not a task; use one of {}",
            a.task,
            autoheal_handlers::in_process::FUNCTIONS
                .iter()
                .map(|(_, f)| *f)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let event = if a.event.as_os_str() == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| CliError(format!("standard input: cannot read: {e}")))?;
        serde_json::from_str(&text)
            .map_err(|e| CliError(format!("standard input: not valid JSON: {e}")))?
    } else {
        json_file(&a.event)?
    };
    let scenario = scenario_arg(a.scenario.as_deref().unwrap_or("web-app-crash"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|e| CliError(format!("cannot start the runtime: {e}")))?;
    let result = rt.block_on(async {
        let region = Region::new(&scenario).map_err(|e| CliError(e.to_string()))?;
        region
            .advance_to(a.at_s, SimOptions::default().sample_s)
            .await;
        Ok::<_, CliError>(
            autoheal_handlers::dispatch(
                &region,
                &autoheal_handlers::Config::default(),
                &a.task,
                event,
            )
            .await,
        )
    })?;
    match result {
        Ok(v) => Ok(Output {
            stdout: serde_json::to_string_pretty(&v).unwrap_or_default() + "\n",
            code: 0,
        }),
        Err(e) => Ok(Output {
            stdout: serde_json::to_string_pretty(
                &json!({"errorType": e.name, "errorMessage": e.cause}),
            )
            .unwrap_or_default()
                + "\n",
            code: 1,
        }),
    }
}

/// A scenario file, or the name of a built-in one.
fn scenario_arg(s: &str) -> Result<Scenario, CliError> {
    let path = Path::new(s);
    if path.is_file() {
        return Scenario::load(path).map_err(|e| CliError(e.to_string()));
    }
    let all = Scenario::builtin().map_err(|e| CliError(e.to_string()))?;
    let names: Vec<String> = all.iter().map(|x| x.name.clone()).collect();
    all.into_iter().find(|x| x.name == s).ok_or_else(|| {
        CliError(format!(
            "--scenario {s:?} is neither a file nor a built-in scenario ({})",
            names.join(", ")
        ))
    })
}

fn replay_local(id: &str, store_path: &Path, a: &ReplayArgs) -> Result<Output, CliError> {
    if !store_path.is_file() {
        return Err(CliError(format!(
            "{}: no such store; run `make demo` (it writes .autoheal/demo/incidents/<scenario>.redb) or `autoheal simulate --store FILE`",
            store_path.display()
        )));
    }
    let err = |e: autoheal_core::PortError| CliError(e.to_string());
    let store = DiskStore::open(store_path).map_err(err)?;
    let all = store.incidents().map_err(err)?;
    let Some(record) = all.iter().find(|r| r.incident.id.as_str() == id) else {
        return Err(CliError(format!(
            "no incident {id:?} in {}; `autoheal incidents list --store {}` lists them",
            store_path.display(),
            store_path.display()
        )));
    };
    let Some(name) = record
        .execution_arn
        .as_deref()
        .and_then(|arn| arn.rsplit(':').next())
    else {
        return Err(CliError(format!(
            "incident {id} records no execution: nothing to replay"
        )));
    };
    let missing = || {
        CliError(format!(
            "{} does not hold the run of incident {id} (written before replay existed?): run the scenario again with `make demo` or `autoheal simulate --store`",
            store_path.display()
        ))
    };
    let mut scenario: Scenario = serde_json::from_value(
        store
            .run_row("scenario")
            .map_err(err)?
            .ok_or_else(missing)?,
    )
    .map_err(|e| CliError(format!("the stored scenario does not load: {e}")))?;
    let run = store
        .run_row(&format!("execution:{name}"))
        .map_err(err)?
        .ok_or_else(missing)?;
    let at_s = run.get("at_s").and_then(Value::as_u64).unwrap_or(0);
    let input = run.get("input").cloned().unwrap_or(Value::Null);
    let cleared = if a.clear_outages {
        std::mem::take(&mut scenario.outages).len()
    } else {
        0
    };
    let sm = autoheal_handlers::definition()
        .map_err(|e| CliError(format!("the built-in state machine: {e}")))?;
    let r = replay(&scenario, &sm, name, at_s, input, &SimOptions::default())
        .map_err(|e| CliError(e.to_string()))?;
    let graph_path = a.graph.clone().unwrap_or_else(|| {
        store_path
            .parent()
            .unwrap_or(Path::new("."))
            .join(format!("replay-{id}.html"))
    });
    let html = graph::render(
        &sm,
        Some(&r.run.history),
        Format::Html,
        &format!("replay of {name}"),
    );
    std::fs::write(&graph_path, html)
        .map_err(|e| CliError(format!("{}: cannot write: {e}", graph_path.display())))?;
    // The replayed incident: the same target, detected again at the same time.
    let replayed = r
        .records
        .iter()
        .find(|x| x.incident.instance == record.incident.instance);
    let healed = replayed.is_some_and(|x| x.status == IncidentStatus::Healed);
    let code = u8::from(!healed);
    if a.json {
        let v = json!({
            "incident": id,
            "execution": name,
            "at_s": at_s,
            "outages_cleared": cleared,
            "original": {"status": record.status.as_str(), "failure": record.failure},
            "replay": {
                "execution_status": r.run.status,
                "states": states(&r.run),
                "incident": replayed,
            },
            "graph": graph_path,
        });
        return Ok(Output {
            stdout: serde_json::to_string_pretty(&v).unwrap_or_default() + "\n",
            code,
        });
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "replaying {name} (incident {id}) of scenario {} at second {at_s}{}",
        scenario.name,
        if cleared > 0 {
            format!(", {cleared} API outage(s) cleared")
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        out,
        "originally  {}{}",
        record.status.as_str(),
        record
            .failure
            .as_deref()
            .map(|f| format!(": {f}"))
            .unwrap_or_default()
    );
    match replayed {
        Some(x) => {
            let _ = writeln!(
                out,
                "replayed    {}{}",
                x.status.as_str(),
                x.failure
                    .as_deref()
                    .map(|f| format!(": {f}"))
                    .unwrap_or_default()
            );
            for s in &x.steps {
                let _ = writeln!(out, "  {}  {:<16} {}", s.at.to_rfc3339(), s.name, s.detail);
            }
        }
        None => {
            let _ = writeln!(
                out,
                "replayed    no incident for {} (the execution found nothing to heal there)",
                record.incident.instance.as_str()
            );
        }
    }
    let _ = writeln!(
        out,
        "execution   {} through {}",
        r.run.status,
        states(&r.run).join(" → ")
    );
    let _ = writeln!(out, "graph       {}", graph_path.display());
    Ok(Output { stdout: out, code })
}

/// The states the execution entered, in order, repeats of one state folded.
fn states(run: &ExecutionRun) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for ev in &run.history {
        if ev.kind.ends_with("StateEntered")
            && let Some(n) = ev.detail_str("name")
            && out.last().is_none_or(|l| l != n)
        {
            out.push(n.to_owned());
        }
    }
    out
}

#[cfg(not(feature = "aws"))]
mod aws {
    //! The AWS commands of a build without AWS support.
    use super::{CliError, Output, StartArgs, WorkerArgs, needs_aws};
    use serde_json::Value;

    pub fn approve(_: &str, _: &Value) -> Result<Output, CliError> {
        Err(needs_aws("approve"))
    }
    pub fn deny(_: &str, _: &str) -> Result<Output, CliError> {
        Err(needs_aws("deny"))
    }
    pub fn replay(_: &str, _: &str, _: bool) -> Result<Output, CliError> {
        Err(needs_aws("replay --execution-arn"))
    }
    pub fn worker(_: Vec<(String, String)>, _: &WorkerArgs) -> Result<Output, CliError> {
        Err(needs_aws("worker"))
    }
    pub fn start(_: Value, _: Value, _: &StartArgs) -> Result<Output, CliError> {
        Err(needs_aws("start"))
    }
}

#[cfg(feature = "aws")]
#[path = "operate_aws.rs"]
mod aws;
