//! A process group: this rank's handle on the collectives of all ranks.
//!
//! A group of one rank is a plain value whose collectives return their input, so training
//! code calls the same functions whether it runs alone or in a group of N.

use std::time::Duration;

use tch::{Device, Kind, Tensor};

use crate::error::DistError;
use crate::ffi::{RawGroup, RawStore};

/// Which c10d backend carries the collectives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// ProcessGroupGloo: CPU tensors, TCP between ranks.
    Gloo,
    /// ProcessGroupNCCL: CUDA tensors, NVLink / InfiniBand / TCP through NCCL.
    Nccl,
}

impl Backend {
    /// gloo for CPU tensors, NCCL for CUDA ones (what torch.distributed users pick).
    pub fn for_device(device: Device) -> Self {
        match device {
            Device::Cuda(_) => Backend::Nccl,
            _ => Backend::Gloo,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Gloo => "gloo",
            Backend::Nccl => "nccl",
        }
    }
}

/// How a reduction combines the ranks' values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReduceOp {
    Sum,
    Max,
    Min,
}

impl ReduceOp {
    fn code(self) -> i32 {
        match self {
            ReduceOp::Sum => 0,
            ReduceOp::Max => 1,
            ReduceOp::Min => 2,
        }
    }
}

/// This rank's membership of a group of `world_size` ranks.
#[derive(Debug)]
pub struct ProcessGroup {
    rank: usize,
    world_size: usize,
    device: Device,
    timeout: Duration,
    /// `None` for a group of one rank.
    raw: Option<RawGroup>,
    /// The rendezvous store, kept for the group's life (rank 0 may be hosting it).
    _store: Option<RawStore>,
    backend: Backend,
}

impl ProcessGroup {
    /// A group of one rank on `device`: every collective is the identity.
    pub fn single(device: Device) -> Self {
        ProcessGroup {
            rank: 0,
            world_size: 1,
            device,
            timeout: Duration::MAX,
            raw: None,
            _store: None,
            backend: Backend::for_device(device),
        }
    }

