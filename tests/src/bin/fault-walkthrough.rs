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
    println!(
        "Not built yet: the state machine and local ASL runner (issue 3), the simulated fleet and the full\n`autoheal demo` with report.html (issue 4). This walkthrough shows the engine those will drive."
    );
    if mismatches == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
