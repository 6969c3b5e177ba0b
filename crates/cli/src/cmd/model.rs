//! `swerl model ...`: policy-model utilities. Each utility is a subcommand of [`Args`].

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::{json, Value};

/// Policy-model utilities.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Print the per-token log-probs (and optionally logits) of token sequences as JSON, so any
    /// other implementation can be cross-checked against ours.
    ///
    /// Output per sequence: {"tokens": [...], "logprobs": [null, lp_1, ...]} where lp_i is
    /// log p(token i | tokens before it); with --logits also "logits": [T][V] (row i predicts
    /// token i + 1). One sequence in gives one object out; a list of sequences gives a list.
    Score(ScoreArgs),
    /// Write a randomly initialised Qwen2 (the tiny config, sized to a tokenizer's vocabulary)
    /// with that tokenizer as a Hugging Face model directory: a starting point for pipeline
    /// runs on this machine, where no pretrained weights can be downloaded.
    Init(InitArgs),
}

#[derive(Debug, clap::Args)]
struct InitArgs {
    /// Directory with tokenizer.json and tokenizer_config.json to size and ship the model with.
    #[arg(long, value_name = "DIR")]
    tokenizer: PathBuf,
    /// Output model directory.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Initialisation seed.
    #[arg(long, default_value_t = 0)]
    seed: i64,
    /// Hidden size (the tiny config's other shapes are kept).
    #[arg(long, default_value_t = 64)]
    hidden: usize,
    /// Decoder layers.
    #[arg(long, default_value_t = 2)]
    layers: usize,
    /// Longest sequence the model takes (the agent's prompts alone are ~1.5k tokens).
    #[arg(long, default_value_t = 16_384)]
    max_positions: usize,
}

#[derive(Debug, clap::Args)]
struct ScoreArgs {
    /// Hugging Face model directory (config.json + model.safetensors or shards).
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// A LoRA adapter (PEFT layout: adapter_config.json + adapter_model.safetensors) to
    /// score with, on top of --model.
    #[arg(long, value_name = "DIR")]
    adapter: Option<PathBuf>,
    /// JSON file holding token ids: [1, 2, 3] or [[1, 2], [3, 4, 5]].
    #[arg(long, value_name = "IDS.json")]
    tokens: PathBuf,
    /// Also print the full logits at every position.
    #[arg(long)]
    logits: bool,
    /// Compute device: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Load the weights as float32 or bfloat16 (default: the checkpoint's dtype).
    #[arg(long)]
    dtype: Option<String>,
    /// Positions per lm_head chunk (bounds memory on long sequences).
    #[arg(long, default_value_t = 1024)]
    chunk: i64,
}

/// Runs the chosen model utility.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Score(args) => score(&args),
        Command::Init(args) => init(&args),
    }
}

fn init(args: &InitArgs) -> anyhow::Result<ExitCode> {
    let chat = swerl_model::chat::ChatTokenizer::from_dir(&args.tokenizer)
        .with_context(|| format!("loading the tokenizer in {}", args.tokenizer.display()))?;
    let mut config = swerl_model::config::Qwen2Config::tiny();
    config.vocab_size = chat.tokenizer().vocab_size();
    anyhow::ensure!(
        args.hidden % config.num_attention_heads == 0,
        "--hidden {} must be a multiple of the {} attention heads",
        args.hidden,
        config.num_attention_heads
    );
    config.hidden_size = args.hidden;
    config.head_dim = args.hidden / config.num_attention_heads;
    config.intermediate_size = args.hidden * 2;
    config.num_hidden_layers = args.layers;
    config.max_position_embeddings = args.max_positions;
    tch::manual_seed(args.seed);
    let model = swerl_model::qwen2::Qwen2::new(config, tch::Device::Cpu, tch::Kind::Float);
    swerl_model::weights::save_model(&model, &args.out, 2 << 30)
        .with_context(|| format!("writing {}", args.out.display()))?;
    swerl_train::rft::copy_tokenizer_files(&args.tokenizer, &args.out)
        .with_context(|| format!("copying tokenizer files into {}", args.out.display()))?;
    println!(
        "wrote {} (vocab {}, hidden {}, {} layers)",
        args.out.display(),
        model.config.vocab_size,
        args.hidden,
        args.layers
    );
    Ok(ExitCode::SUCCESS)
}

