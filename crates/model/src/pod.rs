//! A compact pod shape and its effective resource requests, as kube-scheduler computes them
//! (`k8s.io/component-helpers/resource` `PodRequests`, KEP-753 sidecars):
//!
//! ```text
//!   app      = Σ app containers + Σ sidecars (init containers with restartPolicy: Always)
//!   init_i   = regular init container i + Σ sidecars declared before it
//!   sidecarᵢ = Σ sidecars up to and including sidecar i (while it starts)
//!   request  = max(app, max_i init_i, max_i sidecarᵢ) + overhead     (per resource)
//! ```
//!
//! Host ports are collected from app containers only, as kube-scheduler's `NodePorts` plugin and
//! Karpenter's `GetHostPorts` do.

use std::fmt;

use crate::resources::Resources;

/// A container's restart policy; only init containers may set it, and `Always` makes one a
/// sidecar that runs for the pod's whole life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum ContainerRestartPolicy {
    /// Not set: the container follows the pod's policy (a regular init container).
    #[default]
    Unset,
    /// A sidecar: starts in init order and keeps running beside the app containers.
    Always,
}

/// Transport protocol of a host port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Protocol {
    /// TCP, the API default.
    #[default]
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        })
    }
}

/// A host port a container binds on its node; two pods on one node may not share one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostPort {
    /// Host IP; empty means every address (`0.0.0.0`), as Kubernetes defaults it.
    pub ip: String,
    /// Port number.
    pub port: u16,
    /// Protocol.
    pub protocol: Protocol,
}

impl HostPort {
    fn is_wildcard(&self) -> bool {
        matches!(self.ip.as_str(), "" | "0.0.0.0" | "::")
    }

    /// True when both cannot be bound on one node: same port and protocol, and the same IP or
    /// either one unspecified (Karpenter `HostPort.Matches`).
    pub fn conflicts(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip == other.ip || self.is_wildcard() || other.is_wildcard())
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ip = if self.ip.is_empty() {
            "0.0.0.0"
        } else {
            &self.ip
        };
        write!(f, "{ip}:{}/{}", self.port, self.protocol)
    }
}

/// The parts of a container the scheduler looks at.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Container {
    /// Container name, for messages.
    pub name: String,
    /// Resource requests.
    pub requests: Resources,
    /// Restart policy (only meaningful on init containers).
    pub restart_policy: ContainerRestartPolicy,
    /// Host ports it binds.
    pub host_ports: Vec<HostPort>,
}

impl Container {
    /// A container with only requests set.
    pub fn new(name: &str, requests: Resources) -> Self {
        Container {
            name: name.to_owned(),
            requests,
            ..Container::default()
        }
    }

    /// The same container as a sidecar (`restartPolicy: Always`).
    pub fn sidecar(self) -> Self {
        Container {
            restart_policy: ContainerRestartPolicy::Always,
            ..self
        }
    }

    /// True for an init container that keeps running (`restartPolicy: Always`).
    pub fn is_sidecar(&self) -> bool {
        self.restart_policy == ContainerRestartPolicy::Always
    }
}

/// The parts of a pod spec that decide how much room it needs on a node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodShape {
    /// App containers.
    pub containers: Vec<Container>,
    /// Init containers, in declaration order (sidecars included).
    pub init_containers: Vec<Container>,
    /// RuntimeClass overhead (`spec.overhead`), added on top.
    pub overhead: Resources,
}

impl PodShape {
    /// The pod's effective requests (see the [module documentation](self)), plus `pods: 1` so
    /// that a pod count can be bin-packed like any other resource.
    pub fn effective_requests(&self) -> Resources {
        let mut app = Resources::new();
        for c in &self.containers {
            app.add_assign(&c.requests);
        }
        let mut sidecars = Resources::new();
        let mut init_peak = Resources::new();
        for c in &self.init_containers {
            if c.is_sidecar() {
                sidecars.add_assign(&c.requests);
                app.add_assign(&c.requests);
                init_peak = init_peak.max(&sidecars);
            } else {
                init_peak = init_peak.max(&c.requests.saturating_add(&sidecars));
            }
        }
        let mut out = app.max(&init_peak);
        out.add_assign(&self.overhead);
        out.pods = 1;
        out
    }

