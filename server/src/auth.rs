//! Bearer-token authentication and role/scope authorisation. Tokens are stored
//! as SHA-256 hashes; each carries a role and a scope.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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

/// The token table.
#[derive(Clone, Debug, Default)]
pub struct Auth {
    by_hash: FxHashMap<String, Principal>,
}

impl Auth {
    /// Builds the table, validating every entry.
    pub fn new(tokens: &[TokenConfig]) -> Result<Self, AuthConfigError> {
        let mut by_hash = FxHashMap::default();
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
            let principal = Principal {
                name: t.name.clone(),
                role: t.role,
                counties: t.counties.clone(),
                township: t.township.clone(),
            };
            if by_hash.insert(hash, principal).is_some() {
                return Err(AuthConfigError::Duplicate(t.name.clone()));
            }
        }
        Ok(Self { by_hash })
    }

    /// The principal for a raw token, if known.
    pub fn principal_for_token(&self, token: &str) -> Option<&Principal> {
        self.by_hash.get(&hash_token(token))
    }

    /// The principal for an `authorization` header value (`Bearer <token>`).
    pub fn principal_for_header(&self, value: &str) -> Option<&Principal> {
        let token = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer "))?;
        self.principal_for_token(token.trim())
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Whether no token is configured.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_authenticate_by_hash() {
        let token = generate_token();
        let auth = Auth::new(&[TokenConfig {
            name: "yaodu".into(),
            sha256: hash_token(&token),
            role: Role::County,
            counties: vec![141002],
            township: None,
        }])
        .unwrap();
        let p = auth.principal_for_header(&format!("Bearer {token}")).unwrap();
        assert_eq!(p.role, Role::County);
        assert!(p.covers_county(141002));
        assert!(!p.covers_county(141081));
        assert!(auth.principal_for_header("Bearer nope").is_none());
        assert!(auth.principal_for_header(&token).is_none(), "scheme is required");
    }

    #[test]
    fn station_tokens_need_a_township() {
        let t = TokenConfig {
            name: "s".into(),
            sha256: hash_token("x"),
            role: Role::Station,
            counties: vec![141002],
            township: None,
        };
        assert_eq!(Auth::new(&[t]).unwrap_err(), AuthConfigError::StationScope("s".into()));
    }
}
