//! Multi-process tests of swerl-dist on CPU with gloo.
//!
//! Each test starts this test binary again as N ranks through the crate's own launcher
//! (`swerl_dist::launch`), running one `#[ignore]`d worker function, selected with
//! `--exact --ignored`; the workers check their collectives' results themselves and write what
//! the parent needs under a temporary directory. Rendezvous ports are picked by the kernel
//! (the launcher's store binds port 0), so concurrent test runs never race for one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use swerl_dist::{init_process_group, launch, LaunchEnv, LaunchSpec, ProcessGroup, ReduceOp};
use tch::{Device, Kind, Tensor};

/// Set in a worker's environment: the directory the worker writes into.
const OUT_VAR: &str = "SWERL_DIST_TEST_OUT";
/// Set in a worker's environment: the collective timeout in milliseconds (the rendezvous gets
/// a generous one, so a loaded machine never fails it).
const TIMEOUT_VAR: &str = "SWERL_DIST_TEST_TIMEOUT_MS";

/// Runs `worker` (a test name in this file) as `nproc` ranks; returns the launch result and
/// the directory the workers wrote into.
fn run_workers(
    worker: &str,
    nproc: usize,
    timeout_ms: u64,
) -> (
    Result<Vec<swerl_dist::RankExit>, swerl_dist::DistError>,
    tempfile::TempDir,
) {
    // A hang guard only: a worker stuck by a bug fails its test instead of the suite.
    run_workers_until(worker, nproc, timeout_ms, Duration::from_secs(300))
}

fn run_workers_until(
    worker: &str,
    nproc: usize,
    timeout_ms: u64,
    deadline: Duration,
) -> (
    Result<Vec<swerl_dist::RankExit>, swerl_dist::DistError>,
    tempfile::TempDir,
) {
    let out = tempfile::tempdir().unwrap();
    let spec = LaunchSpec {
        nproc,
        program: std::env::current_exe().unwrap(),
        args: [
            "--exact",
            worker,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ]
        .iter()
        .map(Into::into)
        .collect(),
        env: vec![
            (OUT_VAR.into(), out.path().display().to_string()),
            (TIMEOUT_VAR.into(), timeout_ms.to_string()),
        ],
        grace: Duration::from_secs(5),
        deadline: Some(deadline),
    };
    (launch(&spec), out)
}

/// In a worker: joins the group its launcher described.
fn join() -> (ProcessGroup, PathBuf) {
    let out = PathBuf::from(std::env::var(OUT_VAR).expect("a worker runs under run_workers"));
    let env = LaunchEnv::from_lookup(|k| std::env::var(k).ok())
        .unwrap()
        .expect("the launcher sets WORLD_SIZE");
    let timeout: u64 = std::env::var(TIMEOUT_VAR).unwrap().parse().unwrap();
    let mut group = init_process_group(&env, Device::Cpu, Duration::from_secs(120)).unwrap();
    group.set_timeout(Duration::from_millis(timeout)).unwrap();
    (group, out)
}

