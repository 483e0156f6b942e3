//! Resolves an EC2NodeClass against EC2, SSM and IAM into [`Findings`]: the subnets, security
//! groups and AMIs its selector terms match and the instance profile its nodes get. The
//! imperative half of [`crate::status`]; every lookup that fails becomes that part's error text,
//! so one broken selector never hides what the others found.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::Filter as Ec2Filter;
use k8s_openapi::api::core::v1::NodeSelectorRequirement;
use tandem_api::aws::v1::{EC2NodeClass, ResolvedAmi, ResolvedSecurityGroup, ResolvedSubnet};

use crate::selectors::{self, AmiQuery, FilterSet};
use crate::settings::{AwsSettings, Clients, describe};
use crate::status::Findings;

fn ec2_filters(set: &FilterSet) -> Vec<Ec2Filter> {
    set.iter()
        .map(|f| {
            Ec2Filter::builder()
                .name(&f.name)
                .set_values(Some(f.values.clone()))
                .build()
        })
        .collect()
}

/// Everything `class` resolves to now.
pub async fn resolve(clients: &Clients, settings: &AwsSettings, class: &EC2NodeClass) -> Findings {
    let name = class.metadata.name.clone().unwrap_or_default();
    Findings {
        subnets: subnets(clients, class).await,
        security_groups: security_groups(clients, class).await,
        amis: amis(clients, settings, class).await,
        instance_profile: instance_profile(clients, settings, &name, class).await,
    }
}

async fn subnets(clients: &Clients, class: &EC2NodeClass) -> Result<Vec<ResolvedSubnet>, String> {
    let mut found = BTreeMap::new();
    for set in selectors::subnet_filters(&class.spec.subnet_selector_terms) {
        let mut pages = clients
            .ec2
            .describe_subnets()
            .set_filters(Some(ec2_filters(&set)))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| format!("DescribeSubnets: {}", describe(&e)))?;
            for s in page.subnets() {
                let (Some(id), Some(zone)) = (s.subnet_id(), s.availability_zone()) else {
                    continue;
                };
                found.insert(
                    id.to_owned(),
                    ResolvedSubnet {
                        id: id.to_owned(),
                        zone: zone.to_owned(),
                        zone_id: s.availability_zone_id().map(str::to_owned),
                    },
                );
            }
        }
    }
    Ok(found.into_values().collect())
}

async fn security_groups(
    clients: &Clients,
    class: &EC2NodeClass,
) -> Result<Vec<ResolvedSecurityGroup>, String> {
    let mut found = BTreeMap::new();
    for set in selectors::security_group_filters(&class.spec.security_group_selector_terms) {
        let mut pages = clients
            .ec2
            .describe_security_groups()
            .set_filters(Some(ec2_filters(&set)))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| format!("DescribeSecurityGroups: {}", describe(&e)))?;
            for g in page.security_groups() {
                let Some(id) = g.group_id() else { continue };
                found.insert(
                    id.to_owned(),
                    ResolvedSecurityGroup {
                        id: id.to_owned(),
                        name: g.group_name().map(str::to_owned),
                    },
                );
            }
        }
    }
    Ok(found.into_values().collect())
}

fn arch_requirement(arch: &str) -> Vec<NodeSelectorRequirement> {
    vec![NodeSelectorRequirement {
        key: tandem_model::labels::ARCH.to_owned(),
        operator: "In".to_owned(),
        values: Some(vec![arch.to_owned()]),
    }]
}

fn kube_arch(ec2_arch: &str) -> &'static str {
    match ec2_arch {
        "arm64" => "arm64",
        _ => "amd64",
    }
}

async fn amis(
    clients: &Clients,
    settings: &AwsSettings,
    class: &EC2NodeClass,
) -> Result<Vec<ResolvedAmi>, String> {
    let queries =
        selectors::ami_queries(&class.spec.ami_selector_terms).map_err(|e| e.to_string())?;
    // Image id → (name, arch): ids from SSM are described for their name and architecture.
    let mut by_id: BTreeMap<String, ResolvedAmi> = BTreeMap::new();
    for q in queries {
        match q {
            AmiQuery::Alias(alias) => {
                for p in alias.parameters(&settings.kubernetes_version) {
                    // A missing architecture is normal (no arm64 image for a family); only
                    // an alias with no image at all is an error, checked below.
                    if let Some(id) = parameter(clients, &p.name).await? {
                        let name = image_name(clients, &id).await?;
                        by_id.insert(
                            id.clone(),
                            ResolvedAmi {
                                id,
                                name,
                                deprecated: None,
                                requirements: arch_requirement(p.arch),
                            },
                        );
                    }
                }
            }
            AmiQuery::SsmParameter(p) => {
                let id = parameter(clients, &p)
                    .await?
                    .ok_or_else(|| format!("SSM parameter {p} not found"))?;
                for ami in describe_images(clients, &[("image-id", id.as_str())], &[]).await? {
                    by_id.insert(ami.id.clone(), ami);
                }
            }
            AmiQuery::Describe { filters, owners } => {
                let pairs: Vec<(&str, &str)> = filters
                    .iter()
                    .flat_map(|f| f.values.iter().map(move |v| (f.name.as_str(), v.as_str())))
                    .collect();
                for ami in describe_images(clients, &pairs, &owners).await? {
                    by_id.insert(ami.id.clone(), ami);
                }
            }
        }
    }
    Ok(by_id.into_values().collect())
}

