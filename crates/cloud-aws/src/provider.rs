//! [`AwsCloud`]: the [`CloudProvider`] for EC2. Reads each EC2NodeClass's resolved status from
//! the API server (the [`crate::nodeclass`] controller writes it), launches with one-instance
//! `instant` EC2 Fleets over launch templates it creates per AMI, finds its instances again by
//! the `karpenter.sh/nodeclaim` tag (so a create repeated after a crash returns the instance it
//! already launched) and reads interruption notices from the SQS queue.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use aws_sdk_ec2::types::{
    DefaultTargetCapacityType, FleetLaunchTemplateConfigRequest,
    FleetLaunchTemplateOverridesRequest, FleetLaunchTemplateSpecificationRequest,
    FleetOnDemandAllocationStrategy, FleetType, Instance as Ec2Instance, OnDemandOptionsRequest,
    ResourceType, SpotAllocationStrategy, SpotOptionsRequest, Tag, TagSpecification,
    TargetCapacitySpecificationRequest,
};
use base64::Engine as _;
use futures::future::BoxFuture;
use k8s_openapi::jiff::Timestamp;
use kube::{Api, Client};
use tandem_api::aws::v1::{EC2NodeClass, EC2NodeClassStatus};
use tandem_api::karpenter::NodeClaim;
use tandem_cloud::interruption::Notice;
use tandem_cloud::{CloudProvider, DriftReason, Error, Instance, OfferingRef, instance_labels};
use tandem_model::catalog::{CapacityType, Catalog};
use tandem_model::labels;
use tandem_model::resources::Resources;

use crate::interruption::{Parsed, parse};
use crate::launch::{FleetPlan, plan};
use crate::offering_cache::OfferingCache;
use crate::settings::{AwsSettings, Clients, code, describe};
use crate::{catalog, provider_id, status, user_data};

/// Tag naming the NodeClaim an instance was launched for.
pub const NODECLAIM_TAG: &str = "karpenter.sh/nodeclaim";
/// Tag naming the EC2NodeClass.
pub const NODECLASS_TAG: &str = "karpenter.k8s.aws/ec2nodeclass";

/// Fleet error codes that mean "no capacity for this offering now": the offering is kept out
/// of launches for the cache TTL (upstream's list).
const CAPACITY_ERRORS: [&str; 6] = [
    "InsufficientInstanceCapacity",
    "InsufficientCapacity",
    "MaxSpotInstanceCountExceeded",
    "UnfulfillableCapacity",
    "Unsupported",
    "InsufficientFreeAddressesInSubnet",
];

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A class catalog and the refused offerings it was built with.
type CachedCatalog = (BTreeSet<OfferingRef>, Arc<Catalog>);

/// The EC2 provider.
pub struct AwsCloud {
    clients: Clients,
    settings: AwsSettings,
    kube: Client,
    /// The bundled catalog; `catalog` is it as of the last [`AwsCloud::refresh_offerings`].
    bundled: Arc<Catalog>,
    catalog: std::sync::RwLock<Arc<Catalog>>,
    refused: Mutex<OfferingCache>,
    queue_url: tokio::sync::Mutex<Option<String>>,
    /// The last catalog built per (zones, refused offerings): snapshots are published many
    /// times a second, and the inputs change rarely.
    zone_catalogs: Mutex<BTreeMap<Vec<String>, CachedCatalog>>,
}

impl std::fmt::Debug for AwsCloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCloud")
            .field("settings", &self.settings)
            .field("types", &self.bundled.len())
            .finish()
    }
}

impl AwsCloud {
    /// A provider over `catalog` (the region's instance types and prices).
    pub fn new(
        clients: Clients,
        settings: AwsSettings,
        kube: Client,
        catalog: Arc<Catalog>,
    ) -> Self {
        AwsCloud {
            clients,
            settings,
            kube,
            bundled: catalog.clone(),
            catalog: std::sync::RwLock::new(catalog),
            refused: Mutex::new(OfferingCache::default()),
            queue_url: tokio::sync::Mutex::new(None),
            zone_catalogs: Mutex::new(BTreeMap::new()),
        }
    }

