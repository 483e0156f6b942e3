//! The `tandem` command: every entry point of Tandem in one binary.
//!
//! Each subcommand lives in its own module under `cmd/` and returns an exit code; `main` only
//! parses arguments and maps errors. Exit codes follow the house convention: 0 ok, 1 findings or
//! invalid input, 2 usage or unreadable input.

mod cmd;

use clap::Parser;
use std::process::ExitCode;

/// mimalloc rather than glibc's malloc: the simulator and the controllers' scheduling
/// simulations allocate many small, short-lived strings and maps (a simulated day ran about
/// a third faster with it).
#[cfg(not(feature = "dhat-heap"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// With `--features dhat-heap`, dhat's allocator records every allocation site, and the profile
/// is written on SIGTERM to `tandem run`, before anything is torn down (so its heap "at the end"
/// is the steady state it ran in), or else when `main` returns: the heap reports of the scale
/// work read it with `hack/dhat-top.py`.
#[cfg(feature = "dhat-heap")]
#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

/// The running heap profiler, taken by [`write_heap_profile`].
#[cfg(feature = "dhat-heap")]
static PROFILER: std::sync::Mutex<Option<dhat::Profiler>> = std::sync::Mutex::new(None);

/// Writes the heap profile now, with every live allocation in it (a no-op without
/// `--features dhat-heap`, or once written).
pub(crate) fn write_heap_profile() {
    #[cfg(feature = "dhat-heap")]
    if let Ok(mut p) = PROFILER.lock() {
        drop(p.take());
    }
}

/// Tandem: the pod layer (KEDA) and the node layer (Karpenter) of Kubernetes autoscaling, in one
/// program that reads the same YAML.
#[derive(Debug, Parser)]
#[command(name = "tandem", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: cmd::Command,
}

fn main() -> ExitCode {
    #[cfg(feature = "dhat-heap")]
    if let Ok(mut p) = PROFILER.lock() {
        *p = Some(
            dhat::Profiler::builder()
                .file_name(
                    std::env::var("TANDEM_DHAT_OUT").unwrap_or_else(|_| "dhat-heap.json".into()),
                )
                .build(),
        );
    }
    let cli = Cli::parse();
    let code = cli.command.run();
    write_heap_profile();
    match code {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
