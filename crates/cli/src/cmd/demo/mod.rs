//! `swerl demo`: the paper's whole pipeline in miniature, one command, on the embedded
//! default (bundled tasks, local sandbox, in-process model):
//!
//! 1. a tokenizer trained on the bundled corpus and a small random Qwen2 with it;
//! 2. the starting model: that model supervised on scripted demonstrations of the train
//!    split (no pretrained instruct model can be downloaded here, so we make a stand-in);
//! 3. base evaluation -> RFT (sample, keep resolved, fine-tune) -> evaluation -> DAPO stage 1
//!    -> evaluation -> DAPO stage 2 (longer context, more turns, pool filter) -> final
//!    evaluation, each evaluation on the train and the held-out split apart;
//! 4. Table 1 for our model, plots and one HTML report.
//!
//! Every stage is a real swerl command (`rollout`, `rft`, `train`, `eval`) run with the
//! arguments the plan gives it, into its own folder of the run. A stage that finished writes
//! `<stage>/stage.json` (atomically, last); rerunning the demo skips finished stages and
//! resumes the unfinished one (rollouts skip stored episodes, DAPO resumes from its newest
//! checkpoint, the rest restart).

mod corpus;
mod plan;
mod report;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use swerl_env::task::Task;
use swerl_rollout::{read_trajectories, summarize, EpisodeOutcome, EvalSummary};

use super::rollout::{execute, RunArgs, TRAJECTORIES};
use crate::common::write_atomic;
use plan::{DemoPlan, EvalPlan, SftPlan};

/// The bundled task file, relative to the working directory (the repository root).
const BUNDLED_TASKS: &str = "tasks/bundled/tasks.jsonl";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run folder: every stage's outputs, report.html, table.md.
    #[arg(long, value_name = "DIR", default_value = "runs/demo")]
    pub out: PathBuf,
    /// The quick preset: two train tasks, one held-out task, a smaller model (under 3
    /// minutes on 2 cores).
    #[arg(long)]
    pub quick: bool,
    /// Task file with `split` (train / heldout) and `demo_commands` fields
    /// [default: tasks/bundled/tasks.jsonl of this checkout].
    #[arg(long, value_name = "FILE")]
    pub tasks: Option<PathBuf>,
    /// Seed of every random draw (initialisation, shuffles, sampling).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Compute device: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Working dtype of the trained weights (`rft` and `train`): float32 (the default here),
    /// or bfloat16 for mixed precision (bf16 compute, f32 master weights and optimizer).
    #[arg(long, value_name = "DTYPE")]
    pub dtype: Option<String>,
}

/// What a finished stage leaves in `<stage>/stage.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StageDone {
    seconds: f64,
    /// The model this stage produced (or passed on), for the stages after it.
    model: Option<PathBuf>,
    note: Option<String>,
}

/// One demo run: its plan, folder and tasks.
struct Demo {
    plan: DemoPlan,
    out: PathBuf,
    tasks_file: PathBuf,
    device: String,
    /// `--dtype` of the training stages, when given.
    dtype: Option<String>,
    /// Instance id -> split, of the selected tasks.
    splits: BTreeMap<String, String>,
    tasks: Vec<Task>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let plan = if args.quick {
        DemoPlan::quick_preset(args.seed)
    } else {
        DemoPlan::default_preset(args.seed)
    };
    let started = Instant::now();
    let demo = Demo::open(&args, plan)?;
    let init = demo.stage("tokenizer-and-init", |d| d.make_initial_model())?;
    let demos = demo.stage("demonstrations", |d| d.demonstrations(&init))?;
    let base = demo.stage("pretrain", |d| d.pretrain(&init, &demos))?;
    demo.stage("eval-base", |d| {
        d.evaluate("eval-base", &base, &d.plan.eval)
    })?;
    let samples = demo.stage("rft-samples", |d| d.rft_samples(&base))?;
    let rft = demo.stage("rft", |d| d.rft(&base, &samples))?;
    demo.stage("eval-rft", |d| d.evaluate("eval-rft", &rft, &d.plan.eval))?;
    let stage1 = demo.stage("dapo-stage1", |d| d.dapo("dapo-stage1", 1, &rft, None))?;
    demo.stage("eval-stage1", |d| {
        d.evaluate("eval-stage1", &stage1, &d.plan.eval)
    })?;
    let pool = demo.out.join("dapo-stage1/episodes");
    let stage2 = demo.stage("dapo-stage2", |d| {
        d.dapo("dapo-stage2", 2, &stage1, Some(&pool))
    })?;
    demo.stage("eval-stage2", |d| {
        d.evaluate("eval-stage2", &stage2, &d.plan.stage2_eval)
    })?;
    let written = report::write(&demo, started.elapsed().as_secs_f64())?;
    println!("{}", written.table);
    println!(
        "report: {} (table: {}; {} tasks improved)",
        written.html.display(),
        written.markdown.display(),
        written.improved
    );
    Ok(ExitCode::SUCCESS)
}

