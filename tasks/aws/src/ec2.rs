//! EC2: [`InstanceInventory`] and [`InstanceControl`] for [`Aws`].
//!
//! - `describe_instances`: DescribeInstances (state, tags, launch time) and
//!   DescribeInstanceStatus with `IncludeAllInstances=true` (the instance and system status
//!   checks), both for at most 100 ids a call and following `NextToken`. Ids that do not exist
//!   are left out, as the port says: EC2 fails a whole call with `InvalidInstanceID.NotFound`
//!   (or `.Malformed`) when one id of it is unknown, so such a call is retried one id at a time
//!   and the ids EC2 does not know are dropped.
//! - `reboot`: RebootInstances; an unknown id is `InstanceNotFound`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;

use autoheal_core::error::PortError;
use autoheal_core::ids::{AsgName, InstanceId};
use autoheal_core::observe::{InstanceInfo, InstanceState, StatusCheck};
use autoheal_core::ports::{InstanceControl, InstanceInventory, PortResult};
use autoheal_core::time::Timestamp;
use aws_sdk_ec2::types::{
    Instance, InstanceStateName, InstanceStatus, InstanceStatusSummary, SummaryStatus,
};

use crate::Aws;
use crate::error::{self, Call};

/// The service name in errors.
const SERVICE: &str = "ec2";
/// Ids per DescribeInstances / DescribeInstanceStatus call.
pub const IDS_PER_CALL: usize = 100;
/// Error codes meaning an instance id is unknown to EC2.
const INSTANCE_MISSING: &[&str] = &["InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"];
/// The tag Auto Scaling puts on its instances.
pub const ASG_TAG: &str = "aws:autoscaling:groupName";

impl InstanceInventory for Aws {
    async fn describe_instances(&self, instances: &[InstanceId]) -> PortResult<Vec<InstanceInfo>> {
        let mut seen = BTreeSet::new();
        let ids: Vec<&InstanceId> = instances.iter().filter(|i| seen.insert(*i)).collect();
        let mut infos = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(IDS_PER_CALL) {
            let found = existing(&self.ec2, chunk, describe_ec2_instances).await?;
            let found_ids: Vec<&InstanceId> = chunk
                .iter()
                .copied()
                .filter(|id| found.iter().any(|i| i.instance_id() == Some(id.as_str())))
                .collect();
            let statuses = if found_ids.is_empty() {
                Vec::new()
            } else {
                existing(&self.ec2, &found_ids, describe_ec2_statuses).await?
            };
            for instance in &found {
                let id = instance.instance_id();
                let status = statuses.iter().find(|s| s.instance_id() == id);
                infos.push(instance_info(instance, status)?);
            }
        }
        Ok(infos)
    }
}

impl InstanceControl for Aws {
    async fn reboot(&self, instance: &InstanceId) -> PortResult<()> {
        let call =
            Call::new(SERVICE, "RebootInstances").instance(instance.as_str(), INSTANCE_MISSING);
        self.ec2
            .reboot_instances()
            .instance_ids(instance.as_str())
            .send()
            .await
            .map_err(|e| error::map(call, e))?;
        Ok(())
    }
}

/// Runs `describe` for the ids; when EC2 rejects the call because an id is unknown, runs it
/// again one id at a time and leaves out the ids EC2 does not know.
async fn existing<T, F, Fut>(
    ec2: &aws_sdk_ec2::Client,
    ids: &[&InstanceId],
    describe: F,
) -> PortResult<Vec<T>>
where
    F: Fn(aws_sdk_ec2::Client, Vec<String>) -> Fut,
    Fut: Future<Output = PortResult<Vec<T>>>,
{
    let all = ids.iter().map(|i| i.as_str().to_owned()).collect();
    match describe(ec2.clone(), all).await {
        Err(PortError::InstanceNotFound(_)) if ids.len() > 1 => {}
        Err(PortError::InstanceNotFound(_)) => return Ok(Vec::new()),
        other => return other,
    }
    let mut found = Vec::new();
    for id in ids {
        match describe(ec2.clone(), vec![id.as_str().to_owned()]).await {
            Ok(items) => found.extend(items),
            Err(PortError::InstanceNotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(found)
}

/// The id an error is about: the only id of the call, or none.
fn subject(ids: &[String]) -> &str {
    match ids {
        [one] => one.as_str(),
        _ => "",
    }
}

/// Every page of DescribeInstances for these ids (at most [`IDS_PER_CALL`]).
async fn describe_ec2_instances(
    ec2: aws_sdk_ec2::Client,
    ids: Vec<String>,
) -> PortResult<Vec<Instance>> {
    let call = describe_instances_call().instance(subject(&ids), INSTANCE_MISSING);
    let mut found = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = ec2
            .describe_instances()
            .set_instance_ids(Some(ids.clone()))
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| error::map(call, e))?;
        found.extend(
            out.reservations()
                .iter()
                .flat_map(|r| r.instances().iter().cloned()),
        );
        token = match out.next_token() {
            // A repeated token would loop forever: stop instead.
            Some(next) if !next.is_empty() && token.as_deref() != Some(next) => {
                Some(next.to_owned())
            }
            _ => break,
        };
    }
    Ok(found)
}

/// Every page of DescribeInstanceStatus (all states) for these ids (at most [`IDS_PER_CALL`]).
async fn describe_ec2_statuses(
    ec2: aws_sdk_ec2::Client,
    ids: Vec<String>,
) -> PortResult<Vec<InstanceStatus>> {
    let call =
        Call::new(SERVICE, "DescribeInstanceStatus").instance(subject(&ids), INSTANCE_MISSING);
    let mut found = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = ec2
            .describe_instance_status()
            .set_instance_ids(Some(ids.clone()))
            .include_all_instances(true)
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| error::map(call, e))?;
        found.extend(out.instance_statuses().iter().cloned());
        token = match out.next_token() {
            Some(next) if !next.is_empty() && token.as_deref() != Some(next) => {
                Some(next.to_owned())
            }
            _ => break,
        };
    }
    Ok(found)
}

