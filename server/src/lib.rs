//! linggong-server: the service around the matching engine — gRPC API, write-ahead
//! log and snapshots, auth, configuration, metrics and shutdown.

pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod codec;
pub mod config;
pub mod conn;
pub mod convert;
pub mod demo;
pub mod events;
pub mod histogram;
pub mod history;
pub mod host;
pub mod layout;
pub mod ledger_export;
pub mod metrics;
pub mod migrate;
pub mod raft;
pub mod report;
pub mod request_table;
pub mod snapshot;
pub mod state;
pub mod tokens;
pub mod wal;
pub mod web;

/// Generated protobuf and gRPC code.
pub mod proto {
    /// Replication and cluster operator messages, package `linggong.raft.v1`.
    pub mod raft {
        /// Version 1.
        pub mod v1 {
            #![allow(missing_docs, clippy::all)]
            tonic::include_proto!("linggong.raft.v1");
        }
    }
    /// Write-ahead log record schema.
    pub mod wal {
        /// Version 1.
        pub mod v1 {
            #![allow(missing_docs, clippy::all)]
            tonic::include_proto!("linggong.wal.v1");
        }
    }
    /// The public gRPC API, package `linggong.v1`.
    pub mod v1 {
        #![allow(missing_docs, clippy::all)]
        tonic::include_proto!("linggong.v1");
    }
    /// Encoded `FileDescriptorSet` of every proto, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/linggong_descriptor.bin"));
}
