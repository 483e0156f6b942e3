//! The AWS provider of the node layer, tested against moto's EC2, SSM, IAM and SQS server.
//!
//! ```text
//!  EC2NodeClass ──nodeclass controller──► DescribeSubnets/SecurityGroups/Images, SSM alias,
//!        ▲                                IAM instance profile ──► status (Ready, subnets …)
//!        │ status
//!  AwsCloud::create(NodeClaim) ── launch::plan (pure) ──► CreateLaunchTemplate + CreateFleet
//!        │                                               (instant, 1 instance, ≤ 60 overrides)
//!        ├── refused offerings ──► offering_cache (3 min) ──► catalog::for_zones (pure)
//!        └── interruptions() ◄── SQS ◄── EventBridge (interruption::parse, pure)
//! ```
//!
//! Pure modules (no SDK call, no clock): [`selectors`], [`alias`], [`status`], [`launch`],
//! [`catalog`], [`offering_cache`], [`interruption`], [`user_data`], [`block_devices`],
//! [`drift`], [`provider_id`]. Imperative ones: [`resolver`], [`nodeclass`], [`provider`],
//! [`settings`]. It is its own crate (not a module of `tandem-cloud`) because the EC2 SDK is
//! one of the largest Rust crates there is: the kwok provider's tests need not link it.

pub mod alias;
pub mod block_devices;
pub mod catalog;
pub mod drift;
pub mod launch;
pub mod nodeclass;
pub mod offering_cache;
pub mod provider;
pub mod provider_id;
pub mod resolver;
pub mod selectors;
pub mod settings;
pub mod status;
pub mod user_data;

/// The interruption queue's EventBridge messages, parsed: pure, in `tandem-cloud` so that it
/// builds and is fuzzed without the SDK.
pub use tandem_cloud::eventbridge as interruption;

pub use provider::AwsCloud;
pub use settings::{AwsSettings, Clients, StaticCredentials};
