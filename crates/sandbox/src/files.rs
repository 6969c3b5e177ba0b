//! Host-side file access to a live sandbox (`Sandbox::read_file` / `write_file`, behind every
//! file tool of the `env` crate).
//!
//! The policy is an adversary and names every path, so each access:
//! - **acts as the sandbox's user.** It runs on a short-lived worker thread whose filesystem
//!   identity is the sandbox uid/gid (`setfsuid`/`setfsgid`, per thread in Linux) and whose
//!   effective capabilities are exactly the shell's (CAP_DAC_OVERRIDE and CAP_FOWNER, see
//!   `launch`): permission checks are the sandbox user's and new files are born its own.
//!   Rejected: a helper process per access that joins the sandbox's mount namespace and
//!   drops to the uid (milliseconds per spawn, and a second process protocol).
//! - **stays inside the sandbox's root.** The overlay exists only in the sandbox's private
//!   mount namespace, so the host reaches it through `/proc/<pid>/root` of its init, resolving
//!   with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`: an absolute symlink or `..`
//!   planted by the agent resolves inside the sandbox's root, never the host's.
//! - **touches regular files only.** `/proc`, `/sys` and `/dev` are refused by name and, after
//!   symlinks, by filesystem (procfs, sysfs, the sandbox's `/dev`, ...); anything but a
//!   regular file (FIFO, device, socket, directory) is refused from an `O_PATH` handle, which
//!   opens nothing, and again from the real descriptor, opened `O_NONBLOCK | O_NOCTTY`, which
//!   must be the same inode (a swap in between is refused). A FIFO therefore never blocks and
//!   `/dev/tty` never reaches the operator's terminal. Before this, `edit --file
//!   /proc/sys/kernel/...` changed the HOST's kernel settings (host root wrote through the
//!   sandbox's procfs) and `open /dev/zero` grew swerl by gigabytes.
//! - **is bounded.** At most `Limits::file_io_bytes` are read or written (and no more than
//!   `Limits::file_size_bytes` written, as for the sandbox's own processes), and a watchdog
//!   abandons an access that has not finished within `Limits::file_io_timeout`.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::mpsc::{sync_channel, RecvTimeoutError};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, Mode, SFlag};
use nix::sys::statfs::{self, fstatfs};
use nix::unistd::{setfsgid, setfsuid, Gid, Uid};

use crate::SandboxError;

/// Who and how much: one sandbox's file access rules.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Access {
    /// A process whose `/proc/<pid>/root` is the sandbox's root (its PID-namespace init).
    pub pid: u32,
    /// The sandbox's uid (and gid).
    pub uid: u32,
    /// Largest file read into memory; larger reads fail with a named error.
    pub max_read: u64,
    /// Largest file written.
    pub max_write: u64,
    /// How long one access may take before the watchdog abandons it.
    pub timeout: Duration,
}

/// Reads `path` (absolute inside the sandbox).
pub(crate) fn read(access: Access, path: &str) -> Result<Vec<u8>, SandboxError> {
    let path = path.to_string();
    on_worker("read", access.timeout, path.clone(), move || {
        let root = enter(access)?;
        let file = open_regular(&root, &path, OFlag::O_RDONLY)?;
        read_capped(file, &path, access.max_read)
    })
}

/// Writes `contents` to `path` (absolute inside the sandbox): creates it (owned by the sandbox
/// user) or replaces the contents of an existing regular file.
pub(crate) fn write(access: Access, path: &str, contents: &[u8]) -> Result<(), SandboxError> {
    if contents.len() as u64 > access.max_write {
        return Err(file_err(
            path,
            format!(
                "{} bytes is more than the {} bytes a file tool may write",
                contents.len(),
                access.max_write
            ),
        ));
    }
    let (path, contents) = (path.to_string(), contents.to_vec());
    on_worker("write", access.timeout, path.clone(), move || {
        let root = enter(access)?;
        let mut file = create_or_open(&root, &path)?;
        file.set_len(0)
            .and_then(|()| file.write_all(&contents))
            .map_err(|e| file_err(&path, format!("write failed: {e}")))
    })
}

/// Runs `work` on a fresh thread (its credentials die with it) and waits at most `timeout`.
/// A worker that does not answer in time is abandoned: swerl goes on, the episode sees an
/// error naming the file.
fn on_worker<T: Send + 'static>(
    what: &str,
    timeout: Duration,
    path: String,
    work: impl FnOnce() -> Result<T, SandboxError> + Send + 'static,
) -> Result<T, SandboxError> {
    let (tx, rx) = sync_channel(1);
    std::thread::Builder::new()
        .name("swerl-file".into())
        .spawn(move || {
            let _ = tx.send(work());
        })
        .map_err(|e| file_err(&path, format!("cannot start the file worker: {e}")))?;
    match rx.recv_timeout(timeout) {
        Ok(result) => result,
        Err(RecvTimeoutError::Timeout) => Err(file_err(
            &path,
            format!(
                "the {what} did not finish within {} s and was abandoned",
                timeout.as_secs_f64()
            ),
        )),
        Err(RecvTimeoutError::Disconnected) => {
            Err(file_err(&path, format!("the {what} worker died")))
        }
    }
}

