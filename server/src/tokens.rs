//! The data directory's token table (`tokens.toml`, hashes only): the
//! development operator token of a fresh directory, the `token add | list |
//! revoke` tools that keep accounts for people, and the reloader that lets a
//! running server pick changes up without a restart (on SIGHUP, and by
//! re-reading the file every few seconds).

use crate::auth::{generate_token, hash_token, Auth, AuthConfigError, Role, TokenConfig};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Name of the development token file inside the data directory.
pub const DEV_TOKEN_FILE: &str = "dev-token";
/// Name of the token table (hashes only) inside the data directory.
pub const TOKENS_FILE: &str = "tokens.toml";

const HEADER: &str =
    "# Tokens of this data directory, stored as SHA-256 hashes (role: county | station | reviewer | operator).\n\
     # Edit with `linggong-server token add | list | revoke`; a running server reloads this file by itself.\n";

/// The development operator token of a data directory.
#[derive(Clone, Debug)]
pub struct DevToken {
    /// The raw token (send as `authorization: Bearer <token>`).
    pub token: String,
    /// File it is kept in.
    pub path: PathBuf,
    /// Whether it was created by this start (print it once).
    pub created: bool,
}

/// Why the token table could not be read, changed or written.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// File concerned.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The file is not a valid token table.
    #[error("{path}: {source}")]
    Parse {
        /// File concerned.
        path: PathBuf,
        /// The parse error.
        source: toml::de::Error,
    },
    /// The table could not be encoded.
    #[error("encoding the token table: {0}")]
    Encode(#[from] toml::ser::Error),
    /// The change would make the table invalid (duplicate name, bad scope, ...).
    #[error(transparent)]
    Invalid(#[from] AuthConfigError),
    /// No token has that name.
    #[error("no token is named `{0}`")]
    NoSuchToken(String),
}

#[derive(Serialize, Deserialize, Default)]
struct TokensFile {
    #[serde(default)]
    tokens: Vec<TokenConfig>,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> TokenFileError + '_ {
    move |source| TokenFileError::Io { path: path.to_path_buf(), source }
}

/// The tokens of a table file; a missing file has none.
pub fn read_tokens_file(path: &Path) -> Result<Vec<TokenConfig>, TokenFileError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(path)(e)),
    };
    parse_tokens(path, &text)
}

fn parse_tokens(path: &Path, text: &str) -> Result<Vec<TokenConfig>, TokenFileError> {
    let file: TokensFile =
        toml::from_str(text).map_err(|source| TokenFileError::Parse { path: path.to_path_buf(), source })?;
    Ok(file.tokens)
}

/// Writes a table file atomically, readable by its owner only.
pub fn write_tokens_file(path: &Path, tokens: &[TokenConfig]) -> Result<(), TokenFileError> {
    let body = toml::to_string(&TokensFile { tokens: tokens.to_vec() })?;
    write_private(path, format!("{HEADER}{body}").as_bytes()).map_err(io_error(path))
}

/// Writes a file readable by its owner only, atomically (temp file, fsync, rename).
pub(crate) fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(contents)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Loads the data directory's token table; on a directory without one (and
/// when asked), creates a development operator token: the raw token goes to
/// `dev-token` (mode 0600), only its hash to `tokens.toml`.
pub fn data_dir_tokens(
    data_dir: &Path,
    create_dev_token: bool,
) -> Result<(Vec<TokenConfig>, Option<DevToken>), TokenFileError> {
    let tokens_path = data_dir.join(TOKENS_FILE);
    let dev_path = data_dir.join(DEV_TOKEN_FILE);
    if tokens_path.exists() {
        let tokens = read_tokens_file(&tokens_path)?;
        let dev = std::fs::read_to_string(&dev_path)
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| tokens.iter().any(|c| c.sha256.eq_ignore_ascii_case(&hash_token(t))))
            .map(|token| DevToken { token, path: dev_path.clone(), created: false });
        return Ok((tokens, dev));
    }
    if !create_dev_token {
        return Ok((Vec::new(), None));
    }
    let token = generate_token();
    let tokens = vec![TokenConfig::new("dev-operator", hash_token(&token), Role::Operator, Vec::new())];
    write_private(&dev_path, format!("{token}\n").as_bytes()).map_err(io_error(&dev_path))?;
    write_tokens_file(&tokens_path, &tokens)?;
    Ok((tokens, Some(DevToken { token, path: dev_path, created: true })))
}

