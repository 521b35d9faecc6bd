//! The plan's quantitative standards as pure functions of a county's resident
//! population: the indoor service area a county market needs (by
//! [`AreaTier`]), the one-off city funds (employment subsidy and special fiscal
//! fund, by [`FundBand`] tables), the acceptance check (验收评估) of each
//! county market, and the city totals compared with the figures the plan states.

use crate::catalog::County;
use crate::directory::{MarketKind, MarketSpec};
use compact_str::CompactString;
use serde::{Deserialize, Serialize};

/// The indoor area tier set by resident population P (the standards table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AreaTier {
    /// P < 100,000: about 150 m².
    Under100k,
    /// 100,000 ≤ P < 200,000: about 200 m².
    From100kTo200k,
    /// 200,000 ≤ P < 400,000: over 200 m².
    From200kTo400k,
    /// 400,000 ≤ P < 700,000: about 300 m².
    From400kTo700k,
    /// P ≥ 700,000: over 300 m².
    From700k,
}

/// What a tier asks of the indoor area.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AreaRequirement {
    /// The figure of the table, m².
    pub m2: u32,
    /// "over" the figure (strictly more) rather than "about" it (at least it).
    pub over: bool,
}

impl AreaRequirement {
    /// Whether an indoor area meets the requirement.
    pub fn is_met_by(self, area_m2: u32) -> bool {
        if self.over {
            area_m2 > self.m2
        } else {
            area_m2 >= self.m2
        }
    }
}

impl std::fmt::Display for AreaRequirement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.over {
            write!(f, "over {} m²", self.m2)
        } else {
            write!(f, "about {} m² (at least {})", self.m2, self.m2)
        }
    }
}

/// The floor for a county that adapts its existing recruitment hall, m².
pub const ADAPTED_HALL_MIN_M2: u32 = 150;

impl AreaTier {
    /// Every tier, smallest population first.
    pub const ALL: [AreaTier; 5] = [
        AreaTier::Under100k,
        AreaTier::From100kTo200k,
        AreaTier::From200kTo400k,
        AreaTier::From400kTo700k,
        AreaTier::From700k,
    ];

    /// Lowest population of the tier.
    pub fn lower_bound(self) -> u64 {
        match self {
            AreaTier::Under100k => 0,
            AreaTier::From100kTo200k => 100_000,
            AreaTier::From200kTo400k => 200_000,
            AreaTier::From400kTo700k => 400_000,
            AreaTier::From700k => 700_000,
        }
    }

    /// The tier of a resident population.
    pub fn of(population: u64) -> AreaTier {
        *Self::ALL.iter().rev().find(|t| population >= t.lower_bound()).unwrap_or(&AreaTier::Under100k)
    }

    /// The indoor area the tier asks for.
    pub fn requirement(self) -> AreaRequirement {
        match self {
            AreaTier::Under100k => AreaRequirement { m2: 150, over: false },
            AreaTier::From100kTo200k => AreaRequirement { m2: 200, over: false },
            AreaTier::From200kTo400k => AreaRequirement { m2: 200, over: true },
            AreaTier::From400kTo700k => AreaRequirement { m2: 300, over: false },
            AreaTier::From700k => AreaRequirement { m2: 300, over: true },
        }
    }

    /// The population range as the table writes it.
    pub fn label(self) -> &'static str {
        match self {
            AreaTier::Under100k => "P < 100,000",
            AreaTier::From100kTo200k => "100,000 ≤ P < 200,000",
            AreaTier::From200kTo400k => "200,000 ≤ P < 400,000",
            AreaTier::From400kTo700k => "400,000 ≤ P < 700,000",
            AreaTier::From700k => "P ≥ 700,000",
        }
    }
}

/// One band of a fund rule: counties with population from `from` (inclusive)
/// up to the next band's `from` get `yuan`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FundBand {
    /// Lowest population of the band.
    pub from: u64,
    /// One-off amount, whole yuan.
    pub yuan: u64,
}

