//! The client side of the container daemon: one tokio runtime, one bollard connection,
//! retries with backoff, and the few container operations the sandbox needs.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bollard::errors::Error as ApiError;
use bollard::query_parameters::{
    CreateContainerOptions, RemoveContainerOptions, StartContainerOptions,
};
use bollard::Docker;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::create::{container_body, ContainerPlan};
use crate::error::ContainerError;
use crate::hijack::{self, Attached, Read, STDERR};
use crate::{owner, ContainerConfig};

/// Client state shared by a factory and its sandboxes.
#[derive(Debug)]
pub(crate) struct Daemon {
    rt: tokio::runtime::Runtime,
    docker: Docker,
    pub config: ContainerConfig,
    slots: Arc<Semaphore>,
}

impl Daemon {
    /// Connects to `config.socket` and checks that the daemon answers.
    pub fn connect(config: ContainerConfig) -> Result<Daemon, ContainerError> {
        let no_socket = || ContainerError::NoSocket {
            socket: config.socket.clone(),
        };
        if !std::path::Path::new(config.socket_path()).exists() {
            return Err(no_socket());
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(ContainerError::Runtime)?;
        let secs = config.request_timeout.as_secs().max(1);
        let docker =
            Docker::connect_with_unix(config.socket_path(), secs, bollard::API_DEFAULT_VERSION)
                .map_err(|_| no_socket())?;
        let slots = Arc::new(Semaphore::new(config.max_containers.max(1)));
        let mut daemon = Daemon {
            rt,
            docker,
            config,
            slots,
        };
        daemon
            .block_on(daemon.call("ping", || daemon.docker.ping()))
            .map_err(|e| ContainerError::NotAnswering {
                socket: daemon.config.socket.clone(),
                reason: e.to_string(),
            })?;
        // Speak the daemon's API version when it is older than bollard's (podman 4.3: 1.41).
        match daemon.block_on(daemon.docker.clone().negotiate_version()) {
            Ok(negotiated) => daemon.docker = negotiated,
            Err(e) => {
                tracing::warn!(error = %e, "API version negotiation failed; using bollard's default")
            }
        }
        Ok(daemon)
    }

    /// Runs a future on this client's runtime (callers are synchronous threads).
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// One daemon request with a time limit, retried with doubling backoff while the
    /// failure looks transient (daemon busy, restarting or slow).
    async fn call<T, F, Fut>(&self, what: &str, f: F) -> Result<T, ContainerError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let attempts = self.config.attempts.max(1);
        let mut backoff = self.config.backoff;
        for attempt in 1..=attempts {
            let failure = match tokio::time::timeout(self.config.request_timeout, f()).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) if !is_transient(&e) || attempt == attempts => {
                    return Err(self.api_err(what, e))
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) if attempt == attempts => return Err(self.timeout_err(what)),
                Err(_) => "timed out".to_string(),
            };
            tracing::warn!(what, attempt, error = %failure, "container daemon call failed; retrying");
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
        unreachable!("the last attempt returns")
    }

    fn api_err(&self, what: &str, source: ApiError) -> ContainerError {
        ContainerError::Daemon {
            socket: self.config.socket.clone(),
            what: what.to_string(),
            source,
        }
    }

    fn timeout_err(&self, what: &str) -> ContainerError {
        let secs = self.config.request_timeout.as_secs_f64();
        ContainerError::Timeout {
            socket: self.config.socket.clone(),
            what: what.to_string(),
            secs,
        }
    }

    /// A slot under `max_containers`, held for the container's life.
    pub async fn acquire_slot(&self) -> Result<OwnedSemaphorePermit, ContainerError> {
        let wait = self.config.slot_wait;
        match tokio::time::timeout(wait, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(ContainerError::Busy {
                max: self.config.max_containers,
                secs: wait.as_secs(),
            }),
        }
    }

    /// Makes sure `image` is present locally, pulling it only when the config allows.
    pub async fn ensure_image(&self, image: &str) -> Result<(), ContainerError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => return Ok(()),
            Err(ApiError::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            Err(e) => return Err(self.api_err(&format!("inspecting image {image}"), e)),
        }
        if !self.config.pull {
            return Err(ContainerError::ImageMissing {
                image: image.to_string(),
            });
        }
        self.pull(image).await
    }

    async fn pull(&self, image: &str) -> Result<(), ContainerError> {
        tracing::info!(image, "pulling image");
        let path = format!("/images/create?fromImage={}", url_escape(image));
        let pull_err = |reason: String| ContainerError::Pull {
            image: image.to_string(),
            reason,
        };
        let (status, body) = hijack::request_raw(self.config.socket_path(), "POST", &path)
            .await
            .map_err(|e| pull_err(e.to_string()))?;
        let body = String::from_utf8_lossy(&body);
        // The answer is a stream of JSON progress lines; a failure shows as an "error" key.
        if status != 200 || body.contains("\"error\"") {
            return Err(pull_err(format!("status {status}: {}", body.trim())));
        }
        Ok(())
    }

    /// Creates and starts a labelled container; removes it again when the start fails.
    pub async fn create_started(&self, plan: &ContainerPlan<'_>) -> Result<String, ContainerError> {
        let body = container_body(plan, &self.config);
        let created = self
            .call("creating a container", || {
                self.docker
                    .create_container(None::<CreateContainerOptions>, body.clone())
            })
            .await?;
        let id = created.id;
        let started = self
            .call("starting a container", || {
                self.docker
                    .start_container(&id, None::<StartContainerOptions>)
            })
            .await;
        if let Err(e) = started {
            let _ = self.remove(&id).await;
            return Err(e);
        }
        Ok(id)
    }

    /// Unpacks `tar` into directory `dest` of container `id` (which must exist).
    pub async fn upload(&self, id: &str, dest: &str, tar: Vec<u8>) -> Result<(), ContainerError> {
        let options = bollard::query_parameters::UploadToContainerOptions {
            path: dest.to_string(),
            ..Default::default()
        };
        self.call("copying the repository in", || {
            let body = bollard::body_full(tar.clone().into());
            self.docker
                .upload_to_container(id, Some(options.clone()), body)
        })
        .await
    }

    /// Saves container `id`'s filesystem as image `repo:tag`.
    pub async fn commit(&self, id: &str, repo: &str, tag: &str) -> Result<(), ContainerError> {
        let options = bollard::query_parameters::CommitContainerOptions {
            container: Some(id.to_string()),
            repo: Some(repo.to_string()),
            tag: Some(tag.to_string()),
            pause: true,
            // The image must not look like a sandbox container: containers made from it by
            // other tools would inherit the labels and be swept as leftovers of a dead
            // owner. The sandbox's init entrypoint is not the image's either.
            changes: Some(format!(
                "LABEL {}=0\nLABEL {}=\nENTRYPOINT []\nCMD [\"/bin/bash\"]",
                owner::LABEL,
                owner::OWNER_LABEL
            )),
            ..Default::default()
        };
        self.call("saving a container as an image", || {
            self.docker
                .commit_container(options.clone(), bollard::models::ContainerConfig::default())
        })
        .await?;
        Ok(())
    }

    /// Kills and removes a container and its anonymous volumes; a missing one is fine.
    pub async fn remove(&self, id: &str) -> Result<(), ContainerError> {
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            link: false,
        };
        let removed = self
            .call("removing a container", || {
                self.docker.remove_container(id, Some(options.clone()))
            })
            .await;
        match removed {
            Err(ContainerError::Daemon {
                source:
                    ApiError::DockerResponseServerError {
                        status_code: 404, ..
                    },
                ..
            }) => Ok(()),
            other => other,
        }
    }

    /// Kills every process of a container (PID 1 too) and starts it again.
    pub async fn restart(&self, id: &str) -> Result<(), ContainerError> {
        let options = bollard::query_parameters::RestartContainerOptions {
            t: Some(0),
            signal: None,
        };
        self.call("restarting a container", || {
            self.docker.restart_container(id, Some(options.clone()))
        })
        .await
    }

    /// Labelled containers as (id, owner tag).
    ///
    /// WHY raw: bollard's typed listing rejects container states it does not know (podman
    /// reports `stopping`), which would fail a sweep whenever any container is stopping.
    pub async fn labelled(&self) -> Result<Vec<(String, String)>, ContainerError> {
        let filters = format!(r#"{{"label":["{}=1"]}}"#, owner::LABEL);
        let path = format!("/containers/json?all=true&filters={}", url_escape(&filters));
        let list = self
            .call("listing containers", || self.get_json(&path))
            .await?;
        let tag = |c: &serde_json::Value| {
            c["Labels"][owner::OWNER_LABEL]
                .as_str()
                .unwrap_or("")
                .to_string()
        };
        let entries = list.as_array().map(Vec::as_slice).unwrap_or_default();
        Ok(entries
            .iter()
            .filter_map(|c| Some((c["Id"].as_str()?.to_string(), tag(c))))
            .collect())
    }

    async fn get_json(&self, path: &str) -> Result<serde_json::Value, ApiError> {
        let (status, body) = hijack::request_raw(self.config.socket_path(), "GET", path).await?;
        let message = String::from_utf8_lossy(&body).into_owned();
        if status != 200 {
            return Err(ApiError::DockerResponseServerError {
                status_code: status,
                message,
            });
        }
        serde_json::from_slice(&body).map_err(|e| ApiError::IOError {
            err: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })
    }

    /// Removes labelled containers whose owner process is gone; returns how many.
    pub async fn sweep(&self) -> Result<usize, ContainerError> {
        let mut removed = 0;
        for (id, tag) in self.labelled().await? {
            if !owner::is_alive(&tag) {
                self.remove(&id).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Creates and starts an attached exec of `cmd` in container `id`.
    pub async fn attach(
        &self,
        id: &str,
        cmd: Vec<String>,
        stdin: bool,
        workdir: &str,
    ) -> Result<(String, Attached), ContainerError> {
        let options = bollard::exec::CreateExecOptions {
            cmd: Some(cmd),
            attach_stdin: Some(stdin),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            working_dir: Some(workdir.to_string()),
            ..Default::default()
        };
        let exec = self
            .call("creating an exec", || {
                self.docker.create_exec(id, options.clone())
            })
            .await?;
        let attached = Attached::start(
            self.config.socket_path(),
            &exec.id,
            self.config.request_timeout,
        )
        .await
        .map_err(|e| self.exec_err(id, "starting an exec", e.to_string()))?;
        Ok((exec.id, attached))
    }

    pub fn exec_err(&self, id: &str, what: &str, reason: String) -> ContainerError {
        ContainerError::Exec {
            container: short(id).to_string(),
            what: what.to_string(),
            reason,
        }
    }

    /// The exit code of a finished exec (waits briefly: the daemon may lag the stream's end).
    pub async fn exit_code(&self, exec_id: &str) -> Result<Option<i64>, ContainerError> {
        for _ in 0..200 {
            let info = self
                .call("inspecting an exec", || self.docker.inspect_exec(exec_id))
                .await?;
            if info.running != Some(true) {
                return Ok(info.exit_code);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(None)
    }

    /// Runs `cmd` in the container (not in the shell) and collects stdout, stderr and the
    /// exit code, within `within`.
    pub async fn run(
        &self,
        id: &str,
        cmd: Vec<String>,
        within: Duration,
    ) -> Result<(Vec<u8>, Vec<u8>, Option<i64>), ContainerError> {
        let what = cmd.first().cloned().unwrap_or_default();
        match self.run_bounded(id, cmd, within, usize::MAX).await? {
            Bounded::Done { out, err, code } => Ok((out, err, code)),
            Bounded::Overflow | Bounded::Stalled => {
                Err(self.exec_err(id, &what, format!("no end within {} s", within.as_secs())))
            }
        }
    }

    /// Like [`Daemon::run`], but for commands whose output the agent can influence (file
    /// access): at most `max_out` bytes of stdout are taken into memory, and an exec that
    /// prints more or does not end within `within` is abandoned and answered as such.
    pub async fn run_bounded(
        &self,
        id: &str,
        cmd: Vec<String>,
        within: Duration,
        max_out: usize,
    ) -> Result<Bounded, ContainerError> {
        let what = cmd.first().cloned().unwrap_or_default();
        let (exec_id, mut attached) = self.attach(id, cmd, false, "/").await?;
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let mut emit = |stream: u8, b: &[u8]| {
                if stream == STDERR {
                    let room = (64 * 1024usize).saturating_sub(err.len());
                    err.extend_from_slice(&b[..b.len().min(room)])
                } else {
                    out.extend_from_slice(b)
                }
            };
            match attached.read(left, &mut emit).await {
                Ok(Read::Data) if out.len() > max_out => return Ok(Bounded::Overflow),
                Ok(Read::Data) => continue,
                Ok(Read::Eof) => break,
                Ok(Read::Idle) => return Ok(Bounded::Stalled),
                Err(e) => return Err(self.exec_err(id, &what, e.to_string())),
            }
        }
        let code = self.exit_code(&exec_id).await?;
        Ok(Bounded::Done { out, err, code })
    }
}

/// How a bounded exec ended.
#[derive(Debug)]
pub(crate) enum Bounded {
    Done {
        out: Vec<u8>,
        err: Vec<u8>,
        code: Option<i64>,
    },
    /// It printed more than allowed; the rest was not read.
    Overflow,
    /// It did not end in time.
    Stalled,
}

/// Connection-level failures, timeouts and 5xx answers may go away on retry; 4xx never do.
fn is_transient(e: &ApiError) -> bool {
    match e {
        ApiError::DockerResponseServerError { status_code, .. } => *status_code >= 500,
        ApiError::RequestTimeoutError
        | ApiError::IOError { .. }
        | ApiError::HyperResponseError { .. }
        | ApiError::HttpClientError { .. }
        | ApiError::SocketNotFoundError(_) => true,
        _ => false,
    }
}

/// The first 12 characters of a container id (as `docker ps` shows it).
pub(crate) fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_server_side_and_connection_errors_are_retried() {
        let server = |status_code| ApiError::DockerResponseServerError {
            status_code,
            message: String::new(),
        };
        assert!(is_transient(&server(500)));
        assert!(!is_transient(&server(404)));
        assert!(is_transient(&ApiError::RequestTimeoutError));
    }

    #[test]
    fn image_names_are_escaped_for_the_query() {
        assert_eq!(url_escape("docker.io/a/b:1.0"), "docker.io%2Fa%2Fb%3A1.0");
    }
}
