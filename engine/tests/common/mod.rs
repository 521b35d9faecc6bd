//! Shared helpers for the engine's integration tests: spec builders around the
//! 尧都区 seat, an independent brute-force ranking oracle, structural checks made
//! only through public queries, and a random command generator for property tests.

#![allow(dead_code)]

use compact_str::{format_compact, CompactString};
use linggong_engine::*;
use proptest::prelude::*;
use smallvec::SmallVec;
use std::collections::{BTreeMap, BTreeSet};

/// A fixed virtual "now" the tests start from (2023-11-14T22:13:20Z).
pub const T0: Timestamp = Timestamp(1_700_000_000_000);
/// 尧都区, the city district of Linfen.
pub const YAODU: u32 = 141002;
/// 侯马市, about 53 km south-west of 尧都区.
pub const HOUMA: u32 = 141081;
/// 襄汾县.
pub const XIANGFEN: u32 = 141023;

/// The 尧都区 county seat.
pub fn yaodu_seat() -> LatLon {
    LatLon { lat: 36.08, lon: 111.52 }
}

/// The 侯马市 county seat.
pub fn houma_seat() -> LatLon {
    LatLon { lat: 35.62, lon: 111.35 }
}

/// The 襄汾县 county seat.
pub fn xiangfen_seat() -> LatLon {
    LatLon { lat: 35.88, lon: 111.43 }
}

/// `T0` plus some seconds.
pub fn at(secs: i64) -> Timestamp {
    T0.plus_secs(secs)
}

/// A point `north_m` metres north and `east_m` metres east of `base` (flat-earth offset,
/// accurate to well under a metre at these distances).
pub fn offset(base: LatLon, north_m: f64, east_m: f64) -> LatLon {
    let lat = base.lat + north_m / 111_195.0;
    let lon = base.lon + east_m / (111_195.0 * base.lat.to_radians().cos());
    LatLon { lat, lon }
}

/// A worker in 尧都区 with the given trades (level 3), always available, asking 100 yuan a day.
pub fn worker_spec(id: &str, trades: &[&str], position: LatLon) -> WorkerSpec {
    WorkerSpec {
        id: id.into(),
        name: format_compact!("零工{id}"),
        phone: "13800000000".into(),
        trades: trades.iter().map(|t| TradeSkillSpec { trade: (*t).into(), level: 3 }).collect(),
        position,
        county: YAODU,
        township: None,
        availability: Availability::ALWAYS,
        min_daily_wage: 100,
        hardship: Hardship::None,
    }
}

/// An individual employer.
pub fn employer_spec(id: &str, verified: bool) -> EmployerSpec {
    EmployerSpec { id: id.into(), name: format_compact!("用工单位{id}"), kind: EmployerKind::Individual, verified }
}

/// A posting in 尧都区 at `position`, 200 yuan a day, 10 km reach, starting an hour after `T0`
/// for eight hours, with the default offer time-to-live.
pub fn posting_spec(id: &str, employer: &str, trade: &str, headcount: u8, position: LatLon) -> PostingSpec {
    PostingSpec {
        id: id.into(),
        employer: employer.into(),
        trade: trade.into(),
        headcount,
        position,
        county: YAODU,
        township: None,
        max_distance_m: 10_000,
        daily_wage: 200,
        start: at(3600),
        duration_minutes: 8 * 60,
        offer_ttl_secs: 0,
        description: "".into(),
        source: PostingSource::CountyDesk,
        version: 1,
    }
}

/// Applies a command that must succeed and returns its outcome.
#[track_caller]
pub fn ok(engine: &mut Engine, now: Timestamp, command: Command) -> Outcome {
    ok_with(engine, now, command, &mut Vec::new())
}

/// Applies a command that must succeed, appending its events to `events`, and returns its outcome.
#[track_caller]
pub fn ok_with(engine: &mut Engine, now: Timestamp, command: Command, events: &mut Vec<Event>) -> Outcome {
    match engine.apply(now, &command, events) {
        Ok(outcome) => outcome,
        Err(e) => panic!("{} failed: {e}", command.name()),
    }
}

/// Applies a command that must fail; asserts that it changed nothing (state and events).
#[track_caller]
pub fn refused(engine: &mut Engine, now: Timestamp, command: Command) -> EngineError {
    let before = engine.snapshot();
    let mut events = Vec::new();
    match engine.apply(now, &command, &mut events) {
        Ok(outcome) => panic!("{} unexpectedly succeeded: {outcome:?}", command.name()),
        Err(e) => {
            assert_eq!(before, engine.snapshot(), "{} failed with {e} but changed the state", command.name());
            assert!(events.is_empty(), "{} failed with {e} but emitted events", command.name());
            e
        }
    }
}

