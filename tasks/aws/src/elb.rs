//! Elastic Load Balancing v2: [`TargetGroupCatalog`], [`TargetHealthSource`] and
//! [`TargetRegistry`] for [`Aws`].
//!
//! - `target_groups`: DescribeTargetGroups. A selector of ARNs is sent in chunks of 20 (the most
//!   one call accepts); a tag selector lists every group (paginated with `Marker`, 400 a page)
//!   and then reads their tags with DescribeTags in chunks of 20 (the most one call accepts).
//!   The load balancer kind comes from the group's load balancer ARNs (`loadbalancer/app/` is an
//!   ALB, `loadbalancer/net/` an NLB), or from its protocol while the group is attached to none.
//!   Only groups of target type `instance` are accepted: autoheal heals EC2 instances.
//! - `describe_target_health`: DescribeTargetHealth with `Include=AnomalyDetection` (NLB groups
//!   simply return no anomaly). Unknown reason codes are kept verbatim; targets whose id is not
//!   an instance id (IP or Lambda targets) are left out.
//! - `register` / `deregister`: RegisterTargets / DeregisterTargets of one `{Id, Port}`.
//!
//! Not-found codes: `TargetGroupNotFound` and `InvalidTarget` become `TargetNotFound`.

use std::collections::BTreeSet;
use std::fmt::Display;

use autoheal_core::error::PortError;
use autoheal_core::health::{Anomaly, AnomalyResult, HealthState, ReasonCode, TargetHealth};
use autoheal_core::ids::{InstanceId, TargetGroupArn};
use autoheal_core::ports::{
    LbKind, PortResult, TargetGroupCatalog, TargetGroupInfo, TargetGroupSelector,
    TargetHealthSource, TargetRegistry,
};
use aws_sdk_elasticloadbalancingv2::types::{
    AnomalyDetection, AnomalyResultEnum, DescribeTargetHealthInputIncludeEnum,
    MitigationInEffectEnum, ProtocolEnum, TagDescription, TargetDescription, TargetGroup,
    TargetHealthDescription, TargetTypeEnum,
};

use crate::Aws;
use crate::error::{self, Call};

/// The service name in errors.
const SERVICE: &str = "elasticloadbalancing";
/// DescribeTargetGroups `TargetGroupArns` and DescribeTags `ResourceArns` take at most 20 ARNs.
pub const ARNS_PER_CALL: usize = 20;
/// DescribeTargetGroups `PageSize` maximum.
const PAGE_SIZE: i32 = 400;
/// Error codes meaning the target group (or the target) does not exist.
const TARGET_MISSING: &[&str] = &["TargetGroupNotFound", "InvalidTarget"];

impl TargetGroupCatalog for Aws {
    async fn target_groups(
        &self,
        selector: &TargetGroupSelector,
    ) -> PortResult<Vec<TargetGroupInfo>> {
        match selector {
            TargetGroupSelector::Arns(arns) => {
                let arns = unique(arns.iter().map(TargetGroupArn::as_str));
                let mut groups = Vec::new();
                for chunk in arns.chunks(ARNS_PER_CALL) {
                    groups.extend(list_groups(&self.elb, chunk).await?);
                }
                groups.iter().map(group_info).collect()
            }
            TargetGroupSelector::Tag { key, value } => {
                let all = list_groups(&self.elb, &[]).await?;
                let arns: Vec<String> = all
                    .iter()
                    .filter_map(|g| g.target_group_arn().map(str::to_owned))
                    .collect();
                let mut tagged = BTreeSet::new();
                for chunk in arns.chunks(ARNS_PER_CALL) {
                    tagged.extend(tagged_arns(&self.elb, chunk, key, value).await?);
                }
                all.iter()
                    .filter(|g| g.target_group_arn().is_some_and(|a| tagged.contains(a)))
                    .map(group_info)
                    .collect()
            }
        }
    }
}

