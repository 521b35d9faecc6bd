//! Bearer-token authentication and role/scope authorisation. Tokens are stored
//! as SHA-256 hashes; each belongs to a named holder (a system or a person,
//! with their person id) and carries a role, a scope and optionally a rate
//! limit. The table can be replaced while the server runs
//! ([`Auth::replace`]); rate limiters of tokens that stay survive it.

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use parking_lot::RwLock;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A county system: workers, matches, offers, statistics in its counties.
    County,
    /// A township station: push and update postings in one county and township.
    Station,
    /// A reviewer: postings review, complaints, employer suspension.
    Reviewer,
    /// An operator: everything, including directory and reports.
    Operator,
}

/// A configured token (as in the TOML config file).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenConfig {
    /// Human-readable name, logged with requests.
    pub name: String,
    /// Hex SHA-256 of the token.
    pub sha256: String,
    /// Role.
    pub role: Role,
    /// County division codes in scope (county role: its counties; station role: exactly one).
    #[serde(default)]
    pub counties: Vec<u32>,
    /// Township code (station role only).
    #[serde(default)]
    pub township: Option<String>,
    /// The holder's person id (e.g. a staff number), for tokens that belong to a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person_id: Option<String>,
    /// Most requests per minute (bursts up to the same number); unlimited when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_minute: Option<u32>,
}

impl TokenConfig {
    /// A token entry without person id or rate limit.
    pub fn new(name: impl Into<String>, sha256: impl Into<String>, role: Role, counties: Vec<u32>) -> Self {
        Self {
            name: name.into(),
            sha256: sha256.into(),
            role,
            counties,
            township: None,
            person_id: None,
            rate_per_minute: None,
        }
    }
}

/// The authenticated caller of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// Token name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Counties in scope.
    pub counties: Vec<u32>,
    /// Township in scope (stations).
    pub township: Option<String>,
    /// The holder's person id, for tokens that belong to a person.
    pub person_id: Option<String>,
}

impl Principal {
    /// Whether the caller may act in a county (operators and reviewers: every county).
    pub fn covers_county(&self, county: u32) -> bool {
        matches!(self.role, Role::Operator | Role::Reviewer) || self.counties.contains(&county)
    }
}

/// Why a token configuration is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthConfigError {
    /// The hash is not 64 hex digits.
    #[error("token `{0}`: sha256 must be 64 hex digits")]
    BadHash(String),
    /// Two tokens share a hash.
    #[error("token `{0}`: duplicate token hash")]
    Duplicate(String),
    /// A station token must name one county and a township.
    #[error("token `{0}`: a station token needs exactly one county and a township")]
    StationScope(String),
    /// A county token must name at least one county.
    #[error("token `{0}`: a county token needs at least one county")]
    CountyScope(String),
    /// Two tokens share a name (names identify holders in the log).
    #[error("token `{0}`: duplicate token name")]
    DuplicateName(String),
    /// A rate limit of zero.
    #[error("token `{0}`: rate_per_minute must be at least 1")]
    ZeroRate(String),
}

/// Why a request was refused by [`Auth::authenticate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthRefusal {
    /// No such token.
    Unknown,
    /// The token's rate limit is exhausted; retry after this long.
    RateLimited {
        /// Token name.
        name: String,
        /// How long until the next request is allowed.
        retry_after: Duration,
    },
}

/// Hex SHA-256 of a token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new random token (256 bits, hex).
pub fn generate_token() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("lg_{}", hex::encode(bytes))
}

/// One token's holder and limiter.
#[derive(Clone)]
struct Entry {
    principal: Principal,
    rate_per_minute: Option<NonZeroU32>,
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
}

#[derive(Clone, Default)]
struct Table {
    by_hash: FxHashMap<String, Entry>,
}

impl Table {
    fn build(tokens: &[TokenConfig], previous: Option<&Table>) -> Result<Self, AuthConfigError> {
        let mut by_hash = FxHashMap::default();
        let mut names = rustc_hash::FxHashSet::default();
        for t in tokens {
            let hash = t.sha256.to_ascii_lowercase();
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(AuthConfigError::BadHash(t.name.clone()));
            }
            match t.role {
                Role::Station if t.counties.len() != 1 || t.township.is_none() => {
                    return Err(AuthConfigError::StationScope(t.name.clone()))
                }
                Role::County if t.counties.is_empty() => return Err(AuthConfigError::CountyScope(t.name.clone())),
                _ => {}
            }
            if !names.insert(t.name.as_str()) {
                return Err(AuthConfigError::DuplicateName(t.name.clone()));
            }
            let rate_per_minute = match t.rate_per_minute {
                None => None,
                Some(n) => Some(NonZeroU32::new(n).ok_or_else(|| AuthConfigError::ZeroRate(t.name.clone()))?),
            };
            // A token that stays with the same limit keeps its limiter (and what it has used).
            let kept = previous
                .and_then(|p| p.by_hash.get(&hash))
                .filter(|e| e.rate_per_minute == rate_per_minute)
                .and_then(|e| e.limiter.clone());
            let limiter = rate_per_minute
                .map(|n| kept.unwrap_or_else(|| Arc::new(RateLimiter::direct(Quota::per_minute(n).allow_burst(n)))));
            let principal = Principal {
                name: t.name.clone(),
                role: t.role,
                counties: t.counties.clone(),
                township: t.township.clone(),
                person_id: t.person_id.clone(),
            };
            if by_hash.insert(hash, Entry { principal, rate_per_minute, limiter }).is_some() {
                return Err(AuthConfigError::Duplicate(t.name.clone()));
            }
        }
        Ok(Self { by_hash })
    }
}

