//! `swerl launch --nproc N -- ...`: the ranks of one node without Python, the way
//! `torchrun --standalone --nproc-per-node N` starts them.
//!
//! The launcher hosts the rendezvous store itself on a port the kernel picks (so two
//! launches on one machine never race for a port), starts N copies of a program with the
//! launch variables (`RANK`, `LOCAL_RANK`, `WORLD_SIZE`, `LOCAL_WORLD_SIZE`, `MASTER_ADDR`,
//! `MASTER_PORT`, and `TORCHELASTIC_USE_AGENT_STORE=True` so that every rank connects to the
//! launcher's store as a client), and supervises them: when one rank fails, the others are
//! stopped (SIGTERM, then SIGKILL after a grace period) and the launch fails naming the rank.
//!
//! This is one of the two places that spawn processes (ARCHITECTURE.md, invariant 4): the
//! programs are trusted (normally the swerl binary itself), so none of the sandbox's
//! isolation applies, and the launcher must own the c10d store, which only this crate can
//! make. Putting it in swerl-sandbox was rejected: that crate would have to link libtorch.

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::env::AGENT_STORE_VAR;
use crate::error::DistError;
use crate::ffi::RawStore;

/// A rendezvous store hosted by this process on a free port.
#[derive(Debug)]
pub struct StoreServer {
    raw: RawStore,
}

impl StoreServer {
    /// Binds a TCPStore server on any free port of this host.
    pub fn start() -> Result<Self, DistError> {
        let raw =
            RawStore::new("127.0.0.1", 0, true, 0, 60_000).map_err(|message| DistError::Store {
                addr: "127.0.0.1".to_string(),
                port: 0,
                message,
            })?;
        Ok(StoreServer { raw })
    }

    /// The port the kernel gave the store.
    pub fn port(&self) -> u16 {
        self.raw.port()
    }

    /// The launch variables of rank `rank` of `nproc` on this host, pointing at this store.
    pub fn rank_env(&self, rank: usize, nproc: usize) -> Vec<(String, String)> {
        vec![
            ("RANK".into(), rank.to_string()),
            ("LOCAL_RANK".into(), rank.to_string()),
            ("WORLD_SIZE".into(), nproc.to_string()),
            ("LOCAL_WORLD_SIZE".into(), nproc.to_string()),
            ("GROUP_RANK".into(), "0".into()),
            ("MASTER_ADDR".into(), "127.0.0.1".into()),
            ("MASTER_PORT".into(), self.port().to_string()),
            (AGENT_STORE_VAR.into(), "True".into()),
        ]
    }
}

/// What to start: `nproc` copies of `program args...`.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    pub nproc: usize,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// Added to every rank's environment (after the launch variables).
    pub env: Vec<(String, String)>,
    /// How long the other ranks get to exit after SIGTERM once one has failed.
    pub grace: Duration,
    /// Stop every rank and fail when the job runs longer than this (`None`: no limit).
    pub deadline: Option<Duration>,
}

/// How one rank ended.
#[derive(Debug, Clone)]
pub struct RankExit {
    pub rank: usize,
    pub status: ExitStatus,
    /// Stopped by the launcher after another rank failed.
    pub stopped: bool,
}

/// Starts the ranks and waits for all of them. `Ok` when every rank exited successfully;
/// otherwise an error naming the first rank that failed and how.
pub fn launch(spec: &LaunchSpec) -> Result<Vec<RankExit>, DistError> {
    if spec.nproc == 0 {
        return Err(DistError::Launch("--nproc must be at least 1".into()));
    }
    let store = StoreServer::start()?;
    let children = spawn_ranks(spec, &store)?;
    tracing::info!(
        "launched {} ranks of {} (store on 127.0.0.1:{})",
        spec.nproc,
        spec.program.display(),
        store.port()
    );
    let (exits, overran) = supervise(children, spec.grace, spec.deadline)?;
    if overran {
        return Err(DistError::Launch(format!(
            "the ranks ran past the deadline of {:?} and were stopped",
            spec.deadline.unwrap_or_default()
        )));
    }
    match exits.iter().find(|e| !e.status.success() && !e.stopped) {
        None => Ok(exits),
        Some(failed) => {
            let stopped = exits.iter().filter(|e| e.stopped).count();
            Err(DistError::Launch(format!(
                "rank {} of {} failed ({}); stopped the {stopped} rank(s) still running",
                failed.rank, spec.nproc, failed.status
            )))
        }
    }
}

