//! Per-sandbox memory and process limits through cgroups: every process of a sandbox, however
//! many, shares one memory budget and one process count. rlimits alone bound each process
//! (three processes held 4.6 GiB together under a 4 GiB RLIMIT_AS).
//!
//! Each controller (`memory`, `pids`) is found where the host has it: cgroup v2 when the
//! unified hierarchy lists it for swerl's own group (or can enable it there), else cgroup v1
//! when its hierarchy is mounted. The sandbox's group is `swerl-sbx-<uid>` under swerl's own
//! group in that hierarchy (from `/proc/self/cgroup`); the launch writes its shell's pid into
//! the group's `cgroup.procs` before anything of the agent runs. A controller found nowhere
//! is reported by [`Controllers::missing`], and the factory says so when it starts.
//!
//! Everything takes the cgroup filesystem's root and the text of `/proc/self/cgroup` as
//! arguments, so the v2 logic is tested against a fake directory on a host that has only v1.

use std::path::{Path, PathBuf};

use crate::scratch::io_err;
use crate::SandboxError;

/// The controllers a sandbox needs.
const NEEDED: [&str; 2] = ["memory", "pids"];

/// Which hierarchy holds a controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    V1,
    V2,
}

/// One controller, found: the directory of swerl's own group in its hierarchy.
#[derive(Debug, Clone, PartialEq)]
struct Found {
    name: &'static str,
    version: CgroupVersion,
    parent: PathBuf,
}

/// What this host offers for per-sandbox limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Controllers {
    found: Vec<Found>,
    /// Controllers that could not be found, each with the reason in words.
    pub missing: Vec<(String, String)>,
}

impl Controllers {
    /// Looks for the memory and pids controllers under `root` (normally `/sys/fs/cgroup`)
    /// for the process whose `/proc/<pid>/cgroup` reads `self_cgroup`.
    pub fn detect(root: &Path, self_cgroup: &str) -> Controllers {
        let mut found = Vec::new();
        let mut missing = Vec::new();
        let v2 = v2_dir(root, self_cgroup);
        for name in NEEDED {
            match find(root, self_cgroup, v2.as_deref(), name) {
                Ok(f) => found.push(f),
                Err(why) => missing.push((name.to_string(), why)),
            }
        }
        Controllers { found, missing }
    }

    /// This host's controllers (`/sys/fs/cgroup`, this process's groups).
    pub fn of_this_host() -> Controllers {
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        Controllers::detect(Path::new("/sys/fs/cgroup"), &own)
    }

    /// `memory: cgroup v1`, `pids: none (why)`, ... in one line, for the start-up report.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self
            .found
            .iter()
            .map(|f| {
                let v = match f.version {
                    CgroupVersion::V1 => "v1",
                    CgroupVersion::V2 => "v2",
                };
                format!("{}: cgroup {v} ({})", f.name, f.parent.display())
            })
            .collect();
        parts.extend(
            self.missing
                .iter()
                .map(|(n, why)| format!("{n}: NOT ENFORCED ({why})")),
        );
        parts.join("; ")
    }

    /// Where `controller` is enforced, if anywhere.
    pub fn version_of(&self, controller: &str) -> Option<CgroupVersion> {
        self.found
            .iter()
            .find(|f| f.name == controller)
            .map(|f| f.version)
    }

    /// Removes a crashed run's group `name` from every found hierarchy, if it is there.
    pub(crate) fn remove_leftover(&self, name: &str) {
        for f in &self.found {
            let dir = f.parent.join(name);
            if dir.exists() {
                if let Err(e) = remove_group(&dir) {
                    tracing::warn!(error = %e, "a crashed run's sandbox cgroup could not be removed");
                }
            }
        }
    }

    /// Makes the sandbox's group `name` in every found hierarchy and writes its limits.
    pub(crate) fn create(
        &self,
        name: &str,
        memory_bytes: u64,
        max_processes: u64,
    ) -> Result<SandboxCgroup, SandboxError> {
        let mut group = SandboxCgroup { dirs: Vec::new() };
        for f in &self.found {
            let dir = f.parent.join(name);
            if !group.dirs.contains(&dir) {
                match std::fs::create_dir(&dir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(io_err(&dir, e)),
                }
                group.dirs.push(dir.clone());
            }
            for (file, value) in limit_files(f, memory_bytes, max_processes) {
                let path = dir.join(file);
                // memsw (v1) and swap.max (v2) exist only with swap accounting.
                if file.contains("swap") || file.contains("memsw") {
                    if path.exists() {
                        let _ = std::fs::write(&path, &value);
                    }
                    continue;
                }
                std::fs::write(&path, &value).map_err(|e| io_err(&path, e))?;
            }
        }
        Ok(group)
    }
}

