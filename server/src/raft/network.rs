//! Raft transport over gRPC (tonic) on the Raft listener: the client side that
//! openraft calls to reach the other members, and the `RaftTransport`
//! service that hands their messages to the local Raft. Every call carries
//! the cluster secret in the `x-linggong-cluster-secret` header; the service
//! refuses calls without it (UNAUTHENTICATED), so a client token — which is
//! only ever accepted on the client listener — can never reach Raft.
//!
//! Bodies are openraft's messages in MessagePack with named fields
//! ([`Body::MsgPack`]): command payloads and snapshot chunks travel as byte
//! strings, where JSON spelled every byte as a decimal number and a comma
//! (about 3.5 bytes per byte, parsed one by one). JSON bodies are still read
//! and answered in JSON.

use super::MemberNode;
use super::{AdminRequest, ClusterNode, TypeConfig};
use crate::proto::raft::v1 as pb;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::{SnapshotMeta, Vote};
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

/// The encoding of a replication body (`BodyEncoding` on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    /// JSON (`BODY_ENCODING_UNSPECIFIED`).
    Json,
    /// MessagePack, fields by name, byte strings as binary: what members send.
    MsgPack,
}

impl Body {
    /// The encoding a message names; `None` for a value this build does not know.
    pub fn from_wire(value: i32) -> Option<Self> {
        match pb::BodyEncoding::try_from(value).ok()? {
            pb::BodyEncoding::Unspecified => Some(Body::Json),
            pb::BodyEncoding::Msgpack => Some(Body::MsgPack),
        }
    }

    /// The wire value of this encoding.
    pub fn to_wire(self) -> i32 {
        match self {
            Body::Json => pb::BodyEncoding::Unspecified as i32,
            Body::MsgPack => pb::BodyEncoding::Msgpack as i32,
        }
    }

    /// `value` in this encoding.
    pub fn encode<T: Serialize>(self, value: &T) -> Result<Vec<u8>, String> {
        match self {
            Body::Json => serde_json::to_vec(value).map_err(|e| e.to_string()),
            Body::MsgPack => rmp_serde::to_vec_named(value).map_err(|e| e.to_string()),
        }
    }

    /// A value decoded from `body` in this encoding.
    pub fn decode<T: DeserializeOwned>(self, body: &[u8]) -> Result<T, String> {
        match self {
            Body::Json => serde_json::from_slice(body).map_err(|e| e.to_string()),
            Body::MsgPack => rmp_serde::from_slice(body).map_err(|e| e.to_string()),
        }
    }
}

/// openraft's [`InstallSnapshotRequest`] with the chunk as a byte string
/// (openraft's own serde spells `data` as a list of numbers); the same field
/// names, so a JSON chunk of either reads as the other.
#[derive(Serialize, serde::Deserialize)]
struct SnapshotChunk {
    vote: Vote<NodeId>,
    meta: SnapshotMeta<NodeId, MemberNode>,
    offset: u64,
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
    done: bool,
}

impl From<InstallSnapshotRequest<TypeConfig>> for SnapshotChunk {
    fn from(r: InstallSnapshotRequest<TypeConfig>) -> Self {
        Self { vote: r.vote, meta: r.meta, offset: r.offset, data: r.data, done: r.done }
    }
}

impl From<SnapshotChunk> for InstallSnapshotRequest<TypeConfig> {
    fn from(c: SnapshotChunk) -> Self {
        Self { vote: c.vote, meta: c.meta, offset: c.offset, data: c.data, done: c.done }
    }
}

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
        let encoding = Body::MsgPack;
        let body = encoding.encode(req).map_err(|e| RPCError::Network(NetworkError::new(&Failure(e))))?;
        let wire = encoding.to_wire();
        fn timed<T>(message: T, ttl: Duration) -> Request<T> {
            let mut request = Request::new(message);
            request.set_timeout(ttl);
            request
        }
        let ttl = option.hard_ttl();
        let answer = match which {
            Rpc::Append => client
                .append_entries(timed(pb::AppendEntriesRequest { body, encoding: wire }, ttl))
                .await
                .map(|r| r.into_inner())
                .map(|r| (r.body, r.encoding)),
            Rpc::Vote => client
                .vote(timed(pb::VoteRequest { body, encoding: wire }, ttl))
                .await
                .map(|r| r.into_inner())
                .map(|r| (r.body, r.encoding)),
            Rpc::Snapshot => client
                .install_snapshot(timed(pb::InstallSnapshotRequest { body, encoding: wire }, ttl))
                .await
                .map(|r| r.into_inner())
                .map(|r| (r.body, r.encoding)),
        };
        let answer = answer.map_err(|s| {
            let e = Failure(format!("{}: {}", s.code(), s.message()));
            if s.code() == tonic::Code::Unavailable {
                RPCError::Unreachable(Unreachable::new(&e))
            } else {
                RPCError::Network(NetworkError::new(&e))
            }
        })?;
        let (answer, answer_encoding) = answer;
        let network = |e: String| RPCError::Network(NetworkError::new(&Failure(e)));
        let answer_encoding = Body::from_wire(answer_encoding)
            .ok_or_else(|| network(format!("unknown body encoding {answer_encoding}")))?;
        let result: Result<Resp, RaftError<NodeId, E>> = answer_encoding.decode(&answer).map_err(network)?;
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
        self.call(Rpc::Snapshot, &SnapshotChunk::from(rpc), &option).await
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

