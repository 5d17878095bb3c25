//! Step Functions activity workers: the same handlers, fed by GetActivityTask instead of Lambda.
//!
//! In the stack's activity mode (`taskMode: activity`, cdk/README.md) each Task state names an
//! activity (`autoheal-<task>`) instead of a Lambda function. A worker ([`run`]) long-polls one
//! activity, runs the task's handler on the input, heartbeats while it runs (a heal can take
//! minutes), and answers SendTaskSuccess with the output or SendTaskFailure with the stable
//! error name (the ASL's Retry and Catch match on it, exactly as on Lambda).
//!
//! Stopping (SIGTERM): the worker stops asking for work at once (a long poll in flight is
//! abandoned: Step Functions hands a task to a poll only when it answers it, and a poll cut
//! before its answer gets none), and finishes the task it holds before it returns: a heal is
//! never cut in half.
//!
//! The service is a port ([`ActivityService`]); `autoheal-aws` implements it over the Step
//! Functions API, the tests over a script.

use std::future::Future;
use std::time::Duration;

use autoheal_core::PortError;
use serde::Serialize;
use serde_json::Value;

use crate::TaskError;

/// A task Step Functions handed to this worker.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityTask {
    pub token: String,
    pub input: Value,
}

/// GetActivityTask, SendTaskHeartbeat, SendTaskSuccess and SendTaskFailure.
pub trait ActivityService {
    /// One long poll (up to 60 s); `None` when it ended with no task.
    fn get_task(
        &self,
        activity_arn: &str,
        worker_name: &str,
    ) -> impl Future<Output = Result<Option<ActivityTask>, PortError>>;
    fn heartbeat(&self, token: &str) -> impl Future<Output = Result<(), PortError>>;
    fn succeed(&self, token: &str, output: &Value) -> impl Future<Output = Result<(), PortError>>;
    fn fail(
        &self,
        token: &str,
        error: &str,
        cause: &str,
    ) -> impl Future<Output = Result<(), PortError>>;
}

/// How a worker behaves.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Reported to Step Functions with each poll (shown in the execution's history).
    pub worker_name: String,
    /// Seconds between heartbeats while a task runs; below the states' HeartbeatSeconds.
    pub heartbeat_every: Duration,
    /// Wait after a failed poll before the next (doubled per failure, at most 16×).
    pub poll_backoff: Duration,
    /// Stop after this many tasks (tests; `None` runs until stopped).
    pub max_tasks: Option<u64>,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            worker_name: "autoheal-worker".to_owned(),
            heartbeat_every: Duration::from_secs(20),
            poll_backoff: Duration::from_secs(1),
            max_tasks: None,
        }
    }
}

/// What a worker did, for its last log line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WorkerStats {
    pub polls: u64,
    pub tasks: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub heartbeats: u64,
    pub poll_errors: u64,
    /// Answers Step Functions refused (the task had timed out, or the token is foreign).
    pub answer_errors: u64,
}

/// Step Functions' limit on a SendTaskFailure cause.
const MAX_CAUSE_CHARS: usize = 32_768;

