//! `swerl bench sandbox`: the sandbox's performance figures next to the naive alternatives,
//! measured in the same run on the same generated environment (issue 2, "Performance").
//!
//! - workspace creation (overlay + sandbox + shell ready) vs a full `cp -a` of the environment;
//! - a command round trip (`true`) in the persistent shell vs a fresh `bwrap ... bash -c true`
//!   and a plain `bash -c true` per command;
//! - many concurrent sandboxes, each running a few commands, counting failures.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::launch::HostTools;
use crate::{host_command_checked, Limits, LocalFactory, Sandbox, SandboxError, SandboxSpec};

/// How much to measure.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Size of the generated environment, MB (repo plus a fake venv of many small files).
    pub env_mb: usize,
    /// Workspace creations timed (the `cp -a` baseline gets a quarter, at least 3).
    pub creations: usize,
    /// Command round trips timed per method.
    pub round_trips: usize,
    /// Sandboxes run at once in the concurrency test.
    pub concurrent: usize,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            env_mb: 50,
            creations: 30,
            round_trips: 300,
            concurrent: 64,
        }
    }
}

/// Median and 90th percentile of a series, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Percentiles {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub samples: usize,
}

impl Percentiles {
    fn of(mut samples: Vec<Duration>) -> Percentiles {
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
}

/// All figures of one run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SandboxBench {
    pub env_bytes: u64,
    pub env_files: usize,
    pub create_overlay: Percentiles,
    /// The same creation without the walls of issue 13 (cgroups, disk quota, seccomp,
    /// read-only kernel settings), measured in the same run.
    pub create_overlay_without_walls: Percentiles,
    pub create_full_copy: Percentiles,
    pub round_trip_persistent: Percentiles,
    pub round_trip_persistent_without_walls: Percentiles,
    pub round_trip_fresh_bwrap: Percentiles,
    pub round_trip_fresh_bash: Percentiles,
    pub concurrent: usize,
    pub concurrent_commands: usize,
    pub concurrent_failures: usize,
    pub concurrent_wall_s: f64,
    /// The first few failure messages, if any.
    pub failure_examples: Vec<String>,
}

/// Runs every measurement. Needs root, like the sandbox itself.
pub fn run(config: &BenchConfig) -> Result<SandboxBench, SandboxError> {
    let dir = tempfile::tempdir().map_err(|e| crate::scratch::io_err(Path::new("temp dir"), e))?;
    let env_source = dir.path().join("env");
    let (env_bytes, env_files) = generate_env(&env_source, config.env_mb)?;
    let factory = LocalFactory::new()?;
    let spec = SandboxSpec {
        env_source: env_source.clone(),
        workdir: "/testbed".into(),
        limits: Limits::default(),
        env: vec![],
        image: None,
        ..Default::default()
    };
    let bare = factory.clone().without_walls_for_benchmarks();
    // Alternating halves, so that a load change on the machine hits both alike.
    let half = (config.creations / 2).max(1);
    let mut with = time_creations(&factory, &spec, half)?;
    let mut without = time_creations(&bare, &spec, half)?;
    with.extend(time_creations(&factory, &spec, half)?);
    without.extend(time_creations(&bare, &spec, half)?);
    let create_overlay = Percentiles::of(with);
    let create_overlay_without_walls = Percentiles::of(without);
    let create_full_copy = time_full_copies(
        &env_source,
        &dir.path().join("copy"),
        (config.creations / 4).max(3),
    )?;
    let [round_trip_persistent, round_trip_persistent_without_walls] =
        time_persistent([&factory, &bare], &spec, config.round_trips)?;
    let tools = HostTools::discover()?;
    let round_trip_fresh_bwrap = time_spawns(
        || crate::launch::fresh_bwrap_command(&tools, "true"),
        config.round_trips / 2,
    )?;
    let round_trip_fresh_bash = time_spawns(|| bash_c("true"), config.round_trips / 2)?;
    let concurrency = run_concurrent(&factory, &spec, config.concurrent);
    Ok(SandboxBench {
        env_bytes,
        env_files,
        create_overlay,
        create_overlay_without_walls,
        create_full_copy,
        round_trip_persistent,
        round_trip_persistent_without_walls,
        round_trip_fresh_bwrap,
        round_trip_fresh_bash,
        concurrent: config.concurrent,
        concurrent_commands: concurrency.commands,
        concurrent_failures: concurrency.failures.len(),
        concurrent_wall_s: concurrency.wall.as_secs_f64(),
        failure_examples: concurrency.failures.into_iter().take(5).collect(),
    })
}