/// The offers an outcome made (instant match, reverse match or next offer after a job).
pub fn offers_made(outcome: &Outcome) -> Vec<MatchedOffer> {
    match outcome {
        Outcome::Matched { offers, .. } => offers.clone(),
        Outcome::WorkerUpserted { offer, .. } | Outcome::WorkerUpdated { offer, .. } => offer.iter().cloned().collect(),
        Outcome::OfferChanged { next_offer, .. } => next_offer.iter().cloned().collect(),
        _ => Vec::new(),
    }
}

/// Whether a worker (by registration index) could be offered a posting, distance aside.
fn eligible_ignoring_distance(w: &Worker, key: WorkerKey, p: &Posting) -> bool {
    w.status == WorkerStatus::Waiting
        && w.trades.iter().any(|t| t.trade == p.trade)
        && w.availability.covers(p.start)
        && w.min_daily_wage <= p.daily_wage
        && !p.passed_over.contains(&key)
}

/// The documented ranking computed the slow way, independently of the engine's matcher:
/// every waiting worker with the trade, within reach, available at the start and content
/// with the wage, sorted by the policy's effective distance, ties broken on worker id.
pub fn brute_force_rank(engine: &Engine, now: Timestamp, posting: &str, k: usize) -> Vec<CompactString> {
    let Some(p) = engine.posting(posting) else { return Vec::new() };
    let policy = &engine.config().policy;
    let mut candidates: Vec<(f64, &CompactString)> = engine
        .workers()
        .iter()
        .enumerate()
        .filter(|(i, w)| eligible_ignoring_distance(w, *i as WorkerKey, p))
        .filter_map(|(_, w)| {
            let d = w.position.distance_m(p.position);
            (d <= p.max_distance_m as f64).then(|| (policy.effective_distance(d, w, now), &w.id))
        })
        .collect();
    candidates.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(b.1)));
    candidates.into_iter().take(k).map(|(_, id)| id.clone()).collect()
}