/// The limit files of one controller, in the order they must be written.
fn limit_files(f: &Found, memory: u64, processes: u64) -> Vec<(&'static str, String)> {
    match (f.name, f.version) {
        ("memory", CgroupVersion::V1) => vec![
            ("memory.limit_in_bytes", memory.to_string()),
            // No swap on top of the limit (only with swap accounting).
            ("memory.memsw.limit_in_bytes", memory.to_string()),
        ],
        ("memory", CgroupVersion::V2) => vec![
            ("memory.max", memory.to_string()),
            ("memory.swap.max", "0".to_string()),
        ],
        ("pids", _) => vec![("pids.max", processes.to_string())],
        _ => Vec::new(),
    }
}

/// The directory of swerl's own group in the unified (v2) hierarchy, when there is one:
/// `root` itself (a pure v2 host) or `root/unified` (hybrid).
fn v2_dir(root: &Path, self_cgroup: &str) -> Option<PathBuf> {
    let path = self_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))?
        .trim();
    let mount = [root.to_path_buf(), root.join("unified")]
        .into_iter()
        .find(|m| m.join("cgroup.controllers").is_file())?;
    Some(mount.join(path.trim_start_matches('/')))
}

/// Finds `name` in v2 (preferred: what hosts have today) or v1.
fn find(
    root: &Path,
    self_cgroup: &str,
    v2: Option<&Path>,
    name: &'static str,
) -> Result<Found, String> {
    let v2_why = match v2 {
        Some(dir) => match enable_v2(dir, name) {
            Ok(()) => {
                return Ok(Found {
                    name,
                    version: CgroupVersion::V2,
                    parent: dir.to_path_buf(),
                })
            }
            Err(why) => why,
        },
        None => "no cgroup v2 hierarchy".to_string(),
    };
    let v1_path = self_cgroup.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
        ctrls.split(',').any(|c| c == name).then_some(path.trim())
    });
    let mount = root.join(name);
    match v1_path {
        Some(path) if mount.join("cgroup.procs").is_file() => Ok(Found {
            name,
            version: CgroupVersion::V1,
            parent: mount.join(path.trim_start_matches('/')),
        }),
        _ => Err(format!("{v2_why}; no cgroup v1 {name} hierarchy")),
    }
}

/// Makes `name` available to child groups of `dir` in v2: it must be listed in the group's
/// `cgroup.controllers` (delegated by the parent) and enabled in its `cgroup.subtree_control`
/// (which the kernel refuses while the group itself holds processes: the "no internal
/// processes" rule).
fn enable_v2(dir: &Path, name: &str) -> Result<(), String> {
    let listed = |file: &str| {
        std::fs::read_to_string(dir.join(file))
            .map(|s| s.split_whitespace().any(|c| c == name))
            .unwrap_or(false)
    };
    if !listed("cgroup.controllers") {
        return Err(format!(
            "cgroup v2 does not delegate {name} to {}",
            dir.display()
        ));
    }
    if listed("cgroup.subtree_control") {
        return Ok(());
    }
    std::fs::write(dir.join("cgroup.subtree_control"), format!("+{name}")).map_err(|e| {
        format!(
            "cgroup v2 cannot enable {name} for child groups of {} ({e}); run swerl in a group of its own with the controller delegated, e.g. `systemd-run --scope -p Delegate=yes swerl ...`",
            dir.display()
        )
    })
}

/// One sandbox's group, in each hierarchy that has one of its controllers.
#[derive(Debug)]
pub(crate) struct SandboxCgroup {
    dirs: Vec<PathBuf>,
}

impl SandboxCgroup {
    /// No group: the sandbox's limits are its rlimits only.
    pub fn none() -> SandboxCgroup {
        SandboxCgroup { dirs: Vec::new() }
    }

    /// The `cgroup.procs` files the launch writes the shell's pid into.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }

    /// The most memory the sandbox has used at once, where the hierarchy records it.
    pub fn peak_memory(&self) -> Option<u64> {
        self.dirs.iter().find_map(|d| {
            ["memory.max_usage_in_bytes", "memory.peak"]
                .iter()
                .find_map(|f| std::fs::read_to_string(d.join(f)).ok()?.trim().parse().ok())
        })
    }

    /// Removes the groups (they must hold no process any more: call after the kill).
    pub fn remove(&self) -> Result<(), SandboxError> {
        for dir in &self.dirs {
            remove_group(dir)?;
        }
        Ok(())
    }
}

/// `rmdir` of a group, retried briefly: the kernel frees a group only once its last
/// process has been reaped, which can trail the kill by a few milliseconds.
pub(crate) fn remove_group(dir: &Path) -> Result<(), SandboxError> {
    for attempt in 0..100 {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if attempt < 99 && e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            Err(e) => return Err(io_err(dir, e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_V1: &str = "9:name=systemd:/\n8:pids:/\n4:memory:/job/7\n0::/\n";

    fn touch(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn v1_controllers_are_found_under_the_processes_own_groups() {
        let root = tempfile::tempdir().unwrap();
        touch(&root.path().join("memory/cgroup.procs"), "");
        touch(&root.path().join("memory/job/7/cgroup.procs"), "");
        touch(&root.path().join("pids/cgroup.procs"), "");
        touch(&root.path().join("unified/cgroup.controllers"), "hugetlb\n");
        let c = Controllers::detect(root.path(), HYBRID_V1);
        assert!(c.missing.is_empty(), "{:?}", c.missing);
        assert_eq!(c.version_of("memory"), Some(CgroupVersion::V1));
        let group = c.create("swerl-sbx-1", 1 << 30, 64).unwrap();
        let mem = root.path().join("memory/job/7/swerl-sbx-1");
        assert_eq!(
            std::fs::read_to_string(mem.join("memory.limit_in_bytes")).unwrap(),
            "1073741824"
        );
        assert_eq!(
            std::fs::read_to_string(root.path().join("pids/swerl-sbx-1/pids.max")).unwrap(),
            "64"
        );
        assert_eq!(group.procs_files().len(), 2);
    }

    #[test]
    fn v2_is_preferred_and_enables_its_controllers_for_child_groups() {
        let root = tempfile::tempdir().unwrap();
        let own = root.path().join("user.slice/swerl.scope");
        touch(&root.path().join("cgroup.controllers"), "cpu memory pids\n");
        touch(&own.join("cgroup.controllers"), "cpu memory pids\n");
        touch(&own.join("cgroup.subtree_control"), "");
        let c = Controllers::detect(root.path(), "0::/user.slice/swerl.scope\n");
        assert!(c.missing.is_empty(), "{:?}", c.missing);
        assert_eq!(c.version_of("pids"), Some(CgroupVersion::V2));
        let group = c.create("swerl-sbx-2", 256 << 20, 32).unwrap();
        let dir = own.join("swerl-sbx-2");
        assert_eq!(
            std::fs::read_to_string(dir.join("memory.max")).unwrap(),
            "268435456"
        );
        assert_eq!(std::fs::read_to_string(dir.join("pids.max")).unwrap(), "32");
        // One directory holds both controllers in v2.
        assert_eq!(group.procs_files(), vec![dir.join("cgroup.procs")]);
        // A real kernel would show both enabled; the fake shows the last write.
        assert!(std::fs::read_to_string(own.join("cgroup.subtree_control"))
            .unwrap()
            .starts_with('+'));
    }

    #[test]
    fn undelegated_v2_without_v1_is_reported_not_silent() {
        let root = tempfile::tempdir().unwrap();
        touch(&root.path().join("cgroup.controllers"), "cpu memory pids\n");
        touch(&root.path().join("app/cgroup.controllers"), "cpu\n");
        let c = Controllers::detect(root.path(), "0::/app\n");
        assert_eq!(c.missing.len(), 2);
        assert!(c
            .describe()
            .contains("memory: NOT ENFORCED (cgroup v2 does not delegate memory"));
        let none = Controllers::detect(&root.path().join("absent"), "");
        assert!(none
            .describe()
            .contains("no cgroup v2 hierarchy; no cgroup v1 pids hierarchy"));
    }
}