/// A token to add for a person or a system.
#[derive(Clone, Debug)]
pub struct NewToken {
    /// Holder's name (unique), e.g. 王芳 or `yaodu-county`.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Counties in scope.
    pub counties: Vec<u32>,
    /// Township (stations).
    pub township: Option<String>,
    /// The holder's person id.
    pub person_id: Option<String>,
    /// Most requests per minute.
    pub rate_per_minute: Option<u32>,
}

/// Adds a token to the data directory's table and returns the raw token,
/// which is stored nowhere (only its hash is). `extra` are the tokens of the
/// server's configuration file, so that names stay unique across both.
pub fn add_token(data_dir: &Path, new: NewToken, extra: &[TokenConfig]) -> Result<String, TokenFileError> {
    let path = data_dir.join(TOKENS_FILE);
    let mut tokens = read_tokens_file(&path)?;
    let token = generate_token();
    tokens.push(TokenConfig {
        name: new.name,
        sha256: hash_token(&token),
        role: new.role,
        counties: new.counties,
        township: new.township,
        person_id: new.person_id,
        rate_per_minute: new.rate_per_minute,
    });
    let mut all = extra.to_vec();
    all.extend(tokens.iter().cloned());
    Auth::new(&all)?;
    write_tokens_file(&path, &tokens)?;
    Ok(token)
}

/// Removes the token with this name from the data directory's table.
pub fn revoke_token(data_dir: &Path, name: &str) -> Result<TokenConfig, TokenFileError> {
    let path = data_dir.join(TOKENS_FILE);
    let mut tokens = read_tokens_file(&path)?;
    let i = tokens.iter().position(|t| t.name == name).ok_or_else(|| TokenFileError::NoSuchToken(name.into()))?;
    let removed = tokens.remove(i);
    write_tokens_file(&path, &tokens)?;
    Ok(removed)
}

/// Keeps a running server's token table in step with the data directory's
/// file: the configuration file's tokens plus `tokens.toml`.
pub struct TokenReloader {
    auth: Arc<Auth>,
    path: PathBuf,
    configured: Vec<TokenConfig>,
    last_text: Option<String>,
}

/// What one reload check did.
#[derive(Debug, PartialEq, Eq)]
pub enum Reload {
    /// The file had not changed.
    Unchanged,
    /// The new table is in force, with this many tokens.
    Replaced(usize),
}

impl TokenReloader {
    /// A reloader for `data_dir`'s table; `configured` are the tokens from the
    /// configuration file, which stay.
    pub fn new(auth: Arc<Auth>, data_dir: &Path, configured: Vec<TokenConfig>) -> Self {
        let path = data_dir.join(TOKENS_FILE);
        let last_text = std::fs::read_to_string(&path).ok();
        Self { auth, path, configured, last_text }
    }