/// Polls `activity_arn` and runs `handler` on each task until `stop` resolves (then finishes
/// the task in hand) or `opts.max_tasks` tasks ran.
pub async fn run<S, H, F>(
    service: &S,
    activity_arn: &str,
    handler: H,
    opts: &WorkerOptions,
    stop: impl Future<Output = ()>,
) -> WorkerStats
where
    S: ActivityService,
    H: Fn(Value) -> F,
    F: Future<Output = Result<Value, TaskError>>,
{
    let mut stats = WorkerStats::default();
    let mut backoff = opts.poll_backoff;
    tokio::pin!(stop);
    loop {
        if opts.max_tasks.is_some_and(|m| stats.tasks >= m) {
            return stats;
        }
        stats.polls += 1;
        let polled = tokio::select! {
            biased;
            () = &mut stop => return stats,
            p = service.get_task(activity_arn, &opts.worker_name) => p,
        };
        let task = match polled {
            Ok(Some(t)) => {
                backoff = opts.poll_backoff;
                t
            }
            Ok(None) => continue,
            Err(_) => {
                stats.poll_errors += 1;
                tokio::select! {
                    biased;
                    () = &mut stop => return stats,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(opts.poll_backoff * 16);
                continue;
            }
        };
        stats.tasks += 1;
        let result = {
            let work = handler(task.input);
            tokio::pin!(work);
            let mut beat = tokio::time::interval(opts.heartbeat_every);
            beat.tick().await;
            loop {
                tokio::select! {
                    r = &mut work => break r,
                    _ = beat.tick() => {
                        // A refused heartbeat means the task already timed out; the handler's
                        // side effects are idempotent, so it is left to finish.
                        if service.heartbeat(&task.token).await.is_ok() {
                            stats.heartbeats += 1;
                        }
                    }
                }
            }
        };
        let answered = match result {
            Ok(output) => {
                stats.succeeded += 1;
                service.succeed(&task.token, &output).await
            }
            Err(e) => {
                stats.failed += 1;
                let cause: String = e.cause.chars().take(MAX_CAUSE_CHARS).collect();
                service.fail(&task.token, e.name, &cause).await
            }
        };
        if answered.is_err() {
            stats.answer_errors += 1;
        }
    }
}

/// `NAME=ARN` pairs of `autoheal worker --activity`, checked: the name is a task of the state
/// machine and the ARN an activity ARN.
pub fn parse_activity(s: &str) -> Result<(String, String), String> {
    let (name, arn) = s.split_once('=').ok_or_else(|| {
        format!(
            "--activity {s:?}: expected TASK=ARN, e.g. detect=arn:aws:states:us-east-1:123456789012:activity:autoheal-detect (the stack's ActivityArns output lists them)"
        )
    })?;
    if !crate::in_process::FUNCTIONS.iter().any(|(_, f)| *f == name) {
        return Err(format!(
            "--activity {s:?}: {name:?} is not a task; use one of {}",
            crate::in_process::FUNCTIONS
                .iter()
                .map(|(_, f)| *f)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let parts: Vec<&str> = arn.split(':').collect();
    if parts.len() != 7 || parts[0] != "arn" || parts[2] != "states" || parts[5] != "activity" {
        return Err(format!(
            "--activity {s:?}: {arn:?} is not an activity ARN (arn:aws:states:REGION:ACCOUNT:activity:NAME)"
        ));
    }
    Ok((name.to_owned(), arn.to_owned()))
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::VecDeque;

    use super::*;

    #[derive(Default)]
    struct Script {
        polls: RefCell<VecDeque<Result<Option<ActivityTask>, PortError>>>,
        log: RefCell<Vec<String>>,
    }

    impl ActivityService for Script {
        async fn get_task(
            &self,
            arn: &str,
            worker: &str,
        ) -> Result<Option<ActivityTask>, PortError> {
            self.log.borrow_mut().push(format!("poll {arn} {worker}"));
            let next = self.polls.borrow_mut().pop_front();
            match next {
                Some(p) => p,
                None => {
                    // Nothing more scripted: a long poll that never answers.
                    std::future::pending::<()>().await;
                    Ok(None)
                }
            }
        }
        async fn heartbeat(&self, token: &str) -> Result<(), PortError> {
            self.log.borrow_mut().push(format!("heartbeat {token}"));
            Ok(())
        }
        async fn succeed(&self, token: &str, output: &Value) -> Result<(), PortError> {
            self.log
                .borrow_mut()
                .push(format!("success {token} {output}"));
            Ok(())
        }
        async fn fail(&self, token: &str, error: &str, cause: &str) -> Result<(), PortError> {
            self.log
                .borrow_mut()
                .push(format!("failure {token} {error} {cause}"));
            Ok(())
        }
    }

    fn task(token: &str, input: Value) -> Result<Option<ActivityTask>, PortError> {
        Ok(Some(ActivityTask {
            token: token.to_owned(),
            input,
        }))
    }

    async fn handler(v: Value) -> Result<Value, TaskError> {
        let secs = v.get("sleep_s").and_then(Value::as_u64).unwrap_or(0);
        tokio::time::sleep(Duration::from_secs(secs)).await;
        if v.get("fail").is_some() {
            return Err(TaskError::heal_failed("the service did not come back"));
        }
        Ok(serde_json::json!({"done": v}))
    }

    #[tokio::test(start_paused = true)]
    async fn tasks_succeed_fail_heartbeat_and_poll_errors_back_off() {
        let s = Script::default();
        s.polls.borrow_mut().extend([
            Ok(None),
            Err(PortError::Throttled {
                service: "states",
                message: "Rate exceeded".into(),
                source: None,
            }),
            task("t1", serde_json::json!({"sleep_s": 50})),
            task("t2", serde_json::json!({"fail": true})),
        ]);
        let opts = WorkerOptions {
            max_tasks: Some(2),
            ..WorkerOptions::default()
        };
        let stats = run(&s, "arn:a", handler, &opts, std::future::pending()).await;
        assert_eq!(
            stats,
            WorkerStats {
                polls: 4,
                tasks: 2,
                succeeded: 1,
                failed: 1,
                heartbeats: 2,
                poll_errors: 1,
                answer_errors: 0,
            }
        );
        let log = s.log.borrow();
        assert_eq!(log[0], "poll arn:a autoheal-worker");
        assert!(log.contains(&"heartbeat t1".to_owned()), "{log:?}");
        assert!(log.contains(&r#"success t1 {"done":{"sleep_s":50}}"#.to_owned()));
        assert!(log.contains(&"failure t2 HealFailed the service did not come back".to_owned()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_finishes_the_task_in_hand_and_polls_no_more() {
        let s = Script::default();
        s.polls
            .borrow_mut()
            .extend([task("t1", serde_json::json!({"sleep_s": 30}))]);
        let stop = tokio::time::sleep(Duration::from_secs(5));
        let stats = run(&s, "arn:a", handler, &WorkerOptions::default(), stop).await;
        // Stopped at 5 s, while t1 ran until 30 s: t1 was answered, nothing else polled.
        assert_eq!((stats.tasks, stats.succeeded, stats.polls), (1, 1, 2));
        assert!(s.log.borrow().iter().any(|l| l.starts_with("success t1")));
    }

    #[test]
    fn activity_arguments_name_the_task_and_the_arn_with_the_fix() {
        let ok =
            parse_activity("detect=arn:aws:states:us-east-1:123456789012:activity:autoheal-detect")
                .expect("valid");
        assert_eq!(ok.0, "detect");
        for (bad, says) in [
            ("detect", "TASK=ARN"),
            (
                "nope=arn:aws:states:us-east-1:1:activity:x",
                "is not a task",
            ),
            (
                "detect=arn:aws:lambda:us-east-1:1:function:x",
                "not an activity ARN",
            ),
        ] {
            let e = parse_activity(bad).expect_err(bad);
            assert!(e.contains(says), "{e}");
        }
    }
}
