//! Raft transport over gRPC (tonic) on the Raft listener: the client side that
//! openraft calls to reach the other members, and the `RaftTransport`
//! service that hands their messages to the local Raft. Every call carries
//! the cluster secret in the `x-linggong-cluster-secret` header; the service
//! refuses calls without it (UNAUTHENTICATED), so a client token — which is
//! only ever accepted on the client listener — can never reach Raft.

use super::MemberNode;
use super::{AdminRequest, ClusterNode, TypeConfig};
use crate::proto::raft::v1 as pb;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use pb::raft_transport_service_client::RaftTransportServiceClient as RaftTransportClient;
use pb::raft_transport_service_server::{
    RaftTransportService as RaftTransport, RaftTransportServiceServer as RaftTransportServer,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

type NodeId = u64;

/// Header carrying the cluster secret.
pub const SECRET_HEADER: &str = "x-linggong-cluster-secret";

/// Adds the cluster secret to every call.
#[derive(Clone)]
pub struct AddSecret(MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for AddSecret {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        req.metadata_mut().insert(SECRET_HEADER, self.0.clone());
        Ok(req)
    }
}

/// A client of one member's Raft listener, with the cluster secret attached
/// (cheap to clone: clones share one HTTP/2 connection).
pub type TransportClient = RaftTransportClient<InterceptedService<Channel, AddSecret>>;

/// A client for the Raft listener at `addr` (`host:port`).
pub fn transport_client(addr: &str, secret: &str, timeout: Duration) -> Result<TransportClient, String> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| format!("bad address {addr}: {e}"))?
        .connect_timeout(timeout)
        .tcp_nodelay(true);
    let channel = endpoint.connect_lazy();
    let value: MetadataValue<_> =
        secret.parse().map_err(|_| "the cluster secret is not a valid header value".to_string())?;
    Ok(RaftTransportClient::with_interceptor(channel, AddSecret(value)))
}

/// Builds connections to the other members. openraft asks for a new client
/// for every election and every leadership check, so clients are kept per
/// member and address: each call then reuses an open HTTP/2 connection
/// instead of paying a TCP and HTTP/2 handshake inside a 50 ms deadline.
pub struct Network {
    /// The cluster secret.
    pub secret: Arc<str>,
    /// Open clients by member id and address.
    pub clients: parking_lot::Mutex<std::collections::HashMap<(NodeId, String), TransportClient>>,
}

impl Network {
    /// A factory for the cluster with this secret.
    pub fn new(secret: Arc<str>) -> Self {
        Self { secret, clients: parking_lot::Mutex::new(std::collections::HashMap::new()) }
    }
}

