//! Where the leader is, for every caller of a gRPC run: [`LeaderRoute`] holds the connections to
//! the member the load goes to, a generation number that grows by one with each switch, and the
//! client addresses of the members known so far (every replica with `--spawn-cluster`; the
//! `--addr` given and each leader a `NOT_LEADER` answer named otherwise). Every call goes
//! through a [`Caller`]: a call that fails because its member is not the leader (`NOT_LEADER`),
//! knows no leader (`UNAVAILABLE` naming none, an election) or cannot be reached (a transport
//! error) is retried with the same request id, for at most [`RETRY_WITHIN`], at the member the
//! route switches to. The first caller to report a failure of the current generation switches:
//! to the leader named, else after a short backoff to the next known member that accepts a
//! connection; the others wait for that switch, so one change of leader costs one reconnection,
//! not one per caller. No lock is held across an `.await`: the current connection is an `Arc`
//! cloned out of a `parking_lot::RwLock`.

use crate::grpc_mode::{endpoint, perform, BearerToken, CallContext, CallError, Clients};
use crate::record::ErrorClass;
use crate::workload::{Action, Observation};
use parking_lot::{Mutex, RwLock};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::Code;
use tonic_types::StatusExt;

/// How long one call is retried through a change of leader before its last failure counts.
pub const RETRY_WITHIN: Duration = Duration::from_secs(10);
/// Pause before trying another member when no leader is named; it doubles with each such switch
/// in a row, up to [`BACKOFF_MAX`], until a call succeeds.
const BACKOFF_FIRST: Duration = Duration::from_millis(25);
/// Longest pause before trying another member.
const BACKOFF_MAX: Duration = Duration::from_millis(400);
/// Longest wait for another caller's switch before trying again.
const SWITCH_WAIT: Duration = Duration::from_secs(3);
/// Connect timeout of a member being switched to.
const CONNECT_WITHIN: Duration = Duration::from_secs(2);
/// Most member addresses remembered (the answers naming them come from the network).
const MAX_MEMBERS: usize = 32;

/// `http://host:port` for `host:port` (an address with a scheme is kept as it is).
pub fn uri_of(addr: &str) -> String {
    if addr.contains("://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    }
}

/// One generation of the route: connections to one member.
pub struct Connection {
    /// The member's client address, `http://host:port`.
    pub uri: String,
    /// 1 for the first connection, one more with each switch.
    pub generation: u64,
    /// One set of clients per HTTP/2 connection (never empty).
    clients: Vec<Clients>,
}

impl Connection {
    /// The clients of caller `k` (callers share the connections round-robin).
    pub fn clients(&self, k: usize) -> Clients {
        self.clients[k % self.clients.len()].clone()
    }
}

/// What a failed call says about where to send it again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Redirect {
    /// `NOT_LEADER` naming the leader's client address (`http://host:port`).
    To(String),
    /// `UNAVAILABLE` naming no leader (an election), or the member could not be reached.
    Elsewhere,
}

impl Redirect {
    /// Whether (and where) a call that failed with `status` is to be retried at another member;
    /// `None` for every other failure, which is the call's result.
    pub fn of(status: &tonic::Status) -> Option<Redirect> {
        if status.code() == Code::Unavailable {
            let details = status.get_error_details();
            let named = details
                .error_info()
                .filter(|info| info.reason == "NOT_LEADER")
                .and_then(|info| info.metadata.get("leader_addr"))
                .map(|addr| addr.trim())
                .filter(|addr| !addr.is_empty())
                .map(uri_of);
            return Some(named.map_or(Redirect::Elsewhere, Redirect::To));
        }
        // A status the client made from a transport error (kept as its source): the connection
        // broke under the call (reset, closed), which a server never answers. The call's own
        // deadline running out is its result, not a reason to go elsewhere.
        let broken = std::error::Error::source(status).is_some()
            && matches!(status.code(), Code::Unknown | Code::Internal | Code::Cancelled)
            && !timed_out(status);
        broken.then_some(Redirect::Elsewhere)
    }
}