impl TargetHealthSource for Aws {
    async fn describe_target_health(
        &self,
        target_group: &TargetGroupArn,
    ) -> PortResult<Vec<TargetHealth>> {
        let call = describe_target_health_call().target(target_group.as_str(), "", TARGET_MISSING);
        let out = self
            .elb
            .describe_target_health()
            .target_group_arn(target_group.as_str())
            .include(DescribeTargetHealthInputIncludeEnum::Anomaly)
            .send()
            .await
            .map_err(|e| error::map(call, e))?;
        targets_of(out.target_health_descriptions())
    }
}

impl TargetRegistry for Aws {
    async fn register(
        &self,
        target_group: &TargetGroupArn,
        instance: &InstanceId,
        port: u16,
    ) -> PortResult<()> {
        let call = Call::new(SERVICE, "RegisterTargets").target(
            target_group.as_str(),
            instance.as_str(),
            TARGET_MISSING,
        );
        self.elb
            .register_targets()
            .target_group_arn(target_group.as_str())
            .targets(target_description(instance, port))
            .send()
            .await
            .map_err(|e| error::map(call, e))?;
        Ok(())
    }

    async fn deregister(
        &self,
        target_group: &TargetGroupArn,
        instance: &InstanceId,
        port: u16,
    ) -> PortResult<()> {
        let call = Call::new(SERVICE, "DeregisterTargets").target(
            target_group.as_str(),
            instance.as_str(),
            TARGET_MISSING,
        );
        self.elb
            .deregister_targets()
            .target_group_arn(target_group.as_str())
            .targets(target_description(instance, port))
            .send()
            .await
            .map_err(|e| error::map(call, e))?;
        Ok(())
    }
}

/// Every page of DescribeTargetGroups: for these ARNs (at most [`ARNS_PER_CALL`]), or every
/// group of the account and region when `arns` is empty.
async fn list_groups(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    arns: &[String],
) -> PortResult<Vec<TargetGroup>> {
    let subject = arns.join(", ");
    let call = describe_target_groups_call().target(&subject, "", TARGET_MISSING);
    let mut groups = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let out = elb
            .describe_target_groups()
            .set_target_group_arns((!arns.is_empty()).then(|| arns.to_vec()))
            .set_page_size(arns.is_empty().then_some(PAGE_SIZE))
            .set_marker(marker.clone())
            .send()
            .await
            .map_err(|e| error::map(call, e))?;
        groups.extend(out.target_groups().iter().cloned());
        marker = match out.next_marker() {
            // A repeated marker would loop forever: stop instead.
            Some(next) if !next.is_empty() && marker.as_deref() != Some(next) => {
                Some(next.to_owned())
            }
            _ => break,
        };
    }
    Ok(groups)
}

/// The ARNs among `arns` (at most [`ARNS_PER_CALL`]) that carry the tag `key=value`.
async fn tagged_arns(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    arns: &[String],
    key: &str,
    value: &str,
) -> PortResult<Vec<String>> {
    let subject = arns.join(", ");
    let call = Call::new(SERVICE, "DescribeTags").target(&subject, "", TARGET_MISSING);
    let out = elb
        .describe_tags()
        .set_resource_arns(Some(arns.to_vec()))
        .send()
        .await
        .map_err(|e| error::map(call, e))?;
    Ok(out
        .tag_descriptions()
        .iter()
        .filter(|d| has_tag(d, key, value))
        .filter_map(|d| d.resource_arn().map(str::to_owned))
        .collect())
}

fn describe_target_groups_call<'a>() -> Call<'a> {
    Call::new(SERVICE, "DescribeTargetGroups")
}

fn describe_target_health_call<'a>() -> Call<'a> {
    Call::new(SERVICE, "DescribeTargetHealth")
}

/// The values in their first order, without repeats.
fn unique<'a>(values: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    values
        .filter(|v| seen.insert(*v))
        .map(str::to_owned)
        .collect()
}

/// The resource carries the tag `key=value`.
fn has_tag(d: &TagDescription, key: &str, value: &str) -> bool {
    d.tags()
        .iter()
        .any(|t| t.key() == Some(key) && t.value() == Some(value))
}

