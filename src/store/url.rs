//! Store URLs: which database a URL names, the URL to connect with, and the URL as it may
//! be shown (password redacted).

use std::path::PathBuf;

use super::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Backend {
    Sqlite,
    Postgres,
}

/// The URL with any password replaced by `***`, for messages and logs.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &authority[..at];
    match userinfo.find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &userinfo[..colon],
            &url[scheme_end + 3 + at..]
        ),
        None => url.to_string(),
    }
}

/// Which backend a URL names, and the URL to connect with (SQLite gets `mode=rwc`).
pub(super) fn prepare_url(url: &str) -> Result<(Backend, String), StoreError> {
    let bad = |reason: &str| StoreError::BadUrl {
        url: redact(url),
        reason: reason.to_string(),
    };
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let (path, params) = match rest.split_once('?') {
            Some((path, params)) => (path, Some(params)),
            None => (rest, None),
        };
        let has_mode = params.is_some_and(|p| p.split('&').any(|kv| kv.starts_with("mode=")));
        if path.is_empty() && !has_mode {
            return Err(bad("no database path (expected sqlite://PATH)"));
        }
        let connect_url = if has_mode || path == ":memory:" {
            url.to_string()
        } else if params.is_some() {
            format!("{url}&mode=rwc")
        } else {
            format!("{url}?mode=rwc")
        };
        Ok((Backend::Sqlite, connect_url))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok((Backend::Postgres, url.to_string()))
    } else {
        Err(bad("expected sqlite://PATH or postgres://…"))
    }
}

/// Where the spill and dead-letter files go by default: `cuedeck-spill/` next to the
/// SQLite file, or in the working directory (PostgreSQL, in-memory SQLite).
pub fn default_spill_dir(url: &str) -> PathBuf {
    let dir = PathBuf::from("cuedeck-spill");
    let Some(rest) = url.strip_prefix("sqlite:") else {
        return dir;
    };
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split_once('?').map_or(rest, |(p, _)| p);
    if path.is_empty() || path.starts_with(':') {
        return dir;
    }
    match std::path::Path::new(path).parent() {
        Some(parent) => parent.join(dir),
        None => dir,
    }
}
