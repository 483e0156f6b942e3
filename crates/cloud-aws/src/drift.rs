//! Whether a launched instance still matches its EC2NodeClass: upstream's `AMIDrift`,
//! `SubnetDrift` and `SecurityGroupDrift`, checked against the class's resolved status. Pure.

use aws_sdk_ec2::types::Instance;
use tandem_api::aws::v1::EC2NodeClassStatus;

/// The drift reason for `instance` under `status`, or `None` when it matches.
pub fn reason(status: &EC2NodeClassStatus, instance: &Instance) -> Option<String> {
    if let Some(ami) = instance.image_id()
        && !status.amis.is_empty()
        && !status.amis.iter().any(|a| a.id == ami)
    {
        return Some("AMIDrift".into());
    }
    if let Some(subnet) = instance.subnet_id()
        && !status.subnets.is_empty()
        && !status.subnets.iter().any(|s| s.id == subnet)
    {
        return Some("SubnetDrift".into());
    }
    let mut have: Vec<&str> = instance
        .security_groups()
        .iter()
        .filter_map(|g| g.group_id())
        .collect();
    have.sort_unstable();
    let mut want: Vec<&str> = status
        .security_groups
        .iter()
        .map(|g| g.id.as_str())
        .collect();
    want.sort_unstable();
    if !have.is_empty() && !want.is_empty() && have != want {
        return Some("SecurityGroupDrift".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ec2::types::GroupIdentifier;
    use tandem_api::aws::v1::{ResolvedAmi, ResolvedSecurityGroup, ResolvedSubnet};

    fn status() -> EC2NodeClassStatus {
        EC2NodeClassStatus {
            subnets: vec![ResolvedSubnet {
                id: "subnet-1".into(),
                zone: "us-east-1a".into(),
                zone_id: None,
            }],
            security_groups: vec![ResolvedSecurityGroup {
                id: "sg-1".into(),
                name: None,
            }],
            amis: vec![ResolvedAmi {
                id: "ami-new".into(),
                name: None,
                deprecated: None,
                requirements: Vec::new(),
            }],
            ..Default::default()
        }
    }

    fn instance(ami: &str, subnet: &str, sg: &str) -> Instance {
        Instance::builder()
            .image_id(ami)
            .subnet_id(subnet)
            .security_groups(GroupIdentifier::builder().group_id(sg).build())
            .build()
    }

    #[test]
    fn ami_then_subnet_then_security_groups() {
        assert_eq!(
            reason(&status(), &instance("ami-new", "subnet-1", "sg-1")),
            None
        );
        assert_eq!(
            reason(&status(), &instance("ami-old", "subnet-1", "sg-1")).as_deref(),
            Some("AMIDrift")
        );
        assert_eq!(
            reason(&status(), &instance("ami-new", "subnet-9", "sg-1")).as_deref(),
            Some("SubnetDrift")
        );
        assert_eq!(
            reason(&status(), &instance("ami-new", "subnet-1", "sg-2")).as_deref(),
            Some("SecurityGroupDrift")
        );
    }
}