/// The `{Id, Port}` of RegisterTargets / DeregisterTargets.
fn target_description(instance: &InstanceId, port: u16) -> TargetDescription {
    TargetDescription::builder()
        .id(instance.as_str())
        .port(i32::from(port))
        .build()
}

/// A value the service returned that the core cannot accept.
fn invalid(call: Call<'_>, what: &str, err: impl Display) -> PortError {
    PortError::Service {
        service: call.service,
        message: format!("{} returned an invalid {what}: {err}", call.operation),
        source: None,
    }
}

/// A target group of DescribeTargetGroups as the core sees it. Groups whose targets are not EC2
/// instances are rejected: autoheal heals instances.
pub fn group_info(tg: &TargetGroup) -> PortResult<TargetGroupInfo> {
    let call = describe_target_groups_call();
    let raw_arn = tg
        .target_group_arn()
        .ok_or_else(|| error::missing(call, "TargetGroupArn"))?;
    let arn = TargetGroupArn::parse(raw_arn).map_err(|e| invalid(call, "id", e))?;
    match tg.target_type() {
        Some(TargetTypeEnum::Instance) => {}
        other => {
            return Err(PortError::InvalidRequest(format!(
                "target group {arn} has target type {:?}: autoheal heals EC2 instance targets only \
                 (target type \"instance\"); remove the group from the selection",
                other.map_or("none", TargetTypeEnum::as_str)
            )));
        }
    }
    let protocol = tg
        .protocol()
        .map(|p| p.as_str().to_owned())
        .ok_or_else(|| error::missing(call, "Protocol"))?;
    let lb = lb_kind(tg.load_balancer_arns(), &protocol).ok_or_else(|| {
        PortError::InvalidRequest(format!(
            "target group {arn} is not behind an Application or Network Load Balancer \
             (protocol {protocol}): autoheal supports ALB and NLB target groups only"
        ))
    })?;
    let raw_port = tg.port().ok_or_else(|| error::missing(call, "Port"))?;
    let port = u16::try_from(raw_port).map_err(|e| invalid(call, "port", e))?;
    let checks_http = tg
        .health_check_protocol()
        .is_none_or(|p| matches!(p, ProtocolEnum::Http | ProtocolEnum::Https));
    Ok(TargetGroupInfo {
        arn,
        lb,
        protocol,
        port,
        health_check_port: health_check_port(tg.health_check_port(), port),
        health_check_path: tg
            .health_check_path()
            .filter(|_| checks_http)
            .map(str::to_owned),
    })
}

/// The load balancer kind: from the ARNs of the load balancers the group is attached to, or,
/// while it is attached to none, from its protocol (HTTP(S) groups can only serve an ALB;
/// TCP, TLS, UDP and QUIC groups only an NLB). `None` for a Gateway Load Balancer.
pub fn lb_kind(load_balancer_arns: &[String], protocol: &str) -> Option<LbKind> {
    for arn in load_balancer_arns {
        if arn.contains("loadbalancer/app/") {
            return Some(LbKind::Alb);
        }
        if arn.contains("loadbalancer/net/") {
            return Some(LbKind::Nlb);
        }
        if arn.contains("loadbalancer/gwy/") {
            return None;
        }
    }
    match protocol {
        "HTTP" | "HTTPS" => Some(LbKind::Alb),
        "TCP" | "TLS" | "UDP" | "TCP_UDP" | "QUIC" | "TCP_QUIC" => Some(LbKind::Nlb),
        _ => None,
    }
}

/// `HealthCheckPort`: `traffic-port` (or absent) is the port the targets receive traffic on,
/// the group's port; otherwise a number (`None` if it is not one).
pub fn health_check_port(value: Option<&str>, traffic_port: u16) -> Option<u16> {
    match value {
        None | Some("traffic-port") => Some(traffic_port),
        Some(p) => p.trim().parse().ok(),
    }
}