fn score(args: &ScoreArgs) -> anyhow::Result<ExitCode> {
    let (sequences, nested) = read_token_file(&args.tokens)?;
    let device = swerl_model::device::resolve_device(&args.device)?;
    let kind = args
        .dtype
        .as_deref()
        .map(swerl_model::weights::kind_from_dtype)
        .transpose()?;
    let model = match &args.adapter {
        None => swerl_model::weights::load_model(&args.model, device, kind)
            .with_context(|| format!("loading the model in {}", args.model.display()))?,
        Some(adapter) => swerl_model::lora::load_adapted(&args.model, adapter, device, kind)
            .with_context(|| {
                format!(
                    "loading the model in {} with the adapter in {}",
                    args.model.display(),
                    adapter.display()
                )
            })?,
    };
    let vocab = model.config.vocab_size;
    let mut out = Vec::with_capacity(sequences.len());
    for (i, tokens) in sequences.iter().enumerate() {
        if let Some(bad) = tokens.iter().find(|&&t| t as usize >= vocab) {
            anyhow::bail!(
                "sequence {i} in {}: token id {bad} is outside the vocabulary of {vocab}",
                args.tokens.display()
            );
        }
        let s = swerl_model::logprobs::score_sequence(&model, tokens, args.chunk, args.logits);
        let logprobs: Vec<Value> = std::iter::once(Value::Null)
            .chain(s.logprobs.iter().map(|&lp| json!(lp)))
            .take(tokens.len())
            .collect();
        let mut item = json!({"tokens": tokens, "logprobs": logprobs});
        if let Some(logits) = s.logits {
            item["logits"] = json!(logits);
        }
        out.push(item);
    }
    let value = if nested {
        Value::Array(out)
    } else {
        out.pop().unwrap_or(Value::Null)
    };
    println!("{value}");
    Ok(ExitCode::SUCCESS)
}

/// Reads `[ids]` or `[[ids], ...]`; returns the sequences and whether the input was nested.
fn read_token_file(path: &std::path::Path) -> anyhow::Result<(Vec<Vec<u32>>, bool)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading token ids from {}", path.display()))?;
    let value: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let nested = value
        .as_array()
        .and_then(|a| a.first())
        .is_some_and(Value::is_array);
    let sequences = if nested {
        serde_json::from_value(value)
    } else {
        serde_json::from_value(value).map(|s| vec![s])
    }
    .with_context(|| {
        format!(
            "{}: expected a list of token ids or a list of such lists",
            path.display()
        )
    })?;
    if sequences.iter().any(Vec::is_empty) {
        anyhow::bail!(
            "{}: every sequence needs at least one token id",
            path.display()
        );
    }
    Ok((sequences, nested))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token_file(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    #[test]
    fn token_file_takes_one_or_many_sequences() {
        let (one, nested) = read_token_file(token_file("[1, 2, 3]").path()).unwrap();
        assert_eq!((one, nested), (vec![vec![1, 2, 3]], false));
        let (many, nested) = read_token_file(token_file("[[1], [2, 3]]").path()).unwrap();
        assert_eq!((many, nested), (vec![vec![1], vec![2, 3]], true));
        assert!(read_token_file(token_file("[[1], []]").path()).is_err());
        assert!(read_token_file(token_file("{\"ids\": 1}").path()).is_err());
    }

    #[test]
    fn scores_the_fixture_model() {
        let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../model/tests/fixtures/tiny-qwen2");
        let tokens = token_file("[22, 506, 217]");
        let args = ScoreArgs {
            model,
            adapter: None,
            tokens: tokens.path().to_path_buf(),
            logits: false,
            device: "cpu".into(),
            dtype: None,
            chunk: 2,
        };
        assert_eq!(score(&args).unwrap(), ExitCode::SUCCESS);
        let out_of_vocab = token_file("[22, 9999]");
        let bad = ScoreArgs {
            tokens: out_of_vocab.path().to_path_buf(),
            ..args
        };
        let err = score(&bad).unwrap_err().to_string();
        assert!(err.contains("outside the vocabulary"), "{err}");
    }
}