fn write(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!("{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, dir.join(name)).unwrap();
}

fn values(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(t.reshape([-1])).unwrap()
}

#[test]
#[ignore = "a worker: run by collectives_give_the_same_results_on_2_and_3_ranks"]
fn worker_collectives() {
    let (mut g, out) = join();
    let (rank, world) = (g.rank() as f32, g.world_size());
    let n = world as f32;

    // all_reduce: rank r contributes [r, 2r, 3r] (+1 each).
    let mut t = Tensor::from_slice(&[rank + 1.0, 2.0 * rank + 1.0, 3.0 * rank + 1.0]);
    g.all_reduce(&mut t, ReduceOp::Sum).unwrap();
    let s = n * (n - 1.0) / 2.0;
    assert_eq!(values(&t), vec![s + n, 2.0 * s + n, 3.0 * s + n]);
    let mut m = Tensor::from_slice(&[rank, -rank]);
    g.all_reduce(&mut m, ReduceOp::Max).unwrap();
    assert_eq!(values(&m), vec![n - 1.0, 0.0]);
    let mut m = Tensor::from_slice(&[rank, -rank]);
    g.all_reduce(&mut m, ReduceOp::Min).unwrap();
    assert_eq!(values(&m), vec![0.0, -(n - 1.0)]);

    // reduce_scatter: every rank holds arange(2 * world) * (rank + 1); rank r keeps slice r.
    let input =
        Tensor::arange(2 * world as i64, (Kind::Float, Device::Cpu)) * f64::from(rank + 1.0);
    let mut shard = Tensor::zeros([2], (Kind::Float, Device::Cpu));
    g.reduce_scatter(&mut shard, &input, ReduceOp::Sum).unwrap();
    let factor = n * (n + 1.0) / 2.0;
    let r = g.rank() as f32;
    assert_eq!(
        values(&shard),
        vec![2.0 * r * factor, (2.0 * r + 1.0) * factor]
    );

    // all_gather: rank r contributes [r, r + 0.5]; every rank sees them in rank order.
    let piece = Tensor::from_slice(&[rank, rank + 0.5]);
    let mut all = Tensor::zeros([2 * world as i64], (Kind::Float, Device::Cpu));
    g.all_gather(&mut all, &piece).unwrap();
    let want: Vec<f32> = (0..world)
        .flat_map(|r| [r as f32, r as f32 + 0.5])
        .collect();
    assert_eq!(values(&all), want);

    // broadcast from the last rank.
    let mut b = Tensor::from_slice(&[rank * 10.0]);
    g.broadcast(&mut b, world - 1).unwrap();
    assert_eq!(values(&b), vec![(n - 1.0) * 10.0]);

    // f64 helpers and a barrier.
    let sums = g
        .all_reduce_f64(&[1.0, rank as f64], ReduceOp::Sum)
        .unwrap();
    assert_eq!(sums, vec![n as f64, s as f64]);
    let gathered = g.all_gather_f64(&[rank as f64, 7.0]).unwrap();
    assert_eq!(gathered.len(), world);
    assert_eq!(gathered[world - 1], vec![(n - 1.0) as f64, 7.0]);
    g.barrier().unwrap();

    // Misuse is a clear error before c10d sees it.
    let wrong = Tensor::zeros([3], (Kind::Float, Device::Cpu));
    let err = g.all_gather(&mut all, &wrong).unwrap_err().to_string();
    assert!(err.contains("all_gather"), "{err}");
    write(&out, &format!("rank-{}", g.rank()), "ok");
}

#[test]
fn collectives_give_the_same_results_on_2_and_3_ranks() {
    for nproc in [2, 3] {
        let (result, out) = run_workers("worker_collectives", nproc, 60_000);
        let exits = result.unwrap_or_else(|e| panic!("{nproc} ranks: {e}"));
        assert_eq!(exits.len(), nproc);
        for rank in 0..nproc {
            let done = out.path().join(format!("rank-{rank}"));
            assert!(
                done.is_file(),
                "rank {rank} of {nproc} did not finish its checks"
            );
        }
    }
}

#[test]
#[ignore = "a worker: run by a_dead_rank_fails_the_others_with_a_clear_error"]
fn worker_dies() {
    let (mut g, out) = join();
    let mut t = Tensor::ones([4], (Kind::Float, Device::Cpu));
    g.all_reduce(&mut t, ReduceOp::Sum).unwrap();
    if g.rank() == 1 {
        // Dies mid-run: its sockets close with the process, as in a crash.
        std::process::exit(0);
    }
    let err = g.all_reduce(&mut t, ReduceOp::Sum).unwrap_err();
    write(&out, "error", &err.to_string());
}

#[test]
fn a_dead_rank_fails_the_others_with_a_clear_error() {
    let (result, out) = run_workers("worker_dies", 2, 60_000);
    result.unwrap();
    let err = std::fs::read_to_string(out.path().join("error")).unwrap();
    assert!(err.contains("all_reduce failed on rank 0 of 2"), "{err}");
    assert!(err.contains("Another rank has probably died"), "{err}");
}

#[test]
#[ignore = "a worker: run by a_silent_rank_fails_the_others_within_the_timeout"]
fn worker_silent() {
    let (mut g, out) = join();
    if g.rank() == 1 {
        // Alive but never joins the collective: waits until rank 0 has given up.
        let error = out.join("error");
        for _ in 0..2400 {
            if error.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("rank 0 never reported its timeout");
    }
    let mut t = Tensor::ones([4], (Kind::Float, Device::Cpu));
    let err = g.all_reduce(&mut t, ReduceOp::Sum).unwrap_err();
    write(&out, "error", &err.to_string());
}

#[test]
fn a_silent_rank_fails_the_others_within_the_timeout() {
    let (result, out) = run_workers("worker_silent", 2, 1_500);
    result.unwrap();
    let err = std::fs::read_to_string(out.path().join("error")).unwrap();
    assert!(err.contains("all_reduce failed on rank 0 of 2"), "{err}");
    assert!(
        err.to_lowercase().contains("timed out") || err.contains("timeout"),
        "{err}"
    );
}

#[test]
#[ignore = "a worker: run by the_launcher_stops_the_other_ranks_when_one_fails"]
fn worker_fails_fast() {
    let (g, _out) = join();
    if g.rank() == 1 {
        std::process::exit(3);
    }
    // Rank 0 would otherwise run for a long time; the launcher must stop it.
    std::thread::sleep(Duration::from_secs(600));
}

#[test]
fn the_launcher_stops_ranks_that_run_past_its_deadline() {
    let (result, _out) = run_workers_until("worker_fails_fast", 1, 60_000, Duration::from_secs(2));
    let err = result.unwrap_err().to_string();
    assert!(err.contains("past the deadline"), "{err}");
}

#[test]
fn the_launcher_stops_the_other_ranks_when_one_fails() {
    let (result, _out) = run_workers("worker_fails_fast", 2, 60_000);
    let err = result.unwrap_err().to_string();
    assert!(err.contains("rank 1 of 2 failed"), "{err}");
    assert!(err.contains("exit status: 3"), "{err}");
    assert!(err.contains("stopped the 1 rank(s)"), "{err}");
}

/// WORLD_SIZE=2 with only this rank present, the store hosted by rank 0 itself (plain
/// `env://`, port picked by the kernel so no other test can collide with it).
#[test]
fn without_its_peers_rank_0_fails_instead_of_training_alone() {
    let env = LaunchEnv {
        rank: 0,
        world_size: 2,
        local_rank: Some(0),
        local_world_size: Some(2),
        master_addr: "127.0.0.1".into(),
        master_port: 0,
        agent_store: false,
    };
    let err = init_process_group(&env, Device::Cpu, Duration::from_millis(1_500))
        .unwrap_err()
        .to_string();
    assert!(err.contains("rank 0 of 2 could not rendezvous"), "{err}");
    assert!(err.contains("does not train alone"), "{err}");
}

/// The same with a launcher's store (torchrun, swerl launch): the peers never come.
#[test]
fn without_its_peers_a_rank_of_a_launched_job_fails() {
    let server = swerl_dist::StoreServer::start().unwrap();
    let env = LaunchEnv {
        rank: 1,
        world_size: 2,
        local_rank: Some(1),
        local_world_size: Some(2),
        master_addr: "127.0.0.1".into(),
        master_port: server.port(),
        agent_store: true,
    };
    let err = init_process_group(&env, Device::Cpu, Duration::from_millis(1_500))
        .unwrap_err()
        .to_string();
    assert!(err.contains("rank 1 of 2 could not rendezvous"), "{err}");
}

#[test]
fn nccl_is_refused_clearly_where_it_cannot_run() {
    if tch::Cuda::is_available() {
        return; // A GPU machine runs the NCCL path for real (configs/recipes/multi-gpu.sh).
    }
    let server = swerl_dist::StoreServer::start().unwrap();
    let env = LaunchEnv {
        rank: 0,
        world_size: 2,
        local_rank: Some(0),
        local_world_size: Some(2),
        master_addr: "127.0.0.1".into(),
        master_port: server.port(),
        agent_store: true,
    };
    let err = init_process_group(&env, Device::Cuda(0), Duration::from_millis(1_000))
        .unwrap_err()
        .to_string();
    assert!(err.contains("NCCL"), "{err}");
}
