//! Requests of the list and look-up RPCs people act on — complaints,
//! employers, markets of any set of counties, workers by phone — validated
//! into filters and pages (every bad field named, all at once).

use super::api::{
    complaint_category_from_pb, county, date, fingerprint, finish, id, optional_code, optional_enum, page, phone,
    required_enum, timestamp, InvalidRequest, PageRequest, Rules, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE,
};
use super::crs::crs_from_pb;
use crate::ledger_export::{Lang, Period, MAX_EXPORT_DAYS};
use crate::proto::v1 as pb;
use linggong_engine::validate::Violations;
use linggong_engine::{Complaint, ComplaintCategory, Crs, Employer, Engine, LedgerDay, MarketSpec, Timestamp};

/// Counties a list is restricted to; `None` for every county.
pub type CountySet = Option<Vec<u32>>;

fn county_set(v: &mut Violations, rules: &Rules, field: &str, codes: &[u32]) -> CountySet {
    if codes.is_empty() {
        return None;
    }
    Some(codes.iter().enumerate().map(|(i, &c)| county(v, rules, format!("{field}[{i}]"), c)).collect())
}

fn county_bytes(codes: &[u32]) -> Vec<u8> {
    codes.iter().flat_map(|c| c.to_le_bytes()).collect()
}

fn crs_field(v: &mut Violations, field: &str, raw: i32) -> Crs {
    match pb::CoordinateSystem::try_from(raw) {
        Ok(c) => crs_from_pb(c),
        Err(_) => {
            v.add(field, format!("unknown coordinate system {raw}"));
            Crs::Wgs84
        }
    }
}

/// Open or resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ComplaintStateFilter {
    /// Not yet resolved.
    Open,
    /// Resolved.
    Resolved,
}

/// Which complaints a `ListComplaints` wants.
#[derive(Clone, Debug, Default)]
pub struct ComplaintFilter {
    /// Counties (codes); `None` for all.
    pub counties: CountySet,
    /// State.
    pub state: Option<ComplaintStateFilter>,
    /// Category.
    pub category: Option<ComplaintCategory>,
    /// Employer id.
    pub employer: Option<String>,
    /// Filed strictly before.
    pub filed_before: Option<Timestamp>,
    /// Filed at or after.
    pub filed_after: Option<Timestamp>,
}

impl ComplaintFilter {
    /// Whether a complaint passes.
    pub fn matches(&self, engine: &Engine, c: &Complaint) -> bool {
        let code = engine.regions().get(c.county).code;
        self.counties.as_ref().is_none_or(|set| set.contains(&code))
            && self.state.is_none_or(|s| (s == ComplaintStateFilter::Resolved) == c.resolution.is_some())
            && self.category.is_none_or(|k| k == c.category)
            && self.filed_before.is_none_or(|t| c.filed_at < t)
            && self.filed_after.is_none_or(|t| c.filed_at >= t)
            && self.employer.as_deref().is_none_or(|e| engine.employer_by_key(c.employer).id == e)
    }
}

/// `ListComplaints` → a filter and a page.
pub fn list_complaints_request(
    rules: &Rules,
    req: &pb::ListComplaintsRequest,
) -> Result<(ComplaintFilter, PageRequest), InvalidRequest> {
    let mut v = Violations::default();
    let counties = county_set(&mut v, rules, "county_codes", &req.county_codes);
    let state = optional_enum(&mut v, "state".into(), req.state, |s: pb::ComplaintState| match s {
        pb::ComplaintState::Unspecified => None,
        pb::ComplaintState::Open => Some(ComplaintStateFilter::Open),
        pb::ComplaintState::Resolved => Some(ComplaintStateFilter::Resolved),
    });
    let category = optional_enum(&mut v, "category".into(), req.category, complaint_category_from_pb);
    let employer = optional_code(&mut v, rules, "employer_id".into(), &req.employer_id).map(String::from);
    let filed_before = req.filed_before.as_ref().map(|t| timestamp(&mut v, "filed_before".into(), t));
    let filed_after = req.filed_after.as_ref().map(|t| timestamp(&mut v, "filed_after".into(), t));
    if let (Some(b), Some(a)) = (filed_before, filed_after) {
        if a >= b {
            v.add("filed_after", "must be before filed_before");
        }
    }
    let time_bytes = |t: Option<Timestamp>| t.map_or([0xff; 8], |t| t.0.to_le_bytes());
    let fp = fingerprint(&[
        b"complaints".as_slice(),
        &county_bytes(&req.county_codes),
        &req.state.to_le_bytes(),
        &req.category.to_le_bytes(),
        req.employer_id.as_bytes(),
        &time_bytes(filed_before),
        &time_bytes(filed_after),
    ]);
    let page = page(&mut v, req.page_size, &req.page_token, fp);
    finish(v, (ComplaintFilter { counties, state, category, employer, filed_before, filed_after }, page))
}