/// Checks, through public queries only, what must hold after every command:
/// no worker in two live offers, worker status agrees with the offer held, posting
/// counts agree with live offers and never exceed headcount, posting state agrees
/// with its counts, pending offers belong to open postings of non-suspended employers,
/// and the county statistics agree with the records.
#[track_caller]
pub fn check_public_invariants(engine: &Engine) {
    // Live offers: one per worker, held by that worker, in the right status.
    let mut holders = BTreeSet::new();
    let mut per_posting: BTreeMap<PostingKey, (u8, u8)> = BTreeMap::new();
    for o in engine.live_offers() {
        assert!(o.state.is_live(), "offer {} kept while {:?}", o.id, o.state);
        assert!(holders.insert(o.worker), "worker key {} holds two live offers", o.worker);
        let w = engine.worker_by_key(o.worker);
        assert_eq!(w.offer, Some(o.id), "worker {} does not point at its offer {}", w.id, o.id);
        assert_eq!(engine.offer(o.id), Some(o), "offer {} not found by id", o.id);
        let p = engine.posting_by_key(o.posting);
        let counts = per_posting.entry(o.posting).or_default();
        if o.state == OfferState::Pending {
            counts.0 += 1;
            assert_eq!(w.status, WorkerStatus::Offered, "worker {} with pending offer {}", w.id, o.id);
            assert!(p.state.is_open(), "pending offer {} on {:?} posting {}", o.id, p.state, p.id);
            assert!(!engine.employer_by_key(p.employer).suspended, "pending offer {} of a suspended employer", o.id);
            assert!(!p.passed_over.contains(&o.worker), "offer {} to worker {} who passed over {}", o.id, w.id, p.id);
            assert_eq!(o.deadline, o.made_at.plus_secs(p.offer_ttl_secs as i64), "offer {} deadline", o.id);
        } else {
            counts.1 += 1;
            assert_eq!(w.status, WorkerStatus::Engaged, "worker {} with {:?} offer {}", w.id, o.state, o.id);
        }
    }
    // Workers: status agrees with the offer held.
    let mut waiting = 0;
    for w in engine.workers() {
        match w.status {
            WorkerStatus::Waiting | WorkerStatus::Away => {
                assert_eq!(w.offer, None, "worker {} is {:?} holding an offer", w.id, w.status);
                waiting += usize::from(w.status == WorkerStatus::Waiting);
            }
            WorkerStatus::Offered | WorkerStatus::Engaged => {
                let id = w.offer.unwrap_or_else(|| panic!("worker {} is {:?} without an offer", w.id, w.status));
                let o = engine.offer(id).unwrap_or_else(|| panic!("worker {} holds missing offer {id}", w.id));
                assert_eq!(engine.worker_by_key(o.worker).id, w.id, "worker {} holds another's offer {id}", w.id);
            }
        }
        assert_eq!(engine.worker(&w.id), Some(w), "worker {} not found by id", w.id);
    }
    assert_eq!(engine.waiting_count(), waiting, "waiting count");
    // Postings: counts, headcount, state.
    for (k, p) in engine.postings().iter().enumerate() {
        let (pending, engaged) = per_posting.get(&(k as PostingKey)).copied().unwrap_or_default();
        assert_eq!((p.pending, p.engaged), (pending, engaged), "posting {} counts vs live offers", p.id);
        let taken = p.engaged + p.completed;
        assert!(p.pending + taken <= p.headcount, "posting {} over headcount", p.id);
        assert!((1..=50).contains(&p.headcount), "posting {} headcount {}", p.id, p.headcount);
        assert_eq!(p.remaining(), p.headcount - p.pending - taken);
        match p.state {
            PostingState::Published => assert_eq!(p.pending + taken, 0, "published posting {} has offers", p.id),
            PostingState::Filling => {
                assert!(p.pending + taken > 0 && taken < p.headcount, "posting {} Filling with {:?}", p.id, p)
            }
            PostingState::Filled => {
                assert!(taken >= p.headcount, "posting {} Filled with {taken} of {}", p.id, p.headcount);
                assert!(p.filled_at.is_some(), "filled posting {} without filled_at", p.id);
            }
            PostingState::PendingReview => assert_eq!(p.pending + p.engaged, 0, "posting {} in review", p.id),
            PostingState::Rejected => {
                assert!(p.reason.is_some(), "rejected posting {} without reason", p.id);
                assert_eq!(p.pending, 0, "rejected posting {} with pending offers", p.id);
            }
            PostingState::Cancelled | PostingState::Expired => {
                assert_eq!(p.pending, 0, "{:?} posting {} with pending offers", p.state, p.id)
            }
        }
        if p.state.is_open() {
            assert!(p.published_at.is_some(), "open posting {} never published", p.id);
        }
        assert_eq!(engine.posting(&p.id), Some(p), "posting {} not found by id", p.id);
    }
    // County statistics agree with the records.
    for (ci, county) in engine.regions().counties().iter().enumerate() {
        let stats = engine.county_stats(county.code).expect("known county");
        assert_eq!(stats.county, county.code);
        for (t, (trade, n)) in stats.waiting_by_trade.iter().enumerate() {
            assert_eq!(trade, &engine.trades().get(t as u16).id);
            let expected = engine
                .workers()
                .iter()
                .filter(|w| {
                    w.status == WorkerStatus::Waiting
                        && w.county as usize == ci
                        && w.trades.iter().any(|s| s.trade as usize == t)
                })
                .count();
            assert_eq!(*n as usize, expected, "waiting {trade} in {}", county.code);
        }
        for (state, n) in &stats.postings_by_state {
            let expected = engine.postings().iter().filter(|p| p.county as usize == ci && p.state == *state).count();
            assert_eq!(*n as usize, expected, "{state:?} postings in {}", county.code);
        }
        // The ledger's daily flows add up to the running counters.
        let days: Vec<_> = engine.ledger().entries().filter(|((c, _), _)| *c == county.code).map(|(_, d)| d).collect();
        let sum = |f: fn(&ledger::DayLedger) -> u32| days.iter().map(|d| u64::from(f(d))).sum::<u64>();
        let c = &stats.counters;
        assert_eq!(sum(|d| d.registrations), c.registrations, "registrations in {}", county.code);
        assert_eq!(sum(|d| d.offers_made), c.offers_made, "offers in {}", county.code);
        assert_eq!(sum(|d| d.placements), c.offers_accepted, "placements in {}", county.code);
        assert_eq!(sum(|d| d.hardship_placements), c.hardship_placements, "hardship in {}", county.code);
        assert_eq!(sum(|d| d.postings_filled), c.postings_filled, "fills in {}", county.code);
        assert_eq!(sum(|d| d.no_shows), c.no_shows, "no-shows in {}", county.code);
        assert_eq!(sum(|d| d.complaints.iter().map(|x| x.filed).sum()), c.complaints_filed);
        assert_eq!(sum(|d| d.complaints.iter().map(|x| x.resolved).sum()), c.complaints_resolved);
        assert!(days.iter().all(|d| d.fill_secs.len() == d.postings_filled as usize
            && d.placement_distances_m.len() == d.placements as usize));
    }
    // Every posting was counted once, by source, where it was submitted (an update may move it).
    let by_source: u64 =
        engine.ledger().entries().map(|(_, d)| d.postings_by_source.iter().map(|&n| u64::from(n)).sum::<u64>()).sum();
    assert_eq!(by_source, engine.postings().len() as u64, "postings by source");
}

