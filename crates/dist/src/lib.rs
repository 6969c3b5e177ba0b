//! Multi-process training over libtorch's own c10d, the engine behind torch.distributed.
//!
//! - [`env`]: the launch variables of a PyTorch job (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`,
//!   `MASTER_ADDR`, `MASTER_PORT`) and the rendezvous they lead to;
//! - [`group`]: a [`ProcessGroup`] with c10d's collectives (all-reduce, reduce-scatter,
//!   all-gather, broadcast, barrier), gloo on CPU and NCCL on CUDA, every wait bounded by
//!   a timeout;
//! - [`launch`]: N ranks of one node, supervised, without Python;
//! - `ffi` (private): the C interface of the C++ shim in `cxx/`, the crate's only unsafe
//!   code.
//!
//! No collective is implemented here: every one is c10d's, called as torch.distributed calls
//! it. What this crate is not: it knows nothing about models or training; the train crate
//! decides what to reduce and when.

pub mod env;
pub mod error;
mod ffi;
pub mod group;
pub mod launch;
mod nccl;

pub use env::{init_process_group, LaunchEnv};
pub use error::DistError;
pub use group::{Backend, ProcessGroup, ReduceOp};
pub use launch::{launch, LaunchSpec, RankExit, StoreServer};
pub use nccl::nccl_built;

/// Drops `t`'s accumulated gradient (PyTorch's `t.grad = None`), which tch cannot do: the
/// next backward then starts a gradient shaped like `t` is at that time. Sharded training
/// needs it when a layer's parameters change shape between gathered and released.
pub fn drop_grad(t: &mut tch::Tensor) -> Result<(), DistError> {
    ffi::drop_grad(t).map_err(DistError::Usage)
}
