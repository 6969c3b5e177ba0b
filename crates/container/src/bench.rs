//! `swerl bench container`: the container backend's episode start and command round trip
//! next to the local bubblewrap backend's, measured in the same run.
//!
//! - episode start: create + start the container + shell ready + the first command (`true`)
//!   returned, vs the same through `swerl_sandbox::LocalFactory` (overlay + bwrap + shell);
//! - round trip: one `true` in the persistent shell of a live sandbox, for both backends.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use swerl_sandbox::bench::Percentiles;
use swerl_sandbox::{LocalFactory, Sandbox, SandboxError, SandboxFactory, SandboxSpec};

use crate::{ContainerConfig, ContainerFactory};

/// How much to measure.
#[derive(Debug, Clone)]
pub struct ContainerBenchConfig {
    /// Episode starts timed per backend.
    pub starts: usize,
    /// Command round trips timed per backend.
    pub round_trips: usize,
}

impl Default for ContainerBenchConfig {
    fn default() -> Self {
        ContainerBenchConfig {
            starts: 10,
            round_trips: 200,
        }
    }
}

/// Figures of one backend.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BackendFigures {
    pub episode_start: Percentiles,
    pub round_trip: Percentiles,
}

/// All figures of one run. The local side is `Err(reason)` when that backend cannot run
/// here (e.g. not root), so the container figures are still reported.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ContainerBench {
    pub image: String,
    pub socket: String,
    pub container: BackendFigures,
    pub local: Result<BackendFigures, String>,
}

/// Runs the benchmark against `config`'s daemon and image.
pub fn run(
    config: &ContainerConfig,
    bench: &ContainerBenchConfig,
) -> Result<ContainerBench, SandboxError> {
    let factory = ContainerFactory::new(config.clone())?;
    let spec = spec(PathBuf::from("/nonexistent-env-source"));
    let container = measure(&factory, &spec, bench)?;
    let local = measure_local(bench).map_err(|e| e.to_string());
    Ok(ContainerBench {
        image: config.image.clone(),
        socket: config.socket.clone(),
        container,
        local,
    })
}

fn measure_local(bench: &ContainerBenchConfig) -> Result<BackendFigures, SandboxError> {
    let factory = LocalFactory::new()?;
    let env = LocalEnv::create()?;
    let figures = measure(&factory, &spec(env.0.clone()), bench);
    drop(env);
    figures
}

fn spec(env_source: PathBuf) -> SandboxSpec {
    SandboxSpec {
        env_source,
        workdir: "/testbed".into(),
        limits: Default::default(),
        env: Vec::new(),
        image: None,
        ..Default::default()
    }
}

fn measure(
    factory: &dyn SandboxFactory,
    spec: &SandboxSpec,
    bench: &ContainerBenchConfig,
) -> Result<BackendFigures, SandboxError> {
    let mut starts = Vec::with_capacity(bench.starts);
    for _ in 0..bench.starts.max(1) {
        let began = Instant::now();
        let mut sandbox = factory.create(spec)?;
        first_true(sandbox.as_mut())?;
        starts.push(began.elapsed());
        sandbox.teardown()?;
    }
    let mut sandbox = factory.create(spec)?;
    let mut trips = Vec::with_capacity(bench.round_trips);
    for _ in 0..bench.round_trips.max(1) {
        let began = Instant::now();
        first_true(sandbox.as_mut())?;
        trips.push(began.elapsed());
    }
    sandbox.teardown()?;
    Ok(BackendFigures {
        episode_start: percentiles(starts),
        round_trip: percentiles(trips),
    })
}

fn first_true(sandbox: &mut dyn Sandbox) -> Result<(), SandboxError> {
    let out = sandbox.exec("true", Some(Duration::from_secs(60)))?;
    if out.exit_code != Some(0) {
        return Err(SandboxError::Start(format!(
            "`true` failed in the sandbox: {}",
            out.output
        )));
    }
    Ok(())
}

fn percentiles(mut samples: Vec<Duration>) -> Percentiles {
    samples.sort();
    let n = samples.len();
    let at = |q: usize| {
        samples
            .get((n * q / 100).min(n.saturating_sub(1)))
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
    };
    Percentiles {
        p50_ms: at(50),
        p90_ms: at(90),
        samples: n,
    }
}

/// A minimal prepared environment for the local backend (a one-file repo), removed on drop.
struct LocalEnv(PathBuf);

impl LocalEnv {
    fn create() -> Result<LocalEnv, SandboxError> {
        let dir =
            std::env::temp_dir().join(format!("swerl-container-bench-{}", std::process::id()));
        let repo = dir.join("repo");
        let io = |e| SandboxError::Io {
            path: repo.display().to_string(),
            source: e,
        };
        std::fs::create_dir_all(&repo).map_err(io)?;
        std::fs::write(repo.join("README"), "bench\n").map_err(io)?;
        Ok(LocalEnv(dir))
    }
}

impl Drop for LocalEnv {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The figures as a small text table.
pub fn render(b: &ContainerBench) -> String {
    let row = |name: &str, f: &BackendFigures| {
        format!(
            "{name:<10} {:>9.1} {:>9.1} {:>9.2} {:>9.2}\n",
            f.episode_start.p50_ms,
            f.episode_start.p90_ms,
            f.round_trip.p50_ms,
            f.round_trip.p90_ms
        )
    };
    let mut out = format!("container backend: image {} via {}\n", b.image, b.socket);
    out.push_str("backend    start p50 start p90  rtt p50   rtt p90   (ms)\n");
    out.push_str(&row("container", &b.container));
    match &b.local {
        Ok(f) => out.push_str(&row("local", f)),
        Err(e) => out.push_str(&format!("local      not measured: {e}\n")),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_series() {
        let p = percentiles((1..=10).map(Duration::from_millis).collect());
        assert_eq!((p.p50_ms, p.p90_ms, p.samples), (6.0, 10.0, 10));
    }
}
