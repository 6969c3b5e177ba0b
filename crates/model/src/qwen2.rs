//! The Qwen2 / Qwen2.5 decoder in one file, parameter names matching Hugging Face keys.
//!
//! Shapes use B = batch, T = new positions, S = all key positions (cache + new), H = hidden,
//! Nq / Nkv = query / key-value heads, D = head dim, V = vocab, I = MLP width.
//!
//! Parameters live in a [`nn::VarStore`] under the checkpoint's own paths
//! (`model.layers.3.self_attn.q_proj.weight`, ...), so loading and saving is a name-for-name
//! copy and the trainer's optimizer sees the same names a `state_dict` would. A LoRA
//! adapter ([`crate::lora`]) attaches to the projections without touching those tensors.

use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

use crate::config::{Qwen2Config, RopeScaling, YarnParams};
use crate::lora::{LoraAdapter, LoraError, LoraPair, Target};

/// The parameter `name` under `p`: the tensor already in the store (a model sharing another's
/// weights), else a new one drawn from `init`.
fn param(p: &nn::Path, name: &str, dims: &[i64], init: nn::Init) -> Tensor {
    p.get(name).unwrap_or_else(|| p.var(name, dims, init))
}

/// A projection `y = x W^T (+ b)`, plus the LoRA update when an adapter is attached.
#[derive(Debug)]
struct Linear {
    weight: Tensor,       // [out, in]
    bias: Option<Tensor>, // [out]
    lora: Option<LoraPair>,
}

impl Linear {
    /// Initialised as tch's `nn::linear` (bias drawn first, then the weight), so seeded
    /// random models are what they were before this type replaced it.
    fn new(p: nn::Path, in_dim: i64, out_dim: i64, bias: bool) -> Self {
        let bias = bias.then(|| {
            let bound = 1.0 / (in_dim as f64).sqrt();
            let init = nn::Init::Uniform {
                lo: -bound,
                up: bound,
            };
            param(&p, "bias", &[out_dim], init)
        });
        let init = nn::init::DEFAULT_KAIMING_UNIFORM;
        Linear {
            weight: param(&p, "weight", &[out_dim, in_dim], init),
            bias,
            lora: None,
        }
    }

    /// W + s B A in W's dtype (summed in f32), when an adapter is attached.
    fn merged_weight(&self) -> Option<Tensor> {
        let pair = self.lora.as_ref()?;
        let merged = tch::no_grad(|| self.weight.to_kind(Kind::Float) + pair.delta());
        Some(merged.to_kind(self.weight.kind()))
    }

    /// x [.., in] -> [.., out]; `train` turns the adapter's dropout on.
    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let y = x.linear(&self.weight, self.bias.as_ref());
        match &self.lora {
            None => y,
            Some(lora) => lora.add_to(y, x, train),
        }
    }
}

/// Which keys each query may attend to.
#[derive(Debug)]
pub enum AttnMask {
    /// Query i sees keys 0..=i (no cache, no padding): the fused causal kernel, no mask tensor.
    Causal,
    /// Every query sees every key (one decode step without padding).
    Full,
    /// Boolean [B, 1, T, S]: true where the query may attend to the key.
    Explicit(Tensor),
}

impl AttnMask {
    /// Mask for `q_len` new queries after `past` cached positions, with `key_valid` [B, S]
    /// (S = past + q_len) false at padding. Padding queries attend to themselves so that no
    /// row is empty: an all-masked row gives NaN, and NaN times a zero weight is still NaN.
    pub fn with_padding(key_valid: &Tensor, past: i64, q_len: i64) -> Self {
        let device = key_valid.device();
        let s = past + q_len;
        let q_pos = Tensor::arange_start(past, s, (Kind::Int64, device)).view([q_len, 1]);
        let k_pos = Tensor::arange(s, (Kind::Int64, device)).view([1, s]);
        let causal = k_pos.le_tensor(&q_pos); // [T, S]
        let diagonal = k_pos.eq_tensor(&q_pos);
        let valid = key_valid.to_kind(Kind::Bool).view([-1, 1, 1, s]); // [B, 1, 1, S]
        let allowed = causal
            .unsqueeze(0)
            .unsqueeze(0)
            .logical_and(&valid)
            .logical_or(&diagonal);
        AttnMask::Explicit(allowed)
    }
}

