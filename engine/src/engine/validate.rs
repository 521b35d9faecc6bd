//! Input rules, written once: every command's fields are checked here and
//! every violation is reported at once, each named by its field path as the
//! public API spells it, relative to the command (`display_name`,
//! `trades[1].level`; the API adds the enclosing message, `worker.`). The
//! engine runs these rules when it applies a command; the server runs the same
//! functions to report a request's violations before submitting it.

use crate::catalog::{Regions, TradeCatalog};
use crate::command::*;
use crate::config::Limits;
use crate::directory::{MarketKind, MarketSpec, MAX_INDOOR_AREA_M2, MAX_MARKET_TRADES};
use crate::geo::LatLon;
use crate::model::{Availability, EmployerKind};
use std::fmt;

/// Highest daily wage (and minimum acceptable daily wage) accepted, yuan.
pub const MAX_DAILY_WAGE_YUAN: u32 = 100_000;

/// One field that breaks a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Path of the field, e.g. `headcount` or `trades[1].level`.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Every violation found in one command, in field order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Violations(Vec<Violation>);

impl Violations {
    /// Records a violation.
    pub fn add(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.0.push(Violation { field: field.into(), reason: reason.into() });
    }

    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The violations found.
    pub fn iter(&self) -> std::slice::Iter<'_, Violation> {
        self.0.iter()
    }

    /// Whether a field of this path was reported.
    pub fn names(&self, field: &str) -> bool {
        self.0.iter().any(|v| v.field == field)
    }

    /// `Ok` when nothing was found.
    pub fn into_result(self) -> Result<(), Violations> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }
}

impl IntoIterator for Violations {
    type Item = Violation;
    type IntoIter = std::vec::IntoIter<Violation>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", v.field, v.reason)?;
        }
        Ok(())
    }
}

/// What inputs are checked against: the limits, counties and trades of an engine.
#[derive(Clone, Copy)]
pub struct Rules<'a> {
    /// Input limits.
    pub limits: &'a Limits,
    /// Counties served.
    pub regions: &'a Regions,
    /// Trade catalogue.
    pub trades: &'a TradeCatalog,
}

fn path(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_string()
    } else {
        format!("{prefix}.{field}")
    }
}