/// A request body in the encoding it names.
fn decode<T: DeserializeOwned>(body: &[u8], encoding: i32) -> Result<(T, Body), Status> {
    let encoding = Body::from_wire(encoding)
        .ok_or_else(|| Status::invalid_argument(format!("unknown body encoding {encoding}")))?;
    let value = encoding
        .decode(body)
        .map_err(|e| Status::invalid_argument(format!("could not decode the Raft message: {e}")))?;
    Ok((value, encoding))
}

/// An answer body in the request's encoding.
fn encode<T: Serialize>(value: &T, encoding: Body) -> Result<Vec<u8>, Status> {
    encoding.encode(value).map_err(|e| Status::internal(format!("could not encode the Raft answer: {e}")))
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
        let req = req.into_inner();
        let (rpc, encoding): (AppendEntriesRequest<TypeConfig>, _) = decode(&req.body, req.encoding)?;
        let node = self.node()?;
        let body = encode(&node.raft.append_entries(rpc).await, encoding)?;
        Ok(Response::new(pb::AppendEntriesResponse { body, encoding: encoding.to_wire() }))
    }

    async fn vote(&self, req: Request<pb::VoteRequest>) -> Result<Response<pb::VoteResponse>, Status> {
        let req = req.into_inner();
        let (rpc, encoding): (VoteRequest<NodeId>, _) = decode(&req.body, req.encoding)?;
        let node = self.node()?;
        let body = encode(&node.raft.vote(rpc).await, encoding)?;
        Ok(Response::new(pb::VoteResponse { body, encoding: encoding.to_wire() }))
    }

    async fn install_snapshot(
        &self,
        req: Request<pb::InstallSnapshotRequest>,
    ) -> Result<Response<pb::InstallSnapshotResponse>, Status> {
        let req = req.into_inner();
        let (chunk, encoding): (SnapshotChunk, _) = decode(&req.body, req.encoding)?;
        let node = self.node()?;
        let body = encode(&node.raft.install_snapshot(chunk.into()).await, encoding)?;
        Ok(Response::new(pb::InstallSnapshotResponse { body, encoding: encoding.to_wire() }))
    }

    async fn admin(&self, req: Request<pb::AdminRequest>) -> Result<Response<pb::AdminResponse>, Status> {
        let (rpc, _): (AdminRequest, _) = decode(&req.into_inner().body, Body::Json.to_wire())?;
        let node = self.node()?;
        Ok(Response::new(pb::AdminResponse { body: encode(&node.admin(rpc).await, Body::Json)? }))
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

#[cfg(test)]
mod tests {
    use super::super::ClusterCommand;
    use super::*;
    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};

    fn append_with(payload: Vec<u8>) -> AppendEntriesRequest<TypeConfig> {
        let log_id = LogId::new(CommittedLeaderId::new(3, 1), 41);
        AppendEntriesRequest {
            vote: Vote::new_committed(3, 1),
            prev_log_id: Some(log_id),
            entries: vec![Entry {
                log_id: LogId::new(CommittedLeaderId::new(3, 1), 42),
                payload: EntryPayload::Normal(ClusterCommand { payload }),
            }],
            leader_commit: Some(log_id),
        }
    }

    #[test]
    fn append_entries_round_trip_in_both_encodings() {
        let request = append_with((0..=255u8).cycle().take(1000).collect());
        for encoding in [Body::Json, Body::MsgPack] {
            let body = encoding.encode(&request).unwrap();
            let back: AppendEntriesRequest<TypeConfig> = encoding.decode(&body).unwrap();
            assert_eq!(back.vote, request.vote, "{encoding:?}");
            assert_eq!(back.prev_log_id, request.prev_log_id, "{encoding:?}");
            assert_eq!(back.leader_commit, request.leader_commit, "{encoding:?}");
            assert_eq!(back.entries, request.entries, "{encoding:?}");
            assert_eq!(Body::from_wire(encoding.to_wire()), Some(encoding));
        }
    }

    #[test]
    fn msgpack_carries_a_payload_as_a_byte_string() {
        let request = append_with(vec![200; 10_000]);
        let msgpack = Body::MsgPack.encode(&request).unwrap();
        let json = Body::Json.encode(&request).unwrap();
        assert!(msgpack.len() < 10_000 + 300, "msgpack body is {} bytes", msgpack.len());
        assert!(json.len() > 30_000, "json body is {} bytes", json.len());
    }

    #[test]
    fn a_json_chunk_in_openraft_s_own_form_reads_as_a_snapshot_chunk() {
        let request = InstallSnapshotRequest::<TypeConfig> {
            vote: Vote::new_committed(2, 1),
            meta: SnapshotMeta::default(),
            offset: 7,
            data: vec![1, 2, 250],
            done: true,
        };
        let openraft_json = serde_json::to_vec(&request).unwrap();
        let chunk: SnapshotChunk = Body::Json.decode(&openraft_json).unwrap();
        assert_eq!(InstallSnapshotRequest::from(chunk), request);
        let msgpack = Body::MsgPack.encode(&SnapshotChunk::from(request.clone())).unwrap();
        let chunk: SnapshotChunk = Body::MsgPack.decode(&msgpack).unwrap();
        assert_eq!(InstallSnapshotRequest::from(chunk), request);
    }

    #[test]
    fn an_unknown_encoding_is_refused() {
        assert_eq!(Body::from_wire(99), None);
        let refused = decode::<VoteRequest<NodeId>>(b"{}", 99).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    }
}