/// Every instance target of DescribeTargetHealth, in the order of the response.
pub fn targets_of(descriptions: &[TargetHealthDescription]) -> PortResult<Vec<TargetHealth>> {
    let mut targets = Vec::with_capacity(descriptions.len());
    for d in descriptions {
        if let Some(t) = target_health(d)? {
            targets.push(t);
        }
    }
    Ok(targets)
}

/// One target of DescribeTargetHealth; `None` when its id is not an instance id (an IP address
/// or a Lambda function).
pub fn target_health(d: &TargetHealthDescription) -> PortResult<Option<TargetHealth>> {
    let call = describe_target_health_call();
    let target = d.target().ok_or_else(|| error::missing(call, "Target"))?;
    let Some(instance) = target.id().and_then(|id| InstanceId::parse(id).ok()) else {
        return Ok(None);
    };
    let raw_port = target
        .port()
        .ok_or_else(|| error::missing(call, "Target.Port"))?;
    let port = u16::try_from(raw_port).map_err(|e| invalid(call, "port", e))?;
    let health = d
        .target_health()
        .ok_or_else(|| error::missing(call, "TargetHealth"))?;
    let state = health
        .state()
        .ok_or_else(|| error::missing(call, "TargetHealth.State"))?;
    let state = HealthState::parse(state.as_str()).map_err(|e| invalid(call, "state", e))?;
    Ok(Some(TargetHealth {
        instance,
        port,
        state,
        // `From<String>` keeps codes this version does not know verbatim (`ReasonCode::Other`).
        reason: health
            .reason()
            .map(|r| ReasonCode::from(r.as_str().to_owned())),
        description: health.description().map(str::to_owned),
        anomaly: d.anomaly_detection().and_then(anomaly),
    }))
}