impl Demo {
    /// Creates the run folder and records the plan; a folder made with another plan is
    /// refused (its stages would not fit together).
    fn open(args: &Args, plan: DemoPlan) -> anyhow::Result<Demo> {
        let tasks_file = tasks_file(args.tasks.as_deref())?;
        let tasks = load_selected(&tasks_file, &plan)?;
        std::fs::create_dir_all(&args.out)
            .with_context(|| format!("creating the run folder {}", args.out.display()))?;
        let mut recorded = serde_json::json!({
            "plan": plan,
            "tasks_file": tasks_file.display().to_string(),
            "device": args.device,
        });
        if let Some(dtype) = &args.dtype {
            // Only when given, so that folders made before the flag existed still resume.
            recorded["dtype"] = dtype.as_str().into();
        }
        let path = args.out.join("demo-config.json");
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let old: serde_json::Value = serde_json::from_str(&text)
                    .with_context(|| format!("reading {}", path.display()))?;
                if old != recorded {
                    bail!(
                        "{} was made by a demo with another plan (preset, seed, tasks, device or dtype differ); \
                         rerun with the same flags to resume, or choose another --out",
                        path.display()
                    );
                }
            }
            Err(_) => write_atomic(&path, &serde_json::to_vec_pretty(&recorded)?)?,
        }
        let splits = tasks
            .iter()
            .map(|t| {
                let split = t.extra_str("split").unwrap_or("train").to_string();
                (t.instance_id.clone(), split)
            })
            .collect();
        Ok(Demo {
            plan,
            out: args.out.clone(),
            tasks_file,
            device: args.device.clone(),
            dtype: args.dtype.clone(),
            splits,
            tasks,
        })
    }

    /// `--dtype D` for the training commands, when the demo was given one.
    fn dtype_flag(&self) -> Vec<String> {
        self.dtype
            .iter()
            .flat_map(|d| ["--dtype".to_string(), d.clone()])
            .collect()
    }

    /// Runs `f` unless `<name>/stage.json` says it finished; returns the stage's model.
    fn stage(
        &self,
        name: &str,
        f: impl FnOnce(&Demo) -> anyhow::Result<(Option<PathBuf>, Option<String>)>,
    ) -> anyhow::Result<PathBuf> {
        let marker = self.out.join(name).join("stage.json");
        if let Ok(text) = std::fs::read_to_string(&marker) {
            let done: StageDone = serde_json::from_str(&text)
                .with_context(|| format!("reading {}", marker.display()))?;
            println!("== {name}: done before ({:.1} s), skipped", done.seconds);
            return Ok(done.model.unwrap_or_default());
        }
        println!("== {name}");
        let started = Instant::now();
        let (model, note) = f(self).with_context(|| format!("demo stage `{name}`"))?;
        let done = StageDone {
            seconds: started.elapsed().as_secs_f64(),
            model,
            note,
        };
        if let Some(note) = &done.note {
            println!("   note: {note}");
        }
        std::fs::create_dir_all(self.out.join(name))?;
        write_atomic(&marker, &serde_json::to_vec_pretty(&done)?)?;
        println!("   {name} finished in {:.1} s", done.seconds);
        Ok(done.model.unwrap_or_default())
    }

    /// Reads a finished stage's record (for the report).
    fn done(&self, name: &str) -> Option<StageDone> {
        let text = std::fs::read_to_string(self.out.join(name).join("stage.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    fn task_ids(&self, split: Option<&str>) -> Vec<String> {
        self.splits
            .iter()
            .filter(|(_, s)| split.is_none_or(|want| want == s.as_str()))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// `--tasks FILE --env-root DIR --instance ID...` for the selected tasks of `split`.
    fn task_flags(&self, split: Option<&str>) -> Vec<String> {
        self.task_flags_from(&self.tasks_file, split)
    }

    /// [`Demo::task_flags`] with the tasks read from `tasks_file` (same instance ids).
    fn task_flags_from(&self, tasks_file: &Path, split: Option<&str>) -> Vec<String> {
        let repos = crate::common::bundled_repos(&self.tasks_file).unwrap_or_default();
        let mut argv = vec![
            "--tasks".into(),
            tasks_file.display().to_string(),
            "--repos".into(),
            repos.display().to_string(),
            "--env-root".into(),
            self.out.join("envs").display().to_string(),
            "--window-lines".into(),
            self.plan.window_lines.to_string(),
        ];
        for id in self.task_ids(split) {
            argv.push("--instance".into());
            argv.push(id);
        }
        argv
    }

    /// Stage 1: the tokenizer trained on the corpus, and a random model of the plan's shape.
    fn make_initial_model(&self) -> anyhow::Result<(Option<PathBuf>, Option<String>)> {
        let repos = crate::common::bundled_repos(&self.tasks_file).unwrap_or_default();
        let docs = corpus::documents(&self.tasks, &repos, self.plan.window_lines)?;
        let tokenizer = corpus::train(&docs, &self.plan.tokenizer)?;
        let tok_dir = self.out.join("tokenizer-and-init/tokenizer");
        tokenizer.save(&tok_dir)?;
        let init = self.out.join("tokenizer-and-init/model");
        let m = &self.plan.model;
        super::model::run(parse(&[
            "init",
            "--tokenizer",
            &tok_dir.display().to_string(),
            "--out",
            &init.display().to_string(),
            "--hidden",
            &m.hidden.to_string(),
            "--layers",
            &m.layers.to_string(),
            "--max-positions",
            &m.max_positions.to_string(),
            "--seed",
            &self.plan.seed.to_string(),
        ])?)?;
        let note = format!(
            "tokenizer: {} ids learned from {} documents",
            tokenizer.vocab_size(),
            docs.len()
        );
        Ok((Some(init), Some(note)))
    }

    /// Scripted demonstrations of the train split in the initial model's tokens: ones that
    /// fix each task (in `demonstrations/`) and ones that submit before fixing anything (in
    /// `demonstrations/premature/`).
    fn demonstrations(&self, init: &Path) -> anyhow::Result<(Option<PathBuf>, Option<String>)> {
        let out = self.out.join("demonstrations");
        let policy = format!("scripted:{}", init.display());
        let copies = self.plan.demo_copies;
        let fixes = self.rollout(&out, &policy, Some("train"), copies, &self.plan.eval, 0)?;
        let mut note = format!(
            "{} demonstrations that fix their task ({} resolved)",
            fixes.done + fixes.skipped,
            fixes.resolved
        );
        if self.plan.premature_copies > 0 {
            // Beside the stage folder, not in it: every *.jsonl there is read as trajectories.
            let tasks = self.out.join("premature-tasks.jsonl");
            self.write_premature_tasks(&tasks)?;
            let argv = self.rollout_argv(
                &out.join("premature"),
                &policy,
                &self.plan.eval,
                0,
                self.task_flags_from(&tasks, Some("train")),
            );
            let args: RunArgs = parse(&argv)?;
            let early = execute(&args, self.plan.premature_copies)?;
            note.push_str(&format!(
                ", {} that submit before fixing anything ({} resolved)",
                early.done + early.skipped,
                early.resolved
            ));
        }
        Ok((Some(out), Some(note)))
    }

    /// The train tasks with `demo_commands` cut before their first edit and ended by
    /// `submit`: reproduce the issue, find and open the file, give up.
    fn write_premature_tasks(&self, path: &Path) -> anyhow::Result<()> {
        let mut tasks: Vec<Task> = Vec::new();
        for task in self
            .tasks
            .iter()
            .filter(|t| t.extra_str("split") == Some("train"))
        {
            let commands = swerl_rollout::demo_commands(task)?;
            let Some(first_edit) = commands.iter().position(|c| is_edit(c)) else {
                continue;
            };
            let mut early: Vec<String> = commands[..first_edit].to_vec();
            early.push("submit".into());
            let mut task = task.clone();
            task.extra
                .insert("demo_commands".into(), serde_json::json!(early));
            tasks.push(task);
        }
        write_atomic(path, swerl_env::task::to_jsonl(&tasks)?.as_bytes())
    }

    /// The starting model: supervised fine-tuning of the random model on the demonstrations.
    fn pretrain(
        &self,
        init: &Path,
        demos: &Path,
    ) -> anyhow::Result<(Option<PathBuf>, Option<String>)> {
        let out = self.out.join("pretrain/model");
        let mut data = vec![demos.to_path_buf()];
        if self.plan.premature_copies > 0 {
            data.push(demos.join("premature"));
        }
        self.sft(
            &data,
            "all",
            init,
            &out,
            &self.plan.pretrain,
            self.plan.eval.max_context,
        )?;
        Ok((Some(out), None))
    }

    /// The base model sampled `rft_samples` times per train task (the RFT collection).
    fn rft_samples(&self, base: &Path) -> anyhow::Result<(Option<PathBuf>, Option<String>)> {
        let out = self.out.join("rft-samples");
        let policy = format!("embedded:{}", base.display());
        let seed = self.plan.seed + 1;
        let p = self.rollout(
            &out,
            &policy,
            Some("train"),
            self.plan.rft_samples,
            &self.plan.eval,
            seed,
        )?;
        let note = format!("{} of {} samples resolved", p.resolved, p.done + p.skipped);
        Ok((Some(out), Some(note)))
    }

    /// RFT on the resolved samples; with none resolved, the base model goes on unchanged.
    fn rft(
        &self,
        base: &Path,
        samples: &Path,
    ) -> anyhow::Result<(Option<PathBuf>, Option<String>)> {
        let resolved = read_trajectories(&samples.join(TRAJECTORIES))?
            .iter()
            .filter(|t| t.resolved())
            .count();
        if resolved == 0 {
            let note = "no sample of the base model resolved a task: nothing to fine-tune on, so RFT passes the base model on unchanged";
            return Ok((Some(base.to_path_buf()), Some(note.into())));
        }
        let out = self.out.join("rft/model");
        self.sft(
            &[samples.to_path_buf()],
            "resolved",
            base,
            &out,
            &self.plan.rft,
            self.plan.eval.max_context,
        )?;
        Ok((
            Some(out),
            Some(format!("fine-tuned on {resolved} resolved trajectories")),
        ))
    }

    /// `swerl rft --keep KEEP` on `trajectories` from `model` into `out`.
    fn sft(
        &self,
        trajectories: &[PathBuf],
        keep: &str,
        model: &Path,
        out: &Path,
        p: &SftPlan,
        max_context: usize,
    ) -> anyhow::Result<()> {
        let mut argv: Vec<String> = trajectories
            .iter()
            .flat_map(|t| ["--trajectories".to_string(), t.display().to_string()])
            .collect();
        argv.extend([
            "--keep".to_string(),
            keep.to_string(),
            "--model".into(),
            model.display().to_string(),
            "--out".into(),
            out.display().to_string(),
            "--epochs".into(),
            p.epochs.to_string(),
            "--lr".into(),
            p.lr.to_string(),
            "--warmup".into(),
            p.warmup.to_string(),
            "--batch".into(),
            p.batch.to_string(),
            "--max-context".into(),
            max_context.to_string(),
            "--micro-batch-tokens".into(),
            (2 * max_context).to_string(),
            "--seed".into(),
            self.plan.seed.to_string(),
            "--device".into(),
            self.device.clone(),
        ]);
        argv.extend(self.dtype_flag());
        super::rft::run(parse(&argv)?)?;
        Ok(())
    }

    /// One DAPO stage with `swerl train` (resuming from its newest checkpoint if any); the
    /// stage's model is its last checkpoint.
    fn dapo(
        &self,
        name: &str,
        stage: u8,
        model: &Path,
        pool_from: Option<&Path>,
    ) -> anyhow::Result<(Option<PathBuf>, Option<String>)> {
        let dir = self.out.join(name);
        std::fs::create_dir_all(&dir)?;
        let config_path = self.out.join(format!("{name}.json"));
        let config = if stage == 1 {
            &self.plan.stage1
        } else {
            &self.plan.stage2
        };
        write_atomic(&config_path, &serde_json::to_vec_pretty(config)?)?;
        let checkpoints = dir.join("checkpoints");
        let mut argv = vec![
            "--config".to_string(),
            config_path.display().to_string(),
            "--model".into(),
            model.display().to_string(),
            "--out".into(),
            dir.display().to_string(),
            "--split".into(),
            "train".into(),
            "--max-new-tokens".into(),
            self.plan.eval.max_new_tokens.to_string(),
            "--concurrency".into(),
            self.plan.concurrency.to_string(),
            "--device".into(),
            self.device.clone(),
        ];
        argv.extend(self.task_flags(Some("train")));
        argv.extend(self.dtype_flag());
        let mut note = None;
        if let Some(from) = pool_from {
            match self.pool_filter(from)? {
                Some(kept) => {
                    argv.extend(["--pool-from".to_string(), from.display().to_string()]);
                    note = Some(format!("pool filter kept {kept} train tasks"));
                }
                None => {
                    note = Some(
                        "the pool filter (drop tasks solved in >= 2/3 of stage-1 attempts and \
                         never-solved ones) left no task, so stage 2 trains on the whole train pool"
                            .into(),
                    );
                }
            }
        }
        if swerl_train::checkpoint::latest(&checkpoints)?.is_some() {
            argv.push("--resume".into());
        }
        super::train::run(parse(&argv)?)?;
        let last = swerl_train::checkpoint::latest(&checkpoints)?
            .with_context(|| format!("{name} wrote no checkpoint in {}", checkpoints.display()))?
            .join("model");
        Ok((Some(last), note))
    }

    /// How many train tasks the stage-2 pool filter keeps (`None` if it keeps none).
    fn pool_filter(&self, from: &Path) -> anyhow::Result<Option<usize>> {
        let trajs = super::rft::read_all(from)?;
        let f =
            swerl_train::sampling::filter_pool(&self.task_ids(Some("train")), &trajs, 2.0 / 3.0);
        Ok((!f.kept.is_empty()).then_some(f.kept.len()))
    }

    /// k runs per selected task of both splits, summarised per split into
    /// `<name>/summary-<split>.json`.
    fn evaluate(
        &self,
        name: &str,
        model: &Path,
        eval: &EvalPlan,
    ) -> anyhow::Result<(Option<PathBuf>, Option<String>)> {
        let out = self.out.join(name);
        let policy = format!("embedded:{}", model.display());
        self.rollout(&out, &policy, None, eval.runs, eval, self.plan.seed)?;
        let trajectories = read_trajectories(&out.join(TRAJECTORIES))?;
        let mut parts = Vec::new();
        for split in ["train", "heldout"] {
            let outcomes: Vec<EpisodeOutcome> = trajectories
                .iter()
                .filter(|t| self.splits.get(&t.task_id).map(String::as_str) == Some(split))
                .map(EpisodeOutcome::from)
                .collect();
            if outcomes.is_empty() {
                continue;
            }
            let summary = summarize(&outcomes, eval.runs as usize);
            let path = out.join(format!("summary-{split}.json"));
            write_atomic(&path, &serde_json::to_vec_pretty(&summary)?)?;
            parts.push(format!("{split} Pass@1 {:.1}%", summary.pass_at_1 * 100.0));
        }
        Ok((Some(model.to_path_buf()), Some(parts.join(", "))))
    }

    /// `swerl rollout` (or `swerl eval`'s run) of `policy` on `split` into `out`.
    fn rollout(
        &self,
        out: &Path,
        policy: &str,
        split: Option<&str>,
        samples: u32,
        eval: &EvalPlan,
        seed: u64,
    ) -> anyhow::Result<swerl_rollout::Progress> {
        let argv = self.rollout_argv(out, policy, eval, seed, self.task_flags(split));
        execute(&parse(&argv)?, samples)
    }

    /// The arguments of `swerl rollout` of `policy` into `out` with `task_flags`.
    fn rollout_argv(
        &self,
        out: &Path,
        policy: &str,
        eval: &EvalPlan,
        seed: u64,
        task_flags: Vec<String>,
    ) -> Vec<String> {
        let mut argv = vec![
            "--policy".to_string(),
            policy.to_string(),
            "--out".into(),
            out.display().to_string(),
            "--concurrency".into(),
            self.plan.concurrency.to_string(),
            "--max-turns".into(),
            eval.max_turns.to_string(),
            "--turn-threshold".into(),
            eval.turn_threshold.to_string(),
            "--max-context".into(),
            eval.max_context.to_string(),
            "--max-new-tokens".into(),
            eval.max_new_tokens.to_string(),
            "--seed".into(),
            seed.to_string(),
            "--device".into(),
            self.device.clone(),
        ];
        argv.extend(task_flags);
        argv
    }

    /// The evaluation summary of `split` written by the evaluation stage `name`.
    fn summary(&self, name: &str, split: &str) -> Option<EvalSummary> {
        let path = self.out.join(name).join(format!("summary-{split}.json"));
        let text = std::fs::read_to_string(path).ok()?;
        serde_json::from_str(&text).ok()
    }
}

/// The task file: `--tasks`, else the bundled one: from the working directory, from an
/// installed package (`<prefix>/share/swerl/` beside `<prefix>/bin/swerl`, scripts/package),
/// else from the checkout this binary was built in.
fn tasks_file(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p.to_path_buf());
    }
    let installed = std::env::current_exe().ok().and_then(|exe| {
        Some(
            exe.parent()?
                .parent()?
                .join("share/swerl")
                .join(BUNDLED_TASKS),
        )
    });
    let candidates = [
        Some(PathBuf::from(BUNDLED_TASKS)),
        installed,
        Some(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../..")
                .join(BUNDLED_TASKS),
        ),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.is_file())
        .with_context(|| {
            format!("no {BUNDLED_TASKS} here; run from the repository root or pass --tasks FILE")
        })
}

