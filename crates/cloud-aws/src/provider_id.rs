//! AWS provider IDs: `aws:///<zone>/<instance-id>`, the form the AWS cloud-controller-manager
//! writes into `Node.spec.providerID`, so a NodeClaim and its Node name the same instance.

/// The provider ID of instance `id` in `zone`.
pub fn format(zone: &str, id: &str) -> String {
    format!("aws:///{zone}/{id}")
}

/// The instance id inside a provider ID, or `None` when it is not an AWS one.
pub fn instance_id(provider_id: &str) -> Option<&str> {
    let rest = provider_id.strip_prefix("aws://")?;
    let id = rest.rsplit('/').next()?;
    id.starts_with("i-").then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_other_providers() {
        let p = format("us-east-1a", "i-0abc");
        assert_eq!(p, "aws:///us-east-1a/i-0abc");
        assert_eq!(instance_id(&p), Some("i-0abc"));
        assert_eq!(instance_id("kwok://node-1"), None);
        assert_eq!(instance_id("aws:///us-east-1a/"), None);
    }
}
