//! The launch environment of a PyTorch job, and the rendezvous it leads to.
//!
//! torchrun, Slurm's `srun` (with the variables exported from SLURM_PROCID etc.), a
//! Kubernetes PyTorchJob and `swerl launch` all describe a rank the same way: `RANK`,
//! `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`, `MASTER_PORT`. The rendezvous follows
//! torch.distributed's `env://`: rank 0 hosts the TCPStore at MASTER_ADDR:MASTER_PORT and the
//! others connect, except when `TORCHELASTIC_USE_AGENT_STORE=True` (torchrun, `swerl launch`),
//! where the launcher already hosts it and every rank connects as a client.
//!
//! This crate reads no environment itself (ARCHITECTURE.md, invariant 7): the caller passes a
//! lookup function, which the CLI backs with `std::env::var`.

use std::time::Duration;

use tch::Device;

use crate::error::DistError;
use crate::ffi::{RawGroup, RawStore};
use crate::group::{Backend, ProcessGroup};

/// The variables [`LaunchEnv::from_lookup`] reads.
pub const LAUNCH_VARS: &[&str] = &[
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
    AGENT_STORE_VAR,
];

/// Set to `True` by launchers that host the store themselves (torch.distributed's name).
pub const AGENT_STORE_VAR: &str = "TORCHELASTIC_USE_AGENT_STORE";

/// The key prefix of swerl's process group in the store, apart from a launcher's own keys.
const STORE_PREFIX: &str = "swerl/default_pg/";

/// This process's place in a multi-process run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchEnv {
    pub rank: usize,
    pub world_size: usize,
    /// Rank within this node; picks the GPU for `--device cuda`.
    pub local_rank: Option<usize>,
    pub local_world_size: Option<usize>,
    pub master_addr: String,
    pub master_port: u16,
    /// The launcher hosts the store; every rank is a client.
    pub agent_store: bool,
}

impl LaunchEnv {
    /// Reads the launch variables through `get`. `Ok(None)`: no `WORLD_SIZE`, a plain
    /// single-process run. A `WORLD_SIZE` above 1 requires `RANK`, `MASTER_ADDR` and
    /// `MASTER_PORT`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, DistError> {
        let Some(world_text) = get("WORLD_SIZE") else {
            if let Some(rank) = get("RANK") {
                return Err(env_err(
                    "RANK",
                    &rank,
                    "set without WORLD_SIZE: export both (or neither, for one process)",
                ));
            }
            return Ok(None);
        };
        let world_size = parse::<usize>("WORLD_SIZE", &world_text)?;
        if world_size == 0 {
            return Err(env_err("WORLD_SIZE", &world_text, "must be at least 1"));
        }
        let optional = |var: &str| get(var).map(|v| parse::<usize>(var, &v)).transpose();
        let rank = match (world_size, get("RANK")) {
            (_, Some(text)) => parse::<usize>("RANK", &text)?,
            (1, None) => 0,
            (_, None) => return Err(env_err("RANK", "", "required when WORLD_SIZE > 1")),
        };
        if rank >= world_size {
            return Err(env_err(
                "RANK",
                &rank.to_string(),
                &format!("must be below WORLD_SIZE={world_size}"),
            ));
        }
        let local_rank = optional("LOCAL_RANK")?;
        let local_world_size = optional("LOCAL_WORLD_SIZE")?;
        if let (Some(l), Some(n)) = (local_rank, local_world_size) {
            if l >= n {
                return Err(env_err(
                    "LOCAL_RANK",
                    &l.to_string(),
                    &format!("must be below LOCAL_WORLD_SIZE={n}"),
                ));
            }
        }
        let (master_addr, master_port) = master(&get, world_size)?;
        Ok(Some(LaunchEnv {
            rank,
            world_size,
            local_rank,
            local_world_size,
            master_addr,
            master_port,
            agent_store: get(AGENT_STORE_VAR).as_deref() == Some("True"),
        }))
    }

    /// The device of this rank: a plain `cuda` request becomes `cuda:LOCAL_RANK` (one GPU per
    /// rank on each node); `cpu` and an explicit `cuda:N` stay as they are.
    pub fn rank_device(&self, requested: &str) -> Result<String, DistError> {
        if requested.trim() != "cuda" {
            return Ok(requested.to_string());
        }
        match (self.local_rank, self.world_size) {
            (Some(l), _) => Ok(format!("cuda:{l}")),
            (None, 1) => Ok("cuda:0".to_string()),
            (None, _) => Err(env_err(
                "LOCAL_RANK",
                "",
                "required with --device cuda in a multi-rank run (it picks this rank's GPU); torchrun and swerl launch set it",
            )),
        }
    }
}

