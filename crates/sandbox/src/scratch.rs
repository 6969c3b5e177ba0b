//! Per-sandbox scratch directory and unprivileged uid, and the sweep of crashed runs' leftovers.
//!
//! Each sandbox gets a host uid of its own from a high range nobody uses (processes inside run
//! as that uid, so RLIMIT_NPROC counts exactly one sandbox's processes). The scratch directory
//! `<tmp>/swerl-sbx-<uid>` doubles as the uid's lock: `mkdir` is atomic, so two sandboxes (even
//! in two swerl processes) never share a uid. An `owner` file records the creating process
//! (pid and start time, so a recycled pid is not mistaken for the owner).

use std::path::{Path, PathBuf};

use nix::sys::signal::{kill, Signal};
use nix::unistd::{chown, Gid, Pid, Uid};

use crate::SandboxError;

/// Prefix of every scratch directory; the sweep recognises leftovers by it.
pub(crate) const SCRATCH_PREFIX: &str = "swerl-sbx-";
/// Sandbox uids are drawn from `[UID_BASE, UID_BASE + UID_SPAN)`: far above login users and
/// the usual subuid ranges of rootless containers (100000-165535 and similar).
pub(crate) const UID_BASE: u32 = 2_000_000_000;
const UID_SPAN: u32 = 100_000_000;

/// A sandbox's scratch directory: overlay upper/work dirs, mount point, private /tmp, state.
#[derive(Debug)]
pub(crate) struct Scratch {
    pub dir: PathBuf,
    pub uid: u32,
}

impl Scratch {
    /// Creates a fresh scratch directory under `root` with a uid nobody else holds and a
    /// writable layer of at most `disk_bytes` (unlimited, a plain directory, when `None`).
    pub fn allocate(root: &Path, disk_bytes: Option<u64>) -> Result<Scratch, SandboxError> {
        for _ in 0..64 {
            let uid = UID_BASE + random_u32()? % UID_SPAN;
            let dir = root.join(format!("{SCRATCH_PREFIX}{uid}"));
            match std::fs::create_dir(&dir) {
                Ok(()) => {
                    let scratch = Scratch { dir, uid };
                    if let Err(e) = scratch.populate(disk_bytes) {
                        let _ = scratch.remove();
                        return Err(e);
                    }
                    return Ok(scratch);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err(&dir, e)),
            }
        }
        Err(SandboxError::Start(format!(
            "no free sandbox uid found under {}; remove stale {SCRATCH_PREFIX}* dirs",
            root.display()
        )))
    }

    fn populate(&self, disk_bytes: Option<u64>) -> Result<(), SandboxError> {
        let owner = format!(
            "{} {}\n",
            std::process::id(),
            start_time(std::process::id()).unwrap_or(0)
        );
        // Written aside and renamed into place: a sweep in another thread or process reads
        // either no owner (and judges by age) or the whole line, never an empty or half
        // written file that would make this live sandbox look abandoned.
        let pending = self.dir.join("owner.tmp");
        write(&pending, owner.as_bytes())?;
        std::fs::rename(&pending, self.dir.join("owner")).map_err(|e| io_err(&pending, e))?;
        mkdir(&self.dir.join("merged"))?;
        // Bound over root-only files in /etc (a device node like /dev/null would be `nodev`).
        write(&self.dir.join("empty"), b"")?;
        mkdir(&self.dir.join("rw"))?;
        if let Some(bytes) = disk_bytes {
            mount_quota(&self.dir.join("rw"), bytes)?;
        }
        for sub in ["upper", "work"] {
            mkdir(&self.layer(sub))?;
        }
        // The sandbox user owns its /tmp and the state dir it writes `export -p` into.
        for sub in ["tmp", "state"] {
            let path = self.layer(sub);
            mkdir(&path)?;
            chown(
                &path,
                Some(Uid::from_raw(self.uid)),
                Some(Gid::from_raw(self.uid)),
            )
            .map_err(|e| io_err(&path, e.into()))?;
        }
        Ok(())
    }

    pub fn path(&self, sub: &str) -> PathBuf {
        self.dir.join(sub)
    }

    /// A directory of the size-limited writable layer: `upper` and `work` (the overlay's),
    /// `tmp` (the sandbox's /tmp), `state` (the shell's saved variables).
    pub fn layer(&self, sub: &str) -> PathBuf {
        self.dir.join("rw").join(sub)
    }

    /// Unmounts the writable layer and removes the directory (the overlay is gone once the
    /// sandbox's processes are).
    pub fn remove(&self) -> Result<(), SandboxError> {
        remove_scratch_dir(&self.dir)
    }
}

/// Mounts a tmpfs of `bytes` on `dir` (nosuid, nodev: nothing in it may grant privileges).
fn mount_quota(dir: &Path, bytes: u64) -> Result<(), SandboxError> {
    use nix::mount::{mount, MsFlags};
    let options = format!("size={bytes},mode=0755");
    mount(
        Some("swerl-sandbox"),
        dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(options.as_str()),
    )
    .map_err(|e| {
        SandboxError::Start(format!(
            "mounting the sandbox's size-limited layer (tmpfs, {options}) on {} failed: {e}",
            dir.display()
        ))
    })
}

