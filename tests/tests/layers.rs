//! The layer rules of DESIGN.md §1 and §9, checked on the manifests: only `tasks/aws` names the
//! AWS SDK, and the demo's build path (`autoheal`, `autoheal-sim`, `autoheal-handlers`,
//! `autoheal-asl`, `autoheal-core`) never reaches it.

use autoheal_tests::repo_root;

fn manifest(dir: &str) -> String {
    std::fs::read_to_string(repo_root().join(dir).join("Cargo.toml"))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
}

#[test]
fn only_tasks_aws_names_the_aws_sdk() {
    let tasks = std::fs::read_dir(repo_root().join("tasks")).expect("tasks/");
    let mut seen = 0;
    for entry in tasks.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let text = manifest(&format!("tasks/{name}"));
        seen += 1;
        let names_sdk = text.contains("aws-sdk-") || text.contains("aws-config");
        assert_eq!(names_sdk, name == "aws", "tasks/{name}/Cargo.toml");
    }
    assert!(seen >= 7, "{seen} crates under tasks/");
    assert!(!manifest("tests").contains("aws-sdk-"));
}

#[test]
fn the_demo_never_compiles_the_sdk() {
    // The CLI names the adapters only as an optional dependency of its `aws` feature (the
    // operator build, `make build-cli`), which is not a default feature.
    let cli = manifest("tasks/cli");
    for line in cli.lines().filter(|l| l.contains("autoheal-aws")) {
        let l = line.trim();
        assert!(
            l.starts_with('#') || l.contains("optional = true") || l.starts_with("aws = ["),
            "tasks/cli may name autoheal-aws only as an optional dependency: {l}"
        );
    }
    assert!(
        !cli.lines()
            .any(|l| l.trim_start().starts_with("default") && l.contains("aws")),
        "the aws feature must not be a default feature of tasks/cli"
    );
    assert!(!cli.contains("autoheal-lambdas"));
    for dir in ["tasks/sim", "tasks/handlers", "tasks/asl", "tasks/core"] {
        assert!(
            !manifest(dir).contains("autoheal-aws") && !manifest(dir).contains("autoheal-lambdas"),
            "{dir} must not depend on the AWS adapters: `make demo` would compile the SDK"
        );
    }
}
