//! The hostile-input corpus (`tests/hostile/`, listed in its README): one test per input. Each
//! input goes to the parser it targets and must be rejected with an error that names the field or
//! path and says what to do, and nothing runs: the handlers' world records no call, the operator
//! CLI never reaches AWS. Inputs too big for the repository (100 MB, 10 MB, 1 MB) are generated
//! here. Four inputs were gaps when the corpus was written (a right-to-left override in an
//! Auto Scaling group name, a command in a health-check path, a 1 MB alarm name and a 100 KB
//! `Next` quoted whole in errors); they are fixed and their tests run.

use autoheal::operate::{ApproveArgs, approve_cmd};
use autoheal_asl::StateMachine;
use autoheal_core::config::MAX_CONFIG_BYTES;
use autoheal_core::diagnostics::{DiagnosticsError, MAX_DIAGNOSTICS_BYTES};
use autoheal_core::ids::{compile_pattern, patterns};
use autoheal_core::{ConfigError, GlobalPolicy, ServiceName, Timestamp, parse_diagnostics};
use autoheal_handlers::trigger::{Request, parse_event};
use autoheal_handlers::{Config, TaskError};
use autoheal_sim::Scenario;
use autoheal_tests::memory_world::{Host, MemoryWorld};
use autoheal_tests::{fixture, repo_root};
use serde_json::{Value, json};

/// Every file of `tests/hostile/` (but the README). A file that is not here fails
/// `every_file_of_the_corpus_is_listed_here_and_in_its_readme`; add it here, to the README, and
/// write its test.
const CORPUS: &[&str] = &[
    "approve-token-with-spaces.txt",
    "diagnostics-duplicate-keys.json",
    "diagnostics-nested-10k.json",
    "diagnostics-number-1e999.json",
    "diagnostics-wrong-types.json",
    "event-alarm-without-target-group.json",
    "event-other-source.json",
    "event-target-group-dot-dot.json",
    "event-target-group-foreign-arn.json",
    "policy-approval-unknown-action.json",
    "policy-instance-homoglyph.json",
    "policy-negative-min-healthy.json",
    "policy-services-metacharacters.json",
    "scenario-asg-rlo.json",
    "scenario-at-s-beyond-u64.json",
    "scenario-fault-group-homoglyph.json",
    "scenario-group-name-rlo.json",
    "scenario-instance-out-of-range.json",
    "scenario-instances-as-string.json",
    "scenario-negative-at-s.json",
    "scenario-nul-in-group-name.json",
    "scenario-services-backticks.json",
    "scenario-services-command-substitution.json",
    "scenario-services-semicolon.json",
    "scenario-unknown-kind.json",
    "ssm-service-names.txt",
    "task-detect-foreign-service-arn.json",
    "task-diagnose-health-check-path-injection.json",
    "task-reboot-instance-injection.json",
    "task-restart-instance-homoglyph.json",
];

/// Longest error text a hostile input may produce (errors are logged and shown to people).
const MAX_ERROR_BYTES: usize = 4096;

/// U+202E RIGHT-TO-LEFT OVERRIDE.
const RLO: char = '\u{202e}';

fn corpus_dir() -> std::path::PathBuf {
    repo_root().join("tests/hostile")
}