/// Checks an offer made by a reverse match (a worker becoming available): the posting
/// is open, its employer not suspended, the worker eligible and within reach, and no
/// other open posting with room is nearer (ties on posting id).
#[track_caller]
pub fn check_reverse_offer(engine: &Engine, offer: &MatchedOffer) {
    let w = engine.worker(&offer.worker).expect("offered worker exists");
    let key = engine.workers().iter().position(|x| x.id == w.id).unwrap() as WorkerKey;
    let chosen = engine.posting(&offer.posting).expect("offered posting exists");
    assert!(w.trades.iter().any(|t| t.trade == chosen.trade), "reverse offer for a trade {} lacks", w.id);
    assert!(chosen.state.is_open(), "reverse offer on {:?} posting", chosen.state);
    let d_chosen = w.position.distance_m(chosen.position);
    assert!(d_chosen <= chosen.max_distance_m as f64, "reverse offer beyond reach");
    assert_eq!(offer.distance_m, d_chosen.round() as u32);
    for p in engine.postings() {
        if p.id == chosen.id || !p.state.is_open() || p.remaining() == 0 {
            continue;
        }
        if engine.employer_by_key(p.employer).suspended {
            continue;
        }
        let pretend_waiting = Worker { status: WorkerStatus::Waiting, ..w.clone() };
        if !eligible_ignoring_distance(&pretend_waiting, key, p) {
            continue;
        }
        let d = w.position.distance_m(p.position);
        if d > p.max_distance_m as f64 {
            continue;
        }
        assert!(
            (d_chosen, &chosen.id) < (d, &p.id),
            "worker {} offered {} at {d_chosen:.0} m but {} is at {d:.0} m",
            w.id,
            chosen.id,
            p.id
        );
    }
}

// ------------------------------------------------------------------ generator

/// Trades the random workers and postings use: few, so matches happen.
pub const GEN_TRADES: [&str; 3] = ["mason", "porter", "electrician"];
const GEN_WORKERS: u8 = 8;
const GEN_EMPLOYERS: u8 = 3;
const GEN_POSTINGS: u8 = 4;

/// A generated position: mostly within a few km of the 尧都区 seat.
#[derive(Clone, Debug)]
pub enum GenPos {
    /// Metres north and east of the 尧都区 seat.
    Near(i16, i16),
    /// The 侯马市 seat, far from everything else.
    Houma,
    /// NaN latitude.
    NaN,
    /// Latitude 91.
    Lat91,
}

impl GenPos {
    fn to_latlon(&self) -> LatLon {
        match *self {
            GenPos::Near(n, e) => offset(yaodu_seat(), n as f64, e as f64),
            GenPos::Houma => houma_seat(),
            GenPos::NaN => LatLon { lat: f64::NAN, lon: 111.5 },
            GenPos::Lat91 => LatLon { lat: 91.0, lon: 111.5 },
        }
    }
}

fn gen_pos() -> impl Strategy<Value = GenPos> {
    prop_oneof![
        80 => (-2000i16..=2000, -2000i16..=2000).prop_map(|(n, e)| GenPos::Near(n, e)),
        2 => Just(GenPos::Houma),
        1 => Just(GenPos::NaN),
        1 => Just(GenPos::Lat91),
    ]
}

fn gen_county() -> impl Strategy<Value = u32> {
    prop_oneof![30 => Just(YAODU), 3 => Just(HOUMA), 1 => Just(999_999u32)]
}

/// A generated availability window, in minutes relative to the command's `now`.
fn gen_window() -> impl Strategy<Value = Option<(i32, i32)>> {
    prop_oneof![
        6 => Just(Some((i32::MIN, i32::MAX))),
        2 => (-120i32..240, 0i32..600).prop_map(|(from, len)| Some((from, from + len))),
        1 => Just(None),
    ]
}

/// Like [`gen_window`], for registrations: `None` there becomes an empty (invalid) window, so rarer.
fn gen_registration_window() -> impl Strategy<Value = Option<(i32, i32)>> {
    prop_oneof![20 => gen_window().prop_filter("some", Option::is_some), 1 => Just(None)]
}

fn window_at(now: Timestamp, w: (i32, i32)) -> Availability {
    if w == (i32::MIN, i32::MAX) {
        Availability::ALWAYS
    } else {
        Availability { from: now.plus_minutes(w.0 as i64), until: now.plus_minutes(w.1 as i64) }
    }
}

/// Which worker or posting a generated command refers to.
#[derive(Clone, Debug)]
pub enum GenRef {
    /// The n-th registered one (modulo their number), if any.
    Existing(u8),
    /// An id number, maybe not registered.
    Id(u8),
}