/// Whether the client ended the call at its deadline (`TimeoutExpired` in the status's sources).
fn timed_out(status: &tonic::Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(e) = source {
        if e.is::<tonic::TimeoutExpired>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// The result of one call through the route, and how many attempts it took.
#[derive(Debug)]
pub struct Called {
    /// What the last attempt returned.
    pub result: Result<Observation, ErrorClass>,
    /// Attempts made (1 when the first one counted).
    pub attempts: u32,
}

struct RouteState {
    current: Arc<Connection>,
    /// A caller is switching away from `current`.
    switching: bool,
}

/// Where the leader is (see the module documentation). Shared by every caller of a run.
pub struct LeaderRoute {
    state: RwLock<RouteState>,
    /// `current`'s generation, read without the lock on every call.
    generation: AtomicU64,
    /// Known members' client addresses, in the order learned.
    members: Mutex<Vec<String>>,
    token: BearerToken,
    connections: usize,
    /// Counts finished switch attempts; callers waiting for another's switch watch it.
    attempts: tokio::sync::watch::Sender<u64>,
    /// Switches in a row made without a leader named (the backoff doubles with each).
    no_leader_streak: AtomicU32,
    /// The generation of `confirmed`, read without its lock.
    confirmed_generation: AtomicU64,
    /// The last generation a call succeeded on, and its member.
    confirmed: Mutex<Option<(u64, String)>>,
    leader_changes: AtomicU64,
    switches: AtomicU64,
    retried_calls: AtomicU64,
}

/// Clears the switching mark and wakes the waiting callers when a switch ends, also when the
/// switching caller's future is dropped halfway.
struct SwitchClaim<'a> {
    route: &'a LeaderRoute,
    next: Option<Arc<Connection>>,
}

impl Drop for SwitchClaim<'_> {
    fn drop(&mut self) {
        {
            let mut state = self.route.state.write();
            if let Some(next) = self.next.take() {
                self.route.generation.store(next.generation, Ordering::Release);
                state.current = next;
            }
            state.switching = false;
        }
        self.route.attempts.send_modify(|n| *n = n.wrapping_add(1));
    }
}

impl LeaderRoute {
    /// A route starting at `addr` over `clients` (its open connections, at least one, as
    /// [`crate::grpc_mode::connect`] opens them), knowing `members` (client addresses,
    /// `host:port`; `addr` is added if missing). Switches open `connections` connections to the
    /// new member with `token`.
    pub fn new(
        addr: &str,
        clients: Vec<Clients>,
        members: &[String],
        token: BearerToken,
        connections: usize,
    ) -> LeaderRoute {
        let uri = uri_of(addr);
        let mut known = vec![uri.clone()];
        for m in members.iter().map(|m| uri_of(m)) {
            if !known.contains(&m) && known.len() < MAX_MEMBERS {
                known.push(m);
            }
        }
        let current = Arc::new(Connection { uri, generation: 1, clients });
        LeaderRoute {
            state: RwLock::new(RouteState { current, switching: false }),
            generation: AtomicU64::new(1),
            members: Mutex::new(known),
            token,
            connections: connections.max(1),
            attempts: tokio::sync::watch::Sender::new(0),
            no_leader_streak: AtomicU32::new(0),
            confirmed_generation: AtomicU64::new(0),
            confirmed: Mutex::new(None),
            leader_changes: AtomicU64::new(0),
            switches: AtomicU64::new(0),
            retried_calls: AtomicU64::new(0),
        }
    }

    /// The connection calls go to now.
    pub fn current(&self) -> Arc<Connection> {
        self.state.read().current.clone()
    }

    /// The members known so far, `http://host:port`.
    pub fn members(&self) -> Vec<String> {
        self.members.lock().clone()
    }

    /// Times the load moved to a new leader: a call succeeded at another member than the last
    /// one a call had succeeded at.
    pub fn leader_changes(&self) -> u64 {
        self.leader_changes.load(Ordering::Relaxed)
    }

    /// Times the route switched to another connection (a leader change may take several: to a
    /// member that names the leader, then to the leader).
    pub fn switches(&self) -> u64 {
        self.switches.load(Ordering::Relaxed)
    }

    /// Calls that took more than one attempt.
    pub fn retried_calls(&self) -> u64 {
        self.retried_calls.load(Ordering::Relaxed)
    }