/// A connection to one member.
pub struct Connection {
    target: NodeId,
    client: Option<TransportClient>,
    error: Option<String>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, node: &MemberNode) -> Connection {
        let key = (target, node.addr.clone());
        if let Some(client) = self.clients.lock().get(&key) {
            return Connection { target, client: Some(client.clone()), error: None };
        }
        match transport_client(&node.addr, &self.secret, Duration::from_millis(500)) {
            Ok(client) => {
                self.clients.lock().insert(key, client.clone());
                Connection { target, client: Some(client), error: None }
            }
            Err(e) => Connection { target, client: None, error: Some(e) },
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Failure(String);

impl Connection {
    async fn call<Req, Resp, E>(
        &mut self,
        which: Rpc,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, MemberNode, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let Some(client) = self.client.as_mut() else {
            let e = Failure(self.error.clone().unwrap_or_default());
            return Err(RPCError::Unreachable(Unreachable::new(&e)));
        };
        let body = serde_json::to_vec(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        fn timed<T>(message: T, ttl: Duration) -> Request<T> {
            let mut request = Request::new(message);
            request.set_timeout(ttl);
            request
        }
        let ttl = option.hard_ttl();
        let answer = match which {
            Rpc::Append => {
                client.append_entries(timed(pb::AppendEntriesRequest { body }, ttl)).await.map(|r| r.into_inner().body)
            }
            Rpc::Vote => client.vote(timed(pb::VoteRequest { body }, ttl)).await.map(|r| r.into_inner().body),
            Rpc::Snapshot => client
                .install_snapshot(timed(pb::InstallSnapshotRequest { body }, ttl))
                .await
                .map(|r| r.into_inner().body),
        };
        let answer = answer.map_err(|s| {
            let e = Failure(format!("{}: {}", s.code(), s.message()));
            if s.code() == tonic::Code::Unavailable {
                RPCError::Unreachable(Unreachable::new(&e))
            } else {
                RPCError::Network(NetworkError::new(&e))
            }
        })?;
        let result: Result<Resp, RaftError<NodeId, E>> =
            serde_json::from_slice(&answer).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

enum Rpc {
    Append,
    Vote,
    Snapshot,
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, MemberNode, RaftError<NodeId>>> {
        self.call(Rpc::Append, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, MemberNode, RaftError<NodeId, InstallSnapshotError>>>
    {
        self.call(Rpc::Snapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, MemberNode, RaftError<NodeId>>> {
        self.call(Rpc::Vote, &rpc, &option).await
    }
}

/// The `RaftTransport` service of one member.
pub struct TransportService {
    /// The member (weak: the service must not keep a stopped node alive).
    pub node: Weak<ClusterNode>,
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, Status> {
    serde_json::from_slice(body)
        .map_err(|e| Status::invalid_argument(format!("could not decode the Raft message: {e}")))
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, Status> {
    serde_json::to_vec(value).map_err(|e| Status::internal(format!("could not encode the Raft answer: {e}")))
}

impl TransportService {
    fn node(&self) -> Result<Arc<ClusterNode>, Status> {
        self.node.upgrade().ok_or_else(|| Status::unavailable("the node is shutting down"))
    }
}

#[tonic::async_trait]
impl RaftTransport for TransportService {
    async fn append_entries(
        &self,
        req: Request<pb::AppendEntriesRequest>,
    ) -> Result<Response<pb::AppendEntriesResponse>, Status> {
        let rpc: AppendEntriesRequest<TypeConfig> = decode(&req.into_inner().body)?;
        let node = self.node()?;
        Ok(Response::new(pb::AppendEntriesResponse { body: encode(&node.raft.append_entries(rpc).await)? }))
    }

    async fn vote(&self, req: Request<pb::VoteRequest>) -> Result<Response<pb::VoteResponse>, Status> {
        let rpc: VoteRequest<NodeId> = decode(&req.into_inner().body)?;
        let node = self.node()?;
        Ok(Response::new(pb::VoteResponse { body: encode(&node.raft.vote(rpc).await)? }))
    }

    async fn install_snapshot(
        &self,
        req: Request<pb::InstallSnapshotRequest>,
    ) -> Result<Response<pb::InstallSnapshotResponse>, Status> {
        let rpc: InstallSnapshotRequest<TypeConfig> = decode(&req.into_inner().body)?;
        let node = self.node()?;
        Ok(Response::new(pb::InstallSnapshotResponse { body: encode(&node.raft.install_snapshot(rpc).await)? }))
    }

    async fn admin(&self, req: Request<pb::AdminRequest>) -> Result<Response<pb::AdminResponse>, Status> {
        let rpc: AdminRequest = decode(&req.into_inner().body)?;
        let node = self.node()?;
        Ok(Response::new(pb::AdminResponse { body: encode(&node.admin(rpc).await)? }))
    }
}

/// Constant-time comparison of the presented secret with the cluster's.
fn secret_matches(presented: &[u8], secret: &[u8]) -> bool {
    if presented.len() != secret.len() {
        return false;
    }
    presented.iter().zip(secret).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// The service wrapped in the cluster-secret check.
pub fn authenticated_service(
    service: TransportService,
    secret: Arc<str>,
) -> InterceptedService<RaftTransportServer<TransportService>, impl tonic::service::Interceptor + Clone> {
    let check = move |req: Request<()>| {
        let presented = req.metadata().get(SECRET_HEADER).map(|v| v.as_bytes()).unwrap_or_default();
        if secret_matches(presented, secret.as_bytes()) {
            Ok(req)
        } else {
            Err(Status::unauthenticated("Raft calls need the cluster secret"))
        }
    };
    InterceptedService::new(RaftTransportServer::new(service).max_decoding_message_size(64 << 20), check)
}