fn gen_ref(ids: u8) -> impl Strategy<Value = GenRef> {
    prop_oneof![6 => any::<u8>().prop_map(GenRef::Existing), 1 => (0..ids).prop_map(GenRef::Id)]
}

impl GenRef {
    fn pick<'a>(&self, ids: impl ExactSizeIterator<Item = &'a CompactString>, prefix: &str) -> CompactString {
        match *self {
            GenRef::Existing(n) if ids.len() > 0 => {
                let len = ids.len();
                ids.into_iter().nth(n as usize % len).expect("in range").clone()
            }
            GenRef::Existing(n) | GenRef::Id(n) => format_compact!("{prefix}{n}"),
        }
    }
    fn worker(&self, engine: &Engine) -> CompactString {
        self.pick(engine.workers().iter().map(|w| &w.id), "w")
    }
    fn posting(&self, engine: &Engine) -> CompactString {
        self.pick(engine.postings().iter().map(|p| &p.id), "p")
    }
}

/// Which offer a generated command refers to.
#[derive(Clone, Debug)]
pub enum GenOffer {
    /// The n-th live offer in a state the command accepts (modulo their number), if any.
    Fitting(u8),
    /// The n-th live offer (modulo their number), if any.
    Live(u8),
    /// A raw id, most likely finished or never made.
    Raw(u8),
}

/// A generated posting spec.
#[derive(Clone, Debug)]
pub struct GenPosting {
    pub id: u8,
    pub employer: u8,
    pub trade: u8,
    pub headcount: u8,
    pub pos: GenPos,
    pub county: u32,
    pub max_distance_km: u8,
    pub wage: u32,
    pub start_min: i16,
    pub duration_min: u16,
    pub ttl_secs: u16,
    pub long_description: bool,
}

fn gen_posting() -> impl Strategy<Value = GenPosting> {
    (
        (0..GEN_POSTINGS, 0..GEN_EMPLOYERS, prop_oneof![12 => 0..GEN_TRADES.len() as u8, 1 => Just(99u8)]),
        prop_oneof![40 => 1u8..=4, 1 => Just(0u8), 1 => Just(51u8)],
        (gen_pos(), gen_county(), 3u8..=10),
        prop_oneof![1 => 5u32..=7, 15 => 8u32..=22].prop_map(|w| w * 10),
        (-40i16..=120, prop_oneof![20 => 20u16..=240, 10 => 240u16..=900, 1 => Just(0u16)]),
        prop_oneof![1 => Just(0u16), 1 => 20u16..=120, 2 => 120u16..=3600],
        proptest::bool::weighted(0.01),
    )
        .prop_map(
            |(
                (id, employer, trade),
                headcount,
                (pos, county, max_distance_km),
                wage,
                (start_min, duration_min),
                ttl_secs,
                long_description,
            )| GenPosting {
                id,
                employer,
                trade,
                headcount,
                pos,
                county,
                max_distance_km,
                wage,
                start_min,
                duration_min,
                ttl_secs,
                long_description,
            },
        )
}

fn gen_trade(i: u8) -> CompactString {
    GEN_TRADES.get(i as usize).map_or_else(|| "astronaut".into(), |t| (*t).into())
}

impl GenPosting {
    fn spec(&self, now: Timestamp, version: u64) -> PostingSpec {
        PostingSpec {
            id: format_compact!("p{}", self.id),
            employer: format_compact!("e{}", self.employer),
            trade: gen_trade(self.trade),
            headcount: self.headcount,
            position: self.pos.to_latlon(),
            county: self.county,
            township: Some("141002001".into()),
            max_distance_m: self.max_distance_km as u32 * 1000,
            daily_wage: self.wage,
            start: now.plus_minutes(self.start_min as i64),
            duration_minutes: self.duration_min as u32,
            offer_ttl_secs: self.ttl_secs as u32,
            description: if self.long_description { "长".repeat(700).into() } else { "搬运".into() },
            source: PostingSource::TownshipStation,
            version,
        }
    }
}