    /// The catalog of a class whose subnets are in `zones`, as of now (refused offerings
    /// unavailable); what the node layer's snapshots use for EC2NodeClasses.
    pub fn catalog_for_zones(&self, zones: &[String]) -> Arc<Catalog> {
        let refused = self.refused_offerings();
        let mut cache = lock(&self.zone_catalogs);
        if let Some((r, c)) = cache.get(zones)
            && *r == refused
        {
            return c.clone();
        }
        let c = Arc::new(catalog::for_zones(&self.current(), zones, &refused));
        cache.insert(zones.to_vec(), (refused, c.clone()));
        c
    }

    fn current(&self) -> Arc<Catalog> {
        self.catalog
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Asks EC2 which types each zone offers and what spot costs now, and launches from that
    /// (upstream refreshes both on a timer). Returns what EC2 answered.
    pub async fn refresh_offerings(&self) -> Result<catalog::RegionOfferings, Error> {
        use aws_sdk_ec2::types::LocationType;
        let mut region = catalog::RegionOfferings::default();
        let mut pages = self
            .clients
            .ec2
            .describe_instance_type_offerings()
            .location_type(LocationType::AvailabilityZone)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| Error::cloud("DescribeInstanceTypeOfferings", describe(&e)))?;
            for o in page.instance_type_offerings() {
                if let (Some(t), Some(z)) = (o.instance_type(), o.location()) {
                    region.offered.insert((t.as_str().to_owned(), z.to_owned()));
                }
            }
        }
        let mut pages = self
            .clients
            .ec2
            .describe_spot_price_history()
            .product_descriptions("Linux/UNIX")
            .start_time(aws_sdk_ec2::primitives::DateTime::from_secs(
                Timestamp::now().as_second(),
            ))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| Error::cloud("DescribeSpotPriceHistory", describe(&e)))?;
            for p in page.spot_price_history() {
                let (Some(t), Some(z), Some(price)) =
                    (p.instance_type(), p.availability_zone(), p.spot_price())
                else {
                    continue;
                };
                if let Ok(price) = price.parse() {
                    region
                        .spot_prices
                        .insert((t.as_str().to_owned(), z.to_owned()), price);
                }
            }
        }
        let next = Arc::new(catalog::with_region(&self.bundled, &region));
        *self
            .catalog
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = next;
        lock(&self.zone_catalogs).clear();
        Ok(region)
    }

    /// Offerings EC2 refused within the cache TTL, as of now.
    pub fn refused_offerings(&self) -> BTreeSet<OfferingRef> {
        lock(&self.refused).unavailable(Timestamp::now())
    }

    async fn class(&self, name: &str) -> Result<Option<EC2NodeClass>, Error> {
        Api::<EC2NodeClass>::all(self.kube.clone())
            .get_opt(name)
            .await
            .map_err(|e| Error::api(format!("get EC2NodeClass {name}"), e))
    }

    fn class_catalog(&self, status: Option<&EC2NodeClassStatus>) -> Arc<Catalog> {
        let mut zones: Vec<String> = status
            .map(|s| s.subnets.iter().map(|s| s.zone.clone()).collect())
            .unwrap_or_default();
        zones.sort();
        zones.dedup();
        self.catalog_for_zones(&zones)
    }

    fn tags(&self, claim: &NodeClaim, class: &EC2NodeClass) -> Vec<Tag> {
        let claim_name = claim.metadata.name.clone().unwrap_or_default();
        let class_name = class.metadata.name.clone().unwrap_or_default();
        let pool = claim
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(labels::NODEPOOL))
            .cloned()
            .unwrap_or_default();
        // User tags first, so the ones the provider relies on cannot be overwritten.
        let mut tags: BTreeMap<String, String> = class.spec.tags.clone();
        tags.insert(
            format!("kubernetes.io/cluster/{}", self.settings.cluster_name),
            "owned".into(),
        );
        tags.insert(
            "eks:eks-cluster-name".into(),
            self.settings.cluster_name.clone(),
        );
        tags.insert(labels::NODEPOOL.into(), pool);
        tags.insert(NODECLAIM_TAG.into(), claim_name.clone());
        tags.insert(NODECLASS_TAG.into(), class_name);
        tags.entry("Name".into()).or_insert(claim_name);
        tags.into_iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect()
    }

    async fn find_by_claim(&self, claim_name: &str) -> Result<Option<Ec2Instance>, Error> {
        let found = self
            .describe(
                vec![
                    filter(&format!("tag:{NODECLAIM_TAG}"), [claim_name]),
                    filter("instance-state-name", ["pending", "running"]),
                ],
                None,
            )
            .await?;
        Ok(found.into_iter().next())
    }

    async fn describe(
        &self,
        filters: Vec<aws_sdk_ec2::types::Filter>,
        ids: Option<Vec<String>>,
    ) -> Result<Vec<Ec2Instance>, Error> {
        let mut out = Vec::new();
        let mut pages = self
            .clients
            .ec2
            .describe_instances()
            .set_filters((!filters.is_empty()).then_some(filters))
            .set_instance_ids(ids)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = match page {
                Ok(p) => p,
                Err(e) if code(&e) == Some("InvalidInstanceID.NotFound") => return Ok(out),
                Err(e) => return Err(Error::cloud("DescribeInstances", describe(&e))),
            };
            for r in page.reservations() {
                out.extend(r.instances().iter().cloned());
            }
        }
        Ok(out)
    }

    fn to_instance(&self, i: &Ec2Instance) -> Option<Instance> {
        let id = i.instance_id()?;
        let zone = i
            .placement()
            .and_then(|p| p.availability_zone())?
            .to_owned();
        let instance_type = i.instance_type().map(|t| t.as_str().to_owned())?;
        let capacity_type = match i.instance_lifecycle().map(|l| l.as_str()) {
            Some("spot") => CapacityType::Spot,
            _ => CapacityType::OnDemand,
        };
        let tag = |key: &str| {
            i.tags()
                .iter()
                .find(|t| t.key() == Some(key))
                .and_then(|t| t.value())
                .map(str::to_owned)
        };
        let current = self.current();
        let it = current.get(&instance_type);
        let (capacity, allocatable, mut labels) = match it {
            Some(it) => {
                let offering = it
                    .offerings()
                    .iter()
                    .find(|o| o.zone == zone && o.capacity_type == capacity_type)
                    .or_else(|| it.offerings().first());
                let labels = offering.map(|o| instance_labels(it, o)).unwrap_or_default();
                (it.capacity().clone(), it.allocatable().clone(), labels)
            }
            None => (Resources::new(), Resources::new(), BTreeMap::new()),
        };
        labels.insert(labels::ZONE.into(), zone.clone());
        labels.insert(labels::CAPACITY_TYPE.into(), capacity_type.as_str().into());
        labels.insert(labels::INSTANCE_TYPE.into(), instance_type.clone());
        let created = i
            .launch_time()
            .and_then(|t| Timestamp::from_second(t.secs()).ok())
            .unwrap_or_else(Timestamp::now);
        Some(Instance {
            provider_id: provider_id::format(&zone, id),
            nodeclaim: tag(NODECLAIM_TAG).unwrap_or_default(),
            instance_type,
            zone,
            capacity_type: capacity_type.as_str().to_owned(),
            capacity,
            allocatable,
            labels,
            created,
        })
    }

    /// The launch template for `ami` with this claim's bootstrap, created once and found again
    /// by its name (a hash of its content), as upstream reuses its launch templates.
    async fn launch_template(
        &self,
        class: &EC2NodeClass,
        claim: &NodeClaim,
        ami: &str,
    ) -> Result<String, Error> {
        let st = class.status.clone().unwrap_or_default();
        let mut node_labels = claim.metadata.labels.clone().unwrap_or_default();
        node_labels.retain(|k, _| !k.starts_with("node.kubernetes.io/instance-type"));
        let mut taints = claim.spec.taints.clone();
        taints.extend(claim.spec.startup_taints.iter().cloned());
        let text = user_data::al2023(&user_data::Bootstrap {
            cluster_name: &self.settings.cluster_name,
            cluster_endpoint: &self.settings.cluster_endpoint,
            labels: &node_labels,
            taints: &taints,
            custom: class.spec.user_data.as_deref(),
        });
        let sgs: Vec<String> = st.security_groups.iter().map(|g| g.id.clone()).collect();
        let profile = st.instance_profile.clone().unwrap_or_default();
        let key = format!("{ami}|{}|{profile}|{text}", sgs.join(","));
        let name = format!("tandem/{}/{:016x}", self.settings.cluster_name, fnv(&key));
        let existing = self
            .clients
            .ec2
            .describe_launch_templates()
            .filters(filter("launch-template-name", [name.as_str()]))
            .send()
            .await
            .map_err(|e| Error::cloud("DescribeLaunchTemplates", describe(&e)))?;
        if let Some(id) = existing
            .launch_templates()
            .first()
            .and_then(|t| t.launch_template_id())
        {
            return Ok(id.to_owned());
        }
        use aws_sdk_ec2::types::{
            LaunchTemplateIamInstanceProfileSpecificationRequest,
            LaunchTemplateInstanceMetadataOptionsRequest, LaunchTemplateTagSpecificationRequest,
            RequestLaunchTemplateData,
        };
        let md = &class.spec.metadata_options;
        let data = RequestLaunchTemplateData::builder()
            .image_id(ami)
            .set_security_group_ids(Some(sgs))
            .iam_instance_profile(
                LaunchTemplateIamInstanceProfileSpecificationRequest::builder()
                    .name(profile)
                    .build(),
            )
            .user_data(base64::engine::general_purpose::STANDARD.encode(text))
            .metadata_options(
                LaunchTemplateInstanceMetadataOptionsRequest::builder()
                    .http_endpoint(md.http_endpoint.as_str().into())
                    .http_tokens(md.http_tokens.as_str().into())
                    .http_put_response_hop_limit(
                        i32::try_from(md.http_put_response_hop_limit).unwrap_or(1),
                    )
                    .build(),
            )
            .set_block_device_mappings(Some(crate::block_devices::mappings(
                &class.spec.block_device_mappings,
            )))
            .tag_specifications(
                LaunchTemplateTagSpecificationRequest::builder()
                    .resource_type(ResourceType::Instance)
                    .set_tags(Some(
                        class
                            .spec
                            .tags
                            .iter()
                            .map(|(k, v)| Tag::builder().key(k).value(v).build())
                            .collect(),
                    ))
                    .build(),
            )
            .build();
        let created = self
            .clients
            .ec2
            .create_launch_template()
            .launch_template_name(&name)
            .launch_template_data(data)
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::LaunchTemplate)
                    .tags(
                        Tag::builder()
                            .key(format!(
                                "kubernetes.io/cluster/{}",
                                self.settings.cluster_name
                            ))
                            .value("owned")
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .map_err(|e| Error::cloud(format!("CreateLaunchTemplate {name}"), describe(&e)))?;
        created
            .launch_template()
            .and_then(|t| t.launch_template_id())
            .map(str::to_owned)
            .ok_or_else(|| Error::cloud("CreateLaunchTemplate", "no launch template id returned"))
    }

    async fn fleet(
        &self,
        claim: &NodeClaim,
        class: &EC2NodeClass,
        plan: &FleetPlan,
    ) -> Result<Instance, Error> {
        let claim_name = claim.metadata.name.clone().unwrap_or_default();
        let st = class.status.clone().unwrap_or_default();
        // One launch template config per AMI (per architecture), each with its overrides.
        let mut by_ami: BTreeMap<String, Vec<&crate::launch::Override>> = BTreeMap::new();
        for o in &plan.overrides {
            let Some(ami) = ami_for(&st, &o.arch) else {
                continue;
            };
            by_ami.entry(ami).or_default().push(o);
        }
        if by_ami.is_empty() {
            return Err(Error::CreateFailed {
                message: format!(
                    "EC2NodeClass {} has no AMI for the architectures of the instance types allowed",
                    class.metadata.name.as_deref().unwrap_or_default()
                ),
            });
        }
        let mut configs = Vec::new();
        for (ami, overrides) in &by_ami {
            let lt = self.launch_template(class, claim, ami).await?;
            configs.push(
                FleetLaunchTemplateConfigRequest::builder()
                    .launch_template_specification(
                        FleetLaunchTemplateSpecificationRequest::builder()
                            .launch_template_id(lt)
                            .version("$Latest")
                            .build(),
                    )
                    .set_overrides(Some(
                        overrides
                            .iter()
                            .enumerate()
                            .map(|(i, o)| {
                                FleetLaunchTemplateOverridesRequest::builder()
                                    .instance_type(o.instance_type.as_str().into())
                                    .subnet_id(&o.subnet_id)
                                    .priority(i as f64)
                                    .build()
                            })
                            .collect(),
                    ))
                    .build(),
            );
        }
        let tags = self.tags(claim, class);
        let tag_spec = |rt: ResourceType| {
            TagSpecification::builder()
                .resource_type(rt)
                .set_tags(Some(tags.clone()))
                .build()
        };
        let spot = plan.capacity_type == CapacityType::Spot;
        let mut req = self
            .clients
            .ec2
            .create_fleet()
            .r#type(FleetType::Instant)
            .set_launch_template_configs(Some(configs))
            .target_capacity_specification(
                TargetCapacitySpecificationRequest::builder()
                    .total_target_capacity(1)
                    .default_target_capacity_type(if spot {
                        DefaultTargetCapacityType::Spot
                    } else {
                        DefaultTargetCapacityType::OnDemand
                    })
                    .build(),
            )
            .tag_specifications(tag_spec(ResourceType::Instance))
            .tag_specifications(tag_spec(ResourceType::Volume))
            .tag_specifications(tag_spec(ResourceType::Fleet));
        req = if spot {
            req.spot_options(
                SpotOptionsRequest::builder()
                    .allocation_strategy(SpotAllocationStrategy::PriceCapacityOptimized)
                    .build(),
            )
        } else {
            req.on_demand_options(
                OnDemandOptionsRequest::builder()
                    .allocation_strategy(FleetOnDemandAllocationStrategy::Prioritized)
                    .build(),
            )
        };
        let out = req.send().await.map_err(|e| {
            Error::cloud(
                format!("CreateFleet for nodeclaim {claim_name}"),
                describe(&e),
            )
        })?;
        let now = Timestamp::now();
        let zone_of: BTreeMap<&str, &str> = st
            .subnets
            .iter()
            .map(|s| (s.id.as_str(), s.zone.as_str()))
            .collect();
        let mut refused = Vec::new();
        let mut other = Vec::new();
        for e in out.errors() {
            let ov = e
                .launch_template_and_overrides()
                .and_then(|l| l.overrides());
            let itype = ov
                .and_then(|o| o.instance_type())
                .map(|t| t.as_str().to_owned());
            let zone = ov
                .and_then(|o| o.subnet_id())
                .and_then(|s| zone_of.get(s))
                .map(|z| (*z).to_owned())
                .or_else(|| ov.and_then(|o| o.availability_zone()).map(str::to_owned));
            let code = e.error_code().unwrap_or_default();
            if CAPACITY_ERRORS.contains(&code)
                && let (Some(instance_type), Some(zone)) = (itype, zone)
            {
                let o = OfferingRef {
                    instance_type,
                    zone,
                    capacity_type: plan.capacity_type.as_str().to_owned(),
                };
                lock(&self.refused).mark(o.clone(), now);
                refused.push(o);
            } else {
                other.push(format!("{code}: {}", e.error_message().unwrap_or_default()));
            }
        }
        let id = out
            .instances()
            .iter()
            .flat_map(|i| i.instance_ids().iter())
            .next()
            .cloned();
        let Some(id) = id else {
            if !refused.is_empty() || other.is_empty() {
                return Err(Error::InsufficientCapacity {
                    offerings: if refused.is_empty() {
                        plan.offerings()
                    } else {
                        refused
                    },
                });
            }
            return Err(Error::CreateFailed {
                message: format!(
                    "CreateFleet for nodeclaim {claim_name}: {}",
                    other.join("; ")
                ),
            });
        };
        let described = self.describe(Vec::new(), Some(vec![id.clone()])).await?;
        described
            .first()
            .and_then(|i| self.to_instance(i))
            .ok_or_else(|| {
                Error::cloud("DescribeInstances", format!("launched {id} is not visible"))
            })
    }

    async fn queue_url(&self) -> Result<Option<String>, Error> {
        let Some(queue) = &self.settings.interruption_queue else {
            return Ok(None);
        };
        let mut cached = self.queue_url.lock().await;
        if cached.is_none() {
            let out = self
                .clients
                .sqs
                .get_queue_url()
                .queue_name(queue)
                .send()
                .await
                .map_err(|e| Error::cloud(format!("GetQueueUrl {queue}"), describe(&e)))?;
            *cached = out.queue_url().map(str::to_owned);
        }
        Ok(cached.clone())
    }

    async fn delete_message(&self, url: &str, receipt: &str) -> Result<(), Error> {
        match self
            .clients
            .sqs
            .delete_message()
            .queue_url(url)
            .receipt_handle(receipt)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if code(&e) == Some("ReceiptHandleIsInvalid") => Ok(()),
            Err(e) => Err(Error::cloud("DeleteMessage", describe(&e))),
        }
    }
}