/// Employment subsidy (就业补助资金): 50,000 if P < 200,000, else 70,000.
pub const EMPLOYMENT_SUBSIDY_BANDS: [FundBand; 2] =
    [FundBand { from: 0, yuan: 50_000 }, FundBand { from: 200_000, yuan: 70_000 }];

/// Special fiscal fund (财政专项资金): 100,000 / 150,000 / 200,000 / 300,000
/// from 0 / 100,000 / 300,000 / 600,000 residents.
pub const SPECIAL_FUND_BANDS: [FundBand; 4] = [
    FundBand { from: 0, yuan: 100_000 },
    FundBand { from: 100_000, yuan: 150_000 },
    FundBand { from: 300_000, yuan: 200_000 },
    FundBand { from: 600_000, yuan: 300_000 },
];

/// The employment subsidy total the plan states, yuan.
pub const STATED_EMPLOYMENT_SUBSIDY_TOTAL: u64 = 1_010_000;
/// The special fiscal fund total the plan states, yuan.
pub const STATED_SPECIAL_FUND_TOTAL: u64 = 2_450_000;

/// The fund rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Fund {
    /// 就业补助资金.
    EmploymentSubsidy,
    /// 财政专项资金.
    SpecialFiscalFund,
}

impl Fund {
    /// Both funds.
    pub const ALL: [Fund; 2] = [Fund::EmploymentSubsidy, Fund::SpecialFiscalFund];

    /// The fund's bands, lowest population first.
    pub fn bands(self) -> &'static [FundBand] {
        match self {
            Fund::EmploymentSubsidy => &EMPLOYMENT_SUBSIDY_BANDS,
            Fund::SpecialFiscalFund => &SPECIAL_FUND_BANDS,
        }
    }

    /// The total the plan states, yuan.
    pub fn stated_total(self) -> u64 {
        match self {
            Fund::EmploymentSubsidy => STATED_EMPLOYMENT_SUBSIDY_TOTAL,
            Fund::SpecialFiscalFund => STATED_SPECIAL_FUND_TOTAL,
        }
    }

    /// Name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Fund::EmploymentSubsidy => "employment subsidy (就业补助资金)",
            Fund::SpecialFiscalFund => "special fiscal fund (财政专项资金)",
        }
    }

    fn band_index(self, population: u64) -> usize {
        self.bands().iter().rposition(|b| population >= b.from).unwrap_or(0)
    }

    /// A county's one-off amount, yuan.
    pub fn amount(self, population: u64) -> u64 {
        self.bands()[self.band_index(population)].yuan
    }
}

/// Result of checking one county's market against the standards list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// The county market meets the area standard.
    Pass,
    /// It falls short.
    Fail,
    /// No county market is in the directory.
    Missing,
}

impl Verdict {
    /// Lower-case name for reports.
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Missing => "missing",
        }
    }
}

/// One county's line of the standards report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountyCheck {
    /// County division code.
    pub county: u32,
    /// County name.
    pub name: CompactString,
    /// Resident population used.
    pub population: u64,
    /// Area tier of that population.
    pub tier: AreaTier,
    /// The area the county market needs.
    pub required: AreaRequirement,
    /// The county market checked, if any: (id, indoor area m², adapts a recruitment hall).
    pub market: Option<(CompactString, u32, bool)>,
    /// Pass, fail or missing.
    pub verdict: Verdict,
    /// Why, in words.
    pub reason: String,
    /// Employment subsidy, yuan.
    pub employment_subsidy: u64,
    /// Special fiscal fund, yuan.
    pub special_fund: u64,
}

/// A fund's computed city total against the plan's figure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FundTotal {
    /// The fund.
    pub fund: Fund,
    /// Sum of the county amounts, yuan.
    pub computed: u64,
    /// The plan's figure, yuan.
    pub stated: u64,
    /// Counties that would account for the whole difference by sitting in the
    /// next band across their nearest band boundary, nearest to it first.
    pub explained_by: Vec<Explanation>,
}