/// `GetComplaint` → the complaint id.
pub fn get_complaint_request(req: &pb::GetComplaintRequest) -> Result<u64, InvalidRequest> {
    if req.complaint_id == 0 {
        return Err(InvalidRequest::single("complaint_id", "required"));
    }
    Ok(req.complaint_id)
}

/// Which employers a `ListEmployers` wants.
#[derive(Clone, Debug, Default)]
pub struct EmployerFilter {
    /// Employers with a posting in one of these counties; `None` for all.
    pub counties: CountySet,
    /// Verified or not.
    pub verified: Option<bool>,
    /// Suspended or not.
    pub suspended: Option<bool>,
    /// Display-name prefix.
    pub name_prefix: String,
}

impl EmployerFilter {
    /// Whether an employer passes the filters other than county.
    pub fn matches_standing(&self, e: &Employer) -> bool {
        self.verified.is_none_or(|v| v == e.verified)
            && self.suspended.is_none_or(|s| s == e.suspended)
            && e.name.starts_with(self.name_prefix.as_str())
    }
}

/// `ListEmployers` → a filter and a page.
pub fn list_employers_request(
    rules: &Rules,
    req: &pb::ListEmployersRequest,
) -> Result<(EmployerFilter, PageRequest), InvalidRequest> {
    let mut v = Violations::default();
    let counties = county_set(&mut v, rules, "county_codes", &req.county_codes);
    if req.name_prefix.len() > rules.limits.max_name_len {
        v.add("name_prefix", format!("longer than {} bytes", rules.limits.max_name_len));
    }
    let flag = |b: Option<bool>| [b.map_or(2u8, u8::from)];
    let fp = fingerprint(&[
        b"employers".as_slice(),
        &county_bytes(&req.county_codes),
        &flag(req.verified),
        &flag(req.suspended),
        req.name_prefix.as_bytes(),
    ]);
    let page = page(&mut v, req.page_size, &req.page_token, fp);
    let filter = EmployerFilter {
        counties,
        verified: req.verified,
        suspended: req.suspended,
        name_prefix: req.name_prefix.clone(),
    };
    finish(v, (filter, page))
}

/// `GetEmployer` → the employer id.
pub fn get_employer_request<'a>(rules: &Rules, req: &'a pb::GetEmployerRequest) -> Result<&'a str, InvalidRequest> {
    let mut v = Violations::default();
    let employer = id(&mut v, rules, "employer_id".into(), &req.employer_id);
    finish(v, employer)
}

/// One page of markets: entries after `after` (an id), in id order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarketPage {
    /// Counties; `None` for all.
    pub counties: CountySet,
    /// The last id of the previous page.
    pub after: Option<String>,
    /// Most entries.
    pub size: usize,
    /// Fingerprint of the filters, carried in tokens.
    pub fingerprint: u64,
    /// The system of positions in the response.
    pub crs: Crs,
}

impl MarketPage {
    /// Whether an entry is in the requested counties.
    pub fn covers(&self, m: &MarketSpec) -> bool {
        self.counties.as_ref().is_none_or(|set| set.contains(&m.county))
    }
}

/// The token continuing after the market `last_id`.
pub fn market_page_token(last_id: &str, fingerprint: u64) -> String {
    hex::encode(format!("m1:{fingerprint:016x}:{last_id}"))
}