impl Rules<'_> {
    /// Every violation of a command's input rules (the rules that do not
    /// depend on the engine's state).
    pub fn command(&self, command: &Command) -> Violations {
        let mut v = Violations::default();
        match command {
            Command::UpsertWorker(spec) => self.worker_spec(&mut v, "", spec),
            Command::MoveWorker { worker, position } => {
                self.id(&mut v, "worker_id", worker);
                self.position(&mut v, "position", *position);
            }
            Command::SetAvailability { worker, window } => {
                self.id(&mut v, "worker_id", worker);
                if let Some(w) = window {
                    self.window(&mut v, "window", *w);
                }
            }
            Command::WithdrawWorker { worker } => self.id(&mut v, "worker_id", worker),
            Command::UpsertEmployer(spec) => self.employer_spec(&mut v, "", spec),
            Command::SuspendEmployer { employer, reason } => {
                self.id(&mut v, "employer_id", employer);
                self.required_text(&mut v, "reason", reason);
            }
            Command::ReinstateEmployer { employer } => self.id(&mut v, "employer_id", employer),
            Command::SubmitPosting(spec) | Command::UpdatePosting(spec) => self.posting_spec(&mut v, "", spec),
            Command::ReviewPosting { posting, decision } => {
                self.id(&mut v, "posting_id", posting);
                if let ReviewDecision::Reject { reason } = decision {
                    self.required_text(&mut v, "reason", reason);
                }
            }
            Command::CancelPosting { posting, reason } => {
                self.id(&mut v, "posting_id", posting);
                self.optional_text(&mut v, "reason", reason);
            }
            Command::InstantMatch { posting, max_offers } => {
                self.id(&mut v, "posting_id", posting);
                bounded(&mut v, "max_offers", u32::from(*max_offers), 0, u32::from(self.limits.max_headcount));
            }
            Command::RespondToOffer { offer, worker, .. } => {
                offer_id(&mut v, *offer);
                self.id(&mut v, "worker_id", worker);
            }
            Command::ConfirmArrival { offer } | Command::CompleteJob { offer } | Command::ReportNoShow { offer } => {
                offer_id(&mut v, *offer)
            }
            Command::FileComplaint { employer, posting, county, detail, .. } => {
                self.id(&mut v, "employer_id", employer);
                if let Some(p) = posting {
                    self.id(&mut v, "posting_id", p);
                }
                self.county(&mut v, "county_code", *county);
                self.required_text(&mut v, "detail", detail);
            }
            Command::ResolveComplaint { complaint, note, .. } => {
                if *complaint == 0 {
                    v.add("complaint_id", "required");
                }
                self.optional_text(&mut v, "note", note);
            }
            Command::Tick => {}
            Command::UpsertMarket(spec) => self.market_spec(&mut v, "", spec),
            Command::RemoveMarket { market } => self.id(&mut v, "market_id", market),
            Command::SetRankingPolicy(policy) => {
                for p in policy.violations() {
                    v.add(p.field, p.reason);
                }
            }
            Command::SetBatchPolicy(batch) => {
                for p in batch.violations() {
                    v.add(p.field, p.reason);
                }
                for (i, code) in batch.counties.iter().enumerate() {
                    self.county(&mut v, &format!("counties[{i}]"), *code);
                }
            }
        }
        v
    }

    /// A worker's registration, its fields under `prefix`.
    pub fn worker_spec(&self, v: &mut Violations, prefix: &str, w: &WorkerSpec) {
        let max_trades = self.limits.max_trades_per_worker;
        self.id(v, &path(prefix, "worker_id"), &w.id);
        self.display_name(v, &path(prefix, "display_name"), &w.name);
        self.phone(v, &path(prefix, "phone"), &w.phone);
        if w.trades.is_empty() || w.trades.len() > max_trades {
            v.add(path(prefix, "trades"), format!("need 1 to {max_trades} trades"));
        }
        for (i, t) in w.trades.iter().enumerate().take(max_trades) {
            let at = path(prefix, &format!("trades[{i}]"));
            self.trade(v, &path(&at, "trade_id"), &t.trade);
            if w.trades[..i].iter().any(|earlier| earlier.trade == t.trade) {
                v.add(path(&at, "trade_id"), format!("trade `{}` repeated", t.trade.escape_debug()));
            }
            bounded(v, &path(&at, "level"), u32::from(t.level), 1, 5);
        }
        self.position(v, &path(prefix, "position"), w.position);
        self.county(v, &path(prefix, "county_code"), w.county);
        self.optional_code(v, &path(prefix, "township_code"), w.township.as_deref());
        self.window(v, &path(prefix, "availability"), w.availability);
        bounded(v, &path(prefix, "min_daily_wage_yuan"), w.min_daily_wage, 0, MAX_DAILY_WAGE_YUAN);
    }

    /// A posting's content, its fields under `prefix`.
    pub fn posting_spec(&self, v: &mut Violations, prefix: &str, p: &PostingSpec) {
        let l = self.limits;
        self.id(v, &path(prefix, "posting_id"), &p.id);
        self.id(v, &path(prefix, "employer_id"), &p.employer);
        self.trade(v, &path(prefix, "trade_id"), &p.trade);
        bounded(v, &path(prefix, "headcount"), u32::from(p.headcount), 1, u32::from(l.max_headcount));
        self.position(v, &path(prefix, "position"), p.position);
        self.county(v, &path(prefix, "county_code"), p.county);
        self.optional_code(v, &path(prefix, "township_code"), p.township.as_deref());
        bounded(v, &path(prefix, "max_distance_m"), p.max_distance_m, 1, l.max_travel_distance_m);
        bounded(v, &path(prefix, "daily_wage_yuan"), p.daily_wage, 1, MAX_DAILY_WAGE_YUAN);
        bounded(v, &path(prefix, "duration_minutes"), p.duration_minutes, 1, l.max_duration_minutes);
        bounded(v, &path(prefix, "offer_ttl_seconds"), p.offer_ttl_secs, 0, l.max_offer_ttl_secs);
        self.optional_text(v, &path(prefix, "description"), &p.description);
        if p.version == 0 {
            v.add(path(prefix, "version"), "must be at least 1");
        }
    }

    /// An employer's record, its fields under `prefix`.
    pub fn employer_spec(&self, v: &mut Violations, prefix: &str, e: &EmployerSpec) {
        self.id(v, &path(prefix, "employer_id"), &e.id);
        self.display_name(v, &path(prefix, "display_name"), &e.name);
        if let EmployerKind::Company { credit_code } = &e.kind {
            let ok =
                credit_code.len() == 18 && credit_code.chars().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase());
            if !ok {
                v.add(path(prefix, "credit_code"), "a company needs 18 digits or capital letters");
            }
        }
    }

    /// A directory entry, its fields under `prefix`.
    pub fn market_spec(&self, v: &mut Violations, prefix: &str, m: &MarketSpec) {
        self.id(v, &path(prefix, "market_id"), &m.id);
        self.county(v, &path(prefix, "county_code"), m.county);
        match (&m.township, m.kind) {
            (None, MarketKind::TownshipStation) => {
                v.add(path(prefix, "township_code"), "required for a township station")
            }
            (t, _) => self.optional_code(v, &path(prefix, "township_code"), t.as_deref()),
        }
        self.display_name(v, &path(prefix, "display_name"), &m.name);
        self.required_text(v, &path(prefix, "address"), &m.address);
        self.position(v, &path(prefix, "position"), m.position);
        bounded(v, &path(prefix, "indoor_area_m2"), m.indoor_area_m2, 1, MAX_INDOOR_AREA_M2);
        self.display_name(v, &path(prefix, "opening_hours"), &m.opening_hours);
        self.phone(v, &path(prefix, "hotline"), &m.hotline);
        self.display_name(v, &path(prefix, "complaint_channel"), &m.complaint_channel);
        if m.trades.len() > MAX_MARKET_TRADES {
            v.add(path(prefix, "trade_ids"), format!("at most {MAX_MARKET_TRADES} trades"));
        }
        for (i, t) in m.trades.iter().enumerate().take(MAX_MARKET_TRADES) {
            let at = path(prefix, &format!("trade_ids[{i}]"));
            if m.trades[..i].contains(t) {
                v.add(at.clone(), format!("trade `{}` repeated", t.escape_debug()));
            }
            self.trade(v, &at, t);
        }
    }

    /// A required id: 1 to `max_id_len` bytes, no whitespace or control characters.
    pub fn id(&self, v: &mut Violations, field: &str, value: &str) {
        if value.is_empty() {
            v.add(field, "required");
        } else if value.len() > self.limits.max_id_len {
            v.add(field, format!("longer than {} bytes", self.limits.max_id_len));
        } else if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
            v.add(field, "must not contain whitespace or control characters");
        }
    }

    /// An optional code (township): absent, or an id.
    pub fn optional_code(&self, v: &mut Violations, field: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.id(v, field, value);
        }
    }

    /// A required display name: not blank, no control characters, bounded.
    pub fn display_name(&self, v: &mut Violations, field: &str, value: &str) {
        if value.trim().is_empty() {
            v.add(field, "required");
        } else if value.len() > self.limits.max_name_len {
            v.add(field, format!("longer than {} bytes", self.limits.max_name_len));
        } else if value.chars().any(char::is_control) {
            v.add(field, "must not contain control characters");
        }
    }

    /// Free text, bounded, not blank.
    pub fn required_text(&self, v: &mut Violations, field: &str, value: &str) {
        if value.trim().is_empty() {
            v.add(field, "required");
        } else {
            self.optional_text(v, field, value);
        }
    }

    /// Free text, bounded, possibly blank.
    pub fn optional_text(&self, v: &mut Violations, field: &str, value: &str) {
        if value.len() > self.limits.max_text_len {
            v.add(field, format!("longer than {} bytes", self.limits.max_text_len));
        }
    }

    /// A phone number: digits with `+`, `-` and spaces, bounded.
    pub fn phone(&self, v: &mut Violations, field: &str, value: &str) {
        if value.is_empty() {
            v.add(field, "required");
        } else if value.len() > self.limits.max_phone_len {
            v.add(field, format!("longer than {} bytes", self.limits.max_phone_len));
        } else if !value.chars().all(|c| c.is_ascii_digit() || "+- ".contains(c)) {
            v.add(field, "only digits, '+', '-' and spaces are allowed");
        } else if !value.chars().any(|c| c.is_ascii_digit()) {
            v.add(field, "must contain digits");
        }
    }

    /// A county code served by the engine.
    pub fn county(&self, v: &mut Violations, field: &str, code: u32) {
        if code == 0 {
            v.add(field, "required");
        } else if self.regions.index_of(code).is_none() {
            v.add(field, format!("unknown county {code}"));
        }
    }

    /// A trade of the catalogue.
    pub fn trade(&self, v: &mut Violations, field: &str, value: &str) {
        if value.is_empty() {
            v.add(field, "required");
        } else if self.trades.index_of(value).is_none() {
            v.add(field, format!("unknown trade `{}`", value.escape_debug()));
        }
    }

    /// A position on the globe.
    pub fn position(&self, v: &mut Violations, field: &str, p: LatLon) {
        if !p.is_valid() {
            v.add(field, "latitude must be in -90..=90 and longitude in -180..=180 (finite numbers)");
        }
    }

    /// A non-empty time window.
    pub fn window(&self, v: &mut Violations, field: &str, w: Availability) {
        if w.from >= w.until {
            v.add(field, "start_time must be before end_time");
        }
    }
}

/// A number within `min..=max`.
pub fn bounded(v: &mut Violations, field: &str, value: u32, min: u32, max: u32) {
    if value < min || value > max {
        v.add(field, format!("must be {min} to {max}"));
    }
}

fn offer_id(v: &mut Violations, offer: u64) {
    if offer == 0 {
        v.add("offer_id", "required");
    }
}
