//! Python interpreters from the host, found by version and relocated into an environment so
//! they work inside the sandbox.
//!
//! Where they come from, first match wins: an explicit `--python 3.9=/path` (an executable
//! or an installation prefix), then the places pyenv and uv install to, then the caller's
//! extra directories (`scripts/setup` puts a Python 3.9 from Debian under `.venv/pythons/`),
//! then `pythonX.Y` on PATH. Each candidate is run once to ask its real version and layout;
//! one of another version is never used for a spec (a missing interpreter is an error that
//! names the version and where it looked).
//!
//! Relocation: the sandbox shows only the host's `/usr`, `/etc` and the `/bin`, `/lib*`
//! links, so an interpreter under `/usr` works inside as it is, and any other (pyenv's under
//! /root, uv's, ours under .venv) is copied into the environment as `/env/python`: its
//! executable, standard library and the shared libraries in its `lib/`, with the executable's
//! run path set to `$ORIGIN/../lib` (patchelf) so a shared libpython or an OpenSSL it brought
//! is found there. CPython finds its standard library relative to its executable, so nothing
//! else needs rewriting. The copy is checked by running it inside the sandbox at build time.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use swerl_sandbox::host_command;

/// A usable interpreter on the host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interpreter {
    /// Full version, e.g. "3.9.2".
    pub version: String,
    /// The real executable (symlinks resolved).
    pub executable: PathBuf,
    /// `sys.base_prefix`: the installation it belongs to.
    pub prefix: PathBuf,
    /// `sysconfig`'s standard library directory.
    pub stdlib: PathBuf,
}

impl Interpreter {
    /// `major.minor`.
    pub fn minor_version(&self) -> String {
        self.version
            .split('.')
            .take(2)
            .collect::<Vec<_>>()
            .join(".")
    }

    /// Whether the sandbox sees it at its own path (the host's /usr is bound read-only).
    pub fn visible_in_sandbox(&self) -> bool {
        self.prefix.starts_with("/usr")
    }

    /// The executable inside the sandbox once the environment holds its copy at `/env/python`.
    pub fn sandbox_executable(&self) -> String {
        if self.visible_in_sandbox() {
            return self.executable.display().to_string();
        }
        format!("/env/python/bin/python{}", self.minor_version())
    }
}

/// Why no interpreter could be had.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PythonError {
    #[error(
        "no Python {version} interpreter found (looked at: {looked}); pass --python {version}=/path/to/python{version}, \
         or install one with pyenv or uv"
    )]
    Missing { version: String, looked: String },
    #[error("--python {version}={path}: {reason}")]
    Unusable {
        version: String,
        path: String,
        reason: String,
    },
    #[error("relocating Python {version} into {dest}: {reason}")]
    Relocate {
        version: String,
        dest: String,
        reason: String,
    },
}

/// Where to look for interpreters.
#[derive(Debug, Clone, Default)]
pub struct PythonSources {
    /// `--python X.Y=PATH`, by `major.minor`.
    pub explicit: BTreeMap<String, PathBuf>,
    /// Directories holding one installation per version (pyenv's `versions/`, uv's python
    /// directory, `.venv/pythons/`): subdirectories whose name starts with the version (or
    /// `cpython-X.Y`) and have `bin/pythonX.Y`.
    pub install_dirs: Vec<PathBuf>,
    /// Directories searched for `pythonX.Y` (PATH).
    pub path: Vec<PathBuf>,
}