/// The token table, replaceable while requests are served.
#[derive(Default)]
pub struct Auth {
    table: RwLock<Arc<Table>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").field("tokens", &self.len()).finish()
    }
}

/// The token of an `authorization` header value (`Bearer <token>`).
fn bearer(value: &str) -> Option<&str> {
    value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")).map(str::trim)
}

impl Auth {
    /// Builds the table, validating every entry.
    pub fn new(tokens: &[TokenConfig]) -> Result<Self, AuthConfigError> {
        Ok(Self { table: RwLock::new(Arc::new(Table::build(tokens, None)?)) })
    }

    /// Replaces the table (a reload), validating every entry first: on an
    /// error the table in force stays. Tokens kept with the same rate limit
    /// keep their limiter.
    pub fn replace(&self, tokens: &[TokenConfig]) -> Result<(), AuthConfigError> {
        let previous = self.table.read().clone();
        let table = Table::build(tokens, Some(&previous))?;
        *self.table.write() = Arc::new(table);
        Ok(())
    }

    /// The principal for a raw token, if known (no rate limit is charged).
    pub fn principal_for_token(&self, token: &str) -> Option<Principal> {
        self.table.read().by_hash.get(&hash_token(token)).map(|e| e.principal.clone())
    }

    /// The principal for an `authorization` header value (`Bearer <token>`),
    /// if known (no rate limit is charged).
    pub fn principal_for_header(&self, value: &str) -> Option<Principal> {
        self.principal_for_token(bearer(value)?)
    }

    /// Authenticates a request's `authorization` header value and charges
    /// the token's rate limit, if it has one.
    pub fn authenticate(&self, value: &str) -> Result<Principal, AuthRefusal> {
        let token = bearer(value).ok_or(AuthRefusal::Unknown)?;
        let table = self.table.read().clone();
        let entry = table.by_hash.get(&hash_token(token)).ok_or(AuthRefusal::Unknown)?;
        if let Some(limiter) = &entry.limiter {
            if let Err(not_until) = limiter.check() {
                return Err(AuthRefusal::RateLimited {
                    name: entry.principal.name.clone(),
                    retry_after: not_until.wait_time_from(DefaultClock::default().now()),
                });
            }
        }
        Ok(entry.principal.clone())
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.table.read().by_hash.len()
    }

    /// Whether no token is configured.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_authenticate_by_hash() {
        let token = generate_token();
        let auth = Auth::new(&[TokenConfig::new("yaodu", hash_token(&token), Role::County, vec![141002])]).unwrap();
        let p = auth.principal_for_header(&format!("Bearer {token}")).unwrap();
        assert_eq!(p.role, Role::County);
        assert!(p.covers_county(141002));
        assert!(!p.covers_county(141081));
        assert!(auth.principal_for_header("Bearer nope").is_none());
        assert!(auth.principal_for_header(&token).is_none(), "scheme is required");
    }

    #[test]
    fn station_tokens_need_a_township() {
        let t = TokenConfig::new("s", hash_token("x"), Role::Station, vec![141002]);
        assert_eq!(Auth::new(&[t]).unwrap_err(), AuthConfigError::StationScope("s".into()));
    }

    #[test]
    fn a_rate_limited_token_is_refused_with_a_wait_once_its_burst_is_used() {
        let t = TokenConfig {
            rate_per_minute: Some(2),
            ..TokenConfig::new("desk", hash_token("k"), Role::Reviewer, vec![])
        };
        let auth = Auth::new(&[t.clone()]).unwrap();
        assert!(auth.authenticate("Bearer k").is_ok());
        assert!(auth.authenticate("Bearer k").is_ok());
        let Err(AuthRefusal::RateLimited { name, retry_after }) = auth.authenticate("Bearer k") else {
            panic!("the third request within a minute must be refused")
        };
        assert_eq!(name, "desk");
        assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(30), "{retry_after:?}");
        // A reload that keeps the token keeps what it has used.
        auth.replace(&[t.clone()]).unwrap();
        assert!(matches!(auth.authenticate("Bearer k"), Err(AuthRefusal::RateLimited { .. })));
        // Without a limit it is never refused.
        auth.replace(&[TokenConfig { rate_per_minute: None, ..t }]).unwrap();
        for _ in 0..10 {
            assert!(auth.authenticate("Bearer k").is_ok());
        }
        assert_eq!(auth.authenticate("Bearer nope"), Err(AuthRefusal::Unknown));
    }

    #[test]
    fn a_bad_reload_keeps_the_table_in_force() {
        let auth = Auth::new(&[TokenConfig::new("a", hash_token("a"), Role::Operator, vec![])]).unwrap();
        let twice = [
            TokenConfig::new("b", hash_token("b"), Role::Operator, vec![]),
            TokenConfig::new("b", hash_token("c"), Role::Operator, vec![]),
        ];
        assert_eq!(auth.replace(&twice), Err(AuthConfigError::DuplicateName("b".into())));
        assert!(auth.principal_for_token("a").is_some());
        auth.replace(&twice[..1]).unwrap();
        assert!(auth.principal_for_token("a").is_none(), "a revoked token stops working");
        assert_eq!(auth.principal_for_token("b").unwrap().name, "b");
    }
}