/// Rotary position embedding: inverse frequencies and the YaRN cos/sin scale.
#[derive(Debug)]
pub struct Rope {
    inv_freq: Tensor, // [D/2], f32
    attention_scaling: f64,
}

impl Rope {
    /// Frequencies for `config` (plain RoPE or YaRN), as transformers computes them.
    pub fn new(config: &Qwen2Config, device: Device) -> Self {
        let dim = config.head_dim as i64;
        let exponents = Tensor::arange_start_step(0, dim, 2, (Kind::Float, device)) / dim as f64;
        let pos_freqs = Tensor::from(config.rope_theta as f32)
            .to_device(device)
            .pow(&exponents);
        match &config.rope_scaling {
            None => Rope {
                inv_freq: pos_freqs.reciprocal(),
                attention_scaling: 1.0,
            },
            Some(RopeScaling::Yarn(yarn)) => Self::yarn(yarn, &pos_freqs, config.rope_theta, dim),
        }
    }

    /// YaRN: interpolate low frequencies by `factor`, keep high ones, ramp in between, and
    /// scale cos/sin by the attention factor (semantics of transformers'
    /// `_compute_yarn_parameters`).
    fn yarn(y: &YarnParams, pos_freqs: &Tensor, base: f64, dim: i64) -> Self {
        let get_mscale = |scale: f64, m: f64| {
            if scale <= 1.0 {
                1.0
            } else {
                0.1 * m * scale.ln() + 1.0
            }
        };
        let attention_scaling = match (y.attention_factor, y.mscale, y.mscale_all_dim) {
            (Some(a), _, _) => a,
            (None, Some(m), Some(m_all)) if m != 0.0 && m_all != 0.0 => {
                get_mscale(y.factor, m) / get_mscale(y.factor, m_all)
            }
            _ => get_mscale(y.factor, 1.0),
        };
        let original = y.original_max_position_embeddings as f64;
        let correction_dim = |rotations: f64| {
            dim as f64 * (original / (rotations * 2.0 * std::f64::consts::PI)).ln()
                / (2.0 * base.ln())
        };
        let (mut low, mut high) = (correction_dim(y.beta_fast), correction_dim(y.beta_slow));
        if y.truncate {
            (low, high) = (low.floor(), high.ceil());
        }
        let (low, mut high) = (low.max(0.0), high.min(dim as f64 - 1.0));
        if low == high {
            high += 0.001; // transformers' guard against a zero-width ramp
        }
        let ramp = ((Tensor::arange(dim / 2, (Kind::Float, pos_freqs.device())) - low)
            / (high - low))
            .clamp(0.0, 1.0);
        let extrapolation_factor = 1.0 - ramp;
        let extrapolation = pos_freqs.reciprocal();
        let interpolation = (pos_freqs * y.factor).reciprocal();
        let inv_freq =
            &interpolation * (1.0 - &extrapolation_factor) + &extrapolation * &extrapolation_factor;
        Rope {
            inv_freq,
            attention_scaling,
        }
    }

    /// cos and sin for `position_ids` [B, T], each [B, 1, T, D] in `kind`, computed in f32.
    pub fn cos_sin(&self, position_ids: &Tensor, kind: Kind) -> (Tensor, Tensor) {
        let freqs =
            position_ids.to_kind(Kind::Float).unsqueeze(-1) * self.inv_freq.view([1, 1, -1]);
        let emb = Tensor::cat(&[&freqs, &freqs], -1).unsqueeze(1); // [B, 1, T, D]
        let cos = (emb.cos() * self.attention_scaling).to_kind(kind);
        let sin = (emb.sin() * self.attention_scaling).to_kind(kind);
        (cos, sin)
    }
}

/// x * cos + rotate_half(x) * sin, where rotate_half(x1, x2) = (-x2, x1) over the halves of D.
fn apply_rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Tensor {
    let half = x.size()[3] / 2;
    let (x1, x2) = (x.narrow(3, 0, half), x.narrow(3, half, half));
    let rotated = Tensor::cat(&[&x2.neg(), &x1], 3);
    x * cos + rotated * sin
}

