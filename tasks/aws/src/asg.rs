//! Auto Scaling: [`FleetControl`] for [`Aws`].
//!
//! - `describe_group`: DescribeAutoScalingGroups for one name (capacity and members); a group
//!   that does not exist is an invalid request naming it (the call itself succeeds with no
//!   group).
//! - `enter_standby` / `exit_standby`: EnterStandby (`ShouldDecrementDesiredCapacity` as asked)
//!   / ExitStandby of one instance.
//! - `set_unhealthy`: SetInstanceHealth `Unhealthy` with `ShouldRespectGracePeriod=false`.
//! - `terminate_in_group`: TerminateInstanceInAutoScalingGroup; returns the scaling activity id.
//!
//! Auto Scaling reports an unknown instance as a `ValidationError` whose message says so
//! ("Instance Id not found - No managed instance found for instance ID: i-…", or "The instance
//! i-… is not part of Auto Scaling group …"): those become `InstanceNotFound`. Other validation
//! errors, including a group that does not exist ("AutoScalingGroup name not found - …"), stay
//! invalid requests.

use std::fmt::Display;

use autoheal_core::error::PortError;
use autoheal_core::ids::{AsgName, InstanceId};
use autoheal_core::ports::{AsgInfo, AsgInstance, FleetControl, PortResult};
use aws_sdk_autoscaling::operation::terminate_instance_in_auto_scaling_group::TerminateInstanceInAutoScalingGroupOutput;
use aws_sdk_autoscaling::types::{AutoScalingGroup, Instance};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::Aws;
use crate::error::{self, Call};

/// The service name in errors.
const SERVICE: &str = "autoscaling";

/// Message fragments (compared case-insensitively) of a `ValidationError` about an instance that
/// does not exist or is not in the group.
const INSTANCE_MISSING_MESSAGES: &[&str] = &[
    "instance id not found",
    "no managed instance found",
    "is not part of auto scaling group",
];

impl FleetControl for Aws {
    async fn describe_group(&self, asg: &AsgName) -> PortResult<AsgInfo> {
        let call = describe_call();
        let out = self
            .asg
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(asg.as_str())
            .send()
            .await
            .map_err(|e| error::map(call, e))?;
        let group = out
            .auto_scaling_groups()
            .iter()
            .find(|g| g.auto_scaling_group_name() == Some(asg.as_str()))
            .ok_or_else(|| {
                PortError::InvalidRequest(format!(
                    "Auto Scaling group \"{asg}\" does not exist (DescribeAutoScalingGroups \
                     returned no group of that name)"
                ))
            })?;
        asg_info(asg, group)
    }

    async fn enter_standby(
        &self,
        asg: &AsgName,
        instance: &InstanceId,
        decrement_desired: bool,
    ) -> PortResult<()> {
        let call = Call::new(SERVICE, "EnterStandby").instance(instance.as_str(), &[]);
        self.asg
            .enter_standby()
            .auto_scaling_group_name(asg.as_str())
            .instance_ids(instance.as_str())
            .should_decrement_desired_capacity(decrement_desired)
            .send()
            .await
            .map_err(|e| map_error(call, e))?;
        Ok(())
    }

    async fn exit_standby(&self, asg: &AsgName, instance: &InstanceId) -> PortResult<()> {
        let call = Call::new(SERVICE, "ExitStandby").instance(instance.as_str(), &[]);
        self.asg
            .exit_standby()
            .auto_scaling_group_name(asg.as_str())
            .instance_ids(instance.as_str())
            .send()
            .await
            .map_err(|e| map_error(call, e))?;
        Ok(())
    }

    async fn set_unhealthy(&self, instance: &InstanceId) -> PortResult<()> {
        let call = Call::new(SERVICE, "SetInstanceHealth").instance(instance.as_str(), &[]);
        self.asg
            .set_instance_health()
            .instance_id(instance.as_str())
            .health_status("Unhealthy")
            .should_respect_grace_period(false)
            .send()
            .await
            .map_err(|e| map_error(call, e))?;
        Ok(())
    }

    async fn terminate_in_group(
        &self,
        instance: &InstanceId,
        decrement_desired: bool,
    ) -> PortResult<String> {
        let call = Call::new(SERVICE, "TerminateInstanceInAutoScalingGroup")
            .instance(instance.as_str(), &[]);
        let out = self
            .asg
            .terminate_instance_in_auto_scaling_group()
            .instance_id(instance.as_str())
            .should_decrement_desired_capacity(decrement_desired)
            .send()
            .await
            .map_err(|e| map_error(call, e))?;
        activity_id(&out)
            .map(str::to_owned)
            .ok_or_else(|| error::missing(call, "Activity.ActivityId"))
    }
}

/// [`error::map`], plus the validation errors that mean the instance is unknown to the group.
fn map_error<E>(call: Call<'_>, err: SdkError<E, HttpResponse>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if instance_missing(err.code(), err.message()) {
        PortError::InstanceNotFound(call.subject.to_owned())
    } else {
        error::map(call, err)
    }
}

/// A `ValidationError` saying the instance does not exist or is not in the group.
pub fn instance_missing(code: Option<&str>, message: Option<&str>) -> bool {
    code == Some("ValidationError")
        && message.is_some_and(|m| {
            let m = m.to_ascii_lowercase();
            INSTANCE_MISSING_MESSAGES.iter().any(|f| m.contains(*f))
        })
}

fn describe_call<'a>() -> Call<'a> {
    Call::new(SERVICE, "DescribeAutoScalingGroups")
}

/// A value the service returned that the core cannot accept.
fn invalid(call: Call<'_>, what: &str, err: impl Display) -> PortError {
    PortError::Service {
        service: call.service,
        message: format!("{} returned an invalid {what}: {err}", call.operation),
        source: None,
    }
}

