//! `swerl train`: multi-turn DAPO (docs/method.md section 6). The DAPO hyper-parameters come from
//! `--config` (JSON; defaults are the paper's stage 1, `"stage": 2` for stage 2); tasks,
//! model, device, policy backend and rollout limits from the flags. Episodes run in real
//! sandboxes ([`backend`]); the policy is the embedded engine ([`embedded`], weights copied
//! in memory) or OpenAI-compatible servers ([`http`], checkpoint + reload call). With LoRA
//! (`--lora RANK` or the config's `lora` block) only an adapter trains: the embedded engine
//! shares the frozen base with the trainer and copies the adapter's factors; servers load the
//! adapter through vLLM's LoRA route, or a merged model through `--reload`.

mod backend;
mod embedded;
mod http;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use swerl_env::task::Task;
use swerl_train::config::DapoConfig;
use swerl_train::dapo_loop::DapoRun;
use swerl_train::metrics_log::MetricsRow;
use swerl_train::sampling::filter_pool;

use crate::common::lora::{load_learner, LoraArgs};
use crate::common::{TaskArgs, ENV_HELP};
use backend::{Sampler, SweBackend};

#[derive(Debug, clap::Args)]
#[command(after_help = ENV_HELP)]
pub struct Args {
    /// DAPO config (JSON, unknown fields rejected); `{}` is the paper's stage 1.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Continue from the newest complete checkpoint in --out.
    #[arg(long)]
    resume: bool,
    /// The initial policy (e.g. the RFT output): a Hugging Face model directory.
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// Run directory: config.json, metrics.jsonl, plots/, checkpoints/, rollouts/, episodes/.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    #[command(flatten)]
    tasks: TaskArgs,
    /// Only tasks of this split (the tasks' `split` field).
    #[arg(long, value_name = "SPLIT")]
    split: Option<String>,
    /// Stage-1 trajectories (file or directory): drop tasks solved in >= 2/3 of their graded
    /// attempts and tasks never solved before training (the pool filter between stages).
    #[arg(long, value_name = "DIR_OR_FILE")]
    pool_from: Option<PathBuf>,
    /// Compute device of trainer and engine: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    #[arg(long, value_name = "DTYPE", help = super::rft::DTYPE_HELP)]
    dtype: Option<String>,
    /// Episodes in flight at once (also the engine's batch size).
    #[arg(long, value_name = "N", default_value_t = 8)]
    concurrency: usize,
    /// Sampled tokens per turn at most.
    #[arg(long, value_name = "TOKENS", default_value_t = 4_096)]
    max_new_tokens: usize,
    /// Wall-clock limit of one episode, seconds.
    #[arg(long, value_name = "SECS", default_value_t = 3_600)]
    episode_timeout: u64,
    /// Attempts per episode while it ends in an infrastructure failure.
    #[arg(long, value_name = "N", default_value_t = 3)]
    attempts: u32,
    /// Policy backend: `embedded` (in-process engine on --device, weights synced in memory) or
    /// `http:URL[,URL...]` (OpenAI-compatible servers, with --model-name; after each
    /// iteration every server is asked to load the new checkpoint with --reload).
    #[arg(long, value_name = "SPEC", default_value = "embedded")]
    policy: String,
    /// Served model name for `--policy http:...` (with LoRA and `--lora-sync adapter`: the
    /// name the adapter is loaded under, which requests then name).
    #[arg(long, value_name = "NAME")]
    model_name: Option<String>,
    /// The weight-reload call of `--policy http:...`: `METHOD /path [JSON body]`, `{path}`
    /// replaced by the checkpoint's absolute policy directory (which the servers must see at
    /// that path). Default: SGLang's `POST /update_weights_from_disk {"model_path": "{path}"}`
    /// (also served by `swerl serve`; vLLM has no standard one: give your deployment's
    /// route); with LoRA and `--lora-sync adapter`, vLLM's `POST /v1/load_lora_adapter
    /// {"lora_name": NAME, "lora_path": "{path}", "load_inplace": true}`.
    #[arg(long, value_name = "CALL")]
    reload: Option<String>,
    /// How servers get a LoRA run's policy: `adapter` (the checkpoint's adapter through the
    /// servers' LoRA route; vLLM needs --enable-lora, --max-lora-rank >= RANK and
    /// VLLM_ALLOW_RUNTIME_LORA_UPDATING=True) or `merged` (a merged model written next to
    /// the checkpoint, loaded through --reload).
    #[arg(long, value_enum, default_value_t = LoraSync::Adapter)]
    lora_sync: LoraSync,
    #[command(flatten)]
    lora: LoraArgs,
    /// Timeout of one reload call, seconds.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    reload_timeout: u64,
    /// Retries of a reload call after connection failures, timeouts and 5xx answers.
    #[arg(long, value_name = "N", default_value_t = 3)]
    reload_retries: u32,
    #[command(flatten)]
    engine: crate::common::EngineArgs,
}