/// The plan's tasks of the file: every train and held-out task, or the preset's subset.
fn load_selected(path: &Path, plan: &DemoPlan) -> anyhow::Result<Vec<Task>> {
    let loaded = swerl_env::task::load_tasks(path)
        .with_context(|| format!("loading the demo's tasks from {}", path.display()))?;
    if let Some(e) = loaded.errors.first() {
        bail!("{} has malformed rows, the first: {e}", path.display());
    }
    let wanted = |t: &Task, split: &str, subset: &Option<Vec<String>>| {
        t.extra_str("split") == Some(split)
            && subset
                .as_ref()
                .is_none_or(|ids| ids.contains(&t.instance_id))
    };
    let tasks: Vec<Task> = loaded
        .tasks
        .into_iter()
        .filter(|t| {
            wanted(t, "train", &plan.train_tasks) || wanted(t, "heldout", &plan.heldout_tasks)
        })
        .collect();
    for split in ["train", "heldout"] {
        if !tasks.iter().any(|t| t.extra_str("split") == Some(split)) {
            bail!(
                "{}: no task of split `{split}` for the demo (tasks need a `split` field of train or heldout, and demo_commands)",
                path.display()
            );
        }
    }
    Ok(tasks)
}

/// An agent command that changes a file (the first one ends a premature demonstration).
fn is_edit(command: &str) -> bool {
    let word = command.split_whitespace().next().unwrap_or("");
    matches!(word, "edit" | "replace" | "create" | "insert")
}

/// Parses a subcommand's arguments exactly as its command line would.
pub(crate) fn parse<A: clap::Args + clap::FromArgMatches, S: AsRef<str>>(
    argv: &[S],
) -> anyhow::Result<A> {
    let command = A::augment_args(clap::Command::new("swerl").no_binary_name(true));
    let matches = command
        .try_get_matches_from(argv.iter().map(AsRef::as_ref))
        .map_err(|e| anyhow::anyhow!("invalid arguments built for a subcommand: {e}"))?;
    Ok(A::from_arg_matches(&matches)?)
}