    pub(crate) fn from_raw(
        raw: RawGroup,
        store: RawStore,
        rank: usize,
        world_size: usize,
        device: Device,
        backend: Backend,
        timeout: Duration,
    ) -> Self {
        ProcessGroup {
            rank,
            world_size,
            device,
            timeout,
            raw: Some(raw),
            _store: Some(store),
            backend,
        }
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn world_size(&self) -> usize {
        self.world_size
    }

    /// Rank 0 writes checkpoints, metrics and reports.
    pub fn is_main(&self) -> bool {
        self.rank == 0
    }

    /// Where this rank's collective buffers must live (CPU for gloo, its GPU for NCCL).
    pub fn device(&self) -> Device {
        self.device
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The longest any collective waits for the other ranks before failing.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Changes how long every later collective waits for the other ranks.
    pub fn set_timeout(&mut self, timeout: Duration) -> Result<(), DistError> {
        self.timeout = timeout;
        match self.raw.as_mut() {
            None => Ok(()),
            Some(raw) => raw
                .set_timeout(i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX))
                .map_err(DistError::Usage),
        }
    }

    /// Reduces `t` over all ranks, in place: afterwards every rank holds the result.
    pub fn all_reduce(&mut self, t: &mut Tensor, op: ReduceOp) -> Result<(), DistError> {
        self.check_buffer("all_reduce", t)?;
        let (rank, world) = (self.rank, self.world_size);
        match self.raw.as_mut() {
            None => Ok(()),
            Some(raw) => raw
                .all_reduce(t, op.code())
                .map_err(|m| DistError::collective("all_reduce", rank, world, m)),
        }
    }

    /// Reduces `input` ([world_size * n] elements, flat) over all ranks and leaves this
    /// rank's slice `[rank * n, (rank + 1) * n)` of the result in `output` ([n] elements).
    pub fn reduce_scatter(
        &mut self,
        output: &mut Tensor,
        input: &Tensor,
        op: ReduceOp,
    ) -> Result<(), DistError> {
        self.check_buffer("reduce_scatter output", output)?;
        self.check_buffer("reduce_scatter input", input)?;
        self.check_sizes("reduce_scatter", output, input)?;
        let (rank, world) = (self.rank, self.world_size);
        let mut input = input.shallow_clone();
        match self.raw.as_mut() {
            None => {
                tch::no_grad(|| output.copy_(&input.reshape_as(output)));
                Ok(())
            }
            Some(raw) => raw
                .reduce_scatter(output, &mut input, op.code())
                .map_err(|m| DistError::collective("reduce_scatter", rank, world, m)),
        }
    }

    /// Concatenates every rank's `input` ([n] elements) in rank order into `output`
    /// ([world_size * n] elements, flat) on every rank.
    pub fn all_gather(&mut self, output: &mut Tensor, input: &Tensor) -> Result<(), DistError> {
        self.check_buffer("all_gather output", output)?;
        self.check_buffer("all_gather input", input)?;
        self.check_sizes("all_gather", input, output)?;
        let (rank, world) = (self.rank, self.world_size);
        let mut input = input.shallow_clone();
        match self.raw.as_mut() {
            None => {
                tch::no_grad(|| output.copy_(&input.reshape_as(output)));
                Ok(())
            }
            Some(raw) => raw
                .all_gather(output, &mut input)
                .map_err(|m| DistError::collective("all_gather", rank, world, m)),
        }
    }

    /// Copies rank `root`'s `t` into every rank's `t`.
    pub fn broadcast(&mut self, t: &mut Tensor, root: usize) -> Result<(), DistError> {
        self.check_buffer("broadcast", t)?;
        let (rank, world) = (self.rank, self.world_size);
        match self.raw.as_mut() {
            None => Ok(()),
            Some(raw) => raw
                .broadcast(t, root)
                .map_err(|m| DistError::collective("broadcast", rank, world, m)),
        }
    }

    /// Returns once every rank has reached its barrier.
    pub fn barrier(&mut self) -> Result<(), DistError> {
        let (rank, world) = (self.rank, self.world_size);
        match self.raw.as_mut() {
            None => Ok(()),
            Some(raw) => raw
                .barrier()
                .map_err(|m| DistError::collective("barrier", rank, world, m)),
        }
    }

    /// Reduces a few numbers (counts, sums of losses, squared norms) over all ranks, in f64.
    pub fn all_reduce_f64(&mut self, values: &[f64], op: ReduceOp) -> Result<Vec<f64>, DistError> {
        if self.raw.is_none() || values.is_empty() {
            return Ok(values.to_vec());
        }
        let mut t = Tensor::from_slice(values).to_device(self.device);
        self.all_reduce(&mut t, op)?;
        Ok(Vec::<f64>::try_from(t.to_device(Device::Cpu)).expect("f64 values"))
    }

    /// Every rank's `values` (the same length on every rank), in rank order.
    pub fn all_gather_f64(&mut self, values: &[f64]) -> Result<Vec<Vec<f64>>, DistError> {
        if self.raw.is_none() {
            return Ok(vec![values.to_vec()]);
        }
        let n = values.len() as i64;
        let input = Tensor::from_slice(values).to_device(self.device);
        let mut output = Tensor::zeros([n * self.world_size as i64], (Kind::Double, self.device));
        self.all_gather(&mut output, &input)?;
        let flat = Vec::<f64>::try_from(output.to_device(Device::Cpu)).expect("f64 values");
        Ok(flat
            .chunks(values.len().max(1))
            .map(|c| c.to_vec())
            .collect())
    }

    /// Fails unless `t` can be handed to c10d: dense, contiguous, on the group's device.
    fn check_buffer(&self, what: &str, t: &Tensor) -> Result<(), DistError> {
        let problem = if !t.is_contiguous() {
            Some("is not contiguous".to_string())
        } else if t.device() != self.device {
            Some(format!(
                "is on {:?}, the group on {:?}",
                t.device(),
                self.device
            ))
        } else {
            None
        };
        match problem {
            None => Ok(()),
            Some(p) => Err(DistError::Usage(format!("{what}: the tensor {p}"))),
        }
    }

    /// `big` must hold exactly `world_size` times `small`'s elements, of the same kind.
    fn check_sizes(&self, what: &str, small: &Tensor, big: &Tensor) -> Result<(), DistError> {
        let (s, b) = (small.numel(), big.numel());
        if b != s * self.world_size || small.kind() != big.kind() {
            return Err(DistError::Usage(format!(
                "{what}: expected {} x {s} elements of {:?}, got {b} of {:?}",
                self.world_size,
                small.kind(),
                big.kind()
            )));
        }
        Ok(())
    }
}