// Spawning is this module's job (module doc); clippy's ban on Command::new guards the rest.
#[allow(clippy::disallowed_methods)]
fn spawn_ranks(spec: &LaunchSpec, store: &StoreServer) -> Result<Vec<Child>, DistError> {
    let mut children: Vec<Child> = Vec::with_capacity(spec.nproc);
    for rank in 0..spec.nproc {
        let spawned = Command::new(&spec.program)
            .args(&spec.args)
            .envs(store.rank_env(rank, spec.nproc))
            .envs(spec.env.iter().cloned())
            .spawn();
        match spawned {
            Ok(child) => children.push(child),
            Err(e) => {
                stop(&mut children.iter_mut().collect::<Vec<_>>(), Duration::ZERO);
                return Err(DistError::Launch(format!(
                    "starting rank {rank} ({}): {e}",
                    spec.program.display()
                )));
            }
        }
    }
    Ok(children)
}

/// Waits for every child; after the first failure (or past `deadline`), stops the rest.
/// Returns how each rank ended and whether the deadline passed.
fn supervise(
    mut children: Vec<Child>,
    grace: Duration,
    deadline: Option<Duration>,
) -> Result<(Vec<RankExit>, bool), DistError> {
    let started = Instant::now();
    let mut exits: Vec<Option<RankExit>> = vec![None; children.len()];
    loop {
        let mut failed = false;
        for (rank, child) in children.iter_mut().enumerate() {
            if exits[rank].is_some() {
                continue;
            }
            if let Some(status) = child.try_wait().map_err(|e| wait_err(rank, e))? {
                failed |= !status.success();
                exits[rank] = Some(RankExit {
                    rank,
                    status,
                    stopped: false,
                });
            }
        }
        let overran = deadline.is_some_and(|d| started.elapsed() > d);
        if failed || overran {
            let running: Vec<(usize, &mut Child)> = children
                .iter_mut()
                .enumerate()
                .filter(|(rank, _)| exits[*rank].is_none())
                .collect();
            let (ranks, mut rest): (Vec<usize>, Vec<&mut Child>) = running.into_iter().unzip();
            for (rank, status) in ranks.into_iter().zip(stop(&mut rest, grace)) {
                exits[rank] = Some(RankExit {
                    rank,
                    status,
                    stopped: true,
                });
            }
            return Ok((exits.into_iter().flatten().collect(), overran));
        }
        if exits.iter().all(Option::is_some) {
            return Ok((exits.into_iter().flatten().collect(), false));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGTERM to every child, SIGKILL to those still running after `grace`; reaps them all.
fn stop(children: &mut [&mut Child], grace: Duration) -> Vec<ExitStatus> {
    for child in children.iter() {
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline
        && children
            .iter_mut()
            .any(|c| matches!(c.try_wait(), Ok(None)))
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    children
        .iter_mut()
        .map(|c| {
            if matches!(c.try_wait(), Ok(None)) {
                let _ = c.kill();
            }
            // A child that cannot be reaped is reported as killed.
            c.wait()
                .unwrap_or_else(|_| ExitStatus::from_raw(Signal::SIGKILL as i32))
        })
        .collect()
}

fn wait_err(rank: usize, e: std::io::Error) -> DistError {
    DistError::Launch(format!("waiting for rank {rank}: {e}"))
}