/// A county whose one-band shift accounts for a difference in a fund total.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explanation {
    /// County division code.
    pub county: u32,
    /// County name.
    pub name: CompactString,
    /// Its population.
    pub population: u64,
    /// The band boundary it would have to be on the other side of.
    pub boundary: u64,
    /// What the county gets now and what it would get in the other band, yuan.
    pub amount_now: u64,
    /// Amount in the other band, yuan.
    pub amount_other: u64,
}

/// The whole acceptance and funds report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StandardsReport {
    /// One line per county, in region order.
    pub counties: Vec<CountyCheck>,
    /// Both funds' totals.
    pub totals: Vec<FundTotal>,
}

/// Checks one county market's indoor area: the tier requirement, or for an
/// adapted recruitment hall at least [`ADAPTED_HALL_MIN_M2`].
pub fn check_area(population: u64, market: Option<&MarketSpec>) -> (Verdict, String) {
    let required = AreaTier::of(population).requirement();
    let Some(m) = market else {
        return (Verdict::Missing, "no county market in the directory".into());
    };
    if m.adapts_recruitment_hall {
        if m.indoor_area_m2 >= ADAPTED_HALL_MIN_M2 {
            (
                Verdict::Pass,
                format!("adapted recruitment hall of {} m², at least {ADAPTED_HALL_MIN_M2}", m.indoor_area_m2),
            )
        } else {
            (
                Verdict::Fail,
                format!(
                    "adapted recruitment hall of {} m², below the floor of {ADAPTED_HALL_MIN_M2}",
                    m.indoor_area_m2
                ),
            )
        }
    } else if required.is_met_by(m.indoor_area_m2) {
        (Verdict::Pass, format!("{} m² meets {required}", m.indoor_area_m2))
    } else {
        (Verdict::Fail, format!("{} m² does not meet {required}", m.indoor_area_m2))
    }
}

fn fund_total(fund: Fund, counties: &[County]) -> FundTotal {
    let computed: u64 = counties.iter().map(|c| fund.amount(c.population)).sum();
    let stated = fund.stated_total();
    let diff = stated as i128 - computed as i128;
    let mut explained_by = Vec::new();
    if diff != 0 {
        let bands = fund.bands();
        for c in counties {
            let i = fund.band_index(c.population);
            let now = bands[i].yuan;
            // The neighbouring bands, across the boundaries of the county's band.
            for j in [i.checked_sub(1), Some(i + 1).filter(|&j| j < bands.len())].into_iter().flatten() {
                let boundary = bands[i.max(j)].from;
                let other = bands[j].yuan;
                if other as i128 - now as i128 == diff {
                    explained_by.push(Explanation {
                        county: c.code,
                        name: c.name.clone(),
                        population: c.population,
                        boundary,
                        amount_now: now,
                        amount_other: other,
                    });
                }
            }
        }
        explained_by.sort_by_key(|e| (e.population.abs_diff(e.boundary), e.county));
    }
    FundTotal { fund, computed, stated, explained_by }
}

/// The standards report: every county's area check and funds, and the city totals.
/// `markets` is the whole directory; each county's county market is checked.
pub fn standards_report<'a>(
    counties: &[County],
    markets: impl IntoIterator<Item = &'a MarketSpec> + Clone,
) -> StandardsReport {
    let lines = counties
        .iter()
        .map(|c| {
            let market = markets.clone().into_iter().find(|m| m.county == c.code && m.kind == MarketKind::CountyMarket);
            let tier = AreaTier::of(c.population);
            let (verdict, reason) = check_area(c.population, market);
            CountyCheck {
                county: c.code,
                name: c.name.clone(),
                population: c.population,
                tier,
                required: tier.requirement(),
                market: market.map(|m| (m.id.clone(), m.indoor_area_m2, m.adapts_recruitment_hall)),
                verdict,
                reason,
                employment_subsidy: Fund::EmploymentSubsidy.amount(c.population),
                special_fund: Fund::SpecialFiscalFund.amount(c.population),
            }
        })
        .collect();
    StandardsReport { counties: lines, totals: Fund::ALL.iter().map(|&f| fund_total(f, counties)).collect() }
}
