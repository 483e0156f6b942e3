//! The class's `blockDeviceMappings` as launch-template block devices; without any, AL2023's
//! upstream default (a 20 GiB encrypted gp3 root volume on `/dev/xvda`). Pure.

use aws_sdk_ec2::types::{
    LaunchTemplateBlockDeviceMappingRequest, LaunchTemplateEbsBlockDeviceRequest, VolumeType,
};
use tandem_api::aws::v1::BlockDeviceMapping;

/// GiB from a Kubernetes quantity (`20Gi`, `100G`, `1Ti`); EC2 volumes are sized in GiB, so a
/// size is rounded up.
pub fn gib(quantity: &str) -> Option<i32> {
    let q = quantity.trim();
    let split = q.find(|c: char| !c.is_ascii_digit()).unwrap_or(q.len());
    let (n, unit) = q.split_at(split);
    let n: u128 = n.parse().ok()?;
    let bytes = match unit {
        "Gi" => n << 30,
        "Ti" => n << 40,
        "Mi" => n << 20,
        "G" => n * 1_000_000_000,
        "T" => n * 1_000_000_000_000,
        "M" => n * 1_000_000,
        "" => n,
        _ => return None,
    };
    i32::try_from(bytes.div_ceil(1 << 30)).ok()
}

/// The launch-template mappings for `mappings`.
pub fn mappings(mappings: &[BlockDeviceMapping]) -> Vec<LaunchTemplateBlockDeviceMappingRequest> {
    if mappings.is_empty() {
        return vec![
            LaunchTemplateBlockDeviceMappingRequest::builder()
                .device_name("/dev/xvda")
                .ebs(
                    LaunchTemplateEbsBlockDeviceRequest::builder()
                        .volume_size(20)
                        .volume_type(VolumeType::Gp3)
                        .encrypted(true)
                        .delete_on_termination(true)
                        .build(),
                )
                .build(),
        ];
    }
    mappings
        .iter()
        .map(|m| {
            let ebs = m.ebs.as_ref().map(|e| {
                LaunchTemplateEbsBlockDeviceRequest::builder()
                    .set_volume_size(e.volume_size.as_deref().and_then(gib))
                    .set_volume_type(e.volume_type.as_deref().map(VolumeType::from))
                    .set_encrypted(e.encrypted)
                    .set_delete_on_termination(e.delete_on_termination)
                    .set_iops(e.iops.and_then(|v| i32::try_from(v).ok()))
                    .set_throughput(e.throughput.and_then(|v| i32::try_from(v).ok()))
                    .set_kms_key_id(e.kms_key_id.clone())
                    .set_snapshot_id(e.snapshot_id.clone())
                    .build()
            });
            LaunchTemplateBlockDeviceMappingRequest::builder()
                .set_device_name(m.device_name.clone())
                .set_ebs(ebs)
                .build()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_up_to_gib() {
        assert_eq!(gib("20Gi"), Some(20));
        assert_eq!(gib("100G"), Some(94));
        assert_eq!(gib("1Ti"), Some(1024));
        assert_eq!(gib("lots"), None);
    }

    #[test]
    fn the_default_is_a_20_gib_gp3_root() {
        let m = mappings(&[]);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].device_name(), Some("/dev/xvda"));
        assert_eq!(m[0].ebs().and_then(|e| e.volume_size()), Some(20));
    }
}
