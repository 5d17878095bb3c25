//! `make demo` until the simulator lands: every fault kind of DESIGN.md §4, as the raw outputs a
//! run sees, through the shipped rules and the decision engine under the default policy.

use autoheal_core::GlobalPolicy;
use autoheal_core::RuleSet;
use autoheal_core::facts::Observation;
use autoheal_tests::fault_kinds;

fn seen(o: &Observation) -> String {
    let t = &o.target;
    let elb = match &t.reason {
        Some(r) => format!("{} ({})", t.state.as_str(), r.as_str()),
        None => t.state.as_str().to_owned(),
    };
    let ec2 = o.instance.as_ref().map_or("-".to_owned(), |i| {
        format!(
            "instance {} / system {}",
            i.instance_status.as_str(),
            i.system_status.as_str()
        )
    });
    let ssm = o.command.map_or("-", |c| c.as_str());
    format!(
        "ELB {elb} · EC2 {ec2} · SSM {ssm}{}",
        if o.diagnostics.is_some() {
            " + diagnostics"
        } else {
            ""
        }
    )
}

/// The state machine on the local runner, with the tasks mocked: the incidents of the mock config.
fn state_machine_walkthrough() -> Result<(), Box<dyn std::error::Error>> {
    let root = autoheal_tests::repo_root();
    let sm = autoheal_tests::autoheal_definition();
    let config = autoheal_asl::MockConfig::parse(&std::fs::read_to_string(
        root.join("statemachine/mocks/autoheal.mock.json"),
    )?)?;
    let input: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        root.join("statemachine/mocks/input.json"),
    )?)?;
    println!(
        "\nThe state machine (statemachine/autoheal.asl.json) on the local runner, virtual clock,"
    );
    println!("tasks answered by statemachine/mocks/autoheal.mock.json:\n");
    for case in ["HappyPath", "Escalation", "MassFailureHeld"] {
        let resources = config.test_case(Some("autoheal"), case)?;
        let opts = autoheal_asl::RunOptions {
            execution_name: case.to_owned(),
            state_machine_name: "autoheal".into(),
            ..Default::default()
        };
        let e = autoheal_asl::run_virtual(&sm, &resources, input.clone(), opts)?;
        let path: Vec<&str> = e
            .events
            .iter()
            .filter(|x| x.kind.ends_with("StateEntered"))
            .filter_map(|x| x.detail_str("name"))
            .collect();
        println!(
            "  {case:<16} {:?} after {:.0} s (virtual), {} history events",
            e.status,
            e.duration_s,
            e.events.len()
        );
        let mut line = String::from("    ");
        for (i, p) in path.iter().enumerate() {
            let piece = if i == 0 {
                (*p).to_owned()
            } else {
                format!(" → {p}")
            };
            if line.len() + piece.len() > 110 {
                println!("{line}");
                line = String::from("     ");
            }
            line.push_str(&piece);
        }
        println!("{line}\n");
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let rules = match RuleSet::builtin() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let policy = GlobalPolicy::default();
    println!("autoheal: the decision engine over every fault kind (DESIGN.md §4)");
    println!(
        "raw host outputs → tasks/core/rules/diagnosis_rules.json → decide() under the default policy\n"
    );
    let mut mismatches = 0;
    for (i, k) in fault_kinds().iter().enumerate() {
        let hosts = k.scene.observations();
        let (diagnosis, d) = k.scene.run_with(&rules, &policy);
        let group = if k.scene.faulty > 1 {
            format!("  [{} of {} targets]", k.scene.faulty, k.scene.size)
        } else if !k.scene.history.transitions.is_empty() {
            format!(
                "  [{} health changes in the last {} min]",
                k.scene.history.transitions.len(),
                k.scene.history.transitions.len() * 2
            )
        } else {
            String::new()
        };
        println!("{:>2}. {:<18} {}{group}", i + 1, k.kind, seen(&hosts[0]));
        let rule = diagnosis.rule_id.as_deref().unwrap_or("no rule matched");
        println!(
            "    diagnosis  {} ({rule}, confidence {:.2})",
            diagnosis.class, diagnosis.confidence
        );
        let approval = if d.requires_approval {
            ", waits for approval"
        } else {
            ""
        };
        let class = if d.class == diagnosis.class {
            String::new()
        } else {
            format!(" (as {})", d.class)
        };
        println!("    decision   {}{class}{approval}", d.action);
        println!("    why        {}", d.reason);
        if (d.class, d.action) != (k.class, k.action) {
            mismatches += 1;
            println!(
                "    MISMATCH   DESIGN.md §4 expects {} / {}",
                k.class, k.action
            );
        }
        println!();
    }
    println!(
        "{} fault kinds, {} as DESIGN.md §4 expects.",
        fault_kinds().len(),
        fault_kinds().len() - mismatches
    );
    if let Err(e) = state_machine_walkthrough() {
        eprintln!("error: the state machine walkthrough failed: {e}");
        return std::process::ExitCode::FAILURE;
    }
    println!(
        "\nNot built yet: the loop that runs whole scenarios on the simulated region, `autoheal demo` with\nreport.html (issue 4); the AWS adapters and Lambda binaries (issue 5)."
    );
    if mismatches == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
