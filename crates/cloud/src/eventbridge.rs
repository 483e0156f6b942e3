//! EventBridge messages on the interruption queue, parsed into what the node layer acts on.
//!
//! Upstream (aws `pkg/controllers/interruption/messages`) reads four sources from one SQS queue:
//! EC2 spot interruption warnings, rebalance recommendations, instance state changes and AWS
//! Health scheduled changes. Anything else — another source, a state the node layer ignores
//! (`pending`, `running`), a body that is not JSON — is [`Parsed::Ignore`]d: the poller deletes
//! it and logs why, and the loop goes on. Pure: a message body in, a verdict out.
//!
//! AWS's format, kept in this provider-neutral crate so that it builds, and is fuzzed
//! (`fuzz/fuzz_targets/interruption.rs`), without the AWS SDK; `tandem_cloud_aws::interruption`
//! is this module.

use crate::interruption::NoticeKind;
use serde::Deserialize;

/// What one queue message means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Instances the notice is about, and the kind.
    Notice {
        /// EC2 instance ids.
        instance_ids: Vec<String>,
        /// What was announced.
        kind: NoticeKind,
    },
    /// Nothing to act on; the reason is logged when the message is deleted.
    Ignore(String),
}

#[derive(Deserialize)]
struct Envelope {
    source: Option<String>,
    #[serde(rename = "detail-type")]
    detail_type: Option<String>,
    #[serde(default)]
    detail: serde_json::Value,
}

fn text<'a>(v: &'a serde_json::Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(serde_json::Value::as_str)
}

/// Parses one message body.
pub fn parse(body: &str) -> Parsed {
    let env: Envelope = match serde_json::from_str(body) {
        Ok(e) => e,
        Err(e) => return Parsed::Ignore(format!("not an EventBridge event: {e}")),
    };
    let source = env.source.as_deref().unwrap_or_default();
    let detail_type = env.detail_type.as_deref().unwrap_or_default();
    let d = &env.detail;
    let one = |kind| match text(d, "instance-id") {
        Some(id) => Parsed::Notice {
            instance_ids: vec![id.to_owned()],
            kind,
        },
        None => Parsed::Ignore(format!("{detail_type}: detail has no instance-id")),
    };
    match (source, detail_type) {
        ("aws.ec2", "EC2 Spot Instance Interruption Warning") => one(NoticeKind::SpotInterrupted),
        ("aws.ec2", "EC2 Instance Rebalance Recommendation") => {
            one(NoticeKind::RebalanceRecommendation)
        }
        ("aws.ec2", "EC2 Instance State-change Notification") => match text(d, "state") {
            Some("stopping" | "stopped") => one(NoticeKind::InstanceStopped),
            Some("shutting-down" | "terminated") => one(NoticeKind::InstanceTerminated),
            Some(other) => Parsed::Ignore(format!("state change to {other:?} needs no action")),
            None => Parsed::Ignore("state change without a state".into()),
        },
        ("aws.health", "AWS Health Event") => {
            if text(d, "service") != Some("EC2")
                || text(d, "eventTypeCategory") != Some("scheduledChange")
            {
                return Parsed::Ignore("health event that is not an EC2 scheduled change".into());
            }
            let ids: Vec<String> = d
                .get("affectedEntities")
                .and_then(serde_json::Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|e| text(e, "entityValue"))
                .filter(|v| v.starts_with("i-"))
                .map(str::to_owned)
                .collect();
            if ids.is_empty() {
                Parsed::Ignore("scheduled change without affected instances".into())
            } else {
                Parsed::Notice {
                    instance_ids: ids,
                    kind: NoticeKind::ScheduledChange,
                }
            }
        }
        _ => Parsed::Ignore(format!(
            "unsupported event source {source:?} detail-type {detail_type:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(source: &str, detail_type: &str, detail: &str) -> String {
        format!(
            r#"{{"version":"0","id":"7e5f","detail-type":"{detail_type}","source":"{source}","account":"123456789012","time":"2026-11-26T00:00:00Z","region":"us-east-1","resources":[],"detail":{detail}}}"#
        )
    }

    #[test]
    fn spot_warning_and_rebalance() {
        let m = event(
            "aws.ec2",
            "EC2 Spot Instance Interruption Warning",
            r#"{"instance-id":"i-1","instance-action":"terminate"}"#,
        );
        assert_eq!(
            parse(&m),
            Parsed::Notice {
                instance_ids: vec!["i-1".into()],
                kind: NoticeKind::SpotInterrupted
            }
        );
        let r = event(
            "aws.ec2",
            "EC2 Instance Rebalance Recommendation",
            r#"{"instance-id":"i-2"}"#,
        );
        assert!(matches!(
            parse(&r),
            Parsed::Notice {
                kind: NoticeKind::RebalanceRecommendation,
                ..
            }
        ));
    }

    #[test]
    fn state_changes_map_to_stopped_and_terminated_or_nothing() {
        let s = |state: &str| {
            parse(&event(
                "aws.ec2",
                "EC2 Instance State-change Notification",
                &format!(r#"{{"instance-id":"i-3","state":"{state}"}}"#),
            ))
        };
        assert!(matches!(
            s("stopping"),
            Parsed::Notice {
                kind: NoticeKind::InstanceStopped,
                ..
            }
        ));
        assert!(matches!(
            s("terminated"),
            Parsed::Notice {
                kind: NoticeKind::InstanceTerminated,
                ..
            }
        ));
        assert!(matches!(s("running"), Parsed::Ignore(_)));
    }

    #[test]
    fn scheduled_change_names_every_affected_instance() {
        let h = event(
            "aws.health",
            "AWS Health Event",
            r#"{"service":"EC2","eventTypeCategory":"scheduledChange","affectedEntities":[{"entityValue":"i-4"},{"entityValue":"i-5"}]}"#,
        );
        assert_eq!(
            parse(&h),
            Parsed::Notice {
                instance_ids: vec!["i-4".into(), "i-5".into()],
                kind: NoticeKind::ScheduledChange
            }
        );
    }

    #[test]
    fn garbage_is_ignored_with_a_reason() {
        let Parsed::Ignore(why) = parse("hello") else {
            panic!("garbage must be ignored")
        };
        assert!(why.starts_with("not an EventBridge event"));
        assert!(matches!(
            parse(&event("aws.s3", "Object Created", "{}")),
            Parsed::Ignore(_)
        ));
        assert!(matches!(
            parse(&event(
                "aws.ec2",
                "EC2 Spot Instance Interruption Warning",
                "{}"
            )),
            Parsed::Ignore(_)
        ));
    }

    proptest::proptest! {
        /// Whatever arrives on the queue, parsing returns a verdict and never panics: arbitrary
        /// text, and real messages cut short or with a byte changed.
        #[test]
        fn any_body_gets_a_verdict(text in ".{0,300}", cut in 0usize..400, at in 0usize..400, byte in 0u8..128) {
            let _ = parse(&text);
            let real = event(
                "aws.health",
                "AWS Health Event",
                r#"{"service":"EC2","eventTypeCategory":"scheduledChange","affectedEntities":[{"entityValue":"i-4"}]}"#,
            );
            let _ = parse(&real[..cut.min(real.len())]);
            let mut bytes = real.into_bytes();
            let i = at % bytes.len();
            bytes[i] = byte;
            let _ = parse(&String::from_utf8_lossy(&bytes));
        }
    }
}