fn describe_instances_call<'a>() -> Call<'a> {
    Call::new(SERVICE, "DescribeInstances")
}

/// A value the service returned that the core cannot accept.
fn invalid(call: Call<'_>, what: &str, err: impl Display) -> PortError {
    PortError::Service {
        service: call.service,
        message: format!("{} returned an invalid {what}: {err}", call.operation),
        source: None,
    }
}

/// One instance as the core sees it, from DescribeInstances and (when EC2 reported one) its
/// DescribeInstanceStatus entry.
pub fn instance_info(i: &Instance, status: Option<&InstanceStatus>) -> PortResult<InstanceInfo> {
    let call = describe_instances_call();
    let raw_id = i
        .instance_id()
        .ok_or_else(|| error::missing(call, "InstanceId"))?;
    let instance = InstanceId::parse(raw_id).map_err(|e| invalid(call, "id", e))?;
    let name = i
        .state()
        .and_then(|s| s.name())
        .ok_or_else(|| error::missing(call, "State.Name"))?;
    let state = instance_state(name)
        .ok_or_else(|| invalid(call, "instance state", format!("{:?}", name.as_str())))?;
    let tags = tags(i);
    let asg = tags
        .get(ASG_TAG)
        .map(|n| AsgName::parse(n.as_str()))
        .transpose()
        .map_err(|e| invalid(call, "id", e))?;
    Ok(InstanceInfo {
        instance,
        state,
        instance_status: status_check(status.and_then(InstanceStatus::instance_status))
            .unwrap_or_else(|| unreported_check(state)),
        system_status: status_check(status.and_then(InstanceStatus::system_status))
            .unwrap_or_else(|| unreported_check(state)),
        tags,
        asg,
        launched_at: i.launch_time().map(|t| Timestamp(t.secs())),
    })
}

/// Every tag of the instance (tags without a key are dropped; a missing value is empty).
pub fn tags(i: &Instance) -> BTreeMap<String, String> {
    i.tags()
        .iter()
        .filter_map(|t| {
            let key = t.key()?;
            Some((key.to_owned(), t.value().unwrap_or_default().to_owned()))
        })
        .collect()
}

/// `InstanceState.Name`; `None` for a state this version does not know.
pub fn instance_state(name: &InstanceStateName) -> Option<InstanceState> {
    Some(match name {
        InstanceStateName::Pending => InstanceState::Pending,
        InstanceStateName::Running => InstanceState::Running,
        InstanceStateName::ShuttingDown => InstanceState::ShuttingDown,
        InstanceStateName::Terminated => InstanceState::Terminated,
        InstanceStateName::Stopping => InstanceState::Stopping,
        InstanceStateName::Stopped => InstanceState::Stopped,
        _ => return None,
    })
}

/// `InstanceStatus.Status` / `SystemStatus.Status`; `None` when absent or unknown.
pub fn status_check(summary: Option<&InstanceStatusSummary>) -> Option<StatusCheck> {
    Some(match summary?.status()? {
        SummaryStatus::Ok => StatusCheck::Ok,
        SummaryStatus::Impaired => StatusCheck::Impaired,
        SummaryStatus::InsufficientData => StatusCheck::InsufficientData,
        SummaryStatus::NotApplicable => StatusCheck::NotApplicable,
        SummaryStatus::Initializing => StatusCheck::Initializing,
        _ => return None,
    })
}