/// Writes `repo/` (a single-commit git repository, ~20% of the bytes) and `venv/` (many
/// small files, like site-packages) totalling about `mb` megabytes.
fn generate_env(root: &Path, mb: usize) -> Result<(u64, usize), SandboxError> {
    let total = mb as u64 * 1_000_000;
    let mut gen = Generator {
        written: 0,
        files: 0,
        seed: 0x2545_f491_4f6c_dd1d,
    };
    for i in 0..(total / 5 / 16_000) {
        gen.emit(
            &root.join(format!("repo/pkg{}/module_{i}.py", i % 20)),
            16_000,
        )?;
    }
    let mut i = 0;
    while gen.written < total {
        gen.emit(
            &root.join(format!(
                "venv/lib/python3.11/site-packages/dist{}/sub{}/file_{i}.py",
                i % 97,
                i % 7
            )),
            8_000,
        )?;
        i += 1;
    }
    let (written, files) = (gen.written, gen.files);
    let repo = root.join("repo");
    for args in [
        &["init", "-q"][..],
        &["add", "-A"],
        &[
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@localhost",
            "commit",
            "-q",
            "-m",
            "base",
        ],
    ] {
        host_command_checked("git", args, &repo)?;
    }
    Ok((written, files))
}

struct Generator {
    written: u64,
    files: usize,
    seed: u64,
}

impl Generator {
    fn emit(&mut self, path: &Path, size: usize) -> Result<(), SandboxError> {
        let parent = path.parent().unwrap_or(path);
        std::fs::create_dir_all(parent).map_err(|e| crate::scratch::io_err(parent, e))?;
        std::fs::write(path, pseudo_text(&mut self.seed, size))
            .map_err(|e| crate::scratch::io_err(path, e))?;
        self.written += size as u64;
        self.files += 1;
        Ok(())
    }
}

/// Deterministic printable filler (xorshift), so file contents are not all identical.
fn pseudo_text(seed: &mut u64, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size);
    while out.len() < size {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        out.extend(seed.to_le_bytes().iter().map(|b| b'a' + b % 26));
        if out.len() % 72 < 8 {
            out.push(b'\n');
        }
    }
    out.truncate(size);
    out
}

fn time_creations(
    factory: &LocalFactory,
    spec: &SandboxSpec,
    n: usize,
) -> Result<Vec<Duration>, SandboxError> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let mut sb = factory.create_local(spec)?;
        samples.push(started.elapsed());
        sb.teardown()?;
    }
    Ok(samples)
}

fn time_full_copies(src: &Path, dest: &Path, n: usize) -> Result<Percentiles, SandboxError> {
    let mut samples = Vec::with_capacity(n);
    let (src_s, dest_s) = (src.to_string_lossy(), dest.to_string_lossy());
    for _ in 0..n {
        let started = Instant::now();
        host_command_checked("cp", &["-a", &src_s, &dest_s], Path::new("/"))?;
        samples.push(started.elapsed());
        std::fs::remove_dir_all(dest).map_err(|e| crate::scratch::io_err(dest, e))?;
    }
    Ok(Percentiles::of(samples))
}

/// Round trips of `true` in one sandbox of each factory, alternating command by command so
/// that the machine's load weighs on both alike.
fn time_persistent(
    factories: [&LocalFactory; 2],
    spec: &SandboxSpec,
    n: usize,
) -> Result<[Percentiles; 2], SandboxError> {
    let mut sandboxes = [
        factories[0].create_local(spec)?,
        factories[1].create_local(spec)?,
    ];
    let mut samples = [Vec::with_capacity(n), Vec::with_capacity(n)];
    for _ in 0..n {
        for (sb, samples) in sandboxes.iter_mut().zip(samples.iter_mut()) {
            let started = Instant::now();
            let out = sb.exec("true", None)?;
            samples.push(started.elapsed());
            if out.exit_code != Some(0) {
                return Err(SandboxError::ShellLost(format!(
                    "`true` failed in the benchmark: {}",
                    out.output
                )));
            }
        }
    }
    for sb in &mut sandboxes {
        sb.teardown()?;
    }
    let [a, b] = samples;
    Ok([Percentiles::of(a), Percentiles::of(b)])
}

fn time_spawns(make: impl Fn() -> Command, n: usize) -> Result<Percentiles, SandboxError> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let mut cmd = make();
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let started = Instant::now();
        let status = cmd.status().map_err(|e| SandboxError::Host {
            command: format!("{cmd:?}"),
            reason: e.to_string(),
        })?;
        samples.push(started.elapsed());
        if !status.success() {
            return Err(SandboxError::Host {
                command: format!("{cmd:?}"),
                reason: format!("exited with {status}"),
            });
        }
    }
    Ok(Percentiles::of(samples))
}

fn bash_c(script: &str) -> Command {
    let mut cmd = Command::new("bash");
    cmd.args(["-c", script]);
    cmd
}

struct Concurrency {
    commands: usize,
    failures: Vec<String>,
    wall: Duration,
}

/// `n` sandboxes at once, each creating, running three commands, checking, tearing down.
fn run_concurrent(factory: &LocalFactory, spec: &SandboxSpec, n: usize) -> Concurrency {
    let started = Instant::now();
    let results: Vec<Result<usize, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|i| s.spawn(move || one_episode(factory, spec, i)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("thread panicked".into())))
            .collect()
    });
    let commands = results.iter().filter_map(|r| r.as_ref().ok()).sum();
    let failures = results.into_iter().filter_map(Result::err).collect();
    Concurrency {
        commands,
        failures,
        wall: started.elapsed(),
    }
}

