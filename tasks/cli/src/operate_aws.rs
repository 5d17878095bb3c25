//! The AWS commands (`--features aws`): one `Aws` from the standard chain (AWS_PROFILE,
//! AWS_REGION, AWS_ENDPOINT_URL), the stack's names from the environment or the flags.

use std::fmt::Write as _;
use std::time::Duration;

use autoheal_aws::Aws;
use autoheal_aws::operate::{self, OperateError, ReplayMode, Replayed};
use autoheal_handlers::worker::{self, WorkerOptions};
use autoheal_handlers::{Config, dispatch};
use serde_json::Value;

use super::{CliError, Output, StartArgs, WorkerArgs};

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError(format!("cannot start the runtime: {e}")))
}

/// Input errors exit 2 (a `CliError`); a service failure is a negative result (exit 1).
fn answer(r: Result<String, OperateError>) -> Result<Output, CliError> {
    match r {
        Ok(stdout) => Ok(Output { stdout, code: 0 }),
        Err(e) if e.is_input() => Err(CliError(e.to_string())),
        Err(e) => Ok(Output {
            stdout: format!("failed: {e}\n"),
            code: 1,
        }),
    }
}

pub fn approve(token: &str, output: &Value) -> Result<Output, CliError> {
    let rt = runtime()?;
    answer(rt.block_on(async {
        let aws = Aws::from_env().await;
        operate::send_success(&aws, token, output).await?;
        Ok(format!(
            "approved: the execution goes on with the heal ({})\n",
            output
        ))
    }))
}

pub fn deny(token: &str, reason: &str) -> Result<Output, CliError> {
    let rt = runtime()?;
    answer(rt.block_on(async {
        let aws = Aws::from_env().await;
        operate::send_failure(&aws, token, "ApprovalDenied", reason).await?;
        Ok(format!(
            "denied: the incident is recorded as held ({reason})\n"
        ))
    }))
}

pub fn replay(arn: &str, mode: &str, json: bool) -> Result<Output, CliError> {
    let mode = match mode {
        "redrive" => ReplayMode::Redrive,
        "restart" => ReplayMode::Restart,
        _ => ReplayMode::Auto,
    };
    let rt = runtime()?;
    answer(rt.block_on(async {
        let aws = Aws::from_env().await;
        let now = autoheal_core::ports::Clock::now(&aws).secs();
        let r = operate::replay(&aws, arn, mode, now).await?;
        if json {
            return Ok(serde_json::to_string_pretty(&r).unwrap_or_default() + "\n");
        }
        Ok(match r {
            Replayed::Redriven { execution_arn } => format!(
                "redriven: {execution_arn} resumes from the state that failed\n{}\n",
                autoheal_handlers::console_url(&execution_arn)
            ),
            Replayed::Restarted {
                execution_arn,
                name,
            } => format!(
                "started {name} with the input of {arn}\n{}\n",
                autoheal_handlers::console_url(&execution_arn)
            ),
        })
    }))
}

pub fn start(event: Value, policy: Value, a: &StartArgs) -> Result<Output, CliError> {
    let rt = runtime()?;
    let sm = a.state_machine_arn.clone();
    let result = rt.block_on(async move {
        let mut aws = Aws::from_env().await;
        if let Some(sm) = sm {
            aws.settings.state_machine_arn = sm;
        }
        let cfg = autoheal_handlers::trigger::TriggerConfig {
            policy,
            ..autoheal_handlers::trigger::TriggerConfig::default()
        };
        autoheal_handlers::trigger::trigger(&aws, &cfg, event).await
    });
    match result {
        Ok(v) if a.json => Ok(Output {
            stdout: serde_json::to_string_pretty(&v).unwrap_or_default() + "\n",
            code: 0,
        }),
        Ok(v) => {
            let mut out = String::new();
            if let Some(r) = v.get("ignored").and_then(Value::as_str) {
                let _ = writeln!(out, "ignored: {r}");
            }
            for (key, what) in [
                ("started", "started"),
                ("already_running", "already running"),
            ] {
                for arn in v.get(key).and_then(Value::as_array).into_iter().flatten() {
                    let arn = arn.as_str().unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "{what}: {arn}\n  {}",
                        autoheal_handlers::console_url(arn)
                    );
                }
            }
            Ok(Output {
                stdout: out,
                code: 0,
            })
        }
        Err(e) if e.name == "InvalidInput" => Err(CliError(e.cause)),
        Err(e) => Ok(Output {
            stdout: format!("failed: {}: {}\n", e.name, e.cause),
            code: 1,
        }),
    }
}

pub fn worker(pairs: Vec<(String, String)>, a: &WorkerArgs) -> Result<Output, CliError> {
    let config = Config::from_env().map_err(|e| CliError(e.to_string()))?;
    let opts = WorkerOptions {
        worker_name: a.name.clone().unwrap_or_else(|| {
            std::env::var("HOSTNAME").unwrap_or_else(|_| "autoheal-worker".to_owned())
        }),
        heartbeat_every: Duration::from_secs(a.heartbeat_s),
        ..WorkerOptions::default()
    };
    let rt = runtime()?;
    let stats = rt.block_on(async move {
        let aws = Aws::from_env().await;
        // SIGTERM or Ctrl-C: every loop stops polling and finishes the task in hand.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            let term = async {
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                () = term => {}
            }
            let _ = stop_tx.send(true);
        });
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let mut handles = Vec::new();
                for (task, arn) in pairs {
                    let (aws, config, opts) = (aws.clone(), config.clone(), opts.clone());
                    let mut stop = stop_rx.clone();
                    handles.push(tokio::task::spawn_local(async move {
                        let stats = worker::run(
                            &aws,
                            &arn,
                            |input| dispatch(&aws, &config, &task, input),
                            &opts,
                            async move {
                                let _ = stop.wait_for(|s| *s).await;
                            },
                        )
                        .await;
                        (task, stats)
                    }));
                }
                let mut all = Vec::new();
                for h in handles {
                    if let Ok(s) = h.await {
                        all.push(s);
                    }
                }
                all
            })
            .await
    });
    let mut out = String::new();
    for (task, s) in stats {
        let _ = writeln!(
            out,
            "{}",
            serde_json::json!({"level": "INFO", "message": "worker stopped", "task": task, "stats": s})
        );
    }
    Ok(Output {
        stdout: out,
        code: 0,
    })
}
