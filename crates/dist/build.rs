//! Compiles the C++ shim over libtorch's c10d (cxx/shim.cpp) into a static library, with the
//! flags torch-sys uses for its own C++ (C++17, `_GLIBCXX_USE_CXX11_ABI` from
//! `LIBTORCH_CXX11_ABI`, default 1), against the libtorch at `LIBTORCH` (set by
//! .cargo/config.toml to `.venv/libtorch`).
//!
//! Where the CUDA development headers are installed (the full `torch==2.11.0` with its NVIDIA
//! wheels, or a CUDA toolkit), it also builds cxx/nccl_plugin.cpp into a shared library that
//! the crate embeds and loads at run time for CUDA process groups; elsewhere the crate is
//! built without it and says so when NCCL is asked for. `SWERL_CUDA_INCLUDE` (a
//! `:`-separated list of directories) adds places to look.

use std::env;
use std::path::{Path, PathBuf};

/// Headers that ProcessGroupNCCL.hpp includes, directly or through ATen's CUDA context
/// (`crt/` and `nv/` come with PyPI's `cuda-toolkit[crt,cccl]`, which torch itself does not
/// pull in).
const CUDA_HEADERS: &[&str] = &[
    "cuda_runtime_api.h",
    "crt/host_config.h",
    "nv/target",
    "cublas_v2.h",
    "cublasLt.h",
    "cusparse.h",
    "cusolverDn.h",
    "nccl.h",
];

fn main() {
    println!("cargo::rustc-check-cfg=cfg(swerl_nccl_plugin)");
    for var in [
        "LIBTORCH",
        "LIBTORCH_CXX11_ABI",
        "SWERL_CUDA_INCLUDE",
        "CUDA_HOME",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    for file in [
        "shim.cpp",
        "shim.h",
        "nccl_plugin.cpp",
        "gloo/declarations.h",
    ] {
        println!("cargo:rerun-if-changed=cxx/{file}");
    }
    let libtorch = PathBuf::from(env::var("LIBTORCH").expect(
        "LIBTORCH is not set: run scripts/setup, which makes .venv/libtorch (.cargo/config.toml points LIBTORCH at it)",
    ));
    let abi = env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_string());
    let lib_dir = libtorch.join("lib");

    compile_shim(&libtorch, &abi);
    println!("cargo:rustc-link-search=native={}", lib_dir.display());
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");

    // No warning when the headers are missing: that is every CPU build, and asking for NCCL at
    // run time says what to do.
    if let Some(cuda) = cuda_include_dirs(&libtorch) {
        match compile_nccl_plugin(&libtorch, &abi, &cuda) {
            Ok(plugin) => {
                println!("cargo:rustc-cfg=swerl_nccl_plugin");
                println!("cargo:rustc-env=SWERL_NCCL_PLUGIN={}", plugin.display());
            }
            // A GPU install whose headers do not fit still gets a working CPU build.
            Err(why) => {
                println!("cargo:warning=swerl-dist: building without the NCCL plugin: {why}")
            }
        }
    }
}

fn torch_includes(libtorch: &Path) -> Vec<PathBuf> {
    vec![
        libtorch.join("include"),
        libtorch.join("include/torch/csrc/api/include"),
    ]
}

/// The flags torch-sys compiles its own C++ with.
fn base_build(libtorch: &Path, abi: &str) -> cc::Build {
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .pic(true)
        .std("c++17")
        .define("_GLIBCXX_USE_CXX11_ABI", abi)
        .define("GLOG_USE_GLOG_EXPORT", None);
    for dir in torch_includes(libtorch) {
        // -isystem: libtorch's headers warn under -Wall; ours should not.
        build.flag("-isystem").flag(dir.display().to_string());
    }
    build
}

fn compile_shim(libtorch: &Path, abi: &str) {
    base_build(libtorch, abi)
        .define("USE_C10D_GLOO", None)
        .flag("-isystem")
        .flag("cxx")
        .warnings(true)
        .flag("-Wno-unused-parameter")
        .file("cxx/shim.cpp")
        .compile("swerl_c10d");
}

/// Include directories holding every header of [`CUDA_HEADERS`], or `None`.
fn cuda_include_dirs(libtorch: &Path) -> Option<Vec<PathBuf>> {
    let mut candidates: Vec<PathBuf> = env::var("SWERL_CUDA_INCLUDE")
        .map(|v| v.split(':').map(PathBuf::from).collect())
        .unwrap_or_default();
    // PyPI's NVIDIA wheels: site-packages/nvidia/<name>/include, next to site-packages/torch.
    let nvidia = libtorch.join("../nvidia");
    if let Ok(entries) = std::fs::read_dir(&nvidia) {
        let mut dirs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path().join("include")))
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        candidates.extend(dirs);
    }
    if let Ok(home) = env::var("CUDA_HOME") {
        candidates.push(PathBuf::from(home).join("include"));
    }
    candidates.push(PathBuf::from("/usr/local/cuda/include"));
    let mut chosen: Vec<PathBuf> = Vec::new();
    for header in CUDA_HEADERS {
        let dir = candidates.iter().find(|d| d.join(header).is_file())?;
        if !chosen.contains(dir) {
            chosen.push(dir.clone());
        }
    }
    Some(chosen)
}

/// Builds cxx/nccl_plugin.cpp into `$OUT_DIR/libswerl_nccl.so`, linked against
/// libtorch_cuda (found through an rpath to libtorch's lib directory, or already loaded).
fn compile_nccl_plugin(libtorch: &Path, abi: &str, cuda: &[PathBuf]) -> Result<PathBuf, String> {
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let plugin = out.join("libswerl_nccl.so");
    let lib_dir = libtorch.join("lib");
    let mut build = base_build(libtorch, abi);
    build.define("USE_C10D_NCCL", None).define("USE_CUDA", None);
    for dir in cuda {
        build.flag("-isystem").flag(dir.display().to_string());
    }
    let mut cmd = build.get_compiler().to_command();
    cmd.arg("-shared")
        .arg("cxx/nccl_plugin.cpp")
        .arg("-o")
        .arg(&plugin)
        .arg(format!("-L{}", lib_dir.display()))
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .args(["-ltorch_cuda", "-ltorch_cpu", "-lc10_cuda", "-lc10"]);
    let status = cmd
        .status()
        .map_err(|e| format!("running the C++ compiler: {e}"))?;
    if !status.success() {
        return Err(format!(
            "compiling cxx/nccl_plugin.cpp against {cuda:?} failed ({status})"
        ));
    }
    Ok(plugin)
}
