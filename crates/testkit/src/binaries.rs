//! Finding the upstream binaries built by `hack/controlplane/build.sh`.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The binaries a control plane needs, by file name.
pub const REQUIRED: [&str; 4] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];

/// Environment variable that overrides where the binaries are looked for.
pub const DIR_ENV: &str = "TANDEM_CONTROLPLANE_DIR";

/// The workspace root: the nearest ancestor holding `hack/controlplane/build.sh` of, in order,
/// the package directory cargo names at run time (`cargo test`/`cargo run` set
/// `CARGO_MANIFEST_DIR`), this crate's directory at compile time, and the working directory.
///
/// The run-time lookup comes first because one target directory serves several clones
/// (`CARGO_TARGET_DIR=/var/cache/tandem/target`) and cargo reuses a testkit built in another
/// clone, whose compile-time path may no longer exist.
pub fn workspace_root() -> PathBuf {
    let candidates = [
        std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR"))),
        std::env::current_dir().ok(),
    ];
    candidates
        .into_iter()
        .flatten()
        .find_map(|start| {
            start
                .ancestors()
                .find(|dir| dir.join("hack/controlplane/build.sh").is_file())
                .map(Path::to_path_buf)
        })
        .unwrap_or_else(|| {
            // crates/testkit -> crates -> root, even if it does not exist (errors name it).
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .ancestors()
                .nth(2)
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
        })
}

/// Directory holding `etcd`, `kube-apiserver`, `kube-controller-manager`, `kube-scheduler`.
#[derive(Debug, Clone)]
pub struct Binaries {
    dir: PathBuf,
}

impl Binaries {
    /// Locates the binaries: `TANDEM_CONTROLPLANE_DIR` if set, else the directory printed by
    /// `hack/controlplane/build.sh --dir`. Fails with a hint to run the build script when any
    /// binary is missing.
    pub fn locate() -> Result<Self> {
        let dir = match std::env::var_os(DIR_ENV) {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => Self::dir_from_build_script()?,
        };
        Self::in_dir(dir)
    }

    /// Uses `dir`, checking that every required binary is there and executable.
    pub fn in_dir(dir: impl Into<PathBuf>) -> Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let dir = dir.into();
        for name in REQUIRED {
            let ok = std::fs::metadata(dir.join(name))
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false);
            if !ok {
                return Err(Error::BinariesMissing {
                    dir,
                    missing: name.to_owned(),
                });
            }
        }
        Ok(Binaries { dir })
    }

    fn dir_from_build_script() -> Result<PathBuf> {
        let script = workspace_root().join("hack/controlplane/build.sh");
        // `--dir` prints the directory whether or not it is built (exit 1 when not); the
        // existence check in `in_dir` turns "not built" into the actionable error.
        let out = Command::new("bash")
            .arg(&script)
            .arg("--dir")
            .output()
            .map_err(|source| Error::LocateBinaries {
                script: script.clone(),
                source,
            })?;
        let printed = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if printed.is_empty() {
            return Err(Error::LocateBinaries {
                script,
                source: std::io::Error::other(format!(
                    "it printed no directory: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )),
            });
        }
        Ok(PathBuf::from(printed))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Full path of one binary.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binaries_error_names_the_build_script() {
        let err = Binaries::in_dir("/nonexistent/tandem-controlplane").unwrap_err();
        assert!(matches!(&err, Error::BinariesMissing { missing, .. } if missing == "etcd"));
        let text = err.to_string();
        assert!(text.contains("hack/controlplane/build.sh"), "{text}");
        assert!(text.contains(DIR_ENV), "{text}");
    }

    #[test]
    fn workspace_root_holds_the_build_script() {
        assert!(
            workspace_root()
                .join("hack/controlplane/build.sh")
                .is_file()
        );
    }
}