fn filter<'a>(name: &str, values: impl IntoIterator<Item = &'a str>) -> aws_sdk_ec2::types::Filter {
    aws_sdk_ec2::types::Filter::builder()
        .name(name)
        .set_values(Some(values.into_iter().map(str::to_owned).collect()))
        .build()
}

fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The AMI the class resolved for `arch` (the newest id first when several match).
fn ami_for(status: &EC2NodeClassStatus, arch: &str) -> Option<String> {
    status
        .amis
        .iter()
        .find(|a| {
            a.requirements.iter().all(|r| {
                r.key != labels::ARCH
                    || r.values
                        .as_ref()
                        .is_some_and(|v| v.iter().any(|x| x == arch))
            })
        })
        .map(|a| a.id.clone())
}

impl CloudProvider for AwsCloud {
    fn name(&self) -> &'static str {
        "aws"
    }

    fn create<'a>(&'a self, claim: &'a NodeClaim) -> BoxFuture<'a, Result<Instance, Error>> {
        Box::pin(async move {
            let claim_name = claim.metadata.name.clone().unwrap_or_default();
            if let Some(i) = self.find_by_claim(&claim_name).await?
                && let Some(found) = self.to_instance(&i)
            {
                return Ok(found);
            }
            let class_name = &claim.spec.node_class_ref.name;
            let Some(class) = self.class(class_name).await? else {
                return Err(Error::InsufficientCapacity {
                    offerings: Vec::new(),
                });
            };
            if !status::is_ready(class.status.as_ref()) {
                return Err(Error::NodeClassNotReady {
                    name: class_name.clone(),
                });
            }
            let st = class.status.clone().unwrap_or_default();
            let catalog = self.class_catalog(Some(&st));
            let plan = plan(&catalog, claim, class_name, &st.subnets)?;
            let mut instance = self.fleet(claim, &class, &plan).await?;
            for (k, v) in claim.metadata.labels.clone().unwrap_or_default() {
                instance.labels.insert(k, v);
            }
            Ok(instance)
        })
    }

    fn delete<'a>(&'a self, provider_id: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let Some(id) = provider_id::instance_id(provider_id) else {
                return Ok(());
            };
            match self
                .clients
                .ec2
                .terminate_instances()
                .instance_ids(id)
                .send()
                .await
            {
                Ok(_) => Ok(()),
                Err(e) if code(&e) == Some("InvalidInstanceID.NotFound") => Ok(()),
                Err(e) => Err(Error::cloud(
                    format!("TerminateInstances {id}"),
                    describe(&e),
                )),
            }
        })
    }

    fn get<'a>(&'a self, provider_id: &'a str) -> BoxFuture<'a, Result<Instance, Error>> {
        Box::pin(async move {
            let gone = || Error::NodeClaimNotFound {
                provider_id: provider_id.to_owned(),
            };
            let id = provider_id::instance_id(provider_id).ok_or_else(gone)?;
            let found = self.describe(Vec::new(), Some(vec![id.to_owned()])).await?;
            found
                .iter()
                .find(|i| is_live(i))
                .and_then(|i| self.to_instance(i))
                .ok_or_else(gone)
        })
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<Instance>, Error>> {
        Box::pin(async move {
            let cluster_tag = format!("tag:kubernetes.io/cluster/{}", self.settings.cluster_name);
            let found = self
                .describe(
                    vec![
                        filter("tag-key", [NODECLAIM_TAG]),
                        filter(&cluster_tag, ["owned"]),
                        filter(
                            "instance-state-name",
                            ["pending", "running", "stopping", "stopped"],
                        ),
                    ],
                    None,
                )
                .await?;
            Ok(found.iter().filter_map(|i| self.to_instance(i)).collect())
        })
    }

    fn instance_types<'a>(
        &'a self,
        node_class: &'a str,
    ) -> BoxFuture<'a, Result<Arc<Catalog>, Error>> {
        Box::pin(async move {
            let class = self.class(node_class).await?;
            Ok(self.class_catalog(class.as_ref().and_then(|c| c.status.as_ref())))
        })
    }

    fn is_drifted<'a>(
        &'a self,
        claim: &'a NodeClaim,
    ) -> BoxFuture<'a, Result<Option<DriftReason>, Error>> {
        Box::pin(async move {
            let Some(pid) = claim.status.as_ref().and_then(|s| s.provider_id.clone()) else {
                return Ok(None);
            };
            let Some(id) = provider_id::instance_id(&pid) else {
                return Ok(None);
            };
            let Some(class) = self.class(&claim.spec.node_class_ref.name).await? else {
                return Ok(None);
            };
            let Some(st) = class.status.as_ref().filter(|s| status::is_ready(Some(s))) else {
                return Ok(None);
            };
            let found = self.describe(Vec::new(), Some(vec![id.to_owned()])).await?;
            let Some(i) = found.first() else {
                return Ok(None);
            };
            Ok(crate::drift::reason(st, i).map(DriftReason))
        })
    }

    fn interruptions(&self) -> BoxFuture<'_, Result<Vec<Notice>, Error>> {
        Box::pin(async move {
            let Some(url) = self.queue_url().await? else {
                return Ok(Vec::new());
            };
            let out = self
                .clients
                .sqs
                .receive_message()
                .queue_url(&url)
                .max_number_of_messages(10)
                .send()
                .await
                .map_err(|e| Error::cloud("ReceiveMessage", describe(&e)))?;
            let mut notices = Vec::new();
            for m in out.messages() {
                let (Some(body), Some(receipt)) = (m.body(), m.receipt_handle()) else {
                    continue;
                };
                let (ids, kind) = match parse(body) {
                    Parsed::Notice { instance_ids, kind } => (instance_ids, kind),
                    Parsed::Ignore(why) => {
                        tracing::warn!(message_id = m.message_id(), reason = %why, "deleting an interruption message that needs no action");
                        self.delete_message(&url, receipt).await?;
                        continue;
                    }
                };
                let instances = self.describe(Vec::new(), Some(ids.clone())).await?;
                let ours: Vec<Instance> = instances
                    .iter()
                    .filter_map(|i| self.to_instance(i))
                    .filter(|i| !i.nodeclaim.is_empty())
                    .collect();
                if ours.is_empty() {
                    tracing::info!(instances = ?ids, kind = %kind, "interruption for instances this cluster does not manage; deleted");
                    self.delete_message(&url, receipt).await?;
                    continue;
                }
                notices.extend(ours.into_iter().map(|i| Notice {
                    id: receipt.to_owned(),
                    provider_id: i.provider_id,
                    kind,
                }));
            }
            Ok(notices)
        })
    }

    fn acknowledge<'a>(&'a self, notice: &'a Notice) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            match self.queue_url().await? {
                Some(url) => self.delete_message(&url, &notice.id).await,
                None => Ok(()),
            }
        })
    }
}

fn is_live(i: &Ec2Instance) -> bool {
    !matches!(
        i.state().and_then(|s| s.name()).map(|n| n.as_str()),
        Some("shutting-down" | "terminated")
    )
}
