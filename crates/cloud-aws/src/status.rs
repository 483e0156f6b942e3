//! The EC2NodeClass status from what its selectors resolved to: the resolved lists and the
//! conditions upstream users read (`SubnetsReady`, `SecurityGroupsReady`, `AMIsReady`,
//! `InstanceProfileReady`, and `Ready` when all hold), with upstream's reasons and messages.
//!
//! Pure: the resolver's findings and the time in, a status out. A condition keeps its
//! `lastTransitionTime` while its status does not change, so rewriting an unchanged status is a
//! no-op for watchers.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use tandem_api::aws::v1::{EC2NodeClassStatus, ResolvedAmi, ResolvedSecurityGroup, ResolvedSubnet};
use tandem_api::condition::{Condition, ConditionStatus, find};

/// One part of the class as the resolver found it: the values, or why there are none.
pub type Part<T> = Result<Vec<T>, String>;

/// Everything the resolver found for one class.
#[derive(Debug, Clone, PartialEq)]
pub struct Findings {
    /// Subnets matched by `subnetSelectorTerms`.
    pub subnets: Part<ResolvedSubnet>,
    /// Security groups matched by `securityGroupSelectorTerms`.
    pub security_groups: Part<ResolvedSecurityGroup>,
    /// AMIs matched by `amiSelectorTerms`.
    pub amis: Part<ResolvedAmi>,
    /// The instance profile nodes get (from `instanceProfile`, or the one made for `role`).
    pub instance_profile: Result<String, String>,
}

/// Condition types, as upstream names them.
pub mod types {
    /// All other conditions are True.
    pub const READY: &str = "Ready";
    /// `subnetSelectorTerms` matched at least one subnet.
    pub const SUBNETS_READY: &str = "SubnetsReady";
    /// `securityGroupSelectorTerms` matched at least one group.
    pub const SECURITY_GROUPS_READY: &str = "SecurityGroupsReady";
    /// `amiSelectorTerms` matched at least one image.
    pub const AMIS_READY: &str = "AMIsReady";
    /// The instance profile exists.
    pub const INSTANCE_PROFILE_READY: &str = "InstanceProfileReady";
}

fn part_condition<T>(
    type_: &str,
    part: &Part<T>,
    (not_found_reason, failed_reason): (&str, &str),
    not_found_message: &str,
) -> (String, ConditionStatus, String, String) {
    match part {
        Ok(v) if !v.is_empty() => (
            type_.into(),
            ConditionStatus::True,
            type_.into(),
            String::new(),
        ),
        Ok(_) => (
            type_.into(),
            ConditionStatus::False,
            not_found_reason.into(),
            not_found_message.into(),
        ),
        Err(e) => (
            type_.into(),
            ConditionStatus::False,
            failed_reason.into(),
            e.clone(),
        ),
    }
}