/// `ListMarkets` → counties, page and response system.
pub fn list_markets_request(rules: &Rules, req: &pb::ListMarketsRequest) -> Result<MarketPage, InvalidRequest> {
    let mut v = Violations::default();
    let mut codes = req.county_codes.clone();
    if req.county_code != 0 {
        codes.insert(0, req.county_code);
    }
    let mut counties = None;
    if !codes.is_empty() {
        let mut set = Vec::with_capacity(codes.len());
        if req.county_code != 0 {
            set.push(county(&mut v, rules, "county_code".into(), req.county_code));
        }
        set.extend(county_set(&mut v, rules, "county_codes", &req.county_codes).unwrap_or_default());
        counties = Some(set);
    }
    let fp = fingerprint(&[b"markets".as_slice(), &county_bytes(&codes)]);
    let size = match req.page_size {
        0 => DEFAULT_PAGE_SIZE,
        n if n < 0 => {
            v.add("page_size", "must not be negative");
            DEFAULT_PAGE_SIZE
        }
        n => (n as usize).min(MAX_PAGE_SIZE),
    };
    let mut after = None;
    if !req.page_token.is_empty() {
        let decoded = hex::decode(&req.page_token).ok().and_then(|b| String::from_utf8(b).ok());
        let parsed = decoded.as_deref().and_then(|s| {
            let rest = s.strip_prefix("m1:")?;
            let (fp_hex, last) = rest.split_once(':')?;
            Some((u64::from_str_radix(fp_hex, 16).ok()?, last.to_string()))
        });
        match parsed {
            Some((token_fp, last)) if token_fp == fp => after = Some(last),
            Some(_) => v.add("page_token", "was issued for other filters"),
            None => v.add("page_token", "not a token this service issued"),
        }
    }
    let crs = crs_field(&mut v, "response_crs", req.response_crs);
    finish(v, MarketPage { counties, after, size, fingerprint: fp, crs })
}

/// Phone digits and '+' only, as compared by `FindWorkersByPhone` (the
/// engine's phone index keys numbers the same way).
pub fn normalized_phone(phone: &str) -> String {
    linggong_engine::normalized_phone(phone).into()
}

/// `FindWorkersByPhone` → the normalised phone and the response system.
pub fn find_workers_by_phone_request(
    rules: &Rules,
    req: &pb::FindWorkersByPhoneRequest,
) -> Result<(String, Crs), InvalidRequest> {
    let mut v = Violations::default();
    let given = phone(&mut v, rules, "phone".into(), &req.phone);
    let crs = crs_field(&mut v, "response_crs", req.response_crs);
    finish(v, (normalized_phone(given), crs))
}

/// `ListPostingOffers` → the posting id.
pub fn list_posting_offers_request<'a>(
    rules: &Rules,
    req: &'a pb::ListPostingOffersRequest,
) -> Result<&'a str, InvalidRequest> {
    let mut v = Violations::default();
    let posting = id(&mut v, rules, "posting_id".into(), &req.posting_id);
    finish(v, posting)
}

/// File format of a ledger export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LedgerFile {
    /// CSV with a byte-order mark.
    Csv,
    /// XLSX workbook.
    Xlsx,
}

/// A checked `ExportLedger`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportLedger {
    /// First day.
    pub from: LedgerDay,
    /// Last day.
    pub to: LedgerDay,
    /// Counties asked for (empty: every county in scope).
    pub counties: Vec<u32>,
    /// File format.
    pub format: LedgerFile,
    /// Language.
    pub lang: Lang,
    /// Row period.
    pub period: Period,
}

