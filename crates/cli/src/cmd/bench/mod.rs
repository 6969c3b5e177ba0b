//! `swerl bench`: performance benchmarks. Each prints its figures and records them in
//! BENCHMARKS.md under its own section, with the exact command, the date and the machine, so
//! that every number in that file can be reproduced. Figures are always reported next to the
//! naive alternative measured in the same run (ratios), never against a remembered number.

mod prefix;
mod train;

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    which: Which,
    /// The file the results are recorded in (a section per benchmark is replaced).
    #[arg(long, global = true, default_value = "BENCHMARKS.md")]
    record: PathBuf,
    /// Print only; leave the record file alone.
    #[arg(long, global = true)]
    no_record: bool,
}

#[derive(Debug, clap::Subcommand)]
enum Which {
    /// Workspace creation and command round trip of the local sandbox vs the naive ways
    /// (full copy; a fresh `bash -c` / `bwrap` per command), and N sandboxes at once.
    Sandbox {
        /// Size of the generated environment in MB.
        #[arg(long, default_value_t = 50)]
        env_mb: usize,
        /// Sandboxes run at once.
        #[arg(long, default_value_t = 64)]
        concurrent: usize,
    },
    /// N concurrent HTTP policy clients against `swerl serve`'s server in-process: requests/s,
    /// latency percentiles, failures.
    Http {
        /// A model directory to serve; without it, a tiny random Qwen2 with the tokenizer in
        /// `--tokenizer`.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Tokenizer directory for the tiny random model.
        #[arg(long, default_value = "crates/model/tests/fixtures/tokenizer")]
        tokenizer: PathBuf,
        #[arg(long, default_value_t = 256)]
        clients: usize,
        #[arg(long, default_value_t = 4)]
        requests_per_client: usize,
        #[arg(long, default_value_t = 64)]
        max_batch: usize,
    },
    /// Forward+backward and decode tokens/s of our Qwen2 vs PyTorch eager (transformers,
    /// sdpa) on the same config and inputs, alternating rounds in one run; and the peak memory
    /// of chunked vs naive log-probs. Needs the reference venv (scripts/setup-reference).
    Model {
        /// CPU threads for both sides.
        #[arg(long, default_value_t = 1)]
        threads: i32,
        /// Alternating rounds (medians are reported); 0 measures only the memory.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Python of the reference venv (torch + transformers).
        #[arg(long, default_value = ".venv-ref/bin/python")]
        python: String,
        /// Tokens of the log-prob memory comparison (0 skips it).
        #[arg(long, default_value_t = 32_768)]
        memory_tokens: i64,
        /// Vocabulary of the log-prob memory comparison.
        #[arg(long, default_value_t = 16_384)]
        memory_vocab: i64,
    },
    /// Action tokens/s of one DAPO policy step (forward, chunked log-probs, clipped loss,
    /// backward, AdamW) on a fixed synthetic batch, ours vs the same step in PyTorch eager,
    /// alternating rounds in one run, with and without activation checkpointing on both sides;
    /// with --run, the share of a `swerl train` run's iteration time that is neither rollouts
    /// nor training. Needs scripts/setup-reference.
    Train {
        /// CPU threads for both sides.
        #[arg(long, default_value_t = 1)]
        threads: i32,
        /// Alternating rounds (each side's best round is compared); 0 skips the comparison.
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Timed steps per round (after one warm-up step).
        #[arg(long, default_value_t = 3)]
        iters: usize,
        /// Token lengths of the batch's sequences.
        #[arg(long, value_delimiter = ',', default_value = "256,224,192,160")]
        lens: Vec<usize>,
        /// Python of the reference venv (torch + transformers).
        #[arg(long, default_value = ".venv-ref/bin/python")]
        python: String,
        /// A `swerl train` run directory: report its iterations' overhead share.
        #[arg(long, value_name = "DIR")]
        run: Option<PathBuf>,
    },
    /// Episode start and command round trip of the container backend (podman's Docker API)
    /// vs the local bubblewrap backend, same run. Needs scripts/setup-containers.
    Container {
        #[arg(long, default_value_t = 10)]
        starts: usize,
        #[arg(long, default_value_t = 200)]
        round_trips: usize,
    },
    /// The same evaluation twice with the embedded engine, without and with its prefix
    /// cache: wall time of each and the episodes whose sampled tokens are identical.
    PrefixCache {
        /// The model evaluated (e.g. runs/demo/pretrain/model, made by `swerl demo`).
        #[arg(long, default_value = "runs/demo/pretrain/model")]
        model: PathBuf,
        /// Task file.
        #[arg(long, default_value = "tasks/bundled/tasks.jsonl")]
        tasks: PathBuf,
        /// Only these instance ids (repeatable); all tasks of the file when none.
        #[arg(long = "instance", value_name = "ID")]
        instances: Vec<String>,
        /// Runs per task.
        #[arg(long, default_value_t = 3)]
        runs: u32,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        #[arg(long, default_value_t = 12)]
        max_turns: usize,
        #[arg(long, default_value_t = 224)]
        max_new_tokens: usize,
        #[arg(long, default_value_t = 30)]
        window_lines: usize,
    },
    /// Orchestration overhead per turn (episode wall time minus time inside policy and
    /// environment calls) with an in-memory environment, and N concurrent scripted episodes
    /// in real sandboxes on bundled tasks, graded.
    Rollout {
        /// Concurrent scripted episodes in real sandboxes.
        #[arg(long, default_value_t = 256)]
        episodes: u32,
        /// Bundled task file.
        #[arg(long, default_value = "tasks/bundled/tasks.jsonl")]
        tasks: PathBuf,
    },
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (name, markdown) = match args.which {
        Which::Sandbox { env_mb, concurrent } => {
            let config = swerl_sandbox::bench::BenchConfig {
                env_mb,
                concurrent,
                ..Default::default()
            };
            ("sandbox", swerl_sandbox::bench::run(&config)?.to_markdown())
        }
        Which::Model {
            threads,
            rounds,
            python,
            memory_tokens,
            memory_vocab,
        } => (
            // Memory alone gets a section of its own so it does not replace the speed table.
            if rounds == 0 { "model-memory" } else { "model" },
            bench_model(threads, rounds, &python, memory_tokens, memory_vocab)?,
        ),
        Which::Container {
            starts,
            round_trips,
        } => {
            let bench = swerl_container::bench::ContainerBenchConfig {
                starts,
                round_trips,
            };
            let figures =
                swerl_container::bench::run(&swerl_container::ContainerConfig::default(), &bench)?;
            (
                "container",
                format!("```\n{}```\n", swerl_container::bench::render(&figures)),
            )
        }
        Which::Train {
            threads,
            rounds,
            iters,
            lens,
            python,
            run,
        } => {
            anyhow::ensure!(
                lens.iter().all(|&n| n >= 2),
                "--lens: every sequence needs at least 2 tokens"
            );
            let b = train::TrainBench {
                threads,
                rounds,
                iters: iters.max(1),
                lens,
                python,
            };
            // The overhead alone gets a section of its own so it does not replace the speed table.
            let name = if rounds == 0 {
                "train-overhead"
            } else {
                "train"
            };
            (name, train::bench_train(&b, run.as_deref())?)
        }
        Which::Rollout { episodes, tasks } => ("rollout", bench_rollout(episodes, &tasks)?),
        Which::PrefixCache {
            model,
            tasks,
            instances,
            runs,
            concurrency,
            max_turns,
            max_new_tokens,
            window_lines,
        } => {
            let b = prefix::PrefixBench {
                model,
                tasks,
                instances,
                runs: runs.max(1),
                concurrency: concurrency.max(1),
                max_turns,
                max_new_tokens,
                window_lines,
            };
            ("prefix-cache", prefix::bench_prefix_cache(&b)?)
        }
        Which::Http {
            model,
            tokenizer,
            clients,
            requests_per_client,
            max_batch,
        } => (
            "http",
            bench_http(model, &tokenizer, clients, requests_per_client, max_batch)?,
        ),
    };
    println!("{markdown}");
    if !args.no_record {
        record(&args.record, name, &markdown)?;
        eprintln!("recorded in {}", args.record.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Our side of one round: (forward+backward, decode batch 1, decode batch 8) tokens/s.
fn model_round_ours(threads: i32) -> [f64; 3] {
    use swerl_model::bench;
    tch::set_num_threads(threads);
    tch::manual_seed(0);
    let model =
        swerl_model::qwen2::Qwen2::new(bench::bench_config(), tch::Device::Cpu, tch::Kind::Float);
    [
        bench::forward_backward_tokens_per_s(&model, 1, 512, 3),
        bench::decode_tokens_per_s(&model, 1, 32, 64),
        bench::decode_tokens_per_s(&model, 8, 32, 64),
    ]
}

/// PyTorch's side of one round, from crates/model/reference/bench_torch.py.
fn model_round_torch(threads: i32, python: &str) -> anyhow::Result<[f64; 3]> {
    let script = "crates/model/reference/bench_torch.py";
    let out = swerl_sandbox::host_command_checked(
        python,
        &[script, &threads.to_string()],
        Path::new("."),
    )
    .with_context(|| {
        format!("running {script} with {python} (make it with scripts/setup-reference)")
    })?;
    let line = String::from_utf8_lossy(&out.stdout);
    let json: serde_json::Value = serde_json::from_str(line.lines().last().unwrap_or(""))
        .with_context(|| format!("{script} printed no JSON line: {line}"))?;
    let get = |k: &str| {
        json[k]
            .as_f64()
            .with_context(|| format!("{script}: no `{k}` in {json}"))
    };
    Ok([
        get("fwd_bwd_tokens_per_s")?,
        get("decode_b1_tokens_per_s")?,
        get("decode_b8_tokens_per_s")?,
    ])
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn bench_model(
    threads: i32,
    rounds: usize,
    python: &str,
    mem_tokens: i64,
    mem_vocab: i64,
) -> anyhow::Result<String> {
    let mut md = String::new();
    if rounds > 0 {
        md.push_str(&speed_table(threads, rounds, python)?);
    }
    if mem_tokens > 0 {
        let (chunked, naive) =
            swerl_model::bench::logprob_peak_memory(mem_tokens, 512, mem_vocab, 512);
        let mb =
            |b: Option<u64>| b.map_or("n/a".to_string(), |b| format!("{:.1} MB", b as f64 / 1e6));
        md.push_str(&format!(
            "\nPeak RSS rise of log-probs + backward over {mem_tokens} tokens, vocab {mem_vocab}, \
             hidden 512: chunked (512 positions per chunk) {}, naive full logits {}.\n",
            mb(chunked),
            mb(naive)
        ));
    }
    Ok(md)
}

/// Tokens/s of both implementations, `rounds` alternating rounds (0 skips the comparison).
fn speed_table(threads: i32, rounds: usize, python: &str) -> anyhow::Result<String> {
    let (mut ours, mut torch) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        eprintln!("round {}/{rounds}", round + 1);
        ours.push(model_round_ours(threads));
        torch.push(model_round_torch(threads, python)?);
    }
    let names = [
        "forward+backward (batch 1 x 512)",
        "decode, batch 1",
        "decode, batch 8",
    ];
    let targets = [">= 0.95", ">= 1.0", ">= 1.0"];
    let mut md = format!(
        "Config: swerl_model::bench::bench_config() (vocab 32000, hidden 512, 4 layers, 8 heads / 2 kv), \
         f32, CPU, {threads} thread(s); medians of {rounds} alternating rounds; PyTorch = transformers \
         Qwen2ForCausalLM with sdpa attention (crates/model/reference/bench_torch.py).\n\n\
         | tokens/s | swerl | PyTorch eager | ratio | target |\n|---|---:|---:|---:|---|\n"
    );
    for (i, name) in names.iter().enumerate() {
        let a = median(ours.iter().map(|r| r[i]).collect());
        let b = median(torch.iter().map(|r| r[i]).collect());
        md.push_str(&format!(
            "| {name} | {a:.1} | {b:.1} | {:.2} | {} |\n",
            a / b,
            targets[i]
        ));
    }
    Ok(md)
}

fn bench_rollout(episodes: u32, tasks: &Path) -> anyhow::Result<String> {
    use std::sync::Arc;
    use swerl_rollout::bench::{bench_overhead_in_memory, bench_scripted_swe};
    let dir = tempfile::tempdir()?;
    let config = |concurrency: usize| swerl_rollout::RunConfig {
        concurrency,
        max_attempts: 1,
        limits: swerl_agent::Limits {
            max_turns: 40,
            max_context_tokens: 200_000,
            max_new_tokens: 8_192,
            min_new_tokens: 8,
            wall_time: std::time::Duration::from_secs(600),
        },
        reward: swerl_rollout::LengthShaping::TurnPenalty(swerl_rollout::TurnPenalty::stage1()),
        versions: Default::default(),
    };
    let memory = bench_overhead_in_memory(256, 10, &config(8), &dir.path().join("memory.jsonl"))?;
    let ids = [
        "swerl-bundled__csvsniff-1",
        "swerl-bundled__inireader-1",
        "swerl-bundled__jsonpointer-1",
    ];
    let loaded = swerl_env::task::load_tasks(tasks)?;
    let chosen: Vec<_> = loaded
        .tasks
        .into_iter()
        .filter(|t| ids.contains(&t.instance_id.as_str()))
        .collect();
    anyhow::ensure!(
        chosen.len() == ids.len(),
        "{} lacks the bundled tasks {ids:?}",
        tasks.display()
    );
    let sources = swerl_env::prepare::EnvSources {
        env_root: dir.path().join("envs"),
        repos: tasks.parent().map(|p| p.join("repos")),
        repos_in_image: false,
    };
    let factory = Arc::new(swerl_sandbox::LocalFactory::new()?);
    let swe = swerl_rollout::SweRollout::new(chosen, sources, factory, Default::default());
    let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    let per_task = episodes.div_ceil(ids.len() as u32);
    let concurrency = (per_task as usize) * ids.len();
    let swe_report = bench_scripted_swe(
        &swe,
        &ids,
        per_task,
        &config(concurrency),
        &dir.path().join("swe.jsonl"),
    )?;
    let row = |name: &str, r: &swerl_rollout::bench::RolloutBenchReport| {
        format!(
            "| {name} | {} | {} | {} | {} | {:.1} / {:.1} / {:.1} | {:.1} s |\n",
            r.episodes,
            r.concurrency,
            r.resolved,
            r.failures.len(),
            r.overhead_us_p50,
            r.overhead_us_p90,
            r.overhead_us_max,
            r.wall_s
        )
    };
    let mut md = String::from(
        "Overhead per turn = episode wall time minus time inside policy and environment calls, \
         divided by turns (target: under 1 ms p50). Scripted policy; attempts = 1 so failures show.\n\n\
         | run | episodes | concurrency | resolved | failures | overhead per turn p50 / p90 / max (µs) | wall |\n\
         |---|---:|---:|---:|---:|---|---:|\n",
    );
    md.push_str(&row("in-memory environment, 10 turns each", &memory));
    md.push_str(&row("real sandboxes, bundled tasks, graded", &swe_report));
    for f in swe_report.failures.iter().take(10) {
        md.push_str(&format!("\n- failure: {f}"));
    }
    Ok(md)
}

fn bench_http(
    model: Option<PathBuf>,
    tokenizer: &Path,
    clients: usize,
    requests_per_client: usize,
    max_batch: usize,
) -> anyhow::Result<String> {
    use std::sync::Arc;
    use swerl_policy::bench::{run_http_bench, tiny_random_model, BenchConfig};
    use swerl_policy::{Engine, EngineConfig};
    let engine_cfg = EngineConfig {
        max_batch,
        ..EngineConfig::default()
    };
    let (engine, state, served) = match model {
        Some(dir) => {
            let (engine, state) =
                swerl_policy::server::load_model_dir(&dir, tch::Device::Cpu, engine_cfg, None, 0)?;
            (engine, state, dir.display().to_string())
        }
        None => {
            let chat = swerl_model::chat::ChatTokenizer::from_dir(tokenizer)
                .with_context(|| format!("loading the tokenizer in {}", tokenizer.display()))?;
            let model = tiny_random_model(chat.tokenizer().vocab_size(), 0);
            let engine = Engine::start(model, engine_cfg);
            let state = swerl_policy::server::ServerState::new(
                engine.handle(),
                Arc::new(chat),
                "tiny-random",
                0,
            );
            (
                engine,
                Arc::new(state),
                "tiny random Qwen2 (hidden 64, 2 layers)".to_string(),
            )
        }
    };
    let config = BenchConfig {
        clients,
        requests_per_client,
        ..BenchConfig::default()
    };
    let r = run_http_bench(state, &config)?;
    engine.shutdown();
    Ok(format!(
        "Model: {served}; {clients} concurrent clients x {requests_per_client} requests, \
         prompt {} tokens, {} new tokens, engine max batch {max_batch}.\n\n\
         | requests | failures | requests/s | tokens/s | p50 ms | p99 ms | max ms | engine batches |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|\n\
         | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} |\n",
        config.prompt_tokens,
        config.max_tokens,
        r.requests,
        r.failures,
        r.requests_per_s,
        r.tokens_per_s,
        r.latency_p50_ms,
        r.latency_p99_ms,
        r.latency_max_ms,
        r.engine_batches
    ))
}

/// Replaces (or appends) the section `name` of the record file with `body`, headed by the
/// command that produced it. Written via a temp file and a rename so a crash never leaves a
/// half-written file.
fn record(path: &Path, name: &str, body: &str) -> anyhow::Result<()> {
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let (begin, end) = (
        format!("<!-- bench:{name} -->"),
        format!("<!-- /bench:{name} -->"),
    );
    let section = format!(
        "{begin}\n## {name}\n\nCommand: `{command}`  \nRecorded: {} on {}\n\n{body}\n{end}",
        now_utc(),
        machine()
    );
    let old = std::fs::read_to_string(path).unwrap_or_else(|_| {
        "# Benchmarks\n\nEvery figure below was printed by the command above it; ratios compare \
         alternatives measured in the same run.\n"
            .to_string()
    });
    let new = match (old.find(&begin), old.find(&end)) {
        (Some(b), Some(e)) if e > b => format!("{}{section}{}", &old[..b], &old[e + end.len()..]),
        _ => format!("{}\n{section}\n", old.trim_end()),
    };
    let tmp = path.with_extension("md.tmp");
    std::fs::write(&tmp, new).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming onto {}", path.display()))?;
    Ok(())
}

fn now_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// Days since 1970-01-01 to a (year, month, day) date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

fn machine() -> String {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string())
        })
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| format!("{} GiB", kb / (1 << 20)))
        .unwrap_or_else(|| "unknown memory".into());
    format!("{cores} cores, {mem}, {}", std::env::consts::ARCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_convert() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_413), (2025, 11, 21));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn record_replaces_only_its_own_section() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("B.md");
        record(&path, "a", "first a").unwrap();
        record(&path, "b", "first b").unwrap();
        record(&path, "a", "second a").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("second a") && !text.contains("first a"),
            "{text}"
        );
        assert!(text.contains("first b"));
        assert_eq!(text.matches("<!-- bench:a -->").count(), 1);
    }
}