/// Root-mean-square norm, computed in f32 and cast back (as transformers does).
#[derive(Debug)]
pub struct RmsNorm {
    weight: Tensor, // [H]
    eps: f64,
}

impl RmsNorm {
    fn new(p: nn::Path, size: i64, eps: f64) -> Self {
        RmsNorm {
            weight: param(&p, "weight", &[size], nn::Init::Const(1.0)),
            eps,
        }
    }
}

impl Module for RmsNorm {
    fn forward(&self, x: &Tensor) -> Tensor {
        let kind = x.kind();
        let x32 = x.to_kind(Kind::Float);
        let variance = x32.pow_tensor_scalar(2).mean_dim(-1, true, Kind::Float);
        let normed = x32 * (variance + self.eps).rsqrt();
        &self.weight * normed.to_kind(kind)
    }
}

/// Pre-allocated key/value cache for one layer: [B, Nkv, capacity, D] each.
#[derive(Debug)]
struct LayerCache {
    k: Tensor,
    v: Tensor,
}

/// Key/value cache for incremental decoding. Writes happen in place, so use it only
/// without gradients (generation runs under `tch::no_grad`).
#[derive(Debug)]
pub struct KvCache {
    layers: Vec<LayerCache>,
    len: i64,
    capacity: i64,
}

impl KvCache {
    /// Room for `capacity` positions of `batch` sequences.
    pub fn new(
        config: &Qwen2Config,
        batch: i64,
        capacity: i64,
        kind: Kind,
        device: Device,
    ) -> Self {
        let shape = [
            batch,
            config.num_key_value_heads as i64,
            capacity,
            config.head_dim as i64,
        ];
        let layers = (0..config.num_hidden_layers)
            .map(|_| LayerCache {
                k: Tensor::zeros(shape, (kind, device)),
                v: Tensor::zeros(shape, (kind, device)),
            })
            .collect();
        KvCache {
            layers,
            len: 0,
            capacity,
        }
    }

    /// Positions already cached.
    pub fn len(&self) -> i64 {
        self.len
    }

    /// True before the first forward.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies the first `len` positions of `kv` into row `row` at columns `col..col + len`,
    /// before the first forward: a prefix whose keys and values were computed earlier.
    /// The next forward must start at or before `col + len` (see [`KvCache::skip_to`]).
    pub fn write_prefix(&mut self, row: i64, col: i64, kv: &SequenceKv, len: i64) {
        assert!(
            len <= kv.len && col + len <= self.capacity,
            "prefix out of range"
        );
        for (layer, (k, v)) in self.layers.iter_mut().zip(&kv.layers) {
            layer
                .k
                .get(row)
                .narrow(1, col, len)
                .copy_(&k.narrow(1, 0, len));
            layer
                .v
                .get(row)
                .narrow(1, col, len)
                .copy_(&v.narrow(1, 0, len));
        }
    }

    /// Marks the first `len` columns as filled, so that the next forward writes from there:
    /// every row must hold padding or a prefix ([`KvCache::write_prefix`]) in them.
    pub fn skip_to(&mut self, len: i64) {
        assert!(
            self.is_empty() && len <= self.capacity,
            "skip_to on a used cache"
        );
        self.len = len;
    }

    /// The keys and values of row `row` at columns `col..col + len`, copied out.
    pub fn read_row(&self, row: i64, col: i64, len: i64) -> SequenceKv {
        assert!(
            col + len <= self.len,
            "reading positions the cache has not filled"
        );
        let copy = |t: &Tensor| t.get(row).narrow(1, col, len).copy();
        SequenceKv {
            len,
            layers: self
                .layers
                .iter()
                .map(|l| (copy(&l.k), copy(&l.v)))
                .collect(),
        }
    }
}

/// The keys and values of one sequence's first `len` tokens, every layer ([Nkv, len, D]
/// each): what a later generation that continues the same tokens can reuse instead of
/// recomputing them. Only valid for the weights that computed it.
#[derive(Debug)]
pub struct SequenceKv {
    pub len: i64,
    pub layers: Vec<(Tensor, Tensor)>,
}

impl SequenceKv {
    /// Bytes held by the tensors.
    pub fn bytes(&self) -> usize {
        self.layers
            .iter()
            .map(|(k, v)| (k.numel() + v.numel()) * k.kind().elt_size_in_bytes())
            .sum()
    }