    /// A call succeeded on `conn`: the first success of a newer generation confirms its member
    /// as the leader (and counts a leader change if it is another member than the last one).
    fn confirm(&self, conn: &Connection) {
        if self.confirmed_generation.load(Ordering::Acquire) >= conn.generation {
            return;
        }
        let mut confirmed = self.confirmed.lock();
        match &*confirmed {
            Some((generation, _)) if *generation >= conn.generation => return,
            Some((_, uri)) if *uri != conn.uri => {
                self.leader_changes.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        *confirmed = Some((conn.generation, conn.uri.clone()));
        self.confirmed_generation.store(conn.generation, Ordering::Release);
        self.no_leader_streak.store(0, Ordering::Relaxed);
    }

    fn learn(&self, uri: &str) {
        let mut members = self.members.lock();
        if !members.iter().any(|m| m == uri) && members.len() < MAX_MEMBERS {
            members.push(uri.to_string());
        }
    }

    /// A call on `seen` failed as `redirect` says. Returns once the route has moved on from
    /// `seen` (by this caller or another), or the switch attempt failed or took too long: the
    /// caller then tries again on [`LeaderRoute::current`].
    pub async fn follow(&self, seen: &Connection, redirect: Redirect) {
        if let Redirect::To(uri) = &redirect {
            self.learn(uri);
        }
        let mut finished = self.attempts.subscribe();
        let claimed = {
            let mut state = self.state.write();
            if state.current.generation != seen.generation {
                // Another caller switched already.
                return;
            }
            !std::mem::replace(&mut state.switching, true)
        };
        if !claimed {
            let _ = tokio::time::timeout(SWITCH_WAIT, finished.changed()).await;
            return;
        }
        let mut claim = SwitchClaim { route: self, next: None };
        claim.next = self.switch(seen, redirect).await;
        drop(claim);
    }

    /// Connections to the member to go to after `from` failed: the leader named if it can be
    /// reached, else (after the backoff) the first of the other known members that can, `from`'s
    /// member last. `None` if none can.
    async fn switch(&self, from: &Connection, redirect: Redirect) -> Option<Arc<Connection>> {
        if let Redirect::To(uri) = &redirect {
            if *uri != from.uri {
                if let Ok(clients) = self.open(uri).await {
                    return Some(self.next_connection(uri, from, clients));
                }
            }
        }
        let streak = self.no_leader_streak.fetch_add(1, Ordering::Relaxed).min(8);
        tokio::time::sleep((BACKOFF_FIRST * 2u32.pow(streak)).min(BACKOFF_MAX)).await;
        let members = self.members();
        let after = members.iter().position(|m| *m == from.uri).map_or(0, |i| i + 1);
        for k in 0..members.len() {
            let uri = &members[(after + k) % members.len()];
            if let Ok(clients) = self.open(uri).await {
                return Some(self.next_connection(uri, from, clients));
            }
        }
        None
    }

    fn next_connection(&self, uri: &str, from: &Connection, clients: Vec<Clients>) -> Arc<Connection> {
        self.switches.fetch_add(1, Ordering::Relaxed);
        Arc::new(Connection { uri: uri.to_string(), generation: from.generation + 1, clients })
    }

    /// Opens the route's number of connections to `uri` (once, no retries).
    async fn open(&self, uri: &str) -> Result<Vec<Clients>, tonic::transport::Error> {
        let endpoint = endpoint(uri)?.connect_timeout(CONNECT_WITHIN);
        let mut clients = Vec::with_capacity(self.connections);
        for _ in 0..self.connections {
            clients.push(Clients::new(endpoint.connect().await?, self.token.clone()));
        }
        Ok(clients)
    }
}

/// One caller of the load (or of the setup): the connection it uses, taken afresh from the route
/// when the route has switched.
pub struct Caller {
    route: Arc<LeaderRoute>,
    index: usize,
    conn: Arc<Connection>,
    clients: Clients,
}

impl Caller {
    /// Caller number `index` (it uses connection `index` modulo their number).
    pub fn new(route: Arc<LeaderRoute>, index: usize) -> Caller {
        let conn = route.current();
        let clients = conn.clients(index);
        Caller { route, index, conn, clients }
    }

    fn refresh(&mut self) {
        if self.route.generation.load(Ordering::Acquire) != self.conn.generation {
            self.conn = self.route.current();
            self.clients = self.conn.clients(self.index);
        }
    }

    /// Performs `action`, retried with the same request id at the member the route switches to
    /// while it fails with `NOT_LEADER`, `UNAVAILABLE` or a transport error, for at most
    /// [`RETRY_WITHIN`] from the first attempt.
    pub async fn call(&mut self, action: &Action, ctx: &CallContext) -> Called {
        let request_id = ctx.request_id();
        let deadline = Instant::now() + RETRY_WITHIN;
        let mut attempts = 0u32;
        let result = loop {
            self.refresh();
            attempts += 1;
            let status = match perform(&mut self.clients, action, ctx, &request_id).await {
                Ok(observation) => {
                    self.route.confirm(&self.conn);
                    break Ok(observation);
                }
                Err(CallError::Status(status)) => status,
                Err(CallError::Response(class)) => break Err(class),
            };
            match Redirect::of(&status) {
                Some(redirect) if Instant::now() < deadline => self.route.follow(&self.conn, redirect).await,
                _ => break Err(ErrorClass::from_code(status.code())),
            }
        };
        if attempts > 1 {
            self.route.retried_calls.fetch_add(1, Ordering::Relaxed);
        }
        Called { result, attempts }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::ErrorDetails;

    fn not_leader(leader_addr: &str) -> tonic::Status {
        let details = ErrorDetails::with_error_info(
            "NOT_LEADER",
            "linggong",
            [("leader_id".to_string(), "2".to_string()), ("leader_addr".to_string(), leader_addr.to_string())],
        );
        tonic::Status::with_error_details(Code::Unavailable, "not the leader", details)
    }

    #[test]
    fn failures_are_sorted_into_redirects() {
        assert_eq!(Redirect::of(&not_leader("127.0.0.1:7052")), Some(Redirect::To("http://127.0.0.1:7052".into())));
        // No leader known yet (an election): the address is empty.
        assert_eq!(Redirect::of(&not_leader("")), Some(Redirect::Elsewhere));
        assert_eq!(Redirect::of(&tonic::Status::unavailable("shutting down")), Some(Redirect::Elsewhere));
        // Answers of the service itself are results, not redirects.
        assert_eq!(Redirect::of(&tonic::Status::not_found("no such posting")), None);
        assert_eq!(Redirect::of(&tonic::Status::unknown("a server-side panic")), None);
        assert_eq!(Redirect::of(&tonic::Status::deadline_exceeded("slow")), None);
        // The client's own status for a broken connection carries the transport error.
        let broken = tonic::Status::from_error(Box::new(std::io::Error::other("connection reset")));
        assert_eq!(broken.code(), Code::Unknown);
        assert_eq!(Redirect::of(&broken), Some(Redirect::Elsewhere));
        let late = tonic::Status::from_error(Box::new(tonic::TimeoutExpired(())));
        assert_eq!(late.code(), Code::Cancelled);
        assert_eq!(Redirect::of(&late), None, "a call past its deadline is not sent again");
    }

    /// A loopback listener that accepts and holds connections: a member that is up (nothing is
    /// called on it); returns its address.
    async fn member_up() -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback listener");
        let addr = listener.local_addr().expect("its address");
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        addr
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn callers_that_saw_one_failure_switch_once() {
        let token = BearerToken::new("t").expect("an ASCII token");
        let nowhere = endpoint("http://127.0.0.1:1").expect("an endpoint").connect_lazy();
        let route =
            Arc::new(LeaderRoute::new("127.0.0.1:1", vec![Clients::new(nowhere, token.clone())], &[], token, 2));
        let first = route.current();
        assert_eq!(first.generation, 1);
        let leader = uri_of(&member_up().await.to_string());
        let mut callers = Vec::new();
        for _ in 0..16 {
            let (route, seen, leader) = (route.clone(), first.clone(), leader.clone());
            callers.push(tokio::spawn(async move { route.follow(&seen, Redirect::To(leader)).await }));
        }
        for caller in callers {
            caller.await.expect("a caller");
        }
        assert_eq!(route.switches(), 1, "sixteen callers saw one NOT_LEADER: one switch");
        let second = route.current();
        assert_eq!((second.generation, second.uri.as_str()), (2, leader.as_str()));
        assert_eq!(route.members(), vec!["http://127.0.0.1:1".to_string(), leader.clone()]);
        // A caller that saw the old generation fail after the switch does not switch again.
        route.follow(&first, Redirect::Elsewhere).await;
        assert_eq!(route.switches(), 1);

        // The first success confirms a leader; a success at another member after a switch is a change.
        route.confirm(&second);
        route.confirm(&first);
        assert_eq!(route.leader_changes(), 0);
        let next = uri_of(&member_up().await.to_string());
        route.follow(&second, Redirect::To(next.clone())).await;
        let third = route.current();
        assert_eq!((third.generation, third.uri.as_str()), (3, next.as_str()));
        route.confirm(&third);
        route.confirm(&third);
        assert_eq!(route.leader_changes(), 1);
    }

    #[test]
    fn addresses_get_a_scheme_once() {
        assert_eq!(uri_of("127.0.0.1:1"), "http://127.0.0.1:1");
        assert_eq!(uri_of("https://node-1:50051"), "https://node-1:50051");
    }
}
