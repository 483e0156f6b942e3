//! Child processes that cannot outlive the test process, without `unsafe`.
//!
//! Two independent mechanisms, because either alone has a gap:
//!
//! 1. **Parent-death signal.** Every component is started as
//!    `setpriv --pdeathsig KILL <binary> <args>` (util-linux, Essential in Debian). `setpriv`
//!    calls `prctl(PR_SET_PDEATHSIG, SIGKILL)` and then execs the binary, so the kernel kills
//!    the component the moment its parent *thread* dies. Since that is the thread that forked,
//!    all spawns go through one dedicated thread ([`spawn`]) that lives until the process
//!    exits; a tokio worker or a `#[tokio::test]` thread ending does not kill anything.
//!    Gap: a parent killed in the microseconds between fork and `prctl`.
//! 2. **Watchdog.** One `sh` per control plane, in its own process group (Ctrl-C does not
//!    reach it), reads "pid N" lines on stdin from a pipe whose only writer is the test
//!    process. When the test process dies for any reason, SIGKILL included, the kernel closes
//!    the pipe, `read` sees EOF, and the watchdog kills every listed pid whose command line
//!    still names the control plane's temp dir (so a recycled pid is never hit) and removes
//!    the temp dir. This is also what cleans up the shared control plane, a `static` whose
//!    `Drop` never runs.

use crate::error::{Error, Result};
use std::fs::File;
use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock, mpsc};

type SpawnReply = tokio::sync::oneshot::Sender<std::io::Result<Child>>;

/// The thread that forks every component; see the module docs for why it must be long-lived.
fn spawner() -> &'static Mutex<mpsc::Sender<(Command, SpawnReply)>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<(Command, SpawnReply)>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<(Command, SpawnReply)>();
        // The sender lives in this static forever, so `recv` only fails at process exit.
        let spawned = std::thread::Builder::new()
            .name("tandem-testkit-spawner".into())
            .spawn(move || {
                while let Ok((mut cmd, reply)) = rx.recv() {
                    let _ = reply.send(cmd.spawn());
                }
            });
        if let Err(err) = spawned {
            eprintln!("tandem-testkit: cannot start the spawner thread: {err}");
        }
        Mutex::new(tx)
    })
}

/// Spawns `cmd` from the long-lived spawner thread.
pub(crate) async fn spawn(cmd: Command) -> std::io::Result<Child> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    {
        let sender = spawner()
            .lock()
            .map_err(|_| std::io::Error::other("spawner lock poisoned"))?;
        sender
            .send((cmd, tx))
            .map_err(|_| std::io::Error::other("spawner thread is gone"))?;
    }
    rx.await
        .map_err(|_| std::io::Error::other("spawner thread dropped the request"))?
}

/// How a component is started, kept so it can be restarted with identical flags.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub(crate) name: &'static str,
    pub(crate) binary: PathBuf,
    pub(crate) args: Vec<String>,
    pub(crate) log: PathBuf,
}

/// One running component.
#[derive(Debug)]
pub(crate) struct Component {
    pub(crate) spec: Spec,
    child: Child,
}

impl Component {
    /// Starts `spec` under `setpriv --pdeathsig KILL`, stdout and stderr appended to its log.
    pub(crate) async fn start(spec: Spec, watchdog: &Watchdog) -> Result<Self> {
        let open_log = || {
            File::options()
                .create(true)
                .append(true)
                .open(&spec.log)
                .map_err(|e| Error::io("open", &spec.log, e))
        };
        let (out, err) = (open_log()?, open_log()?);
        let mut cmd = Command::new("setpriv");
        cmd.arg("--pdeathsig")
            .arg("KILL")
            .arg(&spec.binary)
            .args(&spec.args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            // Own process group: a Ctrl-C meant for `tandem up` reaches only us; we tear down.
            .process_group(0);
        let child = spawn(cmd).await.map_err(|source| Error::Spawn {
            component: spec.name.to_owned(),
            source: if source.kind() == std::io::ErrorKind::NotFound {
                std::io::Error::new(
                    source.kind(),
                    "`setpriv` (util-linux) is not on PATH; it makes components die with the \
                     test process",
                )
            } else {
                source
            },
        })?;
        watchdog.watch(child.id());
        Ok(Component { spec, child })
    }

    /// `Err(Exited)` if the process is gone, with the tail of its log.
    pub(crate) fn check_running(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(self.exited(status.to_string())),
            Err(e) => Err(self.exited(format!("unknown: {e}"))),
        }
    }

    fn exited(&self, status: String) -> Error {
        Error::Exited {
            component: self.spec.name.to_owned(),
            status,
            log: self.spec.log.clone(),
            tail: log_tail(&self.spec.log, 40),
        }
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILLs the process and reaps it.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Component {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last `lines` lines of a log file (empty if it cannot be read).
pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    let Ok(text) = std::fs::read(path) else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&text);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

const WATCHDOG_SCRIPT: &str = r#"
trap '' HUP INT PIPE
marker="$1"
pids=""
while read -r kind value; do
  case "$kind" in pid) pids="$pids $value" ;; esac
done
for p in $pids; do
  if grep -qaF -- "$marker" "/proc/$p/cmdline" 2>/dev/null; then kill -KILL "$p" 2>/dev/null; fi
done
sleep 0.3
rm -rf -- "$marker"
"#;

/// The cleanup process of one control plane; see the module docs.
#[derive(Debug)]
pub(crate) struct Watchdog {
    stdin: Mutex<Option<ChildStdin>>,
    child: Child,
}

impl Watchdog {
    /// Starts a watchdog that, once this process is gone, kills the registered pids whose
    /// command line contains `dir` and then removes `dir`.
    pub(crate) async fn start(dir: &Path) -> Result<Self> {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(WATCHDOG_SCRIPT)
            .arg("tandem-testkit-watchdog")
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        let mut child = spawn(cmd).await.map_err(|source| Error::Spawn {
            component: "watchdog".into(),
            source,
        })?;
        let stdin = child.stdin.take();
        Ok(Watchdog {
            stdin: Mutex::new(stdin),
            child,
        })
    }

    /// The watchdog's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Registers a pid to kill when this process dies.
    pub(crate) fn watch(&self, pid: u32) {
        if let Ok(mut guard) = self.stdin.lock()
            && let Some(stdin) = guard.as_mut()
        {
            let _ = writeln!(stdin, "pid {pid}");
            let _ = stdin.flush();
        }
    }

    /// Closes the pipe now: the watchdog cleans up and exits.
    pub(crate) fn release(&self) {
        if let Ok(mut guard) = self.stdin.lock() {
            guard.take();
        }
    }
}

/// Resident memory of a process from `/proc/<pid>/status`: (current VmRSS, peak VmHWM) in bytes.
pub(crate) fn rss_of(pid: u32) -> (u64, u64) {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return (0, 0);
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}