fn one_episode(factory: &LocalFactory, spec: &SandboxSpec, i: usize) -> Result<usize, String> {
    let mut sb = factory
        .create_local(spec)
        .map_err(|e| format!("sandbox {i}: create: {e}"))?;
    let checks = [
        (
            format!("echo {i} > mine.txt && cat mine.txt"),
            format!("{i}\n"),
        ),
        (
            "cd pkg0 && ls | wc -l".to_string(),
            format!("{}\n", count_in_pkg0(spec)),
        ),
        (
            "pwd && git status --short".to_string(),
            "/testbed/pkg0\n?? ../mine.txt\n".to_string(),
        ),
    ];
    for (cmd, expected) in &checks {
        let out = sb
            .exec(cmd, Some(Duration::from_secs(120)))
            .map_err(|e| format!("sandbox {i}: `{cmd}`: {e}"))?;
        if &out.output != expected {
            return Err(format!(
                "sandbox {i}: `{cmd}` printed {:?}, expected {expected:?}",
                out.output
            ));
        }
    }
    sb.teardown()
        .map_err(|e| format!("sandbox {i}: teardown: {e}"))?;
    Ok(checks.len())
}

fn count_in_pkg0(spec: &SandboxSpec) -> usize {
    std::fs::read_dir(spec.env_source.join("repo/pkg0"))
        .map(|d| d.count())
        .unwrap_or(0)
}

impl SandboxBench {
    /// A BENCHMARKS.md section with each figure next to its naive alternative.
    pub fn to_markdown(&self) -> String {
        let ratio = |a: &Percentiles, b: &Percentiles| b.p50_ms / a.p50_ms;
        let row = |name: &str, p: &Percentiles| {
            format!(
                "| {name} | {:.2} | {:.2} | {} |\n",
                p.p50_ms, p.p90_ms, p.samples
            )
        };
        let mut md = String::from("## Sandbox\n\n");
        md.push_str(&format!(
            "Environment: {:.1} MB in {} files (a single-commit repo plus a fake venv).\n\n",
            self.env_bytes as f64 / 1e6,
            self.env_files
        ));
        md.push_str("| measure | p50 ms | p90 ms | samples |\n|---|---:|---:|---:|\n");
        md.push_str(&row(
            "workspace creation: overlay + sandbox + shell ready",
            &self.create_overlay,
        ));
        md.push_str(&row(
            "workspace creation, before issue 13's walls (no cgroups, quota, seccomp)",
            &self.create_overlay_without_walls,
        ));
        md.push_str(&row(
            "workspace creation, naive: `cp -a` of the environment",
            &self.create_full_copy,
        ));
        md.push_str(&row(
            "round trip `true`: persistent sandboxed shell",
            &self.round_trip_persistent,
        ));
        md.push_str(&row(
            "round trip `true`, before issue 13's walls",
            &self.round_trip_persistent_without_walls,
        ));
        md.push_str(&row(
            "round trip, naive: fresh `bwrap ... bash -c true`",
            &self.round_trip_fresh_bwrap,
        ));
        md.push_str(&row(
            "round trip, naive: plain `bash -c true` (no sandbox)",
            &self.round_trip_fresh_bash,
        ));
        md.push_str(&format!(
            "\nOverlay creation is {:.0}x faster than a full copy at the median; the persistent shell's round trip is {:.1}x faster than a fresh bwrap and {:.1}x faster than a fresh bash.\n",
            ratio(&self.create_overlay, &self.create_full_copy),
            ratio(&self.round_trip_persistent, &self.round_trip_fresh_bwrap),
            ratio(&self.round_trip_persistent, &self.round_trip_fresh_bash),
        ));
        md.push_str(&format!(
            "\nConcurrency: {} sandboxes at once, {} commands checked, {} failures, {:.2} s wall.\n",
            self.concurrent, self.concurrent_commands, self.concurrent_failures, self.concurrent_wall_s
        ));
        for f in &self.failure_examples {
            md.push_str(&format!("- failure: {f}\n"));
        }
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_ranks() {
        let p = Percentiles::of((1..=10).map(Duration::from_millis).collect());
        assert_eq!((p.p50_ms, p.p90_ms, p.samples), (6.0, 10.0, 10));
    }

    #[test]
    fn tiny_run_succeeds_and_renders() {
        let config = BenchConfig {
            env_mb: 1,
            creations: 2,
            round_trips: 6,
            concurrent: 3,
        };
        let b = run(&config).expect("bench");
        assert_eq!(b.concurrent_failures, 0, "{:?}", b.failure_examples);
        assert_eq!(b.concurrent_commands, 9);
        assert!(b.env_bytes >= 1_000_000);
        let md = b.to_markdown();
        assert!(
            md.contains("| round trip `true`: persistent sandboxed shell |"),
            "{md}"
        );
    }
}