/// On the worker thread: opens the sandbox's root (as the host, which may), then takes the
/// sandbox user's filesystem identity and the shell's capabilities for everything after.
fn enter(access: Access) -> Result<OwnedFd, SandboxError> {
    let root = open_root(access.pid)?;
    setfsgid(Gid::from_raw(access.uid));
    setfsuid(Uid::from_raw(access.uid));
    // setfsuid answers the previous value: asking again tells whether the switch took.
    if setfsuid(Uid::from_raw(access.uid)).as_raw() != access.uid {
        return Err(file_err(
            "/",
            "cannot take the sandbox user's identity".into(),
        ));
    }
    let shell_caps = [
        caps::Capability::CAP_DAC_OVERRIDE,
        caps::Capability::CAP_FOWNER,
    ];
    caps::set(
        None,
        caps::CapSet::Effective,
        &shell_caps.into_iter().collect(),
    )
    .map_err(|e| {
        file_err(
            "/",
            format!("cannot drop to the sandbox's capabilities: {e}"),
        )
    })?;
    Ok(root)
}

/// Opens the sandbox's root directory as seen by process `pid`.
fn open_root(pid: u32) -> Result<OwnedFd, SandboxError> {
    let root = format!("/proc/{pid}/root");
    nix::fcntl::open(
        root.as_str(),
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| file_err(&root, format!("cannot open the sandbox root: {e}")))
}

fn resolve(how: OpenHow) -> OpenHow {
    how.resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS)
}

/// Flags of every real open: never block (FIFO), never take a terminal.
fn safe(flags: OFlag) -> OFlag {
    flags | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC
}

/// Opens an existing regular file: checked on an `O_PATH` handle first (opening that runs no
/// driver or FIFO code), then on the real descriptor, which must be the same inode.
fn open_regular(root: &OwnedFd, path: &str, flags: OFlag) -> Result<File, SandboxError> {
    refuse_by_name(path)?;
    let dev = dev_of(root, "dev");
    let probe_how = resolve(OpenHow::new().flags(OFlag::O_PATH | OFlag::O_CLOEXEC));
    let probe = openat2(root, inner(path), probe_how).map_err(|e| open_err(path, e))?;
    let before = check_regular(&probe, path, dev)?;
    let fd = openat2(
        root,
        inner(path),
        resolve(OpenHow::new().flags(safe(flags))),
    )
    .map_err(|e| open_err(path, e))?;
    if check_regular(&fd, path, dev)? != before {
        return Err(file_err(
            path,
            "the file was replaced while it was being opened".into(),
        ));
    }
    Ok(File::from(fd))
}

/// Creates `path` (a new file belongs to the worker's fsuid: the sandbox user), or opens the
/// existing regular file for writing without truncating it yet.
fn create_or_open(root: &OwnedFd, path: &str) -> Result<File, SandboxError> {
    refuse_by_name(path)?;
    let create = OpenHow::new()
        .flags(safe(OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL))
        .mode(Mode::from_bits_truncate(0o644));
    match openat2(root, inner(path), resolve(create)) {
        Ok(fd) => {
            check_regular(&fd, path, dev_of(root, "dev"))?;
            Ok(File::from(fd))
        }
        Err(Errno::EEXIST) => open_regular(root, path, OFlag::O_WRONLY),
        Err(e) => Err(open_err(path, e)),
    }
}

/// Refuses the kernel's and the devices' trees by name, with a clear message; the
/// filesystem check in [`check_regular`] catches the same places reached through symlinks.
fn refuse_by_name(path: &str) -> Result<(), SandboxError> {
    let normal = normalise(path);
    for special in ["/proc", "/sys", "/dev"] {
        if normal == special || normal.starts_with(&format!("{special}/")) {
            return Err(file_err(
                path,
                format!("the file tools do not touch {special}; use shell commands to inspect it"),
            ));
        }
    }
    Ok(())
}

