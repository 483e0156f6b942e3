//! What `tandem up` leaves on disk so that `tandem up --down` can find everything again, even
//! when `tandem up` was killed and could not clean up: the state file's contents and the pure
//! decisions over it. Reading `/proc`, signalling and deleting are in the parent module.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The state file's name inside the state directory.
pub const STATE_FILE: &str = "up.json";

/// How every control plane's directory is named (`tandem_testkit` makes them in the temp
/// dir); `--down` deletes no directory whose name does not start with it, whatever the state
/// file says.
pub const DIR_PREFIX: &str = "tandem-controlplane-";

/// A process `tandem up` is responsible for. The pid alone could be a recycled one by the
/// time `--down` runs, so its start time (clock ticks after boot, `/proc/<pid>/stat` field
/// 22) is kept too and both must match before anything is signalled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    /// `tandem up`, `etcd`, `kube-apiserver`, …, `watchdog`.
    pub name: String,
    /// The process id.
    pub pid: u32,
    /// Its start time, from `/proc/<pid>/stat`.
    pub start_time: u64,
}

/// The state file: who is running and what is on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The `tandem up` process itself; on SIGTERM it stops everything below and deletes it.
    pub up: Process,
    /// The control plane's processes (they die with `tandem up` by a parent-death signal, and
    /// a watchdog removes the directory; `--down` covers the case where those failed too).
    pub components: Vec<Process>,
    /// The control plane's directory: etcd data, PKI, logs and the kubeconfig.
    pub dir: PathBuf,
    /// The kubeconfig `tandem up` printed (inside `dir`).
    pub kubeconfig: PathBuf,
}

/// Whether a recorded process still runs, as far as `/proc` tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// The recorded process: same pid, same start time, not a zombie.
    Running,
    /// Exited (or a zombie waiting to be reaped), or the pid now belongs to another process.
    Gone,
}

/// Field 22 of `/proc/<pid>/stat` (start time) and field 3 (state). The command name in
/// field 2 may contain spaces and parentheses, so fields are counted after the last `)`.
fn stat_fields(stat: &str) -> Option<(char, u64)> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // After the state (field 3) come fields 4..; the start time is field 22.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// The start time of a process from the text of its `/proc/<pid>/stat`.
pub fn start_time(stat: &str) -> Option<u64> {
    stat_fields(stat).map(|(_, start)| start)
}

/// What `stat` (the text of `/proc/<pid>/stat`, `None` when there is none) says of `p`.
pub fn seen(p: &Process, stat: Option<&str>) -> Seen {
    match stat.and_then(stat_fields) {
        Some((state, start)) if start == p.start_time && state != 'Z' && state != 'X' => {
            Seen::Running
        }
        _ => Seen::Gone,
    }
}

/// Whether `dir` may be deleted by `--down`: an absolute path whose last component is a
/// control plane directory's name. A damaged or hand-edited state file cannot make `--down`
/// delete anything else.
pub fn is_controlplane_dir(dir: &Path) -> bool {
    dir.is_absolute()
        && dir
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(DIR_PREFIX) && n.len() > DIR_PREFIX.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    // A real line, with a command name holding a space and a parenthesis.
    const STAT: &str = "4242 (tandem (up) x) S 1 4242 4242 0 -1 4194560 2471 0 0 0 12 3 0 0 20 0 \
                        9 0 771234 1046523904 9321 18446744073709551615 1 1 0 0 0 0 0 4096 17 \
                        18446744073709551615 0 0 17 1 0 0 0 0 0";

    fn process(start_time: u64) -> Process {
        Process {
            name: "etcd".into(),
            pid: 4242,
            start_time,
        }
    }

    #[test]
    fn the_start_time_is_field_22_whatever_the_command_name() {
        assert_eq!(start_time(STAT), Some(771_234));
        assert_eq!(start_time("4242 (x) S 1"), None);
        assert_eq!(start_time(""), None);
    }

    #[test]
    fn only_the_same_live_process_counts_as_running() {
        assert_eq!(seen(&process(771_234), Some(STAT)), Seen::Running);
        // The pid was reused by a process started later.
        assert_eq!(seen(&process(5), Some(STAT)), Seen::Gone);
        assert_eq!(seen(&process(771_234), None), Seen::Gone);
        let zombie = STAT.replace(") S ", ") Z ");
        assert_eq!(seen(&process(771_234), Some(&zombie)), Seen::Gone);
    }

    #[test]
    fn only_control_plane_directories_may_be_deleted() {
        assert!(is_controlplane_dir(Path::new(
            "/tmp/tandem-controlplane-Ab12"
        )));
        assert!(!is_controlplane_dir(Path::new("/tmp/tandem-controlplane-")));
        assert!(!is_controlplane_dir(Path::new("/")));
        assert!(!is_controlplane_dir(Path::new("/home/me")));
        assert!(!is_controlplane_dir(Path::new("tandem-controlplane-Ab12")));
    }

    #[test]
    fn the_state_file_round_trips() {
        let state = State {
            up: process(1),
            components: vec![process(2)],
            dir: "/tmp/tandem-controlplane-x".into(),
            kubeconfig: "/tmp/tandem-controlplane-x/kubeconfig".into(),
        };
        let text = serde_json::to_string(&state).expect("json");
        assert_eq!(serde_json::from_str::<State>(&text).expect("parse"), state);
    }
}