/// One generated operation; turned into a [`Command`] against the engine's current state
/// (so offer references and posting versions hit often).
#[derive(Clone, Debug)]
pub enum Op {
    UpsertWorker {
        w: u8,
        trades: Vec<u8>,
        pos: GenPos,
        county: u32,
        hardship: bool,
        wage: u32,
        window: Option<(i32, i32)>,
    },
    MoveWorker {
        w: GenRef,
        pos: GenPos,
    },
    SetAvailability {
        w: GenRef,
        window: Option<(i32, i32)>,
    },
    WithdrawWorker {
        w: GenRef,
    },
    UpsertEmployer {
        e: u8,
        verified: bool,
    },
    SuspendEmployer {
        e: u8,
    },
    ReinstateEmployer {
        e: u8,
    },
    SubmitPosting(GenPosting),
    UpdatePosting {
        spec: GenPosting,
        version_delta: i8,
        same_employer: bool,
    },
    ReviewPosting {
        p: GenRef,
        approve: bool,
    },
    CancelPosting {
        p: GenRef,
    },
    InstantMatch {
        p: GenRef,
        max_offers: u8,
    },
    Respond {
        offer: GenOffer,
        by_holder: bool,
        other: u8,
        accept: bool,
    },
    ConfirmArrival {
        offer: GenOffer,
    },
    CompleteJob {
        offer: GenOffer,
    },
    ReportNoShow {
        offer: GenOffer,
    },
    FileComplaint {
        e: u8,
        p: Option<u8>,
        county: u32,
    },
    ResolveComplaint {
        c: u8,
        upheld: bool,
    },
    Tick,
    UpsertMarket {
        m: u8,
        county: u32,
        station: bool,
        area: u32,
    },
    RemoveMarket {
        m: u8,
    },
}

fn gen_offer() -> impl Strategy<Value = GenOffer> {
    prop_oneof![
        8 => any::<u8>().prop_map(GenOffer::Fitting),
        2 => any::<u8>().prop_map(GenOffer::Live),
        1 => (0u8..40).prop_map(GenOffer::Raw),
    ]
}

/// A worker registration or profile update, mostly valid.
fn gen_upsert_worker() -> impl Strategy<Value = Op> {
    (
        0..GEN_WORKERS,
        prop_oneof![
            30 => proptest::sample::subsequence(vec![0u8, 1, 2], 1..=3),
            1 => proptest::collection::vec(0..=GEN_TRADES.len() as u8, 0..=3),
        ],
        gen_pos(),
        gen_county(),
        proptest::bool::weighted(0.3),
        (6u32..=12).prop_map(|w| w * 10),
        gen_registration_window(),
    )
        .prop_map(|(w, trades, pos, county, hardship, wage, window)| Op::UpsertWorker {
            w,
            trades,
            pos,
            county,
            hardship,
            wage,
            window,
        })
}

/// A random operation, weighted so that workers, postings and offers meet often.
pub fn gen_op() -> impl Strategy<Value = Op> {
    let w = 0..GEN_WORKERS;
    let e = 0..GEN_EMPLOYERS;
    let p = 0..GEN_POSTINGS;
    prop_oneof![
        16 => gen_upsert_worker(),
        4 => (gen_ref(GEN_WORKERS), gen_pos()).prop_map(|(w, pos)| Op::MoveWorker { w, pos }),
        4 => (gen_ref(GEN_WORKERS), gen_window()).prop_map(|(w, window)| Op::SetAvailability { w, window }),
        1 => gen_ref(GEN_WORKERS).prop_map(|w| Op::WithdrawWorker { w }),
        1 => (e.clone(), proptest::bool::weighted(0.7)).prop_map(|(e, verified)| Op::UpsertEmployer { e, verified }),
        1 => e.clone().prop_map(|e| Op::SuspendEmployer { e }),
        2 => e.clone().prop_map(|e| Op::ReinstateEmployer { e }),
        8 => gen_posting().prop_map(Op::SubmitPosting),
        3 => (gen_posting(), prop_oneof![1 => -1i8..=0, 4 => 1i8..=2], proptest::bool::weighted(0.9))
            .prop_map(|(spec, version_delta, same_employer)| Op::UpdatePosting { spec, version_delta, same_employer }),
        3 => (gen_ref(GEN_POSTINGS), proptest::bool::weighted(0.7)).prop_map(|(p, approve)| Op::ReviewPosting { p, approve }),
        1 => gen_ref(GEN_POSTINGS).prop_map(|p| Op::CancelPosting { p }),
        12 => (gen_ref(GEN_POSTINGS), prop_oneof![Just(0u8), 1u8..=3]).prop_map(|(p, max_offers)| Op::InstantMatch { p, max_offers }),
        16 => (gen_offer(), proptest::bool::weighted(0.9), w.clone(), proptest::bool::weighted(0.6))
            .prop_map(|(offer, by_holder, other, accept)| Op::Respond { offer, by_holder, other, accept }),
        4 => gen_offer().prop_map(|offer| Op::ConfirmArrival { offer }),
        5 => gen_offer().prop_map(|offer| Op::CompleteJob { offer }),
        3 => gen_offer().prop_map(|offer| Op::ReportNoShow { offer }),
        2 => (e.clone(), proptest::option::of(p.clone()), gen_county())
            .prop_map(|(e, p, county)| Op::FileComplaint { e, p, county }),
        2 => (0u8..=3, any::<bool>()).prop_map(|(c, upheld)| Op::ResolveComplaint { c, upheld }),
        4 => Just(Op::Tick),
        1 => (0u8..4, gen_county(), any::<bool>(), prop_oneof![Just(0u32), 100u32..=400])
            .prop_map(|(m, county, station, area)| Op::UpsertMarket { m, county, station, area }),
        1 => (0u8..4).prop_map(|m| Op::RemoveMarket { m }),
    ]
}