/// The check of an instance EC2 reported no status for: not yet known while it runs, not
/// applicable otherwise (checks run only on running instances).
pub fn unreported_check(state: InstanceState) -> StatusCheck {
    if state == InstanceState::Running {
        StatusCheck::InsufficientData
    } else {
        StatusCheck::NotApplicable
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ec2::types::{InstanceState as SdkInstanceState, Tag};
    use aws_smithy_types::DateTime;

    fn running(id: &str) -> aws_sdk_ec2::types::builders::InstanceBuilder {
        Instance::builder().instance_id(id).state(
            SdkInstanceState::builder()
                .code(16)
                .name(InstanceStateName::Running)
                .build(),
        )
    }

    fn summary(s: SummaryStatus) -> InstanceStatusSummary {
        InstanceStatusSummary::builder().status(s).build()
    }

    #[test]
    fn an_instance_with_its_status_checks_tags_and_group_maps() {
        let i = running("i-0123456789abcdef0")
            .tags(Tag::builder().key(ASG_TAG).value("web-asg").build())
            .tags(Tag::builder().key("autoheal:skip").value("TRUE").build())
            .launch_time(DateTime::from_secs(1_732_492_800))
            .build();
        let s = InstanceStatus::builder()
            .instance_id("i-0123456789abcdef0")
            .instance_status(summary(SummaryStatus::Impaired))
            .system_status(summary(SummaryStatus::Ok))
            .build();
        let info = instance_info(&i, Some(&s)).expect("maps");
        assert_eq!(info.instance.as_str(), "i-0123456789abcdef0");
        assert_eq!(info.state, InstanceState::Running);
        assert_eq!(info.instance_status, StatusCheck::Impaired);
        assert_eq!(info.system_status, StatusCheck::Ok);
        assert_eq!(info.asg.as_ref().map(AsgName::as_str), Some("web-asg"));
        assert_eq!(info.launched_at, Some(Timestamp(1_732_492_800)));
        assert_eq!(info.tags.len(), 2);
        assert!(info.opted_out());
    }

    #[test]
    fn an_instance_outside_any_group_has_no_asg() {
        let info = instance_info(&running("i-0123abcd").build(), None).expect("maps");
        assert_eq!(info.asg, None);
        assert!(info.tags.is_empty());
        assert_eq!(info.launched_at, None);
    }

    #[test]
    fn every_summary_status_maps() {
        let cases = [
            (SummaryStatus::Ok, StatusCheck::Ok),
            (SummaryStatus::Impaired, StatusCheck::Impaired),
            (
                SummaryStatus::InsufficientData,
                StatusCheck::InsufficientData,
            ),
            (SummaryStatus::NotApplicable, StatusCheck::NotApplicable),
            (SummaryStatus::Initializing, StatusCheck::Initializing),
        ];
        for (sdk, core) in cases {
            assert_eq!(status_check(Some(&summary(sdk))), Some(core));
        }
        assert_eq!(
            status_check(Some(&summary(SummaryStatus::from("weird")))),
            None
        );
        assert_eq!(
            status_check(Some(&InstanceStatusSummary::builder().build())),
            None
        );
        assert_eq!(status_check(None), None);
    }

    #[test]
    fn unreported_checks_depend_on_the_state() {
        let stopped = Instance::builder()
            .instance_id("i-0123abcd")
            .state(
                SdkInstanceState::builder()
                    .name(InstanceStateName::Stopped)
                    .build(),
            )
            .build();
        let info = instance_info(&stopped, None).expect("maps");
        assert_eq!(info.state, InstanceState::Stopped);
        assert_eq!(info.instance_status, StatusCheck::NotApplicable);
        let info = instance_info(&running("i-0123abcd").build(), None).expect("maps");
        assert_eq!(info.instance_status, StatusCheck::InsufficientData);
        assert_eq!(info.system_status, StatusCheck::InsufficientData);
    }

    #[test]
    fn every_instance_state_maps() {
        let cases = [
            (InstanceStateName::Pending, InstanceState::Pending),
            (InstanceStateName::Running, InstanceState::Running),
            (InstanceStateName::ShuttingDown, InstanceState::ShuttingDown),
            (InstanceStateName::Terminated, InstanceState::Terminated),
            (InstanceStateName::Stopping, InstanceState::Stopping),
            (InstanceStateName::Stopped, InstanceState::Stopped),
        ];
        for (sdk, core) in cases {
            assert_eq!(instance_state(&sdk), Some(core));
            assert_eq!(sdk.as_str(), core.as_str());
        }
        assert_eq!(
            instance_state(&InstanceStateName::from("hibernating")),
            None
        );
    }

    #[test]
    fn missing_or_invalid_fields_are_service_errors() {
        let no_state = Instance::builder().instance_id("i-0123abcd").build();
        let err = instance_info(&no_state, None).expect_err("no state");
        assert_eq!(err.error_name(), "AwsServiceError");
        assert!(err.to_string().contains("State.Name"), "{err}");
        let bad_id = running("instance-1").build();
        let err = instance_info(&bad_id, None).expect_err("bad id");
        assert!(err.to_string().contains("returned an invalid id"), "{err}");
    }

    #[test]
    fn the_subject_is_the_only_id() {
        assert_eq!(subject(&["i-0123abcd".to_owned()]), "i-0123abcd");
        assert_eq!(
            subject(&["i-0123abcd".to_owned(), "i-0123abce".to_owned()]),
            ""
        );
    }
}