/// MASTER_ADDR and MASTER_PORT; a single rank needs neither (it never rendezvouses).
fn master(
    get: &impl Fn(&str) -> Option<String>,
    world_size: usize,
) -> Result<(String, u16), DistError> {
    let addr = get("MASTER_ADDR");
    let port = get("MASTER_PORT");
    if world_size == 1 && (addr.is_none() || port.is_none()) {
        return Ok(("127.0.0.1".to_string(), 0));
    }
    let addr = addr.ok_or_else(|| {
        env_err(
            "MASTER_ADDR",
            "",
            "required when WORLD_SIZE > 1: the host of rank 0 (or of the launcher's store)",
        )
    })?;
    let port_text =
        port.ok_or_else(|| env_err("MASTER_PORT", "", "required when WORLD_SIZE > 1"))?;
    let port = parse::<u16>("MASTER_PORT", &port_text)?;
    if port == 0 {
        return Err(env_err(
            "MASTER_PORT",
            &port_text,
            "must be a real port (1-65535)",
        ));
    }
    Ok((addr, port))
}

fn parse<T: std::str::FromStr>(var: &str, text: &str) -> Result<T, DistError> {
    text.trim()
        .parse::<T>()
        .map_err(|_| env_err(var, text, "expected a non-negative integer"))
}

fn env_err(var: &str, value: &str, problem: &str) -> DistError {
    DistError::Env {
        var: var.to_string(),
        value: value.to_string(),
        problem: problem.to_string(),
    }
}

