//! The AWS provider against moto's EC2, SSM, IAM and SQS server and the real API server:
//! seed 004's EC2NodeClass resolves and goes Ready, a NodeClaim from its NodePool launches a
//! tagged instance of an allowed type in an allowed subnet, EC2 refusing capacity moves the next
//! launch elsewhere for the TTL, drift is seen when the class's selectors change, and
//! interruption notices come from the SQS queue.

mod common;

use std::time::Duration;

use common::ice_proxy::IceProxy;
use kube::Client;
use tandem_api::aws::v1::EC2NodeClass;
use tandem_api::condition::find;
use tandem_cloud::interruption::NoticeKind;
use tandem_cloud::{CloudProvider, Error};
use tandem_cloud_aws::{AwsSettings, nodeclass, provider_id};
use tandem_model::labels;
use tandem_testkit::ControlPlane;
use tandem_testkit::services::{EKS_AL2023_AMD64_AMI, EKS_AL2023_ARM64_AMI, Moto};

async fn client() -> Client {
    ControlPlane::shared()
        .await
        .expect("control plane")
        .client()
        .expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_class_resolves_launches_a_tagged_instance_and_terminates_it() {
    let client = client().await;
    let moto = Moto::start().await.expect("moto");
    let cluster = common::unique("seed4");
    let account = common::account(&moto, &cluster).await;
    let class_name = format!("{cluster}-default");
    let class = common::seed_class(&client, &class_name, &cluster, &account.role).await;
    let settings = common::settings(&moto, &moto.endpoint(), &cluster, None);
    let (cloud, clients) = common::provider(&client, &settings).await;

    // Not resolved yet: a launch is refused as upstream refuses a class that is not Ready.
    let claim = common::seed_claim(&format!("{cluster}-a"), &class_name, &[]);
    assert!(matches!(
        cloud.create(&claim).await,
        Err(Error::NodeClassNotReady { .. })
    ));

    let status = nodeclass::reconcile(&client, &clients, &settings, &class)
        .await
        .expect("reconcile");
    let ready = find(&status.conditions, "Ready").expect("Ready condition");
    assert!(ready.is_true(), "class not Ready: {:?}", status.conditions);
    let mut subnets: Vec<String> = status.subnets.iter().map(|s| s.id.clone()).collect();
    subnets.sort();
    let mut want = account.subnets.clone();
    want.sort();
    assert_eq!(subnets, want, "exactly the tagged subnets");
    assert_eq!(
        status
            .security_groups
            .iter()
            .map(|g| g.id.as_str())
            .collect::<Vec<_>>(),
        [account.security_group.as_str()]
    );
    let amis: Vec<&str> = status.amis.iter().map(|a| a.id.as_str()).collect();
    assert!(
        amis.contains(&EKS_AL2023_AMD64_AMI) && amis.contains(&EKS_AL2023_ARM64_AMI),
        "{amis:?}"
    );
    let profile = status.instance_profile.clone().expect("instance profile");
    let roles = moto
        .boto3(&format!(
            "print(','.join(r['RoleName'] for r in iam.get_instance_profile(InstanceProfileName='{profile}')['InstanceProfile']['Roles']))"
        ))
        .await
        .expect("get profile");
    assert_eq!(
        roles.trim(),
        account.role,
        "the profile carries the class's role"
    );

    // The written status reads back from the API server.
    let stored: EC2NodeClass = kube::Api::all(client.clone())
        .get(&class_name)
        .await
        .expect("get class");
    assert_eq!(stored.status.as_ref(), Some(&status));

    let instance = cloud.create(&claim).await.expect("launch");
    let id = provider_id::instance_id(&instance.provider_id)
        .expect("aws provider id")
        .to_owned();
    let ec2 = common::describe_instance(&moto, &id).await;
    eprintln!("launched: {ec2}");
    let itype = ec2["type"].as_str().unwrap_or_default();
    assert!(
        matches!(itype.chars().next(), Some('c' | 'm' | 'r')),
        "category c/m/r: {itype}"
    );
    assert_eq!(instance.instance_type, itype);
    assert!(
        account.subnets.iter().any(|s| ec2["subnet"] == s.as_str()),
        "allowed subnet"
    );
    assert_eq!(ec2["image"], EKS_AL2023_AMD64_AMI);
    assert_eq!(
        ec2["lifecycle"], "spot",
        "the pool allows spot, so spot is asked for"
    );
    assert_eq!(instance.capacity_type, "spot");
    assert_eq!(ec2["groups"][0], account.security_group.as_str());
    // What EC2 was asked for: moto copies neither groups nor profile from a launch template
    // onto fleet instances, so the template is where they are checked.
    let templates = common::launch_templates(&moto, &cluster).await;
    let lts = templates.as_array().expect("templates");
    assert_eq!(lts.len(), 1, "one template for one AMI: {templates}");
    let data = &lts[0]["data"];
    assert_eq!(data["ImageId"], EKS_AL2023_AMD64_AMI);
    assert_eq!(data["SecurityGroupIds"][0], account.security_group.as_str());
    assert_eq!(data["IamInstanceProfile"]["Name"], profile.as_str());
    assert_eq!(data["MetadataOptions"]["HttpTokens"], "required");
    assert_eq!(data["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"], 20);
    let user_data = String::from_utf8(
        base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            data["UserData"].as_str().expect("user data"),
        )
        .expect("base64"),
    )
    .expect("utf-8");
    assert!(
        user_data.contains(&format!("    name: {cluster}\n")),
        "{user_data}"
    );
    assert!(
        user_data.contains("karpenter.sh/nodepool=default"),
        "{user_data}"
    );
    let tags = &ec2["tags"];
    assert_eq!(tags["karpenter.sh/nodeclaim"], format!("{cluster}-a"));
    assert_eq!(tags["karpenter.sh/nodepool"], "default");
    assert_eq!(tags["karpenter.k8s.aws/ec2nodeclass"], class_name.as_str());
    assert_eq!(tags["eks:eks-cluster-name"], cluster.as_str());
    assert_eq!(tags[format!("kubernetes.io/cluster/{cluster}")], "owned");
    assert_eq!(tags["ManagedBy"], "Karpenter", "the class's own tags");
    assert_eq!(
        instance.labels.get(labels::NODEPOOL).map(String::as_str),
        Some("default")
    );
    assert_eq!(instance.labels.get(labels::ZONE), Some(&instance.zone));
    assert!(
        instance.allocatable.cpu.0 > 0,
        "allocatable from the catalog"
    );

    // Idempotent by claim name: a repeated create finds the same instance.
    let again = cloud.create(&claim).await.expect("create again");
    assert_eq!(again.provider_id, instance.provider_id);
    let listed = cloud.list().await.expect("list");
    assert_eq!(
        listed
            .iter()
            .filter(|i| i.provider_id == instance.provider_id)
            .count(),
        1
    );
    assert_eq!(
        cloud
            .get(&instance.provider_id)
            .await
            .expect("get")
            .nodeclaim,
        format!("{cluster}-a")
    );

    cloud.delete(&instance.provider_id).await.expect("delete");
    assert!(matches!(
        cloud.get(&instance.provider_id).await,
        Err(Error::NodeClaimNotFound { .. })
    ));
    cloud
        .delete(&instance.provider_id)
        .await
        .expect("a second delete is success");
    assert_eq!(
        common::describe_instance(&moto, &id).await["state"],
        "terminated"
    );
    assert!(
        cloud
            .list()
            .await
            .expect("list")
            .iter()
            .all(|i| i.provider_id != instance.provider_id)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_class_whose_selectors_match_nothing_says_why_and_drift_follows_the_selectors() {
    let client = client().await;
    let moto = Moto::start().await.expect("moto");
    let cluster = common::unique("drift");
    let account = common::account(&moto, &cluster).await;
    // A class for another cluster's tags: nothing matches.
    let lonely = format!("{cluster}-lonely");
    let nothing = common::seed_class(&client, &lonely, "no-such-cluster", &account.role).await;
    let settings = common::settings(&moto, &moto.endpoint(), &cluster, None);
    let (cloud, clients) = common::provider(&client, &settings).await;
    let st = nodeclass::reconcile(&client, &clients, &settings, &nothing)
        .await
        .expect("reconcile");
    let subnets = find(&st.conditions, "SubnetsReady").expect("SubnetsReady");
    assert_eq!(subnets.reason.as_deref(), Some("SubnetsNotFound"));
    assert_eq!(
        subnets.message.as_deref(),
        Some("SubnetSelector did not match any Subnets")
    );
    let ready = find(&st.conditions, "Ready").expect("Ready");
    assert!(!ready.is_true());
    assert_eq!(
        ready.message.as_deref(),
        Some("SubnetsReady, SecurityGroupsReady not ready")
    );
    let claim = common::seed_claim(&format!("{cluster}-x"), &lonely, &[]);
    assert!(matches!(
        cloud.create(&claim).await,
        Err(Error::NodeClassNotReady { .. })
    ));

    // A Ready class, an instance, then the instance's subnet loses its discovery tag.
    let name = format!("{cluster}-default");
    let class = common::seed_class(&client, &name, &cluster, &account.role).await;
    nodeclass::reconcile(&client, &clients, &settings, &class)
        .await
        .expect("reconcile");
    let mut claim = common::seed_claim(&format!("{cluster}-b"), &name, &[]);
    let instance = cloud.create(&claim).await.expect("launch");
    claim.status = Some(
        serde_json::from_value(serde_json::json!({"providerID": instance.provider_id}))
            .expect("status"),
    );
    assert_eq!(cloud.is_drifted(&claim).await.expect("drift"), None);
    let id = provider_id::instance_id(&instance.provider_id)
        .expect("id")
        .to_owned();
    let subnet = common::describe_instance(&moto, &id).await["subnet"]
        .as_str()
        .expect("subnet")
        .to_owned();
    moto.boto3(&format!(
        "ec2.delete_tags(Resources=['{subnet}'], Tags=[{{'Key': 'karpenter.sh/discovery'}}])"
    ))
    .await
    .expect("untag");
    let class: EC2NodeClass = kube::Api::all(client.clone())
        .get(&name)
        .await
        .expect("class");
    let st = nodeclass::reconcile(&client, &clients, &settings, &class)
        .await
        .expect("reconcile");
    assert_eq!(st.subnets.len(), 1, "one tagged subnet left");
    assert_eq!(
        cloud
            .is_drifted(&claim)
            .await
            .expect("drift")
            .map(|d| d.0)
            .as_deref(),
        Some("SubnetDrift")
    );
    cloud.delete(&instance.provider_id).await.expect("delete");
}

/// moto, the fault proxy in front of it, and a provider (settings changed by `tune`) whose
/// class went Ready through the proxy. Bind `_moto` by name (not `..`): moto stops when it is
/// dropped.
struct Proxied {
    client: Client,
    _moto: Moto,
    proxy: IceProxy,
    ready: common::Ready,
}

async fn behind_proxy(prefix: &str, tune: impl FnOnce(&mut AwsSettings)) -> Proxied {
    let client = client().await;
    let moto = Moto::start().await.expect("moto");
    let proxy = IceProxy::start(&moto.endpoint()).await;
    let ready = common::ready_tuned(&client, &moto, prefix, &proxy.endpoint, None, tune).await;
    Proxied {
        client,
        _moto: moto,
        proxy,
        ready,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_capacity_moves_the_next_launch_to_another_offering_for_the_ttl() {
    let Proxied {
        client,
        proxy,
        ready:
            common::Ready {
                cluster,
                class: name,
                cloud,
            },
        _moto,
    } = behind_proxy("ice", |_| {}).await;

    proxy.state.lock().expect("state").refuse_first = true;
    let first = cloud
        .create(&common::seed_claim(&format!("{cluster}-a"), &name, &[]))
        .await;
    let Err(Error::InsufficientCapacity { offerings }) = first else {
        panic!("EC2 refused the only thing it was asked for: {first:?}")
    };
    let (refused_type, refused_subnet) =
        proxy.state.lock().expect("state").first_overrides[0].clone();
    let zone = class_zone(&client, &name, &refused_subnet).await;
    assert_eq!(offerings.len(), 1);
    assert_eq!(offerings[0].instance_type, refused_type);
    assert_eq!(offerings[0].zone, zone);
    assert_eq!(offerings[0].capacity_type, "spot");

    // The refused offering is unavailable to the scheduler and left out of the next launch.
    let catalog = cloud.instance_types(&name).await.expect("instance types");
    let it = catalog
        .get(&refused_type)
        .expect("refused type still listed");
    let o = it
        .offerings()
        .iter()
        .find(|o| o.zone == zone && o.capacity_type.as_str() == "spot")
        .expect("offering");
    assert!(!o.available, "refused offering marked unavailable");
    let second = cloud
        .create(&common::seed_claim(&format!("{cluster}-b"), &name, &[]))
        .await
        .expect("the next launch goes elsewhere");
    assert_ne!(
        (second.instance_type.as_str(), second.zone.as_str()),
        (refused_type.as_str(), zone.as_str())
    );
    let seen = proxy.state.lock().expect("state").first_overrides.clone();
    assert_eq!(seen.len(), 2, "one fleet request per launch: {seen:?}");
    assert_ne!(seen[1], seen[0]);
    cloud.delete(&second.provider_id).await.expect("delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_fleet_request_is_retried_with_backoff() {
    let Proxied {
        client: _,
        proxy,
        ready:
            common::Ready {
                cluster,
                class: name,
                cloud,
            },
        _moto,
    } = behind_proxy("throttle", |_| {}).await;
    proxy.state.lock().expect("state").throttle = 2;
    let instance = cloud
        .create(&common::seed_claim(&format!("{cluster}-a"), &name, &[]))
        .await
        .expect("two throttled attempts, then a launch");
    let seen = proxy.state.lock().expect("state").first_overrides.len();
    assert_eq!(seen, 3, "the SDK's standard retry: three attempts");
    cloud.delete(&instance.provider_id).await.expect("delete");
}

/// EC2 dedupes a retried CreateFleet by the ClientToken the SDK fills in; moto does not, so a
/// lost answer shows here what a lookup that missed the first instance would cause: two
/// instances tagged for one claim. The claim names one; the collector terminates the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_from_a_lost_fleet_answer_is_collected() {
    use tandem_controllers::gc::{self, ClaimFacts, GcOptions, InstanceFacts};
    let Proxied {
        client: _,
        proxy,
        ready:
            common::Ready {
                cluster,
                class: name,
                cloud,
            },
        _moto,
    } = behind_proxy("lost", |_| {}).await;
    proxy.state.lock().expect("state").lose_answers = 1;
    let claim = format!("{cluster}-a");
    let instance = cloud
        .create(&common::seed_claim(&claim, &name, &[]))
        .await
        .expect("the SDK retries the lost answer");
    let fleets = proxy.state.lock().expect("state").first_overrides.len();
    assert_eq!(fleets, 2, "the lost request and its retry");
    let listed = cloud.list().await.expect("list");
    let tagged: Vec<&str> = listed
        .iter()
        .filter(|i| i.nodeclaim == claim)
        .map(|i| i.provider_id.as_str())
        .collect();
    assert_eq!(tagged.len(), 2, "moto launched twice: {tagged:?}");
    assert!(tagged.contains(&instance.provider_id.as_str()));

    // What the collector decides once the claim's status names the instance create returned.
    let facts: Vec<InstanceFacts> = listed.iter().map(Into::into).collect();
    let claims = [ClaimFacts {
        name: claim.clone(),
        provider_id: Some(instance.provider_id.clone()),
        launched_at: Some(instance.created),
        deleting: false,
        node_ready: true,
    }];
    let options = GcOptions {
        orphan_grace: Duration::ZERO,
        ..GcOptions::default()
    };
    let actions = gc::decide(
        &facts,
        &claims,
        &options,
        k8s_openapi::jiff::Timestamp::now(),
    );
    let twin = tagged
        .iter()
        .find(|p| **p != instance.provider_id)
        .expect("the twin");
    assert_eq!(
        actions,
        [gc::Action::TerminateInstance {
            provider_id: (*twin).to_owned()
        }]
    );
    cloud.delete(twin).await.expect("terminate the twin");
    let left: Vec<String> = cloud
        .list()
        .await
        .expect("list")
        .into_iter()
        .map(|i| i.provider_id)
        .collect();
    assert_eq!(left, std::slice::from_ref(&instance.provider_id));
    cloud.delete(&instance.provider_id).await.expect("delete");
}

/// EC2 that accepts a request and never answers: the attempt is abandoned after the request
/// timeout and retried; one that never answers at all fails the launch in bounded time, with
/// nothing launched, instead of holding the claim forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_fleet_request_times_out_and_is_retried() {
    let Proxied {
        client: _,
        proxy,
        ready:
            common::Ready {
                cluster,
                class: name,
                cloud,
            },
        _moto,
    } = behind_proxy("hang", |s| s.request_timeout = Duration::from_secs(2)).await;

    proxy.state.lock().expect("state").hang = 1;
    let started = std::time::Instant::now();
    let instance = cloud
        .create(&common::seed_claim(&format!("{cluster}-a"), &name, &[]))
        .await
        .expect("the retry after the hung attempt launches");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "no attempt timed out"
    );
    assert_eq!(proxy.state.lock().expect("state").first_overrides.len(), 2);

    proxy.state.lock().expect("state").hang = usize::MAX;
    let started = std::time::Instant::now();
    let failed = cloud
        .create(&common::seed_claim(&format!("{cluster}-b"), &name, &[]))
        .await;
    let took = started.elapsed();
    assert!(failed.is_err(), "{failed:?}");
    assert!(took < Duration::from_secs(30), "gave up after {took:?}");
    let listed = cloud.list().await.expect("list");
    assert_eq!(listed.len(), 1, "only the first launch: {listed:?}");
    cloud.delete(&instance.provider_id).await.expect("delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offerings_and_spot_prices_come_from_ec2() {
    let client = client().await;
    let moto = Moto::start().await.expect("moto");
    let common::Ready {
        class: name, cloud, ..
    } = common::ready(&client, &moto, "prices", &moto.endpoint(), None).await;
    let before = cloud.instance_types(&name).await.expect("types");
    let region = cloud.refresh_offerings().await.expect("refresh");
    assert!(
        region.offered.len() > 1_000,
        "paged through every offering: {}",
        region.offered.len()
    );
    let want = moto
        .boto3(
            "h = ec2.describe_spot_price_history(InstanceTypes=['m5.large'], AvailabilityZone='us-east-1a', ProductDescriptions=['Linux/UNIX'])['SpotPriceHistory']\nprint(h[0]['SpotPrice'])",
        )
        .await
        .expect("spot price")
        .trim()
        .parse::<f64>()
        .expect("price");
    let after = cloud.instance_types(&name).await.expect("types");
    let spot = |c: &tandem_model::catalog::Catalog| {
        c.get("m5.large")
            .expect("m5.large")
            .offerings()
            .iter()
            .find(|o| o.zone == "us-east-1a" && o.capacity_type.as_str() == "spot")
            .map(|o| o.price.as_f64())
            .expect("spot offering")
    };
    assert!(
        (spot(&after) - want).abs() < 1e-9,
        "EC2's price {want}, got {}",
        spot(&after)
    );
    assert!(
        (spot(&before) - want).abs() > 1e-9,
        "the bundled model differs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_000_node_class_by_name_tags_and_ami_id_launches_its_pools_m7i_xlarge() {
    let client = client().await;
    let moto = Moto::start().await.expect("moto");
    let cluster = common::unique("seed0");
    // What the seed's terraform leaves: a subnet and a node security group found by Name tag,
    // the node role, and an AMI of the reader's choice.
    moto.boto3(&format!(
        r#"
vpc = ec2.describe_vpcs(Filters=[{{"Name": "isDefault", "Values": ["true"]}}])["Vpcs"][0]["VpcId"]
sub = [s for s in ec2.describe_subnets(Filters=[{{"Name": "vpc-id", "Values": [vpc]}}])["Subnets"] if s["AvailabilityZone"] == "us-east-1a"][0]
ec2.create_tags(Resources=[sub["SubnetId"]], Tags=[{{"Key": "Name", "Value": "net-euc1-{cluster}-private-eu-central-1a"}}])
sg = ec2.describe_security_groups(Filters=[{{"Name": "vpc-id", "Values": [vpc]}}, {{"Name": "group-name", "Values": ["default"]}}])["SecurityGroups"][0]["GroupId"]
ec2.create_tags(Resources=[sg], Tags=[{{"Key": "Name", "Value": "{cluster}-node"}}])
iam.create_role(RoleName="Karpenter-{cluster}", AssumeRolePolicyDocument="{{}}")
"#
    ))
    .await
    .expect("account");
    let text = std::fs::read_to_string(
        tandem_testkit::workspace_root()
            .join("crates/cloud-aws/tests/data/seed-000-karpenter-np.yaml"),
    )
    .expect("seed 000 objects")
    .replace("<CLUSTER_NAME>", &cluster)
    .replace("ami-XXXXXXXXXXXXXXXXX", EKS_AL2023_AMD64_AMI)
    .replace(
        "name: ec2-node-class",
        &format!("name: {cluster}-ec2-node-class"),
    );
    let mut docs = text.split("\n---\n");
    let class: EC2NodeClass = serde_yaml_ng::from_str(docs.next().expect("class")).expect("class");
    let pool: tandem_api::karpenter::NodePool =
        serde_yaml_ng::from_str(docs.next().expect("pool")).expect("pool");
    let class = kube::Api::<EC2NodeClass>::all(client.clone())
        .create(&Default::default(), &class)
        .await
        .expect("create class");
    let name = class.metadata.name.clone().expect("name");
    let settings = common::settings(&moto, &moto.endpoint(), &cluster, None);
    let (cloud, clients) = common::provider(&client, &settings).await;
    let st = nodeclass::reconcile(&client, &clients, &settings, &class)
        .await
        .expect("reconcile");
    assert!(
        find(&st.conditions, "Ready").is_some_and(|c| c.is_true()),
        "{:?}",
        st.conditions
    );
    assert_eq!(st.subnets.len(), 1);
    assert_eq!(st.subnets[0].zone, "us-east-1a");
    assert_eq!(st.amis.len(), 1, "exactly the AMI named by id");

    // A claim as the node layer makes it from the pool's requirements.
    let reqs: Vec<serde_json::Value> = pool
        .spec
        .template
        .spec
        .requirements
        .iter()
        .map(|r| serde_json::to_value(r).expect("requirement"))
        .collect();
    let mut claim = common::seed_claim(&format!("{cluster}-a"), &name, &[]);
    claim.spec.requirements = serde_json::from_value(serde_json::Value::Array(reqs)).expect("reqs");
    let instance = cloud.create(&claim).await.expect("launch");
    assert_eq!(instance.instance_type, "m7i.xlarge");
    assert_eq!(instance.capacity_type, "on-demand");
    let id = provider_id::instance_id(&instance.provider_id)
        .expect("id")
        .to_owned();
    let ec2 = common::describe_instance(&moto, &id).await;
    assert_eq!(ec2["type"], "m7i.xlarge");
    assert_eq!(ec2["lifecycle"], "on-demand");
    assert_eq!(
        ec2["tags"]["Name"],
        format!("{cluster}-tenant-demand"),
        "the class's Name tag wins"
    );
    assert_eq!(ec2["tags"]["owner"], "krci");
    let lts = common::launch_templates(&moto, &cluster).await;
    let disk = &lts[0]["data"]["BlockDeviceMappings"][0];
    assert_eq!(disk["DeviceName"], "/dev/xvda");
    assert_eq!(disk["Ebs"]["VolumeSize"], 80);
    assert_eq!(disk["Ebs"]["VolumeType"], "gp3");
    assert_eq!(disk["Ebs"]["Encrypted"], false);
    cloud.delete(&instance.provider_id).await.expect("delete");
}

async fn class_zone(client: &Client, class: &str, subnet: &str) -> String {
    let c: EC2NodeClass = kube::Api::all(client.clone())
        .get(class)
        .await
        .expect("class");
    c.status
        .expect("status")
        .subnets
        .into_iter()
        .find(|s| s.id == subnet)
        .expect("subnet of the class")
        .zone
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interruption_messages_become_notices_and_garbage_is_deleted() {
    let client = client().await;
    let moto = Moto::start().await.expect("moto");
    let queue = common::unique("intr-queue");
    let url = moto
        .boto3(&format!(
            "print(sqs.create_queue(QueueName='{queue}')['QueueUrl'])"
        ))
        .await
        .expect("queue")
        .trim()
        .to_owned();
    let common::Ready {
        cluster,
        class: name,
        cloud,
    } = common::ready(&client, &moto, "intr", &moto.endpoint(), Some(&queue)).await;
    let instance = cloud
        .create(&common::seed_claim(&format!("{cluster}-a"), &name, &[]))
        .await
        .expect("launch");
    let id = provider_id::instance_id(&instance.provider_id)
        .expect("id")
        .to_owned();
    let warning = serde_json::json!({
        "version": "0", "id": "1e5527d7-bb36-4607-3370-4164db56a40e",
        "detail-type": "EC2 Spot Instance Interruption Warning", "source": "aws.ec2",
        "account": "123456789012", "time": "2026-11-26T01:00:00Z", "region": "us-east-1",
        "resources": [format!("arn:aws:ec2:us-east-1:instance/{id}")],
        "detail": {"instance-id": id, "instance-action": "terminate"}
    });
    let stranger = serde_json::json!({
        "version": "0", "id": "2", "detail-type": "EC2 Instance State-change Notification",
        "source": "aws.ec2", "region": "us-east-1",
        "detail": {"instance-id": "i-0000000000000000f", "state": "stopping"}
    });
    for body in [
        warning.to_string(),
        "this is not json".to_owned(),
        stranger.to_string(),
    ] {
        moto.boto3(&format!(
            "sqs.send_message(QueueUrl='{url}', MessageBody={})",
            serde_json::to_string(&body).expect("quote")
        ))
        .await
        .expect("send");
    }
    let notices = cloud.interruptions().await.expect("interruptions");
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!(notices[0].provider_id, instance.provider_id);
    assert_eq!(notices[0].kind, NoticeKind::SpotInterrupted);
    let counts = || async {
        moto.boto3(&format!(
            "a = sqs.get_queue_attributes(QueueUrl='{url}', AttributeNames=['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'])['Attributes']\nprint(a['ApproximateNumberOfMessages'], a['ApproximateNumberOfMessagesNotVisible'])"
        ))
        .await
        .expect("attributes")
        .trim()
        .to_owned()
    };
    assert_eq!(
        counts().await,
        "0 1",
        "garbage and strangers deleted; the notice waits for its ack"
    );
    cloud.acknowledge(&notices[0]).await.expect("ack");
    cloud
        .acknowledge(&notices[0])
        .await
        .expect("a second ack is success");
    assert_eq!(counts().await, "0 0");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(cloud.interruptions().await.expect("again").is_empty());
    cloud.delete(&instance.provider_id).await.expect("delete");
}