/// How far the virtual clock moves before a step, milliseconds: mostly seconds, sometimes
/// minutes (offers expire), rarely hours (postings expire).
pub fn gen_advance() -> impl Strategy<Value = i64> {
    prop_oneof![
        40 => 0i64..=10_000,
        10 => 10_000i64..=120_000,
        4 => 120_000i64..=900_000,
        2 => 900_000i64..=4 * 3_600_000,
    ]
}

/// A random session: every employer registered first (verified or not) and some workers,
/// then up to `max_len` random (clock advance, operation) steps.
pub fn gen_session(max_len: usize) -> impl Strategy<Value = Vec<(i64, Op)>> {
    (
        proptest::collection::vec(proptest::bool::weighted(0.7), GEN_EMPLOYERS as usize),
        proptest::collection::vec(gen_upsert_worker(), 2..=GEN_WORKERS as usize),
        proptest::collection::vec((gen_advance(), gen_op()), 1..=max_len),
    )
        .prop_map(|(verified, workers, steps)| {
            let employers =
                verified.into_iter().enumerate().map(|(e, verified)| Op::UpsertEmployer { e: e as u8, verified });
            employers.chain(workers).map(|op| (0, op)).chain(steps).collect()
        })
}

/// The offer id a generated reference stands for; `fits` says which states the command accepts.
fn resolve_offer(engine: &Engine, offer: &GenOffer, fits: &[OfferState]) -> OfferId {
    let pick = |n: u8, only_fitting: bool| {
        let live: Vec<&Offer> =
            engine.live_offers().into_iter().filter(|o| !only_fitting || fits.contains(&o.state)).collect();
        if live.is_empty() {
            1_000
        } else {
            live[n as usize % live.len()].id
        }
    };
    match *offer {
        GenOffer::Fitting(n) => pick(n, true),
        GenOffer::Live(n) => pick(n, false),
        GenOffer::Raw(id) => id as OfferId,
    }
}