impl PythonSources {
    /// The interpreter for `version` (`major.minor`).
    pub fn find(&self, version: &str) -> Result<Interpreter, PythonError> {
        if let Some(path) = self.explicit.get(version) {
            return explicit(version, path);
        }
        let candidates = self.candidates(version);
        for candidate in &candidates {
            if let Some(found) = inspect(candidate).filter(|i| i.minor_version() == version) {
                return Ok(found);
            }
        }
        Err(PythonError::Missing {
            version: version.to_string(),
            looked: if candidates.is_empty() {
                "nothing".into()
            } else {
                candidates
                    .iter()
                    .map(|c| c.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        })
    }

    fn candidates(&self, version: &str) -> Vec<PathBuf> {
        let exe = format!("python{version}");
        let mut out = Vec::new();
        for dir in &self.install_dirs {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| {
                    let n = n.strip_prefix("cpython-").unwrap_or(n);
                    n == version
                        || n.starts_with(&format!("{version}."))
                        || n.starts_with(&format!("{version}-"))
                })
                .collect();
            // Newest patch release first (3.9.18 before 3.9.2).
            names.sort_by_key(|n| std::cmp::Reverse(version_key(n)));
            out.extend(names.iter().map(|n| dir.join(n).join("bin").join(&exe)));
        }
        out.extend(self.path.iter().map(|d| d.join(&exe)));
        out.retain(|p| p.is_file());
        out
    }
}

/// Sort key of a directory name such as `3.9.18` or `cpython-3.9.18-linux-x86_64-gnu`.
fn version_key(name: &str) -> Vec<u32> {
    let name = name.strip_prefix("cpython-").unwrap_or(name);
    name.split(['.', '-'])
        .map_while(|p| p.parse::<u32>().ok())
        .collect()
}

fn explicit(version: &str, path: &Path) -> Result<Interpreter, PythonError> {
    let unusable = |reason: String| PythonError::Unusable {
        version: version.to_string(),
        path: path.display().to_string(),
        reason,
    };
    let exe = if path.is_dir() {
        path.join("bin").join(format!("python{version}"))
    } else {
        path.to_path_buf()
    };
    let found =
        inspect(&exe).ok_or_else(|| unusable("it does not run as a Python interpreter".into()))?;
    if found.minor_version() != version {
        return Err(unusable(format!("it is Python {}", found.version)));
    }
    Ok(found)
}

/// Asks `exe` for its version and layout; `None` when it does not run.
fn inspect(exe: &Path) -> Option<Interpreter> {
    const PROBE: &str = "import json, os, sys, sysconfig; print(json.dumps({'version': '%d.%d.%d' % sys.version_info[:3], \
        'executable': os.path.realpath(sys.executable), 'prefix': sys.base_prefix, \
        'stdlib': sysconfig.get_paths()['stdlib']}))";
    let exe_str = exe.to_str()?;
    let out = host_command(exe_str, &["-I", "-c", PROBE], Path::new("/")).ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// Copies `interp` into `<dest>/python` (see the module docs) unless the sandbox already
/// sees it. Returns whether a copy was made.
pub fn relocate(interp: &Interpreter, dest: &Path) -> Result<bool, PythonError> {
    if interp.visible_in_sandbox() {
        return Ok(false);
    }
    let minor = interp.minor_version();
    let fail = |reason: String| PythonError::Relocate {
        version: interp.version.clone(),
        dest: dest.display().to_string(),
        reason,
    };
    let root = dest.join("python");
    let (bin, lib) = (root.join("bin"), root.join("lib"));
    for d in [&bin, &lib] {
        std::fs::create_dir_all(d).map_err(|e| fail(format!("{}: {e}", d.display())))?;
    }
    let exe = bin.join(format!("python{minor}"));
    std::fs::copy(&interp.executable, &exe)
        .map_err(|e| fail(format!("copying the executable: {e}")))?;
    for alias in ["python3", "python"] {
        std::os::unix::fs::symlink(format!("python{minor}"), bin.join(alias))
            .map_err(|e| fail(format!("linking {alias}: {e}")))?;
    }
    copy_dir(&interp.stdlib, &lib, &fail)?;
    for unwanted in ["site-packages", "dist-packages", "test"] {
        let p = lib.join(format!("python{minor}")).join(unwanted);
        if p.exists() {
            std::fs::remove_dir_all(&p).map_err(|e| fail(format!("{}: {e}", p.display())))?;
        }
    }
    copy_shared_libraries(&interp.prefix.join("lib"), &lib, &fail)?;
    let include = interp.prefix.join("include").join(format!("python{minor}"));
    if include.is_dir() {
        let to = root.join("include");
        std::fs::create_dir_all(&to).map_err(|e| fail(format!("{}: {e}", to.display())))?;
        copy_dir(&include, &to, &fail)?;
    }
    // Debian's ensurepip takes its wheels from here (scripts/setup-python39 points it there).
    let wheels = interp.prefix.join("share/python-wheels");
    if wheels.is_dir() {
        let to = root.join("share");
        std::fs::create_dir_all(&to).map_err(|e| fail(format!("{}: {e}", to.display())))?;
        copy_dir(&wheels, &to, &fail)?;
    }
    set_run_path(&exe, &fail)?;
    Ok(true)
}

/// `cp -a FROM INTO/` (keeps symlinks, modes and times).
fn copy_dir(
    from: &Path,
    into: &Path,
    fail: &dyn Fn(String) -> PythonError,
) -> Result<(), PythonError> {
    let (from_s, into_s) = (from.display().to_string(), format!("{}/", into.display()));
    let out = host_command("cp", &["-a", &from_s, &into_s], Path::new("/"))
        .map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        return Err(fail(format!(
            "cp -a {from_s} {into_s}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// The shared objects directly in the installation's `lib/` (a shared libpython, or the
/// libraries a relocatable build brought along).
fn copy_shared_libraries(
    from: &Path,
    into: &Path,
    fail: &dyn Fn(String) -> PythonError,
) -> Result<(), PythonError> {
    let Ok(entries) = std::fs::read_dir(from) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.contains(".so") {
            continue;
        }
        let (src, dst) = (entry.path(), into.join(&name));
        let meta = std::fs::symlink_metadata(&src).map_err(|e| fail(e.to_string()))?;
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&src).map_err(|e| fail(e.to_string()))?;
            std::os::unix::fs::symlink(target, &dst).map_err(|e| fail(e.to_string()))?;
        } else if meta.is_file() {
            std::fs::copy(&src, &dst).map_err(|e| fail(e.to_string()))?;
        }
    }
    Ok(())
}

/// `patchelf --force-rpath --set-rpath '$ORIGIN/../lib' EXE`: a DT_RPATH (not RUNPATH), so
/// the extension modules the interpreter loads find the libraries in `lib/` too.
fn set_run_path(exe: &Path, fail: &dyn Fn(String) -> PythonError) -> Result<(), PythonError> {
    let exe_s = exe.display().to_string();
    let args = [
        "--force-rpath",
        "--set-rpath",
        "$ORIGIN/../lib",
        exe_s.as_str(),
    ];
    let out = host_command("patchelf", &args, Path::new("/")).map_err(|e| {
        fail(format!(
            "patchelf is needed to relocate interpreters ({e}); install it (scripts/setup does: apt-get install patchelf)"
        ))
    })?;
    if !out.status.success() {
        return Err(fail(format!(
            "patchelf: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_keys_order_patch_releases() {
        assert!(version_key("3.9.18") > version_key("3.9.2"));
        assert_eq!(
            version_key("cpython-3.9.18-linux-x86_64-gnu"),
            vec![3, 9, 18]
        );
    }

    #[test]
    fn the_host_python_is_found_and_a_wrong_version_refused() {
        let sources = PythonSources {
            path: vec!["/usr/bin".into()],
            ..Default::default()
        };
        let host = inspect(Path::new("/usr/bin/python3")).expect("the host has python3");
        let found = sources.find(&host.minor_version()).unwrap();
        assert_eq!(found.version, host.version);
        assert!(found.visible_in_sandbox());
        let missing = sources.find("2.1").unwrap_err().to_string();
        assert!(missing.contains("--python 2.1="), "{missing}");
        let mut wrong = PythonSources::default();
        wrong
            .explicit
            .insert("2.1".into(), "/usr/bin/python3".into());
        let err = wrong.find("2.1").unwrap_err().to_string();
        assert!(
            err.contains(&format!("it is Python {}", host.version)),
            "{err}"
        );
    }
}
