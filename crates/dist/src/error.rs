//! What can go wrong, with the message a user acts on.

/// Errors of rendezvous, collectives, the launch environment and the launcher.
#[derive(Debug, thiserror::Error)]
pub enum DistError {
    #[error("environment variable {var}={value:?}: {problem}")]
    Env {
        var: String,
        value: String,
        problem: String,
    },
    #[error("rank {rank} of {world_size} could not rendezvous with the other ranks through {addr}:{port} within {timeout_s:.1} s: {message}. Every one of the WORLD_SIZE={world_size} ranks must start and reach MASTER_ADDR:MASTER_PORT; the run does not train alone when its peers are missing")]
    Rendezvous {
        rank: usize,
        world_size: usize,
        addr: String,
        port: u16,
        timeout_s: f64,
        message: String,
    },
    #[error("{op} failed on rank {rank} of {world_size}: {message}. Another rank has probably died or stopped answering (see its log); the collective timeout is --dist-timeout")]
    Collective {
        op: &'static str,
        rank: usize,
        world_size: usize,
        message: String,
    },
    #[error("rendezvous store at {addr}:{port}: {message}")]
    Store {
        addr: String,
        port: u16,
        message: String,
    },
    #[error("the NCCL backend is not available: {0}")]
    Nccl(String),
    #[error("{0}")]
    Usage(String),
    #[error("launch: {0}")]
    Launch(String),
}

impl DistError {
    pub(crate) fn collective(
        op: &'static str,
        rank: usize,
        world_size: usize,
        message: String,
    ) -> Self {
        DistError::Collective {
            op,
            rank,
            world_size,
            message: sentence(message),
        }
    }
}

/// c10d's messages end with or without a full stop; ours add one.
pub(crate) fn sentence(message: String) -> String {
    message.trim_end().trim_end_matches(['.', '!']).to_string()
}
