//! One source for the allow-patterns: the SSM documents carry exactly the patterns of the Rust
//! newtypes (`autoheal_core::ids::patterns`), so a value Rust accepts is one SSM accepts, and a
//! value SSM would reject never leaves Rust.

use autoheal_core::ids::patterns;
use autoheal_tests::repo_root;

/// `allowedPattern` of parameter `name` in document `file`, read from the YAML text.
fn allowed_pattern(file: &str, name: &str) -> String {
    let text = std::fs::read_to_string(repo_root().join("ssm").join(file)).expect("document");
    let mut in_param = false;
    for line in text.lines() {
        let t = line.trim();
        if t == format!("{name}:") {
            in_param = true;
        } else if in_param && t.starts_with("allowedPattern:") {
            let v = t.trim_start_matches("allowedPattern:").trim();
            return v.trim_matches('"').trim_matches('\'').replace("\\\\", "\\");
        } else if in_param && !line.starts_with("      ") && !line.starts_with("    ") {
            break;
        }
    }
    panic!("{file}: parameter {name} has no allowedPattern");
}

fn script(file: &str) -> String {
    std::fs::read_to_string(repo_root().join("ssm").join(file)).expect("document")
}

#[test]
fn every_document_takes_services_with_the_service_name_list_pattern() {
    for file in [
        "diagnostics.yml",
        "restart_services.yml",
        "verify_health.yml",
    ] {
        assert_eq!(
            allowed_pattern(file, "Services"),
            patterns::SERVICE_NAME_LIST,
            "{file}"
        );
        assert!(
            script(file).contains(&format!(
                "SERVICE_NAME_PATTERN='{}'",
                patterns::SERVICE_NAME
            )),
            "{file} checks each name with SERVICE_NAME"
        );
    }
}

#[test]
fn health_check_paths_use_the_rust_pattern() {
    for file in ["diagnostics.yml", "verify_health.yml"] {
        assert_eq!(
            allowed_pattern(file, "HealthCheckPath"),
            patterns::HEALTH_CHECK_PATH,
            "{file}"
        );
    }
}

#[test]
fn cleanup_paths_use_the_rust_pattern() {
    assert_eq!(
        allowed_pattern("restart_services.yml", "CleanupPaths"),
        patterns::CLEANUP_PATH_LIST
    );
    assert!(script("restart_services.yml").contains(&format!(
        "CLEANUP_PATH_PATTERN='{}'",
        patterns::CLEANUP_PATH
    )));
}

#[test]
fn injection_attempts_are_rejected_by_the_patterns_and_the_newtypes() {
    let services = regex_lite(patterns::SERVICE_NAME_LIST);
    for attack in [
        "; rm -rf /",
        "$(reboot)",
        "`id`",
        "a\nb",
        "../../etc",
        "nginx|cat",
        "'quoted'",
        "app.service && reboot",
    ] {
        assert!(!services(attack), "the Services pattern accepts {attack:?}");
        assert!(
            autoheal_core::ServiceName::parse(attack).is_err(),
            "ServiceName accepts {attack:?}"
        );
    }
    let paths = regex_lite(patterns::CLEANUP_PATH_LIST);
    for attack in ["/tmp; rm -rf /", "/tmp/$(id)", "/var/`id`", "/tmp\n/etc"] {
        assert!(
            !paths(attack),
            "the CleanupPaths pattern accepts {attack:?}"
        );
        assert!(
            autoheal_core::CleanupPath::parse(attack).is_err(),
            "CleanupPath accepts {attack:?}"
        );
    }
}

/// The pattern as a matcher (the `regex` crate, as `autoheal-core` uses it).
fn regex_lite(pattern: &'static str) -> impl Fn(&str) -> bool {
    let re = autoheal_core::ids::compile_pattern(pattern);
    move |s| re.is_match(s)
}

/// `timeoutSeconds` of the document's step.
fn document_timeout(file: &str) -> u64 {
    let text = script(file);
    let line = text
        .lines()
        .find(|l| l.trim().starts_with("timeoutSeconds:"))
        .unwrap_or_else(|| panic!("{file}: no timeoutSeconds"));
    line.trim()
        .trim_start_matches("timeoutSeconds:")
        .trim()
        .trim_matches('"')
        .parse()
        .unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[test]
fn every_document_finishes_inside_the_state_that_runs_it() {
    use autoheal_asl::definition::{Kind, Seconds};
    let sm = autoheal_tests::autoheal_definition();
    let Some(Kind::Map(map)) = sm.state("Heal each target").map(|s| &s.kind) else {
        panic!("the Map")
    };
    for (file, state) in [
        ("diagnostics.yml", "Diagnose through SSM"),
        ("restart_services.yml", "Restart service"),
        ("restart_services.yml", "Clean up disk"),
        ("verify_health.yml", "Verify health"),
    ] {
        let Some(Kind::Task(task)) = map.processor.state(state).map(|s| &s.kind) else {
            panic!("{state}")
        };
        let Some(Seconds::Literal(state_timeout)) = task.timeout else {
            panic!("{state} has no literal TimeoutSeconds")
        };
        let doc = document_timeout(file);
        assert!(
            doc < state_timeout,
            "{file} may run {doc} s but {state} gives up after {state_timeout} s"
        );
    }
}