/// The file's (device, inode) when it is a regular file on an ordinary filesystem.
fn check_regular(fd: &impl AsFd, path: &str, dev: Option<u64>) -> Result<(u64, u64), SandboxError> {
    let st = fstat(fd).map_err(|e| file_err(path, format!("stat failed: {e}")))?;
    let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
    let what = match kind {
        SFlag::S_IFREG => None,
        SFlag::S_IFDIR => Some("a directory"),
        SFlag::S_IFIFO => Some("a FIFO"),
        SFlag::S_IFCHR | SFlag::S_IFBLK => Some("a device"),
        SFlag::S_IFSOCK => Some("a socket"),
        _ => Some("not a regular file"),
    };
    if let Some(what) = what {
        return Err(file_err(
            path,
            format!("is {what}; the file tools read and write regular files only"),
        ));
    }
    let fs = fstatfs(fd).map_err(|e| file_err(path, format!("statfs failed: {e}")))?;
    if is_kernel_fs(fs.filesystem_type()) || Some(st.st_dev) == dev {
        return Err(file_err(
            path,
            "lies on /proc, /sys or /dev (the kernel's or the devices' files); the file tools do not touch them".into(),
        ));
    }
    Ok((st.st_dev, st.st_ino))
}

/// Filesystems whose files are kernel interfaces, never workspace files.
fn is_kernel_fs(fs: statfs::FsType) -> bool {
    [
        statfs::PROC_SUPER_MAGIC,
        statfs::SYSFS_MAGIC,
        statfs::DEVPTS_SUPER_MAGIC,
        statfs::CGROUP_SUPER_MAGIC,
        statfs::CGROUP2_SUPER_MAGIC,
        statfs::DEBUGFS_MAGIC,
        statfs::TRACEFS_MAGIC,
        statfs::SECURITYFS_MAGIC,
        statfs::BPF_FS_MAGIC,
        statfs::SELINUX_MAGIC,
    ]
    .contains(&fs)
}

/// The device number of the filesystem holding `name` in the sandbox (its `/dev`), if any.
fn dev_of(root: &OwnedFd, name: &str) -> Option<u64> {
    let how = resolve(OpenHow::new().flags(OFlag::O_PATH | OFlag::O_CLOEXEC));
    let fd = openat2(root, name, how).ok()?;
    fstat(&fd).ok().map(|st| st.st_dev)
}

/// Reads at most `max` bytes; a longer file is an error naming the cap.
fn read_capped(file: File, path: &str, max: u64) -> Result<Vec<u8>, SandboxError> {
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| file_err(path, format!("read failed: {e}")))?;
    if bytes.len() as u64 > max {
        return Err(file_err(
            path,
            format!("is larger than the {max} bytes a file tool may read; use shell commands (head, sed -n, grep) on it"),
        ));
    }
    Ok(bytes)
}

/// The path relative to the sandbox root.
fn inner(path: &str) -> &str {
    let rel = path.trim_start_matches('/');
    if rel.is_empty() {
        "."
    } else {
        rel
    }
}

/// `path` made absolute with `.`, `..` and repeated slashes removed lexically.
fn normalise(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

fn open_err(path: &str, e: Errno) -> SandboxError {
    let reason = match e {
        Errno::ENOENT => "no such file or directory (parent directories must exist)".to_string(),
        Errno::EISDIR => "is a directory".to_string(),
        Errno::EROFS => {
            "read-only file system (only the workspace and /tmp are writable)".to_string()
        }
        Errno::EXDEV | Errno::ELOOP => {
            "path leaves the sandbox or loops through symlinks".to_string()
        }
        Errno::ENXIO => {
            "is a FIFO or device without a peer; the file tools read and write regular files only"
                .to_string()
        }
        other => other.desc().to_string(),
    };
    file_err(path, reason)
}

fn file_err(path: &str, reason: String) -> SandboxError {
    SandboxError::File {
        path: path.to_string(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_and_device_trees_are_refused_by_name() {
        for p in [
            "/proc/sys/kernel/x",
            "/sys",
            "/dev/zero",
            "/tmp/../proc/1/mem",
            "//dev//tty",
        ] {
            assert!(refuse_by_name(p).is_err(), "{p}");
        }
        for p in ["/testbed/proc/x", "/devices", "/tmp/sys"] {
            assert!(refuse_by_name(p).is_ok(), "{p}");
        }
    }

    #[test]
    fn a_worker_that_does_not_answer_is_abandoned() {
        let (tx, rx) = sync_channel::<()>(0);
        let err = on_worker("read", Duration::from_millis(50), "/f".into(), move || {
            let _ = rx.recv(); // blocks until the test ends
            Ok(())
        })
        .unwrap_err();
        drop(tx);
        assert!(
            err.to_string().contains("did not finish within 0.05 s"),
            "{err}"
        );
    }

    #[test]
    fn reads_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"12345").unwrap();
        let open = || File::open(&p).unwrap();
        assert_eq!(read_capped(open(), "f", 5).unwrap(), b"12345");
        let err = read_capped(open(), "f", 4).unwrap_err().to_string();
        assert!(err.contains("larger than the 4 bytes"), "{err}");
    }
}
