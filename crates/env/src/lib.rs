//! SWE task environment: dataset loading, test specs, prepared environment sources,
//! the agent-computer interface (ACI) tools, log parsers and grading.
//!
//! It turns a SWE-bench-style task into a live episode (through a `swerl_sandbox::Sandbox`)
//! and grades a patch exactly as SWE-bench does, in a fresh sandbox, never the agent's.

pub mod aci;
pub mod envbuild;
pub mod envcheck;
pub mod envspec;
pub mod episode;
pub mod grade;
pub mod parsers;
pub mod paths;
pub mod prepare;
pub mod python;
pub mod spec;
pub mod task;