    /// Re-reads the file and, if it changed, replaces the table. A file that
    /// does not parse or validate leaves the table in force.
    pub fn check(&mut self) -> Result<Reload, TokenFileError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_error(&self.path)(e)),
        };
        if text == self.last_text {
            return Ok(Reload::Unchanged);
        }
        let file_tokens = match &text {
            Some(t) => parse_tokens(&self.path, t)?,
            None => Vec::new(),
        };
        let mut all = self.configured.clone();
        all.extend(file_tokens);
        self.auth.replace(&all)?;
        self.last_text = text;
        Ok(Reload::Replaced(all.len()))
    }

    fn check_and_log(&mut self, why: &str) {
        match self.check() {
            Ok(Reload::Unchanged) => {}
            Ok(Reload::Replaced(tokens)) => tracing::info!(tokens, why, "token table reloaded"),
            Err(e) => tracing::warn!(error = %e, why, "token table not reloaded; the previous one stays in force"),
        }
    }

    /// Checks every `interval` and on each SIGHUP until `stop` turns true.
    pub fn spawn(mut self, interval: Duration, mut stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let mut hangup = match signal(SignalKind::hangup()) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(error = %e, "no SIGHUP handler; tokens reload by polling only");
                    None
                }
            };
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticks.tick() => self.check_and_log("file changed"),
                    Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                        self.check_and_log("SIGHUP")
                    }
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_token_is_created_once_and_stored_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let (tokens, dev) = data_dir_tokens(dir.path(), true).unwrap();
        let dev = dev.unwrap();
        assert!(dev.created);
        assert_eq!(tokens.len(), 1);
        assert_eq!(tokens[0].sha256, hash_token(&dev.token));
        let table = std::fs::read_to_string(dir.path().join(TOKENS_FILE)).unwrap();
        assert!(!table.contains(&dev.token), "only the hash is stored in the token table");
        let (again, dev_again) = data_dir_tokens(dir.path(), true).unwrap();
        assert_eq!(again, tokens);
        let dev_again = dev_again.unwrap();
        assert!(!dev_again.created);
        assert_eq!(dev_again.token, dev.token);
        let auth = Auth::new(&again).unwrap();
        assert_eq!(auth.principal_for_header(&format!("Bearer {}", dev.token)).unwrap().role, Role::Operator);
    }

    fn reviewer(name: &str) -> NewToken {
        NewToken {
            name: name.into(),
            role: Role::Reviewer,
            counties: vec![141002],
            township: None,
            person_id: Some("LF-0042".into()),
            rate_per_minute: None,
        }
    }

    #[test]
    fn tokens_are_added_stored_hashed_and_revoked_and_a_running_table_follows() {
        let dir = tempfile::tempdir().unwrap();
        let auth = Arc::new(Auth::new(&[]).unwrap());
        let mut reloader = TokenReloader::new(auth.clone(), dir.path(), Vec::new());
        assert_eq!(reloader.check().unwrap(), Reload::Unchanged, "no file, nothing to do");

        let token = add_token(dir.path(), reviewer("王芳"), &[]).unwrap();
        let text = std::fs::read_to_string(dir.path().join(TOKENS_FILE)).unwrap();
        assert!(!text.contains(&token) && text.contains(&hash_token(&token)) && text.contains("王芳"), "{text}");
        assert!(matches!(
            add_token(dir.path(), reviewer("王芳"), &[]),
            Err(TokenFileError::Invalid(AuthConfigError::DuplicateName(_)))
        ));
        let station = NewToken { role: Role::Station, ..reviewer("s") };
        assert!(matches!(
            add_token(dir.path(), station, &[]),
            Err(TokenFileError::Invalid(AuthConfigError::StationScope(_)))
        ));

        assert!(auth.principal_for_token(&token).is_none());
        assert_eq!(reloader.check().unwrap(), Reload::Replaced(1));
        let p = auth.principal_for_token(&token).unwrap();
        assert_eq!((p.name.as_str(), p.role, p.person_id.as_deref()), ("王芳", Role::Reviewer, Some("LF-0042")));
        assert_eq!(reloader.check().unwrap(), Reload::Unchanged);

        // A damaged file is refused and the table stays.
        let path = dir.path().join(TOKENS_FILE);
        std::fs::write(&path, "tokens = 3\n").unwrap();
        assert!(matches!(reloader.check(), Err(TokenFileError::Parse { .. })));
        assert!(auth.principal_for_token(&token).is_some());
        std::fs::write(&path, text).unwrap();

        assert_eq!(revoke_token(dir.path(), "王芳").unwrap().name, "王芳");
        assert!(matches!(revoke_token(dir.path(), "王芳"), Err(TokenFileError::NoSuchToken(_))));
        assert_eq!(reloader.check().unwrap(), Reload::Replaced(0));
        assert!(auth.principal_for_token(&token).is_none(), "revoked");
    }
}