    /// Another handle to the same tensors (no copy).
    pub fn share(&self) -> SequenceKv {
        SequenceKv {
            len: self.len,
            layers: self
                .layers
                .iter()
                .map(|(k, v)| (k.shallow_clone(), v.shallow_clone()))
                .collect(),
        }
    }
}

/// Grouped-query self-attention with q/k/v biases.
#[derive(Debug)]
struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    n_heads: i64,
    n_kv_heads: i64,
    head_dim: i64,
}

impl Attention {
    fn new(p: nn::Path, c: &Qwen2Config) -> Self {
        let (h, d) = (c.hidden_size as i64, c.head_dim as i64);
        let (nq, nkv) = (c.num_attention_heads as i64, c.num_key_value_heads as i64);
        Attention {
            q_proj: Linear::new(&p / "q_proj", h, nq * d, true),
            k_proj: Linear::new(&p / "k_proj", h, nkv * d, true),
            v_proj: Linear::new(&p / "v_proj", h, nkv * d, true),
            o_proj: Linear::new(&p / "o_proj", nq * d, h, false),
            n_heads: nq,
            n_kv_heads: nkv,
            head_dim: d,
        }
    }

    /// x [B, T, H] -> [B, T, H]. With a cache, this step's keys/values are appended first.
    fn forward(
        &self,
        x: &Tensor,
        inputs: &LayerInputs,
        cache: Option<(&mut LayerCache, i64)>,
    ) -> Tensor {
        let (b, t) = (x.size()[0], x.size()[1]);
        let (rope, train) = (&inputs.rope, inputs.lora_dropout);
        let heads = |y: Tensor, n: i64| y.view([b, t, n, self.head_dim]).transpose(1, 2);
        let q = apply_rope(
            &heads(self.q_proj.forward(x, train), self.n_heads),
            &rope.0,
            &rope.1,
        ); // [B, Nq, T, D]
        let k = apply_rope(
            &heads(self.k_proj.forward(x, train), self.n_kv_heads),
            &rope.0,
            &rope.1,
        ); // [B, Nkv, T, D]
        let v = heads(self.v_proj.forward(x, train), self.n_kv_heads); // [B, Nkv, T, D]
        let (k, v) = match cache {
            None => (k, v),
            Some((layer, past)) => {
                layer.k.narrow(2, past, t).copy_(&k);
                layer.v.narrow(2, past, t).copy_(&v);
                (
                    layer.k.narrow(2, 0, past + t),
                    layer.v.narrow(2, 0, past + t),
                ) // [B, Nkv, S, D]
            }
        };
        let scale = Some(1.0 / (self.head_dim as f64).sqrt());
        let out = match &inputs.mask {
            AttnMask::Causal => Tensor::scaled_dot_product_attention::<Tensor>(
                &q, &k, &v, None, 0.0, true, scale, true,
            ),
            AttnMask::Full => Tensor::scaled_dot_product_attention::<Tensor>(
                &q, &k, &v, None, 0.0, false, scale, true,
            ),
            AttnMask::Explicit(m) => {
                Tensor::scaled_dot_product_attention(&q, &k, &v, Some(m), 0.0, false, scale, true)
            }
        }; // [B, Nq, T, D]
        let out = out
            .transpose(1, 2)
            .contiguous()
            .view([b, t, self.n_heads * self.head_dim]);
        self.o_proj.forward(&out, train)
    }
}

/// SwiGLU feed-forward: down(silu(gate(x)) * up(x)).
#[derive(Debug)]
struct Mlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

impl Mlp {
    fn new(p: nn::Path, c: &Qwen2Config) -> Self {
        let (h, i) = (c.hidden_size as i64, c.intermediate_size as i64);
        Mlp {
            gate_proj: Linear::new(&p / "gate_proj", h, i, false),
            up_proj: Linear::new(&p / "up_proj", h, i, false),
            down_proj: Linear::new(&p / "down_proj", i, h, false),
        }
    }

    /// x [B, T, H] -> [B, T, H].
    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let gated = self.gate_proj.forward(x, train).silu() * self.up_proj.forward(x, train);
        self.down_proj.forward(&gated, train)
    }
}