/// How HTTP servers load a LoRA run's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LoraSync {
    Adapter,
    Merged,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = read_config(&args)?;
    let tasks = select_tasks(&args)?;
    let pool = training_pool(&args, &tasks)?;
    let learner = load_learner(
        &args.model,
        &args.device,
        args.dtype.as_deref(),
        config.lora.as_ref(),
        config.seed,
    )?;
    let sampler = sampler(&args, config.seed, &learner)?;
    let mut backend = SweBackend::new(&args, &config, tasks, sampler)?;
    let mut run = DapoRun::new(config, learner, &args.out, pool)?;
    run.model_files = swerl_train::rft::tokenizer_files(&args.model);
    let result = run.run(&mut backend, args.resume, &versions(&args));
    backend.sampler.shutdown();
    let rows = result?;
    print_summary(&rows, &args.out);
    Ok(ExitCode::SUCCESS)
}

/// The policy backend of `--policy`, starting from `learner`'s weights.
fn sampler(
    args: &Args,
    seed: u64,
    learner: &swerl_train::Learner,
) -> anyhow::Result<Box<dyn Sampler>> {
    if args.policy == "embedded" {
        return Ok(Box::new(embedded::Embedded::start(args, seed, learner)?));
    }
    if let Some(urls) = args.policy.strip_prefix("http:") {
        let urls = urls
            .split(',')
            .filter(|u| !u.is_empty())
            .map(str::to_string)
            .collect();
        return Ok(Box::new(http::Http::start(args, urls, learner)?));
    }
    bail!(
        "unknown --policy `{}`; use embedded or http:URL[,URL...]",
        args.policy
    )
}

/// Parses and validates the config once, before any model is loaded; the LoRA flags, when
/// given, are the config's `lora` block (giving both is an error: which would win is a guess).
fn read_config(args: &Args) -> anyhow::Result<DapoConfig> {
    let mut config = read_config_file(&args.config)?;
    let origin = args.config.display().to_string();
    if let Some(lora) = args.lora.config()? {
        if config.lora.is_some() {
            bail!("--lora and the `lora` block of {origin} both describe the adapter; keep one");
        }
        config.lora = Some(lora);
        config.validate(&origin)?;
    }
    Ok(config)
}

fn read_config_file(path: &Path) -> anyhow::Result<DapoConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(DapoConfig::from_json_str(
        &text,
        &path.display().to_string(),
    )?)
}

fn select_tasks(args: &Args) -> anyhow::Result<Vec<Task>> {
    let mut tasks = args.tasks.load()?;
    if let Some(split) = &args.split {
        tasks.retain(|t| t.extra_str("split") == Some(split.as_str()));
    }
    if tasks.is_empty() {
        bail!(
            "no training tasks selected from {}",
            args.tasks.tasks.display()
        );
    }
    Ok(tasks)
}

/// The task ids to sample from, after the optional pool filter (reported on stdout).
fn training_pool(args: &Args, tasks: &[Task]) -> anyhow::Result<Vec<String>> {
    let ids: Vec<String> = tasks.iter().map(|t| t.instance_id.clone()).collect();
    let Some(from) = &args.pool_from else {
        return Ok(ids);
    };
    let trajs = super::rft::read_all(from)?;
    let f = filter_pool(&ids, &trajs, 2.0 / 3.0);
    println!(
        "pool filter from {}: kept {} (of which {} never observed), dropped {} solved in >= 2/3 of attempts, {} never solved",
        from.display(),
        f.kept.len(),
        f.unobserved.len(),
        f.dropped_easy.len(),
        f.dropped_never_solved.len()
    );
    if f.kept.is_empty() {
        bail!("the pool filter left no task to train on");
    }
    Ok(f.kept)
}

fn versions(args: &Args) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("swerl".into(), env!("CARGO_PKG_VERSION").into()),
        (
            "git".into(),
            option_env!("SWERL_GIT_DESCRIBE")
                .unwrap_or("unknown")
                .into(),
        ),
        ("libtorch".into(), libtorch_version()),
        ("initial_model".into(), args.model.display().to_string()),
        ("tasks".into(), args.tasks.tasks.display().to_string()),
        args.tasks.sandbox_limits_record(),
    ])
}