async fn parameter(clients: &Clients, name: &str) -> Result<Option<String>, String> {
    match clients.ssm.get_parameter().name(name).send().await {
        Ok(out) => Ok(out.parameter().and_then(|p| p.value()).map(str::to_owned)),
        Err(e) if crate::settings::code(&e) == Some("ParameterNotFound") => Ok(None),
        Err(e) => Err(format!("GetParameter {name}: {}", describe(&e))),
    }
}

async fn image_name(clients: &Clients, id: &str) -> Result<Option<String>, String> {
    let found = describe_images(clients, &[("image-id", id)], &[]).await?;
    Ok(found.into_iter().next().and_then(|a| a.name))
}

async fn describe_images(
    clients: &Clients,
    filters: &[(&str, &str)],
    owners: &[String],
) -> Result<Vec<ResolvedAmi>, String> {
    let mut grouped: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (k, v) in filters {
        grouped.entry(k).or_default().push((*v).to_owned());
    }
    let ec2_filters: Vec<Ec2Filter> = grouped
        .into_iter()
        .map(|(k, v)| Ec2Filter::builder().name(k).set_values(Some(v)).build())
        .collect();
    let out = clients
        .ec2
        .describe_images()
        .set_filters(Some(ec2_filters))
        .set_owners((!owners.is_empty()).then(|| owners.to_vec()))
        .send()
        .await
        .map_err(|e| format!("DescribeImages: {}", describe(&e)))?;
    Ok(out
        .images()
        .iter()
        .filter_map(|i| {
            let id = i.image_id()?.to_owned();
            let arch = i.architecture().map(|a| a.as_str()).unwrap_or("x86_64");
            Some(ResolvedAmi {
                id,
                name: i.name().map(str::to_owned),
                deprecated: None,
                requirements: arch_requirement(kube_arch(arch)),
            })
        })
        .collect())
}

/// The instance profile name made for `role` (upstream: `<cluster>_<hash>`; here a stable
/// FNV-1a hash of region, class and role, so a renamed role gets a new profile).
pub fn profile_name(settings: &AwsSettings, class: &str, role: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in format!("{}/{class}/{role}", settings.region).bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{}_{h:016x}", settings.cluster_name)
}

async fn instance_profile(
    clients: &Clients,
    settings: &AwsSettings,
    class_name: &str,
    class: &EC2NodeClass,
) -> Result<String, String> {
    if let Some(p) = &class.spec.instance_profile {
        return match clients
            .iam
            .get_instance_profile()
            .instance_profile_name(p)
            .send()
            .await
        {
            Ok(_) => Ok(p.clone()),
            Err(e) => Err(format!("instanceProfile {p}: {}", describe(&e))),
        };
    }
    let Some(role) = &class.spec.role else {
        return Err("neither role nor instanceProfile is set".to_owned());
    };
    let name = profile_name(settings, class_name, role);
    let existing = clients
        .iam
        .get_instance_profile()
        .instance_profile_name(&name)
        .send()
        .await;
    let has_role = match existing {
        Ok(out) => out
            .instance_profile()
            .is_some_and(|p| p.roles().iter().any(|r| r.role_name() == role)),
        Err(e) if crate::settings::code(&e) == Some("NoSuchEntity") => {
            let tags = [
                ("karpenter.k8s.aws/ec2nodeclass", class_name.to_owned()),
                (
                    &*format!("kubernetes.io/cluster/{}", settings.cluster_name),
                    "owned".to_owned(),
                ),
            ]
            .into_iter()
            .map(|(k, v)| {
                aws_sdk_iam::types::Tag::builder()
                    .key(k)
                    .value(v)
                    .build()
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<_>, _>>()?;
            clients
                .iam
                .create_instance_profile()
                .instance_profile_name(&name)
                .set_tags(Some(tags))
                .send()
                .await
                .map_err(|e| format!("CreateInstanceProfile {name}: {}", describe(&e)))?;
            false
        }
        Err(e) => return Err(format!("GetInstanceProfile {name}: {}", describe(&e))),
    };
    if !has_role {
        clients
            .iam
            .add_role_to_instance_profile()
            .instance_profile_name(&name)
            .role_name(role)
            .send()
            .await
            .map_err(|e| format!("role {role}: {}", describe(&e)))?;
    }
    Ok(name)
}