/// `ExportLedger` → what to export.
pub fn export_ledger_request(rules: &Rules, req: &pb::ExportLedgerRequest) -> Result<ExportLedger, InvalidRequest> {
    let mut v = Violations::default();
    let from = date(&mut v, "from_date", req.from_date.as_ref());
    let to = date(&mut v, "to_date", req.to_date.as_ref());
    if req.from_date.is_some() && req.to_date.is_some() {
        if to < from {
            v.add("to_date", "must not be before from_date");
        } else if i64::from(to.0) - i64::from(from.0) >= i64::from(MAX_EXPORT_DAYS) {
            v.add("to_date", format!("at most {MAX_EXPORT_DAYS} days per export"));
        }
    }
    let counties = county_set(&mut v, rules, "county_codes", &req.county_codes).unwrap_or_default();
    let format = required_enum(&mut v, "format".into(), req.format, |f: pb::LedgerFileFormat| match f {
        pb::LedgerFileFormat::Unspecified => None,
        pb::LedgerFileFormat::Csv => Some(LedgerFile::Csv),
        pb::LedgerFileFormat::Xlsx => Some(LedgerFile::Xlsx),
    });
    let lang = optional_enum(&mut v, "language".into(), req.language, |l: pb::LedgerLanguage| {
        Some(if l == pb::LedgerLanguage::En { Lang::En } else { Lang::Zh })
    });
    let period = optional_enum(&mut v, "period".into(), req.period, |p: pb::LedgerPeriod| {
        Some(if p == pb::LedgerPeriod::Month { Period::Month } else { Period::Day })
    });
    finish(
        v,
        ExportLedger {
            from,
            to,
            counties,
            format: format.unwrap_or(LedgerFile::Csv),
            lang: lang.unwrap_or_default(),
            period: period.unwrap_or_default(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use linggong_engine::EngineConfig;

    #[test]
    fn bad_list_fields_are_named() {
        let engine = Engine::linfen(EngineConfig::default());
        let rules = Rules::of(&engine);
        let req = pb::ListComplaintsRequest {
            county_codes: vec![141002, 999_999],
            state: 9,
            category: 77,
            page_size: -1,
            page_token: "zz".into(),
            ..Default::default()
        };
        let e = list_complaints_request(&rules, &req).unwrap_err();
        for field in ["county_codes[1]", "state", "category", "page_size", "page_token"] {
            assert!(e.names(field), "{field}: {e}");
        }
        let e = list_markets_request(
            &rules,
            &pb::ListMarketsRequest { county_code: 1, response_crs: 42, ..Default::default() },
        )
        .unwrap_err();
        assert!(e.names("county_code") && e.names("response_crs"), "{e}");
        let e = find_workers_by_phone_request(&rules, &pb::FindWorkersByPhoneRequest::default()).unwrap_err();
        assert!(e.names("phone"), "{e}");
        assert_eq!(normalized_phone("138-0000 1111"), "13800001111");
        let e = export_ledger_request(
            &rules,
            &pb::ExportLedgerRequest {
                from_date: Some(pb::Date { year: 2024, month: 3, day: 2 }),
                to_date: Some(pb::Date { year: 2024, month: 3, day: 1 }),
                county_codes: vec![7],
                ..Default::default()
            },
        )
        .unwrap_err();
        for field in ["to_date", "county_codes[0]", "format"] {
            assert!(e.names(field), "{field}: {e}");
        }
    }

    #[test]
    fn market_tokens_are_bound_to_their_counties() {
        let engine = Engine::linfen(EngineConfig::default());
        let rules = Rules::of(&engine);
        let req = pb::ListMarketsRequest { county_codes: vec![141002, 141081], ..Default::default() };
        let first = list_markets_request(&rules, &req).unwrap();
        assert_eq!(first.counties, Some(vec![141002, 141081]));
        let token = market_page_token("yaodu-market", first.fingerprint);
        let next =
            list_markets_request(&rules, &pb::ListMarketsRequest { page_token: token.clone(), ..req.clone() }).unwrap();
        assert_eq!(next.after.as_deref(), Some("yaodu-market"));
        let other = pb::ListMarketsRequest { county_codes: vec![141002], page_token: token, ..Default::default() };
        assert!(list_markets_request(&rules, &other).unwrap_err().names("page_token"));
        let all = list_markets_request(&rules, &pb::ListMarketsRequest::default()).unwrap();
        assert_eq!(all.counties, None);
    }
}