    /// Host ports the pod binds (app containers only), in declaration order.
    pub fn host_ports(&self) -> Vec<HostPort> {
        self.containers
            .iter()
            .flat_map(|c| c.host_ports.iter().cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{Bytes, MilliCpu};
    use proptest::prelude::*;

    fn r(cpu: i64, mem_mib: i64) -> Resources {
        Resources::cpu_memory(MilliCpu(cpu), Bytes::from_mib(mem_mib))
    }

    fn c(cpu: i64, mem: i64) -> Container {
        Container::new("c", r(cpu, mem))
    }

    #[test]
    fn app_containers_add_up() {
        let pod = PodShape {
            containers: vec![c(100, 128), c(250, 256)],
            ..PodShape::default()
        };
        let want = Resources {
            pods: 1,
            ..r(350, 384)
        };
        assert_eq!(pod.effective_requests(), want);
    }

    #[test]
    fn regular_init_containers_take_the_max() {
        let pod = PodShape {
            containers: vec![c(100, 128)],
            init_containers: vec![c(500, 64), c(50, 1024)],
            ..PodShape::default()
        };
        assert_eq!(pod.effective_requests().cpu, MilliCpu(500));
        assert_eq!(pod.effective_requests().memory, Bytes::from_mib(1024));
    }

    #[test]
    fn sidecars_add_to_app_and_to_later_init_containers() {
        // sidecar(200) then init(900): init peak = 900 + 200 = 1100; app = 100 + 200 = 300.
        let pod = PodShape {
            containers: vec![c(100, 100)],
            init_containers: vec![c(200, 50).sidecar(), c(900, 10)],
            ..PodShape::default()
        };
        let got = pod.effective_requests();
        assert_eq!(got.cpu, MilliCpu(1100));
        assert_eq!(got.memory, Bytes::from_mib(150));
        // An init container declared before the sidecar does not overlap with it.
        let pod = PodShape {
            containers: vec![c(100, 100)],
            init_containers: vec![c(900, 10), c(200, 50).sidecar()],
            ..PodShape::default()
        };
        assert_eq!(pod.effective_requests().cpu, MilliCpu(900));
    }

    #[test]
    fn overhead_is_added_last() {
        let pod = PodShape {
            containers: vec![c(100, 100)],
            init_containers: vec![c(1000, 10)],
            overhead: r(250, 120),
        };
        let got = pod.effective_requests();
        assert_eq!(got.cpu, MilliCpu(1250));
        assert_eq!(got.memory, Bytes::from_mib(220));
        assert_eq!(got.pods, 1);
    }

    #[test]
    fn host_ports_come_from_app_containers_and_wildcards_conflict() {
        let port = |ip: &str, port: u16, protocol| HostPort {
            ip: ip.into(),
            port,
            protocol,
        };
        let mut app = c(1, 1);
        app.host_ports = vec![port("", 80, Protocol::Tcp)];
        let mut init = c(1, 1).sidecar();
        init.host_ports = vec![port("", 81, Protocol::Tcp)];
        let pod = PodShape {
            containers: vec![app],
            init_containers: vec![init],
            ..PodShape::default()
        };
        assert_eq!(pod.host_ports(), [port("", 80, Protocol::Tcp)]);
        assert!(port("", 80, Protocol::Tcp).conflicts(&port("10.0.0.1", 80, Protocol::Tcp)));
        assert!(port("::", 80, Protocol::Tcp).conflicts(&port("10.0.0.1", 80, Protocol::Tcp)));
        assert!(!port("10.0.0.2", 80, Protocol::Tcp).conflicts(&port(
            "10.0.0.1",
            80,
            Protocol::Tcp
        )));
        assert!(!port("", 80, Protocol::Udp).conflicts(&port("", 80, Protocol::Tcp)));
        assert!(!port("", 80, Protocol::Tcp).conflicts(&port("", 8080, Protocol::Tcp)));
        assert_eq!(port("", 80, Protocol::Udp).to_string(), "0.0.0.0:80/UDP");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn effective_requests_cover_every_phase(
            app in proptest::collection::vec((0i64..2000, 0i64..4096), 0..4),
            init in proptest::collection::vec((0i64..2000, 0i64..4096, any::<bool>()), 0..4),
        ) {
            let pod = PodShape {
                containers: app.iter().map(|(a, b)| c(*a, *b)).collect(),
                init_containers: init
                    .iter()
                    .map(|(a, b, s)| if *s { c(*a, *b).sidecar() } else { c(*a, *b) })
                    .collect(),
                ..PodShape::default()
            };
            let got = pod.effective_requests();
            let steady: i64 = app.iter().map(|x| x.0).sum::<i64>()
                + init.iter().filter(|x| x.2).map(|x| x.0).sum::<i64>();
            prop_assert!(got.cpu.0 >= steady);
            for (i, (cpu, _, sidecar)) in init.iter().enumerate() {
                if !sidecar {
                    let before: i64 = init[..i].iter().filter(|x| x.2).map(|x| x.0).sum();
                    prop_assert!(got.cpu.0 >= cpu + before);
                }
            }
        }
    }
}
