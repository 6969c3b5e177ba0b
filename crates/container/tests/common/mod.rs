//! Shared setup of the container tests: they run for real against the Docker Engine API
//! service that scripts/setup-containers starts, and FAIL (never skip) when it is missing.
#![allow(dead_code)]

use std::time::Duration;

use swerl_container::{ContainerConfig, ContainerFactory, ContainerSandbox};
use swerl_sandbox::{ExecOutput, Limits, Sandbox, SandboxSpec};

/// The factory for the default socket and test image; panics with the fix when absent.
pub fn factory() -> ContainerFactory {
    factory_with(ContainerConfig::default())
}

pub fn factory_with(config: ContainerConfig) -> ContainerFactory {
    match ContainerFactory::new(config) {
        Ok(f) => f,
        Err(e) => panic!("container tests need podman's Docker API service and the test image: run scripts/setup-containers as root first ({e})"),
    }
}

/// A spec with small limits; the container backend takes the repo from the image.
pub fn spec() -> SandboxSpec {
    SandboxSpec {
        env_source: "/nonexistent-env-source".into(),
        workdir: "/testbed".into(),
        limits: Limits {
            memory_bytes: 256 << 20,
            max_processes: 128,
            output_bytes: 10_000,
            command_timeout: Duration::from_secs(60),
            ..Limits::default()
        },
        env: vec![("SWERL_TEST".into(), "1".into())],
        image: None,
        ..Default::default()
    }
}

pub fn sandbox(f: &ContainerFactory) -> ContainerSandbox {
    f.create_container(&spec())
        .expect("create a container sandbox")
}

pub fn run(sb: &mut ContainerSandbox, cmd: &str) -> ExecOutput {
    sb.exec(cmd, Some(Duration::from_secs(60))).expect("exec")
}