/// One pre-norm decoder block.
#[derive(Debug)]
struct DecoderLayer {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: Mlp,
}

impl DecoderLayer {
    fn new(p: nn::Path, c: &Qwen2Config) -> Self {
        let (h, eps) = (c.hidden_size as i64, c.rms_norm_eps);
        DecoderLayer {
            input_layernorm: RmsNorm::new(&p / "input_layernorm", h, eps),
            self_attn: Attention::new(&p / "self_attn", c),
            post_attention_layernorm: RmsNorm::new(&p / "post_attention_layernorm", h, eps),
            mlp: Mlp::new(&p / "mlp", c),
        }
    }

    fn forward(
        &self,
        x: &Tensor,
        inputs: &LayerInputs,
        cache: Option<(&mut LayerCache, i64)>,
    ) -> Tensor {
        let x = x + self
            .self_attn
            .forward(&self.input_layernorm.forward(x), inputs, cache);
        let normed = self.post_attention_layernorm.forward(&x);
        &x + self.mlp.forward(&normed, inputs.lora_dropout)
    }

    /// The projection `target` of this layer.
    fn projection(&self, target: Target) -> &Linear {
        match target {
            Target::QProj => &self.self_attn.q_proj,
            Target::KProj => &self.self_attn.k_proj,
            Target::VProj => &self.self_attn.v_proj,
            Target::OProj => &self.self_attn.o_proj,
            Target::GateProj => &self.mlp.gate_proj,
            Target::UpProj => &self.mlp.up_proj,
            Target::DownProj => &self.mlp.down_proj,
        }
    }

    fn projection_mut(&mut self, target: Target) -> &mut Linear {
        match target {
            Target::QProj => &mut self.self_attn.q_proj,
            Target::KProj => &mut self.self_attn.k_proj,
            Target::VProj => &mut self.self_attn.v_proj,
            Target::OProj => &mut self.self_attn.o_proj,
            Target::GateProj => &mut self.mlp.gate_proj,
            Target::UpProj => &mut self.mlp.up_proj,
            Target::DownProj => &mut self.mlp.down_proj,
        }
    }
}

/// Per-forward inputs shared by all layers: rotary tables, the attention mask, and whether
/// the adapter's dropout is on.
#[derive(Debug)]
pub struct LayerInputs {
    /// cos, sin: [B, 1, T, D].
    pub rope: (Tensor, Tensor),
    pub mask: AttnMask,
    /// Dropout on the LoRA adapter's input: the trainer's forward passes only, never
    /// generation or scoring (the only dropout Qwen2 has at training time here).
    pub lora_dropout: bool,
}

/// The Qwen2 causal language model.
#[derive(Debug)]
pub struct Qwen2 {
    pub config: Qwen2Config,
    /// All parameters, named as in the Hugging Face checkpoint.
    pub vs: nn::VarStore,
    embed_tokens: Tensor, // [V, H]
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    lm_head: Option<Tensor>, // [V, H]; None when tied to embed_tokens
    rope: Rope,
    /// The attached adapter, whose factors the targeted projections add in.
    lora: Option<LoraAdapter>,
}

impl Qwen2 {
    /// A randomly initialised model on `device` in `kind` (f32 or bf16).
    pub fn new(config: Qwen2Config, device: Device, kind: Kind) -> Self {
        let mut vs = nn::VarStore::new(device);
        let model = Self::build(config, &vs);
        if kind != Kind::Float {
            vs.set_kind(kind);
        }
        Qwen2 { vs, ..model }
    }

