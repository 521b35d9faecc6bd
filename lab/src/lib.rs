//! linggong-lab: the policy lab. Replays a logged window of the market under
//! other ranking policies — supply and demand from the log, workers' answers
//! from a response model fitted on the same log — and compares fairness and
//! service figures per county and for the city, with confidence intervals
//! across the model's seeds.
//!
//! The crate does no IO apart from reading a policy file: the server's
//! `replay` subcommand reads the data directory and hands the window's
//! commands here.

pub mod compare;
pub mod figures;
pub mod generate;
pub mod model;
pub mod output;
pub mod policy;
pub mod replay;

pub use compare::{Comparison, Estimate, LabRequest};
pub use figures::{Area, Figures, Observer};
pub use model::{ResponseFit, ResponseModel};
pub use policy::{BatchSettings, PolicyError, PolicyFile};
pub use replay::{run, run_batched, Answers, LabError, LoggedStep, Replay, ReplayStats, RunResult};