/// The libtorch build this binary was linked against: its `build-version` file (C++
/// distribution) or `__version__` in `version.py` (a PyTorch wheel), else its path.
fn libtorch_version() -> String {
    let Some(root) = option_env!("LIBTORCH") else {
        return "unknown".into();
    };
    let root = Path::new(root);
    if let Ok(v) = std::fs::read_to_string(root.join("build-version")) {
        return v.trim().to_string();
    }
    let py = std::fs::read_to_string(root.join("version.py")).unwrap_or_default();
    py.lines()
        .find_map(|l| l.strip_prefix("__version__ = "))
        .map_or_else(
            || root.display().to_string(),
            |v| v.trim_matches(['\'', '"']).to_string(),
        )
}

fn print_summary(rows: &[MetricsRow], out: &Path) {
    for r in rows {
        let v = |k: &str| r.values.get(k).copied().unwrap_or(f64::NAN);
        println!(
            "iteration {}: reward {:.3} resolved {:.3} trained {} dropped zero-adv {} infra {} ({:.0} s)",
            r.step,
            v("reward/mean"),
            v("resolved_rate"),
            v("samples/trained"),
            v("dropped/zero_adv"),
            v("dropped/infra"),
            v("time/iteration")
        );
    }
    println!("metrics, plots and checkpoints in {}", out.display());
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    mod lora;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn fixture(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
    }

    /// A random tiny Qwen2 whose vocabulary is exactly the fixture tokenizer's, with room for
    /// the bundled tasks' prompts.
    fn tiny_policy_dir(dir: &Path) -> PathBuf {
        tiny_model_dir(dir, "model", 3)
    }

    fn tiny_model_dir(dir: &Path, name: &str, seed: i64) -> PathBuf {
        let tok = fixture("../model/tests/fixtures/tokenizer");
        let chat = swerl_model::chat::ChatTokenizer::from_dir(&tok).unwrap();
        let config = swerl_model::config::Qwen2Config {
            vocab_size: chat.tokenizer().vocab_size(),
            max_position_embeddings: 8192,
            ..swerl_model::config::Qwen2Config::tiny()
        };
        tch::manual_seed(seed);
        let model = swerl_model::qwen2::Qwen2::new(config, tch::Device::Cpu, tch::Kind::Float);
        let out = dir.join(name);
        swerl_model::weights::save_model(&model, &out, 1 << 30).unwrap();
        swerl_train::rft::copy_tokenizer_files(&tok, &out).unwrap();
        out
    }

    fn train(dir: &Path, model: &Path, iterations: u64, resume: bool) -> anyhow::Result<ExitCode> {
        train_with(dir, model, iterations, resume, &[])
    }

    fn train_with(
        dir: &Path,
        model: &Path,
        iterations: u64,
        resume: bool,
        extra: &[&str],
    ) -> anyhow::Result<ExitCode> {
        let config = dir.join(format!("config-{iterations}.json"));
        let json = serde_json::json!({
            "iterations": iterations, "problems_per_iteration": 1, "group_size": 2,
            "batch_trajectories": 4, "max_context": 4096, "max_turns": 2, "turn_threshold": 1,
            "micro_batch_tokens": 8192, "eval_every": 2, "eval_tasks": 1
        });
        std::fs::write(&config, json.to_string()).unwrap();
        let tasks = fixture("../../tasks/bundled/tasks.jsonl");
        let (out, envs) = (dir.join("run"), dir.join("envs"));
        let mut argv = vec![
            "train",
            "--config",
            config.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--tasks",
            tasks.to_str().unwrap(),
            "--env-root",
            envs.to_str().unwrap(),
            "--instance",
            "swerl-bundled__csvsniff-1",
            "--max-new-tokens",
            "16",
            "--concurrency",
            "2",
        ];
        if resume {
            argv.push("--resume");
        }
        argv.extend(extra);
        run(Cli::parse_from(argv).args)
    }

    /// These tests run real episodes: where the local sandbox cannot start (it needs root and
    /// bubblewrap) they fail, since a skipped check must not read as a pass.
    fn require_local_sandbox() {
        if let Err(e) = swerl_sandbox::LocalFactory::new() {
            panic!("local sandbox unavailable ({e}); run scripts/setup as root");
        }
    }

    fn variables(engine: &swerl_policy::EngineHandle) -> BTreeMap<String, tch::Tensor> {
        let (tx, rx) = std::sync::mpsc::channel();
        engine
            .update_weights(Box::new(move |m| {
                let vars: BTreeMap<String, tch::Tensor> =
                    m.vs.variables()
                        .into_iter()
                        .map(|(k, v)| (k, v.copy()))
                        .collect();
                tx.send(vars).map_err(|e| e.to_string())
            }))
            .unwrap();
        rx.recv().unwrap()
    }

    /// `swerl train --policy http:...` against an in-process `swerl serve` that starts from
    /// other weights than the trainer: after one iteration the server holds exactly the
    /// weights of the trainer's checkpoint (loaded through `/update_weights_from_disk`).
    #[test]
    fn train_with_an_http_policy_reloads_the_servers_weights() {
        require_local_sandbox();
        use swerl_policy::server;
        let dir = tempfile::tempdir().unwrap();
        let model = tiny_policy_dir(dir.path());
        let served = tiny_model_dir(dir.path(), "served", 4);
        let (engine, state) = server::load_model_dir(
            &served,
            tch::Device::Cpu,
            swerl_policy::EngineConfig::default(),
            Some("tiny".into()),
            0,
        )
        .unwrap();
        let addr = std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0));
        let running = server::spawn(server::router(state.clone()), addr, 2).unwrap();
        let before = variables(&state.engine);
        let policy = format!("http:{}", running.url());
        train_with(
            dir.path(),
            &model,
            1,
            false,
            &["--policy", &policy, "--model-name", "tiny"],
        )
        .unwrap();
        assert_eq!(
            state.engine.stats().weight_version,
            2,
            "one reload (+ our read)"
        );
        let run = dir.path().join("run");
        let episodes = std::fs::read_to_string(run.join("episodes/iter-000000.jsonl")).unwrap();
        assert!(episodes.contains(r#""backend":"http""#), "{episodes}");
        assert!(
            state.engine.stats().requests > 0,
            "episodes sampled from the server"
        );
        let trained = swerl_model::weights::load_model(
            &run.join("checkpoints/iter-000001/model"),
            tch::Device::Cpu,
            None,
        )
        .unwrap();
        let after = variables(&state.engine);
        let mut differed = false;
        for (name, t) in trained.vs.variables() {
            assert!(
                after[&name].equal(&t),
                "{name}: the server's weights are the checkpoint's"
            );
            differed |= !before[&name].equal(&t);
        }
        assert!(differed, "the server started from other weights");
        drop(running);
        engine.shutdown();
    }

    /// Real episodes in sandboxes through the whole loop, then a resume.
    #[test]
    fn train_runs_real_episodes_and_resumes() {
        require_local_sandbox();
        let dir = tempfile::tempdir().unwrap();
        let model = tiny_policy_dir(dir.path());
        train(dir.path(), &model, 1, false).unwrap();
        train(dir.path(), &model, 2, true).unwrap();
        let run = dir.path().join("run");
        let rows: Vec<serde_json::Value> = std::fs::read_to_string(run.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["rollouts"], 2.0);
        assert!(rows[1].get("eval/reward_mean").is_some(), "{}", rows[1]);
        assert!(run
            .join("checkpoints/iter-000002/model/config.json")
            .is_file());
        assert!(
            run.join("checkpoints/iter-000002/model/tokenizer.json")
                .is_file(),
            "a checkpoint is a complete model directory, tokenizer included"
        );
        assert!(run.join("episodes/iter-000001.jsonl").is_file());
        let info: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap())
                .unwrap();
        assert_eq!(info["config"]["group_size"], 2);
        assert!(info["versions"]["swerl"].is_string());
    }

    #[test]
    fn bad_config_names_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        std::fs::write(&path, r#"{"clip": {"eps_low": 2.0, "eps_high": 0.3}}"#).unwrap();
        let err = read_config_file(&path).unwrap_err().to_string();
        assert!(
            err.contains("clip.eps_low") && err.contains("c.json"),
            "{err}"
        );
    }

    #[test]
    fn lora_flags_or_the_config_block_but_not_both() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        let args = |extra: &[&str]| {
            let mut argv = vec!["train", "--config", path.to_str().unwrap(), "--model", "m"];
            argv.extend(["--out", "o", "--tasks", "t.jsonl"]);
            argv.extend(extra);
            Cli::parse_from(argv).args
        };
        std::fs::write(&path, r#"{"lora": {"rank": 8}}"#).unwrap();
        assert_eq!(read_config(&args(&[])).unwrap().lora.unwrap().rank, 8);
        let err = read_config(&args(&["--lora", "4"]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("--lora") && err.contains("keep one"), "{err}");
        std::fs::write(&path, "{}").unwrap();
        let c = read_config(&args(&["--lora", "4", "--lora-alpha", "4"])).unwrap();
        assert_eq!(c.lora.unwrap().scale(), 1.0);
        // Flags are checked against the config like the block: dropout needs no checkpointing.
        let err = read_config(&args(&["--lora", "4", "--lora-dropout", "0.1"]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("lora.dropout"), "{err}");
    }

    #[test]
    fn wall_time_is_split_in_proportion() {
        let r = backend::split_wall_time(Vec::new(), 10.0);
        assert_eq!((r.generation_s, r.env_s, r.grading_s), (0.0, 0.0, 0.0));
        assert!(r.generation_s.is_sign_positive());
    }
}