impl Op {
    /// The command this operation stands for, given the engine's current state.
    pub fn command(&self, engine: &Engine, now: Timestamp) -> Command {
        match self {
            Op::UpsertWorker { w, trades, pos, county, hardship, wage, window } => {
                let trades: SmallVec<[TradeSkillSpec; 4]> =
                    trades.iter().map(|t| TradeSkillSpec { trade: gen_trade(*t), level: 1 + t % 5 }).collect();
                Command::UpsertWorker(WorkerSpec {
                    id: format_compact!("w{w}"),
                    name: format_compact!("零工{w}"),
                    phone: "+86 138-0000-0000".into(),
                    trades,
                    position: pos.to_latlon(),
                    county: *county,
                    township: None,
                    // An empty window (`from == until`) is invalid input: keep some.
                    availability: window
                        .map_or(Availability { from: now.plus_minutes(10), until: now.plus_minutes(10) }, |win| {
                            window_at(now, win)
                        }),
                    min_daily_wage: *wage,
                    hardship: if *hardship { Hardship::LowIncomeHousehold } else { Hardship::None },
                })
            }
            Op::MoveWorker { w, pos } => Command::MoveWorker { worker: w.worker(engine), position: pos.to_latlon() },
            Op::SetAvailability { w, window } => {
                Command::SetAvailability { worker: w.worker(engine), window: window.map(|win| window_at(now, win)) }
            }
            Op::WithdrawWorker { w } => Command::WithdrawWorker { worker: w.worker(engine) },
            Op::UpsertEmployer { e, verified } => Command::UpsertEmployer(EmployerSpec {
                id: format_compact!("e{e}"),
                name: format_compact!("用工单位{e}"),
                kind: if e % 2 == 0 {
                    EmployerKind::Company { credit_code: format_compact!("91141000MA0000000{e}") }
                } else {
                    EmployerKind::Individual
                },
                verified: *verified,
            }),
            Op::SuspendEmployer { e } => {
                Command::SuspendEmployer { employer: format_compact!("e{e}"), reason: "欠薪投诉".into() }
            }
            Op::ReinstateEmployer { e } => Command::ReinstateEmployer { employer: format_compact!("e{e}") },
            Op::SubmitPosting(spec) => Command::SubmitPosting(spec.spec(now, 1)),
            Op::UpdatePosting { spec, version_delta, same_employer } => {
                let current = engine.posting(&format!("p{}", spec.id));
                let version = (current.map_or(1, |p| p.version) as i64 + *version_delta as i64).max(0) as u64;
                let mut spec = spec.spec(now, version);
                if let Some(p) = current.filter(|_| *same_employer) {
                    spec.employer = engine.employer_by_key(p.employer).id.clone();
                }
                Command::UpdatePosting(spec)
            }
            Op::ReviewPosting { p, approve } => Command::ReviewPosting {
                posting: p.posting(engine),
                decision: if *approve {
                    ReviewDecision::Approve
                } else {
                    ReviewDecision::Reject { reason: "信息不实".into() }
                },
            },
            Op::CancelPosting { p } => {
                Command::CancelPosting { posting: p.posting(engine), reason: "用工取消".into() }
            }
            Op::InstantMatch { p, max_offers } => {
                Command::InstantMatch { posting: p.posting(engine), max_offers: *max_offers }
            }
            Op::Respond { offer, by_holder, other, accept } => {
                let id = resolve_offer(engine, offer, &[OfferState::Pending]);
                let holder = engine.offer(id).map(|o| engine.worker_by_key(o.worker).id.clone());
                let worker = match holder {
                    Some(h) if *by_holder => h,
                    _ => format_compact!("w{other}"),
                };
                let response = if *accept { OfferResponse::Accept } else { OfferResponse::Decline };
                Command::RespondToOffer { offer: id, worker, response }
            }
            Op::ConfirmArrival { offer } => {
                Command::ConfirmArrival { offer: resolve_offer(engine, offer, &[OfferState::Accepted]) }
            }
            Op::CompleteJob { offer } => Command::CompleteJob {
                offer: resolve_offer(engine, offer, &[OfferState::Accepted, OfferState::Arrived]),
            },
            Op::ReportNoShow { offer } => {
                Command::ReportNoShow { offer: resolve_offer(engine, offer, &[OfferState::Accepted]) }
            }
            Op::FileComplaint { e, p, county } => Command::FileComplaint {
                employer: format_compact!("e{e}"),
                posting: p.map(|p| format_compact!("p{p}")),
                county: *county,
                category: ComplaintCategory::WageArrears,
                detail: "工资未结".into(),
            },
            Op::ResolveComplaint { c, upheld } => Command::ResolveComplaint {
                complaint: *c as ComplaintId,
                resolution: if *upheld { ComplaintResolution::Upheld } else { ComplaintResolution::Dismissed },
                note: "已处理".into(),
            },
            Op::Tick => Command::Tick,
            Op::UpsertMarket { m, county, station, area } => Command::UpsertMarket(MarketSpec {
                indoor_area_m2: *area,
                ..market_spec(&format!("m{m}"), *county, station.then_some("141002001"), *area)
            }),
            Op::RemoveMarket { m } => Command::RemoveMarket { market: format_compact!("m{m}") },
        }
    }
}

/// Proptest configuration with `default_cases`, unless `PROPTEST_CASES` asks for more or fewer.
pub fn proptest_config(default_cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(default_cases);
    ProptestConfig { cases, ..ProptestConfig::default() }
}

/// Runs a session against an engine, returning the end time, every outcome (or
/// error) in order, and every event.
pub fn run_session(
    engine: &mut Engine,
    start: Timestamp,
    session: &[(i64, Op)],
) -> (Timestamp, Vec<Result<Outcome, EngineError>>, Vec<Event>) {
    let mut now = start;
    let mut results = Vec::with_capacity(session.len());
    let mut events = Vec::new();
    for (advance, op) in session {
        now = Timestamp(now.0 + advance);
        let command = op.command(engine, now);
        results.push(engine.apply(now, &command, &mut events));
    }
    (now, results, events)
}

/// A directory entry in `county` near 尧都区's seat: the county market when
/// `township` is `None`, else a township station.
pub fn market_spec(id: &str, county: u32, township: Option<&str>, indoor_area_m2: u32) -> MarketSpec {
    MarketSpec {
        id: id.into(),
        county,
        township: township.map(Into::into),
        name: format_compact!("零工市场{id}"),
        kind: if township.is_some() { MarketKind::TownshipStation } else { MarketKind::CountyMarket },
        address: "解放路1号".into(),
        position: yaodu_seat(),
        indoor_area_m2,
        adapts_recruitment_hall: false,
        opening_hours: "07:00-18:00".into(),
        hotline: "0357-1234567".into(),
        complaint_channel: "12333".into(),
        trades: vec!["porter".into(), "mason".into()],
    }
}