/// Joins the process group described by `env`: rendezvous through the TCPStore, then the
/// backend for `device` (gloo on CPU, NCCL on CUDA), which connects every pair of ranks. Fails
/// when the other ranks do not all arrive within `timeout`; the same `timeout` bounds every
/// later collective.
pub fn init_process_group(
    env: &LaunchEnv,
    device: Device,
    timeout: Duration,
) -> Result<ProcessGroup, DistError> {
    if env.world_size == 1 {
        return Ok(ProcessGroup::single(device));
    }
    let timeout_ms = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
    let rendezvous_err = |message: String| DistError::Rendezvous {
        rank: env.rank,
        world_size: env.world_size,
        addr: env.master_addr.clone(),
        port: env.master_port,
        timeout_s: timeout.as_secs_f64(),
        message: crate::error::sentence(message),
    };
    let hosts_store = !env.agent_store && env.rank == 0;
    // Every rank counts itself in (numWorkers); the host waits for all of them.
    let mut store = RawStore::new(
        &env.master_addr,
        env.master_port,
        hosts_store,
        env.world_size,
        timeout_ms,
    )
    .map_err(rendezvous_err)?;
    let backend = Backend::for_device(device);
    let raw = match backend {
        Backend::Gloo => RawGroup::gloo(
            &mut store,
            STORE_PREFIX,
            env.rank,
            env.world_size,
            timeout_ms,
        ),
        Backend::Nccl => {
            let factory = crate::nccl::factory()?;
            RawGroup::from_plugin(
                &mut store,
                STORE_PREFIX,
                env.rank,
                env.world_size,
                timeout_ms,
                factory,
            )
        }
    }
    .map_err(rendezvous_err)?;
    tracing::info!(
        "rank {} of {} joined the {} process group through {}:{}",
        env.rank,
        env.world_size,
        backend.name(),
        env.master_addr,
        env.master_port
    );
    Ok(ProcessGroup::from_raw(
        raw,
        store,
        env.rank,
        env.world_size,
        device,
        backend,
        timeout,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> Result<Option<LaunchEnv>, DistError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        LaunchEnv::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn no_world_size_is_a_single_process_run() {
        assert_eq!(env_of(&[]).unwrap(), None);
    }

    #[test]
    fn torchrun_variables_parse() {
        let env = env_of(&[
            ("RANK", "3"),
            ("WORLD_SIZE", "16"),
            ("LOCAL_RANK", "1"),
            ("LOCAL_WORLD_SIZE", "8"),
            ("MASTER_ADDR", "node0"),
            ("MASTER_PORT", "29500"),
            ("TORCHELASTIC_USE_AGENT_STORE", "True"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!((env.rank, env.world_size, env.local_rank), (3, 16, Some(1)));
        assert_eq!(
            (env.master_addr.as_str(), env.master_port),
            ("node0", 29500)
        );
        assert!(env.agent_store);
        assert_eq!(env.rank_device("cuda").unwrap(), "cuda:1");
        assert_eq!(env.rank_device("cuda:5").unwrap(), "cuda:5");
        assert_eq!(env.rank_device("cpu").unwrap(), "cpu");
    }

    #[test]
    fn missing_or_bad_variables_name_the_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[
                    ("WORLD_SIZE", "2"),
                    ("MASTER_ADDR", "a"),
                    ("MASTER_PORT", "1"),
                ],
                "RANK",
            ),
            (
                &[
                    ("WORLD_SIZE", "2"),
                    ("RANK", "2"),
                    ("MASTER_ADDR", "a"),
                    ("MASTER_PORT", "1"),
                ],
                "RANK",
            ),
            (
                &[("WORLD_SIZE", "2"), ("RANK", "0"), ("MASTER_PORT", "1")],
                "MASTER_ADDR",
            ),
            (
                &[("WORLD_SIZE", "2"), ("RANK", "0"), ("MASTER_ADDR", "a")],
                "MASTER_PORT",
            ),
            (
                &[
                    ("WORLD_SIZE", "2"),
                    ("RANK", "0"),
                    ("MASTER_ADDR", "a"),
                    ("MASTER_PORT", "x"),
                ],
                "MASTER_PORT",
            ),
            (&[("WORLD_SIZE", "two")], "WORLD_SIZE"),
            (&[("WORLD_SIZE", "0")], "WORLD_SIZE"),
            (&[("RANK", "0")], "RANK"),
        ];
        for (pairs, var) in cases {
            let err = env_of(pairs).unwrap_err().to_string();
            assert!(err.contains(var), "{pairs:?}: {err}");
        }
    }

    #[test]
    fn world_of_one_needs_no_master() {
        let env = env_of(&[("WORLD_SIZE", "1")]).unwrap().unwrap();
        assert_eq!((env.rank, env.world_size), (0, 1));
        let group = init_process_group(&env, Device::Cpu, Duration::from_secs(1)).unwrap();
        assert_eq!(group.world_size(), 1);
    }

    #[test]
    fn cuda_in_a_multi_rank_run_needs_local_rank() {
        let env = env_of(&[
            ("WORLD_SIZE", "2"),
            ("RANK", "1"),
            ("MASTER_ADDR", "a"),
            ("MASTER_PORT", "9"),
        ])
        .unwrap()
        .unwrap();
        assert!(env
            .rank_device("cuda")
            .unwrap_err()
            .to_string()
            .contains("LOCAL_RANK"));
    }
}
