//! The one place where protobuf messages and engine types meet: the write-ahead
//! log's record encoding and the public gRPC API's conversions.

pub mod api;
pub mod crs;
pub mod lists;
pub mod wal;
