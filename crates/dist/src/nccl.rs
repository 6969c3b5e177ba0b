//! The NCCL backend, loaded at run time from the plugin build.rs embedded (see
//! cxx/nccl_plugin.cpp for why it is a separate library).
//!
//! The plugin links libtorch_cuda.so, so it loads only where PyTorch's CUDA libraries are
//! installed; the caller loads libtorch_cuda.so first when it resolves a `cuda` device.

use crate::error::DistError;
use crate::ffi::BackendFactory;

#[cfg(swerl_nccl_plugin)]
pub(crate) fn factory() -> Result<BackendFactory, DistError> {
    use std::sync::OnceLock;
    static PLUGIN: &[u8] = include_bytes!(env!("SWERL_NCCL_PLUGIN"));
    static LOADED: OnceLock<Result<BackendFactory, String>> = OnceLock::new();
    LOADED
        .get_or_init(|| crate::ffi::load_backend_plugin("swerl_nccl", PLUGIN, "swerl_nccl_backend"))
        .clone()
        .map_err(|e| {
            DistError::Nccl(format!(
                "loading the NCCL plugin: {e}; install torch==2.11.0 with its NVIDIA dependencies into .venv (configs/recipes/cuda.sh)"
            ))
        })
}

#[cfg(not(swerl_nccl_plugin))]
pub(crate) fn factory() -> Result<BackendFactory, DistError> {
    Err(DistError::Nccl(
        "this swerl was built where the CUDA development headers were missing, so without its NCCL plugin: install torch==2.11.0 with its NVIDIA dependencies into .venv (configs/recipes/cuda.sh) and rebuild"
            .to_string(),
    ))
}

/// Whether this build carries the NCCL plugin.
pub fn nccl_built() -> bool {
    cfg!(swerl_nccl_plugin)
}
