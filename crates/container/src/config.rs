//! Backend-specific settings of the container sandbox.

use std::time::Duration;

/// Where and how containers are made. Resource limits come from the sandbox spec's
/// [`swerl_sandbox::Limits`], as for the local backend.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContainerConfig {
    /// Docker Engine API endpoint, `unix:///path.sock` (podman's service or dockerd).
    pub socket: String,
    /// Image used when the caller names none (a task's own image wins).
    pub image: String,
    /// The repository's path inside the image; `None` uses the sandbox spec's workdir.
    pub workdir: Option<String>,
    /// Copy the spec's prepared repository (`env_source/repo`) into the workdir at create
    /// time: for a generic image (the bundled tasks); SWE-bench images carry their repo.
    pub copy_repo: bool,
    /// When the repository comes from the image: replace its git history by one commit of
    /// the working tree at create time. SWE-bench images keep the upstream history, fix
    /// included, in `.git`; an agent could read the answer from it (docs/method.md section 10,
    /// point 10).
    /// Turn off only for images known to hold no future history.
    pub squash_history: bool,
    /// Containers of this factory alive at once; `create` waits up to `slot_wait` for one.
    pub max_containers: usize,
    #[serde(with = "secs")]
    pub slot_wait: Duration,
    /// Pull a missing image from its registry (otherwise: a clear error).
    pub pull: bool,
    /// CPUs per container (fractions allowed); 0 means no CPU limit. The default is the
    /// paper's 0.5 CPU per agent (docs/method.md, section 7); memory and processes
    /// come from the spec's `Limits` and are set on each container too.
    pub cpus: f64,
    /// Soft and hard RLIMIT_NOFILE; must stay below the host's hard limit or the runtime
    /// refuses to start the container.
    pub nofile: (u64, u64),
    /// Soft and hard RLIMIT_NPROC (the pids cgroup is the real process bound).
    pub nproc: (u64, u64),
    /// Attempts for a daemon call that fails transiently (connection refused, 5xx, timeout).
    pub attempts: u32,
    /// First backoff between attempts; doubles each time.
    #[serde(with = "secs")]
    pub backoff: Duration,
    /// Time limit of one daemon request (create, start, remove, ...).
    #[serde(with = "secs")]
    pub request_timeout: Duration,
}

/// Default endpoint: the podman service started by scripts/setup-containers.
pub const DEFAULT_SOCKET: &str = "unix:///run/swerl-podman.sock";

/// The small local test image built by scripts/setup-containers.
pub const TEST_IMAGE: &str = "swerl-test:bookworm";

impl Default for ContainerConfig {
    fn default() -> Self {
        ContainerConfig {
            socket: DEFAULT_SOCKET.to_string(),
            image: TEST_IMAGE.to_string(),
            workdir: Some("/testbed".to_string()),
            copy_repo: false,
            squash_history: true,
            max_containers: 16,
            slot_wait: Duration::from_secs(600),
            pull: false,
            cpus: 0.5,
            nofile: (1024, 4096),
            nproc: (1024, 4096),
            attempts: 4,
            backoff: Duration::from_millis(500),
            request_timeout: Duration::from_secs(120),
        }
    }
}

impl ContainerConfig {
    /// The socket's filesystem path (the endpoint without `unix://`).
    pub fn socket_path(&self) -> &str {
        self.socket.strip_prefix("unix://").unwrap_or(&self.socket)
    }
}

mod secs {
    use std::time::Duration;
    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v: f64 = serde::Deserialize::deserialize(d)?;
        Duration::try_from_secs_f64(v).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trips_and_rejects_unknown_fields() {
        let c = ContainerConfig {
            pull: true,
            ..Default::default()
        };
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<ContainerConfig>(&json).unwrap(), c);
        assert!(serde_json::from_str::<ContainerConfig>(r#"{"pul": true}"#).is_err());
        let partial: ContainerConfig = serde_json::from_str(r#"{"image": "x:1"}"#).unwrap();
        assert_eq!(
            (partial.image.as_str(), partial.socket_path()),
            ("x:1", "/run/swerl-podman.sock")
        );
    }
}