/// The activity of TerminateInstanceInAutoScalingGroup (`Activity`, else the first of
/// `Activities`).
pub fn activity_id(out: &TerminateInstanceInAutoScalingGroupOutput) -> Option<&str> {
    out.activity()
        .and_then(|a| a.activity_id())
        .or_else(|| out.activities().iter().find_map(|a| a.activity_id()))
}

/// A group of DescribeAutoScalingGroups as the core sees it.
pub fn asg_info(name: &AsgName, g: &AutoScalingGroup) -> PortResult<AsgInfo> {
    let call = describe_call();
    let size = |field: &str, value: Option<i32>| -> PortResult<u32> {
        let v = value.ok_or_else(|| error::missing(call, field))?;
        u32::try_from(v).map_err(|e| invalid(call, field, e))
    };
    Ok(AsgInfo {
        name: name.clone(),
        min_size: size("MinSize", g.min_size())?,
        max_size: size("MaxSize", g.max_size())?,
        desired_capacity: size("DesiredCapacity", g.desired_capacity())?,
        instances: g
            .instances()
            .iter()
            .map(asg_instance)
            .collect::<PortResult<_>>()?,
    })
}

/// One member of a group.
pub fn asg_instance(i: &Instance) -> PortResult<AsgInstance> {
    let call = describe_call();
    let raw_id = i
        .instance_id()
        .ok_or_else(|| error::missing(call, "Instances.InstanceId"))?;
    Ok(AsgInstance {
        instance: InstanceId::parse(raw_id).map_err(|e| invalid(call, "id", e))?,
        lifecycle_state: i
            .lifecycle_state()
            .map(|s| s.as_str().to_owned())
            .ok_or_else(|| error::missing(call, "Instances.LifecycleState"))?,
        health_status: i
            .health_status()
            .map(str::to_owned)
            .ok_or_else(|| error::missing(call, "Instances.HealthStatus"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_autoscaling::types::{Activity, LifecycleState};

    fn member(id: &str, state: LifecycleState, health: &str) -> Instance {
        Instance::builder()
            .instance_id(id)
            .lifecycle_state(state)
            .health_status(health)
            .build()
    }

    #[test]
    fn a_group_maps_with_its_members() {
        let name = AsgName::parse("web-asg").expect("valid");
        let g = AutoScalingGroup::builder()
            .auto_scaling_group_name("web-asg")
            .min_size(2)
            .max_size(6)
            .desired_capacity(3)
            .instances(member("i-0123abcd", LifecycleState::InService, "Healthy"))
            .instances(member("i-0123abce", LifecycleState::Standby, "Healthy"))
            .instances(member(
                "i-0123abcf",
                LifecycleState::TerminatingWait,
                "Unhealthy",
            ))
            .build();
        let info = asg_info(&name, &g).expect("maps");
        assert_eq!(
            (info.min_size, info.max_size, info.desired_capacity),
            (2, 6, 3)
        );
        let states: Vec<(&str, &str, &str)> = info
            .instances
            .iter()
            .map(|i| {
                (
                    i.instance.as_str(),
                    i.lifecycle_state.as_str(),
                    i.health_status.as_str(),
                )
            })
            .collect();
        assert_eq!(
            states,
            [
                ("i-0123abcd", "InService", "Healthy"),
                ("i-0123abce", "Standby", "Healthy"),
                ("i-0123abcf", "Terminating:Wait", "Unhealthy"),
            ]
        );
    }

    #[test]
    fn missing_or_negative_sizes_are_service_errors() {
        let name = AsgName::parse("web-asg").expect("valid");
        let no_min = AutoScalingGroup::builder()
            .max_size(1)
            .desired_capacity(1)
            .build();
        let err = asg_info(&name, &no_min).expect_err("no min");
        assert_eq!(err.error_name(), "AwsServiceError");
        assert!(err.to_string().contains("MinSize"), "{err}");
        let negative = AutoScalingGroup::builder()
            .min_size(-1)
            .max_size(1)
            .desired_capacity(1)
            .build();
        assert!(asg_info(&name, &negative).is_err());
    }

    #[test]
    fn the_activity_id_comes_from_activity_then_activities() {
        let one = TerminateInstanceInAutoScalingGroupOutput::builder()
            .activity(Activity::builder().activity_id("act-1").build())
            .build();
        assert_eq!(activity_id(&one), Some("act-1"));
        let many = TerminateInstanceInAutoScalingGroupOutput::builder()
            .activities(Activity::builder().activity_id("act-2").build())
            .build();
        assert_eq!(activity_id(&many), Some("act-2"));
        let none = TerminateInstanceInAutoScalingGroupOutput::builder().build();
        assert_eq!(activity_id(&none), None);
    }

    #[test]
    fn validation_errors_about_unknown_instances_are_recognised() {
        let v = Some("ValidationError");
        for m in [
            "Instance Id not found - No managed instance found for instance ID: i-0123abcd",
            "Instance Id not found - No managed instance found for instance ID i-0123abcd",
            "The instance i-0123abcd is not part of Auto Scaling group web-asg.",
        ] {
            assert!(instance_missing(v, Some(m)), "{m}");
        }
        for m in [
            "AutoScalingGroup name not found - AutoScalingGroup web-asg not found",
            "The instance i-0123abcd is not in Standby.",
            "The instance i-0123abcd is not in InService or Standby.",
        ] {
            assert!(!instance_missing(v, Some(m)), "{m}");
        }
        assert!(!instance_missing(
            Some("ResourceContention"),
            Some("Instance Id not found")
        ));
        assert!(!instance_missing(v, None));
    }
}