/// `AnomalyDetection` of an ALB target; `None` for a result this version does not know.
pub fn anomaly(a: &AnomalyDetection) -> Option<Anomaly> {
    let result = match a.result()? {
        AnomalyResultEnum::Anomalous => AnomalyResult::Anomalous,
        AnomalyResultEnum::Normal => AnomalyResult::Normal,
        _ => return None,
    };
    Some(Anomaly {
        result,
        mitigation_in_effect: matches!(a.mitigation_in_effect(), Some(MitigationInEffectEnum::Yes)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_elasticloadbalancingv2::types::{
        Tag, TargetHealth as SdkTargetHealth, TargetHealthReasonEnum, TargetHealthStateEnum,
    };

    const ARN: &str =
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef";
    const ALB: &str =
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/web/0123456789abcdef";
    const NLB: &str =
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/net/tcp/0123456789abcdef";

    fn group() -> aws_sdk_elasticloadbalancingv2::types::builders::TargetGroupBuilder {
        TargetGroup::builder()
            .target_group_arn(ARN)
            .target_type(TargetTypeEnum::Instance)
            .protocol(ProtocolEnum::Http)
            .port(8080)
            .health_check_protocol(ProtocolEnum::Http)
            .health_check_port("traffic-port")
            .health_check_path("/healthz")
            .load_balancer_arns(ALB)
    }

    fn described(
        id: &str,
        state: TargetHealthStateEnum,
        reason: Option<TargetHealthReasonEnum>,
    ) -> TargetHealthDescription {
        let mut health = SdkTargetHealth::builder().state(state);
        if let Some(r) = reason {
            health = health.reason(r).description("Health checks failed");
        }
        TargetHealthDescription::builder()
            .target(TargetDescription::builder().id(id).port(8080).build())
            .target_health(health.build())
            .build()
    }

    #[test]
    fn an_instance_group_behind_an_alb_maps_with_traffic_port_resolved() {
        let info = group_info(&group().build()).expect("valid group");
        assert_eq!(info.arn.as_str(), ARN);
        assert_eq!(info.lb, LbKind::Alb);
        assert_eq!(info.protocol, "HTTP");
        assert_eq!(info.port, 8080);
        assert_eq!(info.health_check_port, Some(8080));
        assert_eq!(info.health_check_path.as_deref(), Some("/healthz"));
    }

    #[test]
    fn a_tcp_group_behind_an_nlb_has_no_health_check_path() {
        let tg = TargetGroup::builder()
            .target_group_arn(ARN)
            .target_type(TargetTypeEnum::Instance)
            .protocol(ProtocolEnum::Tcp)
            .port(443)
            .health_check_protocol(ProtocolEnum::Tcp)
            .health_check_port("9000")
            .health_check_path("/ignored")
            .load_balancer_arns(NLB)
            .build();
        let info = group_info(&tg).expect("valid group");
        assert_eq!(info.lb, LbKind::Nlb);
        assert_eq!(info.protocol, "TCP");
        assert_eq!(info.health_check_port, Some(9000));
        assert_eq!(info.health_check_path, None);
    }

    #[test]
    fn groups_of_ip_lambda_or_alb_targets_are_rejected_naming_the_group() {
        for t in [
            TargetTypeEnum::Ip,
            TargetTypeEnum::Lambda,
            TargetTypeEnum::Alb,
        ] {
            let err = group_info(&group().target_type(t.clone()).build()).expect_err("rejected");
            assert_eq!(err.error_name(), "InvalidInput");
            let msg = err.to_string();
            assert!(msg.contains(ARN), "{msg}");
            assert!(msg.contains("EC2 instance targets only"), "{msg}");
            assert!(msg.contains(t.as_str()), "{msg}");
        }
    }

    #[test]
    fn an_invalid_arn_from_the_service_is_a_service_error() {
        let err = group_info(&group().target_group_arn("arn:nonsense").build()).expect_err("bad");
        assert_eq!(err.error_name(), "AwsServiceError");
        assert!(err.to_string().contains("returned an invalid id"), "{err}");
    }

    #[test]
    fn the_lb_kind_comes_from_the_arns_then_the_protocol() {
        assert_eq!(lb_kind(&[ALB.to_owned()], "TCP"), Some(LbKind::Alb));
        assert_eq!(lb_kind(&[NLB.to_owned()], "HTTP"), Some(LbKind::Nlb));
        assert_eq!(lb_kind(&[], "HTTPS"), Some(LbKind::Alb));
        assert_eq!(lb_kind(&[], "TLS"), Some(LbKind::Nlb));
        assert_eq!(lb_kind(&[], "GENEVE"), None);
        let gwy = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/gwy/g/0123456789abcdef";
        assert_eq!(lb_kind(&[gwy.to_owned()], "GENEVE"), None);
    }

    #[test]
    fn health_check_ports_resolve_traffic_port() {
        assert_eq!(health_check_port(Some("traffic-port"), 80), Some(80));
        assert_eq!(health_check_port(None, 80), Some(80));
        assert_eq!(health_check_port(Some("8081"), 80), Some(8081));
        assert_eq!(health_check_port(Some("not-a-port"), 80), None);
    }

    #[test]
    fn every_reason_code_maps_and_unknown_ones_are_kept_verbatim() {
        let mut cases: Vec<(String, ReasonCode)> = ReasonCode::KNOWN
            .iter()
            .map(|c| (c.as_str().to_owned(), c.clone()))
            .collect();
        cases.push((
            "Target.SomethingNew".to_owned(),
            ReasonCode::Other("Target.SomethingNew".to_owned()),
        ));
        for (wire, expected) in cases {
            let d = described(
                "i-0123456789abcdef0",
                TargetHealthStateEnum::Unhealthy,
                Some(TargetHealthReasonEnum::from(wire.as_str())),
            );
            let t = target_health(&d)
                .expect("maps")
                .expect("an instance target");
            assert_eq!(t.reason, Some(expected), "{wire}");
            assert_eq!(t.state, HealthState::Unhealthy);
            assert_eq!(t.description.as_deref(), Some("Health checks failed"));
        }
    }

    #[test]
    fn every_state_maps() {
        let cases = [
            (TargetHealthStateEnum::Initial, HealthState::Initial),
            (TargetHealthStateEnum::Healthy, HealthState::Healthy),
            (TargetHealthStateEnum::Unhealthy, HealthState::Unhealthy),
            (TargetHealthStateEnum::Unused, HealthState::Unused),
            (TargetHealthStateEnum::Draining, HealthState::Draining),
            (TargetHealthStateEnum::Unavailable, HealthState::Unavailable),
            (
                TargetHealthStateEnum::UnhealthyDraining,
                HealthState::UnhealthyDraining,
            ),
        ];
        for (sdk, core) in cases {
            let t = target_health(&described("i-0123abcd", sdk, None))
                .expect("maps")
                .expect("instance");
            assert_eq!(t.state, core);
            assert_eq!(t.reason, None);
            assert_eq!(t.port, 8080);
        }
        let unknown = described("i-0123abcd", TargetHealthStateEnum::from("sleepy"), None);
        let err = target_health(&unknown).expect_err("unknown state");
        assert_eq!(err.error_name(), "AwsServiceError");
        assert!(err.to_string().contains("sleepy"), "{err}");
    }

    #[test]
    fn ip_targets_are_left_out() {
        let ds = [
            described("10.0.0.12", TargetHealthStateEnum::Healthy, None),
            described("i-0123abcd", TargetHealthStateEnum::Healthy, None),
        ];
        let targets = targets_of(&ds).expect("maps");
        assert_eq!(targets.len(), 1);
        assert_eq!(targets[0].instance.as_str(), "i-0123abcd");
    }

    #[test]
    fn anomaly_detection_maps_result_and_mitigation() {
        let a = AnomalyDetection::builder()
            .result(AnomalyResultEnum::Anomalous)
            .mitigation_in_effect(MitigationInEffectEnum::Yes)
            .build();
        assert_eq!(
            anomaly(&a),
            Some(Anomaly {
                result: AnomalyResult::Anomalous,
                mitigation_in_effect: true
            })
        );
        let n = AnomalyDetection::builder()
            .result(AnomalyResultEnum::Normal)
            .mitigation_in_effect(MitigationInEffectEnum::No)
            .build();
        assert_eq!(
            anomaly(&n),
            Some(Anomaly {
                result: AnomalyResult::Normal,
                mitigation_in_effect: false
            })
        );
        let odd = AnomalyDetection::builder()
            .result(AnomalyResultEnum::from("suspicious"))
            .build();
        assert_eq!(anomaly(&odd), None);
        assert_eq!(anomaly(&AnomalyDetection::builder().build()), None);

        let d = TargetHealthDescription::builder()
            .target(
                TargetDescription::builder()
                    .id("i-0123abcd")
                    .port(80)
                    .build(),
            )
            .target_health(
                SdkTargetHealth::builder()
                    .state(TargetHealthStateEnum::Healthy)
                    .build(),
            )
            .anomaly_detection(a)
            .build();
        let t = target_health(&d).expect("maps").expect("instance");
        assert!(t.is_anomalous());
    }

    #[test]
    fn tags_match_on_key_and_value() {
        let d = TagDescription::builder()
            .resource_arn(ARN)
            .tags(Tag::builder().key("autoheal").value("on").build())
            .build();
        assert!(has_tag(&d, "autoheal", "on"));
        assert!(!has_tag(&d, "autoheal", "off"));
        assert!(!has_tag(&d, "other", "on"));
    }

    #[test]
    fn unique_keeps_the_first_order() {
        assert_eq!(
            unique(["b", "a", "b", "c", "a"].into_iter()),
            ["b", "a", "c"]
        );
    }

    #[test]
    fn target_descriptions_carry_id_and_port() {
        let id = InstanceId::parse("i-0123abcd").expect("valid");
        let t = target_description(&id, 8080);
        assert_eq!(t.id(), Some("i-0123abcd"));
        assert_eq!(t.port(), Some(8080));
    }
}