/// The status for `findings`, keeping transition times from `previous` where a condition's
/// status is unchanged.
pub fn status(
    previous: Option<&EC2NodeClassStatus>,
    findings: &Findings,
    generation: Option<i64>,
    now: Timestamp,
) -> EC2NodeClassStatus {
    // Kubernetes times have whole seconds; a finer `now` would never compare equal to what
    // the API server hands back.
    let now = Timestamp::from_second(now.as_second()).unwrap_or(now);
    let mut parts = vec![
        part_condition(
            types::SUBNETS_READY,
            &findings.subnets,
            ("SubnetsNotFound", "SubnetsResolutionFailed"),
            "SubnetSelector did not match any Subnets",
        ),
        part_condition(
            types::SECURITY_GROUPS_READY,
            &findings.security_groups,
            ("SecurityGroupsNotFound", "SecurityGroupsResolutionFailed"),
            "SecurityGroupSelector did not match any SecurityGroups",
        ),
        part_condition(
            types::AMIS_READY,
            &findings.amis,
            ("AMINotFound", "AMIResolutionFailed"),
            "AMISelector did not match any AMIs",
        ),
    ];
    parts.push(match &findings.instance_profile {
        Ok(_) => (
            types::INSTANCE_PROFILE_READY.into(),
            ConditionStatus::True,
            types::INSTANCE_PROFILE_READY.into(),
            String::new(),
        ),
        Err(e) => (
            types::INSTANCE_PROFILE_READY.into(),
            ConditionStatus::False,
            "InstanceProfileNotFound".into(),
            e.clone(),
        ),
    });
    let unready: Vec<&str> = parts
        .iter()
        .filter(|p| p.1 != ConditionStatus::True)
        .map(|p| p.0.as_str())
        .collect();
    let ready = if unready.is_empty() {
        (
            types::READY.to_owned(),
            ConditionStatus::True,
            types::READY.to_owned(),
            String::new(),
        )
    } else {
        (
            types::READY.to_owned(),
            ConditionStatus::False,
            "UnhealthyDependents".to_owned(),
            format!("{} not ready", unready.join(", ")),
        )
    };
    parts.push(ready);
    let old = previous
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let conditions = parts
        .into_iter()
        .map(|(type_, status, reason, message)| {
            let since = find(old, &type_)
                .filter(|c| c.status == status)
                .and_then(|c| c.last_transition_time.clone())
                .unwrap_or(Time(now));
            Condition {
                type_,
                status,
                observed_generation: generation,
                last_transition_time: Some(since),
                reason: Some(reason),
                message: Some(message),
            }
        })
        .collect();
    EC2NodeClassStatus {
        subnets: findings.subnets.clone().unwrap_or_default(),
        security_groups: findings.security_groups.clone().unwrap_or_default(),
        capacity_reservations: Vec::new(),
        amis: findings.amis.clone().unwrap_or_default(),
        instance_profile: findings.instance_profile.clone().ok(),
        conditions,
    }
}

/// Whether a class status says Ready; a provider launches only for Ready classes.
pub fn is_ready(status: Option<&EC2NodeClassStatus>) -> bool {
    status
        .and_then(|s| find(&s.conditions, types::READY))
        .is_some_and(Condition::is_true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet(id: &str, zone: &str) -> ResolvedSubnet {
        ResolvedSubnet {
            id: id.into(),
            zone: zone.into(),
            zone_id: None,
        }
    }

    fn findings() -> Findings {
        Findings {
            subnets: Ok(vec![subnet("subnet-1", "us-east-1a")]),
            security_groups: Ok(vec![ResolvedSecurityGroup {
                id: "sg-1".into(),
                name: None,
            }]),
            amis: Ok(vec![ResolvedAmi {
                id: "ami-1".into(),
                name: None,
                deprecated: None,
                requirements: Vec::new(),
            }]),
            instance_profile: Ok("profile".into()),
        }
    }

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    #[test]
    fn all_parts_found_is_ready() {
        let s = status(None, &findings(), Some(1), t(10));
        assert!(is_ready(Some(&s)));
        assert_eq!(s.conditions.len(), 5);
        assert_eq!(s.instance_profile.as_deref(), Some("profile"));
    }

    #[test]
    fn an_empty_selector_result_names_itself_and_blocks_ready() {
        let mut f = findings();
        f.subnets = Ok(Vec::new());
        let s = status(None, &f, Some(1), t(10));
        assert!(!is_ready(Some(&s)));
        let c = find(&s.conditions, types::SUBNETS_READY).unwrap();
        assert_eq!(c.reason.as_deref(), Some("SubnetsNotFound"));
        assert_eq!(
            c.message.as_deref(),
            Some("SubnetSelector did not match any Subnets")
        );
        let r = find(&s.conditions, types::READY).unwrap();
        assert_eq!(r.message.as_deref(), Some("SubnetsReady not ready"));
    }

    #[test]
    fn transition_times_survive_an_unchanged_status() {
        let first = status(None, &findings(), Some(1), t(10));
        let again = status(Some(&first), &findings(), Some(1), t(99));
        assert_eq!(first, again);
        let mut f = findings();
        f.amis = Err("DescribeImages: throttled".into());
        let changed = status(Some(&first), &f, Some(1), t(99));
        let c = find(&changed.conditions, types::AMIS_READY).unwrap();
        assert_eq!(c.last_transition_time, Some(Time(t(99))));
        assert_eq!(c.reason.as_deref(), Some("AMIResolutionFailed"));
        let s = find(&changed.conditions, types::SUBNETS_READY).unwrap();
        assert_eq!(s.last_transition_time, Some(Time(t(10))));
    }
}