/// Unmounts `<dir>/rw` if it is mounted, then removes `dir`. (Copies of the mount that other
/// sandboxes' namespaces made go with the directory: removing a mount point detaches its
/// mounts in every namespace.)
fn remove_scratch_dir(dir: &Path) -> Result<(), SandboxError> {
    use nix::mount::{umount2, MntFlags};
    let _ = umount2(&dir.join("rw"), MntFlags::MNT_DETACH);
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(dir, e)),
    }
}

/// Removes scratch directories under `root` whose owner process is gone, after killing any
/// process still running as their uid. Returns how many were removed.
pub(crate) fn sweep(root: &Path, controllers: &crate::cgroup::Controllers) -> usize {
    let Ok(entries) = std::fs::read_dir(root) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(uid) = name
            .strip_prefix(SCRATCH_PREFIX)
            .and_then(|u| u.parse::<u32>().ok())
        else {
            continue;
        };
        if owner_alive(&entry.path()) {
            continue;
        }
        kill_uid(uid);
        controllers.remove_leftover(&crate::local::cgroup_name(uid));
        if remove_scratch_dir(&entry.path()).is_ok() {
            tracing::info!(dir = %entry.path().display(), "removed a crashed run's sandbox scratch dir");
            removed += 1;
        }
    }
    removed
}

fn owner_alive(dir: &Path) -> bool {
    let owner = std::fs::read_to_string(dir.join("owner")).unwrap_or_default();
    let mut fields = owner.split_whitespace().map(|f| f.parse::<u64>().ok());
    match (fields.next().flatten(), fields.next().flatten()) {
        (Some(pid), Some(started)) => start_time(pid as u32) == Some(started),
        // Being created right now (owner not yet in place) or broken: judge by age, so a
        // sandbox that is starting is never taken for a crashed run's leftover.
        _ => std::fs::metadata(dir)
            .and_then(|m| m.modified())
            .map(|t| t.elapsed().unwrap_or_default().as_secs() < 60)
            .unwrap_or(false),
    }
}

/// SIGKILLs every host process whose real uid is `uid`; returns how many were signalled.
pub(crate) fn kill_uid(uid: u32) -> usize {
    let pids = pids_of_uid(uid);
    for pid in &pids {
        let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGKILL);
    }
    pids.len()
}

/// Host pids whose real uid is `uid` (zombies included: they still hold a pid).
pub fn pids_of_uid(uid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| real_uid(*pid) == Some(uid))
        .collect()
}

fn real_uid(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A process's start time in clock ticks since boot (field 22 of /proc/PID/stat).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; count fields after its closing paren.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

fn random_u32() -> Result<u32, SandboxError> {
    use std::io::Read;
    let mut b = [0u8; 4];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| io_err(Path::new("/dev/urandom"), e))?;
    Ok(u32::from_le_bytes(b))
}

fn mkdir(path: &Path) -> Result<(), SandboxError> {
    std::fs::create_dir(path).map_err(|e| io_err(path, e))
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), SandboxError> {
    std::fs::write(path, bytes).map_err(|e| io_err(path, e))
}

pub(crate) fn io_err(path: &Path, source: std::io::Error) -> SandboxError {
    SandboxError::Io {
        path: path.display().to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none() -> crate::cgroup::Controllers {
        crate::cgroup::Controllers::detect(Path::new("/nonexistent"), "")
    }

    #[test]
    fn allocation_gives_distinct_uids_and_dirs() {
        let root = tempfile::tempdir().unwrap();
        let a = Scratch::allocate(root.path(), None).unwrap();
        let b = Scratch::allocate(root.path(), None).unwrap();
        assert_ne!(a.uid, b.uid);
        assert!(a.uid >= UID_BASE);
        let tmp_owner =
            std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(a.layer("tmp")).unwrap());
        assert_eq!(tmp_owner, a.uid);
        a.remove().unwrap();
        assert!(!a.dir.exists());
    }

    #[test]
    fn sweep_removes_dead_owners_only() {
        let root = tempfile::tempdir().unwrap();
        let live = Scratch::allocate(root.path(), None).unwrap();
        let dead = Scratch::allocate(root.path(), None).unwrap();
        // A pid that cannot exist (above pid_max) stands for a crashed owner.
        std::fs::write(dead.path("owner"), "4194305 1\n").unwrap();
        assert_eq!(sweep(root.path(), &none()), 1);
        assert!(live.dir.exists());
        assert!(!dead.dir.exists());
    }

    /// Regression: a sweep (another test's, or another process's factory start) that read
    /// the owner file while it was being written, empty, took a starting sandbox for a
    /// crashed run's and removed its scratch dir under it; bwrap then failed with "Can't find
    /// source path .../merged/repo". An owner that cannot be read is now judged by age.
    #[test]
    fn a_starting_sandbox_whose_owner_cannot_be_read_is_not_swept() {
        let root = tempfile::tempdir().unwrap();
        let starting = Scratch::allocate(root.path(), None).unwrap();
        assert!(
            !starting.path("owner.tmp").exists(),
            "the owner is renamed into place"
        );
        std::fs::write(starting.path("owner"), "").unwrap();
        assert_eq!(sweep(root.path(), &none()), 0);
        assert!(starting.dir.exists());
        // Long past any start, an unreadable owner is a crashed run's after all.
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(120);
        std::fs::File::open(&starting.dir)
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert_eq!(sweep(root.path(), &none()), 1);
        assert!(!starting.dir.exists());
    }

    #[test]
    fn start_time_of_self_is_known() {
        assert!(start_time(std::process::id()).is_some());
    }
}