/// The text of one corpus file.
fn hostile(name: &str) -> String {
    assert!(CORPUS.contains(&name), "{name} is not in CORPUS");
    let path = corpus_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn json_input(name: &str) -> Value {
    serde_json::from_str(&hostile(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn every_file_of_the_corpus_is_listed_here_and_in_its_readme() {
    let mut files: Vec<String> = std::fs::read_dir(corpus_dir())
        .expect("tests/hostile")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "README.md")
        .collect();
    files.sort();
    let mut listed = CORPUS.to_vec();
    listed.sort_unstable();
    assert_eq!(
        files, listed,
        "tests/hostile/ and CORPUS differ: every input needs a test"
    );
    let readme = hostile_readme();
    for f in CORPUS {
        assert!(
            readme.contains(f),
            "tests/hostile/README.md does not list {f}"
        );
    }
}

fn hostile_readme() -> String {
    std::fs::read_to_string(corpus_dir().join("README.md")).expect("tests/hostile/README.md")
}

// ------------------------------------------------------------------------------- scenarios

/// Loads a corpus scenario; it must fail. Returns the error after checking its shape.
fn scenario_error(name: &str) -> ConfigError {
    let file = format!("tests/hostile/{name}");
    let e = Scenario::parse(&file, &hostile(name)).expect_err("a hostile scenario is rejected");
    let text = e.to_string();
    assert!(text.starts_with(&format!("{file}: at ")), "{text}");
    assert!(!e.fix.is_empty(), "{text}");
    assert!(text.len() < MAX_ERROR_BYTES, "{} bytes", text.len());
    e
}

#[test]
fn an_unknown_fault_kind_is_named_with_the_kinds_there_are() {
    let e = scenario_error("scenario-unknown-kind.json");
    assert_eq!(e.path, "faults[0].kind");
    assert!(e.message.contains("rm_rf_root"), "{e}");
    assert!(
        e.fix.starts_with("use one of app_crash") && e.fix.contains("dependency_outage"),
        "{e}"
    );
}

#[test]
fn a_negative_fault_time_is_named_with_the_fix() {
    let e = scenario_error("scenario-negative-at-s.json");
    assert_eq!(e.path, "faults[0].at_s");
    assert!(e.message.contains("-5"), "{e}");
    assert_eq!(e.fix, "use a whole number of seconds ≥ 0");
}

#[test]
fn a_fault_time_beyond_u64_is_named_with_the_fix() {
    let e = scenario_error("scenario-at-s-beyond-u64.json");
    assert_eq!(e.path, "faults[0].at_s");
    assert_eq!(e.fix, "use a whole number of seconds ≥ 0");
}

#[test]
fn an_instance_index_out_of_range_names_the_valid_range() {
    let e = scenario_error("scenario-instance-out-of-range.json");
    assert_eq!(e.path, "faults[0].instance");
    assert!(e.message.contains("4294967295 is out of range"), "{e}");
    assert_eq!(e.fix, "use an index from 0 to 5");
}

/// `services` reach the SSM documents' `Services` parameter: shell metacharacters stop at load.
fn assert_service_rejected(file: &str, service: &str) {
    let e = scenario_error(file);
    assert_eq!(e.path, "fleet.target_groups[0].services[0]");
    assert!(
        e.message.contains("invalid service name") && e.message.contains(service),
        "{e}"
    );
    assert!(e.message.contains("e.g. nginx.service"), "{e}");
    assert_eq!(e.fix, "list systemd unit names, e.g. [\"app.service\"]");
}

#[test]
fn a_service_with_a_semicolon_is_rejected() {
    assert_service_rejected("scenario-services-semicolon.json", "app.service; rm -rf /");
}

#[test]
fn a_service_with_command_substitution_is_rejected() {
    assert_service_rejected("scenario-services-command-substitution.json", "$(reboot)");
}

#[test]
fn a_service_with_backticks_is_rejected() {
    assert_service_rejected("scenario-services-backticks.json", "`reboot`");
}

#[test]
fn a_right_to_left_override_in_a_group_name_is_rejected_and_not_echoed_raw() {
    let e = scenario_error("scenario-group-name-rlo.json");
    assert_eq!(e.path, "fleet.target_groups[0].name");
    assert!(e.message.contains("is not a target group name"), "{e}");
    assert_eq!(
        e.fix,
        "use 1-32 letters, digits and -, not starting or ending with -"
    );
    // The name is quoted with `{:?}`, which escapes U+202E: the error cannot reorder a terminal.
    assert!(!e.to_string().contains(RLO), "{e}");
}

#[test]
fn a_right_to_left_override_in_an_asg_name_is_rejected() {
    let e = scenario_error("scenario-asg-rlo.json");
    assert_eq!(e.path, "fleet.target_groups[0].asg");
}

#[test]
fn a_homoglyph_of_a_group_name_in_a_fault_is_not_that_group() {
    let e = scenario_error("scenario-fault-group-homoglyph.json");
    assert_eq!(e.path, "faults[0].target_group");
    assert!(e.message.contains("no target group"), "{e}");
    assert_eq!(e.fix, "use one of web");
}

#[test]
fn a_nul_byte_in_a_group_name_is_rejected() {
    let e = scenario_error("scenario-nul-in-group-name.json");
    assert_eq!(e.path, "fleet.target_groups[0].name");
    assert!(e.message.contains("is not a target group name"), "{e}");
    assert!(!e.to_string().contains('\0'), "{e:?}");
}

#[test]
fn a_string_for_the_instance_count_is_a_type_error_with_the_fix() {
    let e = scenario_error("scenario-instances-as-string.json");
    assert_eq!(e.path, "fleet.target_groups[0].instances");
    assert!(e.message.contains("invalid type: string"), "{e}");
    assert_eq!(e.fix, "use a whole number ≥ 0");
}

#[test]
fn a_100_mb_scenario_is_rejected_before_parsing() {
    // One allocation: 100 MB of `A`, its ends overwritten in place into a scenario.
    let prefix = "{\"name\": \"big\", \"description\": \"";
    let mut text = "A".repeat(100 * 1024 * 1024);
    text.replace_range(..prefix.len(), prefix);
    let end = text.len() - 2;
    text.replace_range(end.., "\"}");
    let e = Scenario::parse("big.json", &text).expect_err("too big");
    assert_eq!(e.path, "$");
    assert!(
        e.message
            .contains(&format!("more than the {MAX_CONFIG_BYTES}-byte limit")),
        "{e}"
    );
    assert_eq!(e.fix, "split the document or remove unused entries");
}

// ------------------------------------------------------------------------ CloudWatch events

const NOW: Timestamp = Timestamp(1_800_000_000);

fn event_error(v: &Value) -> TaskError {
    let e = parse_event(v, NOW).expect_err("a hostile event is rejected");
    assert_eq!(e.name, "InvalidInput");
    e
}

#[test]
fn an_alarm_without_a_target_group_dimension_says_which_alarms_autoheal_watches() {
    let e = event_error(&json_input("event-alarm-without-target-group.json"));
    assert!(e.cause.contains("has no TargetGroup dimension"), "{e}");
    assert!(
        e.cause
            .contains("autoheal's alarms watch UnHealthyHostCount per target group"),
        "{e}"
    );
}

/// A TargetGroup dimension that does not make a target group ARN: named, with the ARN's form.
fn assert_bad_dimension(file: &str) {
    let e = event_error(&json_input(file));
    assert!(
        e.cause
            .contains("dimension TargetGroup: invalid target group ARN"),
        "{e}"
    );
    assert!(
        e.cause.contains(
            "expected arn:aws:elasticloadbalancing:REGION:ACCOUNT:targetgroup/NAME/16-hex-id"
        ),
        "{e}"
    );
    assert!(e.to_string().len() < MAX_ERROR_BYTES);
}

#[test]
fn a_target_group_dimension_with_dot_dot_is_rejected() {
    assert_bad_dimension("event-target-group-dot-dot.json");
}

#[test]
fn a_target_group_dimension_in_another_arn_format_is_rejected() {
    assert_bad_dimension("event-target-group-foreign-arn.json");
}

/// The trigger does not fail on events of other sources: it answers that it ignored them, and
/// why, and starts nothing (`trigger` returns `{"ignored": …}` before any StartExecution).
#[test]
fn an_alarm_from_another_source_is_ignored_with_the_reason() {
    let r = parse_event(&json_input("event-other-source.json"), NOW).expect("answered");
    let Request::Ignore { reason } = r else {
        panic!("started something: {r:?}")
    };
    assert!(reason.contains("\"evil.example\""), "{reason}");
    assert!(
        reason.contains("neither a CloudWatch alarm state change nor a scheduled event"),
        "{reason}"
    );
}

fn alarm_event(name: &str, reason: &str, dims: Value) -> Value {
    json!({
        "version": "0", "id": "e", "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch", "account": "123456789012", "time": "2027-01-15T08:03:09Z",
        "region": "us-east-1",
        "detail": {"alarmName": name,
            "state": {"value": "ALARM", "reason": reason, "timestamp": "2027-01-15T08:03:09.000+0000"},
            "configuration": {"metrics": [{"id": "m1", "metricStat": {"metric": {
                "namespace": "AWS/ApplicationELB", "name": "UnHealthyHostCount", "dimensions": dims},
                "period": 60, "stat": "Maximum"}, "returnData": true}]}}
    })
}

#[test]
fn a_1_mb_reason_string_does_not_reach_the_error() {
    let e = event_error(&alarm_event(
        "autoheal-web-UnHealthyHostCount",
        &"A".repeat(1024 * 1024),
        json!({"InstanceId": "i-0123456789abcdef0"}),
    ));
    assert!(e.cause.contains("has no TargetGroup dimension"), "{e}");
    assert!(e.to_string().len() < MAX_ERROR_BYTES);
}

#[test]
fn a_1_mb_alarm_name_makes_a_bounded_error() {
    let e = event_error(&alarm_event(
        &"A".repeat(1024 * 1024),
        "Threshold Crossed",
        json!({"InstanceId": "i-0123456789abcdef0"}),
    ));
    assert!(e.cause.contains("has no TargetGroup dimension"), "{e}");
    assert!(
        e.to_string().len() < MAX_ERROR_BYTES,
        "{} bytes",
        e.to_string().len()
    );
}

// ----------------------------------------------------------------------- diagnostics output

fn diagnostics_error(name: &str) -> ConfigError {
    match parse_diagnostics(&hostile(name)) {
        Err(DiagnosticsError::Invalid(e)) => {
            assert_eq!(e.file, "diagnostics");
            assert!(e.to_string().len() < MAX_ERROR_BYTES);
            e
        }
        other => panic!("{name}: expected an invalid document, got {other:?}"),
    }
}

#[test]
fn a_string_where_a_number_belongs_names_the_field_and_the_schema() {
    let e = diagnostics_error("diagnostics-wrong-types.json");
    assert_eq!(e.path, "uptime_s");
    assert!(e.message.contains("invalid type: string"), "{e}");
    assert_eq!(
        e.fix,
        "`uptime_s` must match ssm/diagnostics.schema.json (see docs/diagnostics.md)"
    );
}

#[test]
fn arrays_nested_10000_deep_are_rejected_at_the_first_level_without_recursing() {
    let e = diagnostics_error("diagnostics-nested-10k.json");
    assert!(e.path.starts_with("dmesg.lines"), "{e}");
    assert!(e.message.contains("invalid type: sequence"), "{e}");
    assert!(e.fix.contains("ssm/diagnostics.schema.json"), "{e}");
}

#[test]
fn a_number_like_1e999_is_out_of_range_with_its_line() {
    let e = diagnostics_error("diagnostics-number-1e999.json");
    assert_eq!(e.path, "cpu.busy_percent");
    assert_eq!(e.message, "number out of range");
    assert!(
        e.fix
            .starts_with("the document is not valid JSON near line 13"),
        "{e}"
    );
}

#[test]
fn a_duplicate_key_is_named() {
    let e = diagnostics_error("diagnostics-duplicate-keys.json");
    assert!(e.message.contains("duplicate field `uptime_s`"), "{e}");
    assert!(e.fix.contains("ssm/diagnostics.schema.json"), "{e}");
}

/// SSM delivers at most 24,000 characters of output: a 10 MB document cannot be real.
#[test]
fn a_10_mb_output_is_rejected_by_its_size() {
    let big = format!(
        "{}{}",
        fixture("diagnostics/healthy.json"),
        " ".repeat(10 * 1024 * 1024)
    );
    let e = parse_diagnostics(&big).expect_err("too big");
    assert_eq!(e, DiagnosticsError::TooLarge(big.len()));
    assert!(
        e.to_string().contains(&format!(
            "more than SSM's {MAX_DIAGNOSTICS_BYTES}-character limit"
        )),
        "{e}"
    );
}

// --------------------------------------------------------------------------------- policies

fn policy_error(name: &str) -> ConfigError {
    let file = format!("tests/hostile/{name}");
    let e = GlobalPolicy::parse(&file, &hostile(name)).expect_err("a hostile policy is rejected");
    assert!(e.to_string().starts_with(&format!("{file}: at ")), "{e}");
    assert!(e.to_string().len() < MAX_ERROR_BYTES);
    e
}

#[test]
fn a_negative_min_healthy_percent_is_named_with_the_range() {
    let e = policy_error("policy-negative-min-healthy.json");
    assert_eq!(e.path, "min_healthy_percent");
    assert!(e.message.contains("-10"), "{e}");
    assert_eq!(e.fix, "use a whole number from 0 to 100, e.g. 50");
}

#[test]
fn approval_for_an_unknown_action_lists_the_heal_actions() {
    let e = policy_error("policy-approval-unknown-action.json");
    assert!(e.path.starts_with("approval_required_for"), "{e}");
    assert!(e.message.contains("unknown variant `rm_rf`"), "{e}");
    assert_eq!(
        e.fix,
        "list heal actions: cleanup, restart_service, reboot, replace, quarantine"
    );
}

#[test]
fn a_policy_service_with_metacharacters_is_rejected() {
    let e = policy_error("policy-services-metacharacters.json");
    assert_eq!(e.path, "services[1]");
    assert!(e.message.contains("invalid service name"), "{e}");
    assert_eq!(e.fix, "list systemd unit names, e.g. [\"app.service\"]");
}

#[test]
fn a_homoglyph_instance_id_in_a_policy_is_rejected_with_an_example() {
    let e = policy_error("policy-instance-homoglyph.json");
    assert!(e.path.starts_with("instances"), "{e}");
    assert!(e.message.contains("invalid instance id"), "{e}");
    assert!(e.message.contains("e.g. i-0123456789abcdef0"), "{e}");
}

// --------------------------------------------------------------------- task inputs, the CLI

/// Runs one handler on a fresh in-memory world of two healthy hosts; returns its result and
/// every mutating call the world saw (SSM sends, reboots, terminations, ...).
fn run_task(function: &str, input: Value) -> (Result<Value, TaskError>, Vec<String>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    rt.block_on(async {
        let world = MemoryWorld::new(vec![Host::healthy(), Host::healthy()]);
        let r = autoheal_handlers::dispatch(&world, &Config::default(), function, input).await;
        (r, world.calls())
    })
}

/// The handler refuses its input, naming the field, and the world saw no call.
fn task_error(function: &str, name: &str) -> TaskError {
    let (r, calls) = run_task(function, json_input(name));
    let e = r.expect_err("a hostile task input is rejected");
    assert_eq!(e.name, "InvalidInput", "{e}");
    assert!(calls.is_empty(), "{calls:?}");
    e
}

#[test]
fn an_instance_id_with_a_command_is_refused_before_any_reboot() {
    let e = task_error("reboot", "task-reboot-instance-injection.json");
    assert!(
        e.cause
            .starts_with("reboot: at target.instance: invalid instance id"),
        "{e}"
    );
    assert!(e.cause.contains("e.g. i-0123456789abcdef0"), "{e}");
}

#[test]
fn a_homoglyph_instance_id_is_refused_before_any_restart() {
    let e = task_error("restart_service", "task-restart-instance-homoglyph.json");
    assert!(
        e.cause
            .starts_with("restart_service: at target.instance: invalid instance id"),
        "{e}"
    );
}

#[test]
fn a_target_group_arn_of_another_service_is_refused() {
    let e = task_error("detect", "task-detect-foreign-service-arn.json");
    assert!(
        e.cause
            .starts_with("detect: at scope.target_group_arn: invalid target group ARN"),
        "{e}"
    );
    assert!(
        e.cause.contains("e.g. arn:aws:elasticloadbalancing:"),
        "{e}"
    );
}

#[test]
fn a_health_check_path_with_a_command_is_refused_before_any_ssm_command() {
    let e = task_error("diagnose", "task-diagnose-health-check-path-injection.json");
    assert!(e.cause.contains("health_check_path"), "{e}");
}

#[test]
fn a_task_token_with_spaces_never_reaches_step_functions() {
    let args = ApproveArgs {
        token: hostile("approve-token-with-spaces.txt"),
        by: Some("oncall".to_owned()),
        reason: None,
    };
    let e = approve_cmd(&args).expect_err("not a token");
    // Without the aws feature the next step would say "make build-cli"; with it, SendTaskSuccess.
    assert!(e.0.starts_with("--token is not a task token"), "{e}");
    assert!(
        e.0.contains("copy it whole from the approval notification"),
        "{e}"
    );
}

/// Every line of `ssm-service-names.txt` is refused by `ServiceName::parse`, so it never becomes
/// a `Services` parameter. The SSM documents refuse them too: `ssm/restart_services.yml` declares
/// `Services` with
/// `allowedPattern: "^([A-Za-z0-9][A-Za-z0-9_.@-]{0,127}([ ,][A-Za-z0-9][A-Za-z0-9_.@-]{0,127}){0,15})?$"`
/// (`patterns::SERVICE_NAME_LIST`, kept equal to the document by `ssm_patterns.rs`), checked here
/// on each line as well. No line relies on the list's separators (space, comma) to be refused.
#[test]
fn service_names_with_shell_metacharacters_or_lookalikes_are_refused_in_rust_and_by_ssm() {
    let list = compile_pattern(patterns::SERVICE_NAME_LIST);
    let text = hostile("ssm-service-names.txt");
    let names: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    assert!(names.len() >= 15, "{names:?}");
    for name in names {
        let e = ServiceName::parse(name).expect_err(name);
        assert_eq!(e.kind, "service name");
        assert!(
            e.to_string().contains("e.g. nginx.service"),
            "{name:?}: {e}"
        );
        assert!(!list.is_match(name), "the SSM pattern accepts {name:?}");
    }
}

// ---------------------------------------------------------------------- state machine text

#[test]
fn a_state_machine_with_a_huge_next_gets_a_bounded_error() {
    let def = json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": {"padding": "x".repeat(100_000)}}}});
    let e = StateMachine::parse(&def.to_string()).expect_err("Next is not a name");
    assert_eq!(e.path, "States.A.Next");
    assert!(
        e.to_string().len() < MAX_ERROR_BYTES,
        "{} bytes",
        e.to_string().len()
    );
}