    /// The model over the parameters of `vs`: those already there are used as they are
    /// (no copy), missing ones are created randomly (f32).
    fn build(config: Qwen2Config, vs: &nn::VarStore) -> Self {
        let root = vs.root();
        let model = &root / "model";
        let (v, h) = (config.vocab_size as i64, config.hidden_size as i64);
        let embedding_init = nn::Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        };
        let embed_tokens = param(
            &(&model / "embed_tokens"),
            "weight",
            &[v, h],
            embedding_init,
        );
        let layers = (0..config.num_hidden_layers)
            .map(|i| DecoderLayer::new(&model / "layers" / i, &config))
            .collect();
        let norm = RmsNorm::new(&model / "norm", h, config.rms_norm_eps);
        let lm_head = (!config.tie_word_embeddings)
            .then(|| param(&(&root / "lm_head"), "weight", &[v, h], embedding_init));
        let rope = Rope::new(&config, vs.device());
        Qwen2 {
            config,
            vs: nn::VarStore::new(vs.device()),
            embed_tokens,
            layers,
            norm,
            lm_head,
            rope,
            lora: None,
        }
    }

    /// Another model over the same base tensors (no copy: a change to one is a change to
    /// both), with no adapter: the inference engine's view of a LoRA trainer's frozen base,
    /// so that trainer and sampler hold one copy of the weights between them.
    pub fn share_base(&self) -> Qwen2 {
        let vs = nn::VarStore::new(self.device());
        for (name, tensor) in self.vs.variables() {
            crate::lora::add_tensor(&vs, &name, tensor, false);
        }
        let model = Self::build(self.config.clone(), &vs);
        Qwen2 { vs, ..model }
    }

    /// Attaches `adapter` to the projections it targets and freezes every base parameter
    /// (no gradient is ever computed for them again, so only the adapter trains); an adapter
    /// attached before is detached and returned.
    pub fn attach_lora(&mut self, adapter: LoraAdapter) -> Result<Option<LoraAdapter>, LoraError> {
        adapter.check_fits(&self.config)?;
        let previous = self.detach_lora();
        for base in self.vs.variables().values() {
            let _ = base.set_requires_grad(false);
        }
        for (i, layer) in self.layers.iter_mut().enumerate() {
            for &target in &adapter.config.target_modules {
                layer.projection_mut(target).lora = adapter.pair(i, target);
            }
        }
        self.lora = Some(adapter);
        Ok(previous)
    }

    /// Removes the attached adapter (the base stays frozen).
    pub fn detach_lora(&mut self) -> Option<LoraAdapter> {
        for layer in &mut self.layers {
            for target in Target::ALL {
                layer.projection_mut(target).lora = None;
            }
        }
        self.lora.take()
    }

    /// The attached adapter.
    pub fn lora(&self) -> Option<&LoraAdapter> {
        self.lora.as_ref()
    }

    /// Folds the attached adapter into the base weights, W <- W + s B A (summed in f32,
    /// rounded once to the weights' dtype), and detaches it: the plain model that computes
    /// what the adapted one did, as PEFT's `merge_and_unload`. Returns the adapter.
    pub fn merge_lora(&mut self) -> Option<LoraAdapter> {
        tch::no_grad(|| {
            for layer in &mut self.layers {
                for target in Target::ALL {
                    let projection = layer.projection_mut(target);
                    if let Some(merged) = projection.merged_weight() {
                        projection.weight.copy_(&merged);
                    }
                }
            }
        });
        self.detach_lora()
    }

    /// The parameter `name` with the attached adapter's update folded in (as
    /// [`Qwen2::merge_lora`] computes it) when the adapter targets it; None for every other
    /// parameter. The model is not changed: saving a merged model one tensor at a time.
    pub fn merged_weight(&self, name: &str) -> Option<Tensor> {
        let rest = name.strip_prefix("model.layers.")?;
        let (index, rest) = rest.split_once('.')?;
        let (block, rest) = rest.split_once('.')?;
        let target = Target::from_name(rest.strip_suffix(".weight")?)?;
        let layer = self.layers.get(index.parse::<usize>().ok()?)?;
        (target.block() == block)
            .then(|| layer.projection(target).merged_weight())
            .flatten()
    }

    /// Device of the parameters.
    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// Floating-point kind of the parameters.
    pub fn kind(&self) -> Kind {
        self.embed_tokens.kind()
    }

    /// The output projection [V, H] (the embedding matrix when tied).
    pub fn lm_head_weight(&self) -> &Tensor {
        self.lm_head.as_ref().unwrap_or(&self.embed_tokens)
    }

    /// Number of decoder layers.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Token embeddings: ids [B, T] -> [B, T, H].
    pub fn embed(&self, input_ids: &Tensor) -> Tensor {
        Tensor::embedding(&self.embed_tokens, input_ids, -1, false, false)
    }

    /// Rotary tables and mask for a full forward of `input_ids` [B, T]; `attention_mask`
    /// [B, T] (1 = token, 0 = padding) is needed only for left padding.
    pub fn layer_inputs(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>) -> LayerInputs {
        let (b, t) = (input_ids.size()[0], input_ids.size()[1]);
        let (positions, mask) = match attention_mask {
            None => (
                Tensor::arange(t, (Kind::Int64, self.device())).expand([b, t], false),
                AttnMask::Causal,
            ),
            Some(m) => (positions_from_mask(m), AttnMask::with_padding(m, 0, t)),
        };
        LayerInputs {
            rope: self.rope.cos_sin(&positions, self.kind()),
            mask,
            lora_dropout: false,
        }
    }

    /// Decoder layer `index`: [B, T, H] -> [B, T, H], no cache.
    pub fn layer_forward(&self, index: usize, x: &Tensor, inputs: &LayerInputs) -> Tensor {
        self.layers[index].forward(x, inputs, None)
    }

    /// Final RMSNorm: [.., H] -> [.., H].
    pub fn final_norm(&self, x: &Tensor) -> Tensor {
        self.norm.forward(x)
    }

    /// Final hidden states (after the last norm) for `input_ids` [B, T] -> [B, T, H].
    pub fn forward_hidden(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>) -> Tensor {
        let inputs = self.layer_inputs(input_ids, attention_mask);
        self.run_layers(input_ids, &inputs)
    }

    /// [`Qwen2::forward_hidden`] as a training pass: the adapter's dropout is on.
    pub fn forward_hidden_train(&self, input_ids: &Tensor) -> Tensor {
        let inputs = LayerInputs {
            lora_dropout: true,
            ..self.layer_inputs(input_ids, None)
        };
        self.run_layers(input_ids, &inputs)
    }

    fn run_layers(&self, input_ids: &Tensor, inputs: &LayerInputs) -> Tensor {
        let x = (0..self.layers.len()).fold(self.embed(input_ids), |x, i| {
            self.layer_forward(i, &x, inputs)
        });
        self.final_norm(&x)
    }

    /// Logits [B, T, V] for every position. Materialises [B, T, V]: for log-probs of long
    /// sequences use [`crate::logprobs`] instead.
    pub fn forward(&self, input_ids: &Tensor) -> Tensor {
        self.forward_hidden(input_ids, None)
            .matmul(&self.lm_head_weight().tr())
    }

    /// Incremental forward: `input_ids` [B, T] at `position_ids` [B, T] after `cache.len()`
    /// cached positions; `key_valid` [B, len + T] marks padding (None = no padding).
    /// Returns final hidden states [B, T, H] and advances the cache.
    pub fn forward_cached(
        &self,
        input_ids: &Tensor,
        position_ids: &Tensor,
        key_valid: Option<&Tensor>,
        cache: &mut KvCache,
    ) -> Tensor {
        let t = input_ids.size()[1];
        let past = cache.len;
        assert!(
            past + t <= cache.capacity,
            "KV cache holds {} positions; {} needed",
            cache.capacity,
            past + t
        );
        let mask = match key_valid {
            Some(valid) => AttnMask::with_padding(valid, past, t),
            None if past == 0 => AttnMask::Causal,
            None if t == 1 => AttnMask::Full,
            None => AttnMask::with_padding(
                &Tensor::ones([input_ids.size()[0], past + t], (Kind::Bool, self.device())),
                past,
                t,
            ),
        };
        let inputs = LayerInputs {
            rope: self.rope.cos_sin(position_ids, self.kind()),
            mask,
            lora_dropout: false,
        };
        let mut x = self.embed(input_ids);
        for (layer, layer_cache) in self.layers.iter().zip(cache.layers.iter_mut()) {
            x = layer.forward(&x, &inputs, Some((layer_cache, past)));
        }
        cache.len += t;
        self.final_norm(&x)
    }
}

/// Position ids from a left-padded mask [B, T]: 0, 1, .. from each row's first token
/// (padding positions get 0; their keys are masked anyway).
pub fn positions_from_mask(mask: &Tensor) -> Tensor {
    (mask.to_kind(Kind::Int64).cumsum(-1, Kind::Int64) - 1).clamp_min(0)
}
