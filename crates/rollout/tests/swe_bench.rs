//! Not a test: runs the rollout benchmarks once and prints their reports (`cargo test -p
//! swerl-rollout --test swe_bench -- --ignored --nocapture`). `swerl bench rollout` is the
//! real entry point; this is for checking the benchmark functions on a machine without it.

mod swe_support;

use swe_support::{bundled_tasks, local_factory, rollout, run_config, TASKS};
use swerl_rollout::bench::{bench_overhead_in_memory, bench_scripted_swe};

#[test]
#[ignore = "benchmark; run explicitly"]
fn print_rollout_benchmarks() {
    let dir = tempfile::tempdir().unwrap();
    let memory = bench_overhead_in_memory(256, 10, &run_config(8), &dir.path().join("m.jsonl"));
    println!("in memory: {:?}", memory.unwrap());
    let factory = local_factory();
    let episodes: u32 = std::env::var("SWERL_BENCH_EPISODES").map_or(64, |v| v.parse().unwrap());
    let swe = rollout(bundled_tasks(&TASKS), factory, &dir.path().join("env"));
    let ids: Vec<String> = TASKS.iter().map(|s| s.to_string()).collect();
    let per_task = episodes.div_ceil(ids.len() as u32);
    let config = run_config(episodes as usize);
    let report = bench_scripted_swe(&swe, &ids, per_task, &config, &dir.path().join("s.jsonl"));
    println!("scripted swe: {:?}", report.unwrap());
}
