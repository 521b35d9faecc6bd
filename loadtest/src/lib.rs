//! linggong-loadtest: answers "how much can this box take, at what latency?" for the linggong
//! matching service. It drives either the engine in-process ([`engine_mode`]) or a gRPC server
//! ([`grpc_mode`], an external one, one it starts itself, or local replicas it starts as
//! processes of the server binary, [`cluster`]; calls follow a change of leader, [`route`]) with
//! a seeded Linfen-shaped workload ([`workload`]), open or closed loop ([`run`]), and reports
//! per-RPC counts, errors by status code, rates and HdrHistogram percentiles ([`report`]) as a
//! table, JSON and an SVG plot ([`plot`]).

pub mod cluster;
pub mod engine_mode;
pub mod grpc_mode;
pub mod machine;
pub mod plot;
pub mod progress;
pub mod record;
pub mod report;
pub mod route;
pub mod run;
pub mod workload;

pub use engine_mode::run_engine;
pub use progress::ProgressMode;
pub use record::{Collector, ErrorClass, Rpc};
pub use report::Report;
pub use run::{LoadShape, RunConfig};
pub use workload::{Scenario, WorkloadConfig};
