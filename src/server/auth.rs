//! Bearer-token authorization. Tokens come from the config file, each with one role; a
//! WebSocket upgrade may carry its token as a `token` query parameter (browsers cannot set
//! headers on one), other routes only in the `Authorization` header (query strings end up
//! in proxy logs). Missing or unknown token: 401; a known token whose role does not allow
//! the route: 403 — both before any upgrade or handler runs. With no tokens configured
//! every route is open (the server then binds loopback only).
//!
//! A `rep` token may be scoped to one rep: the route guard puts a [`RepScope`] on the
//! request's extensions for the subscribe handler to compare with the call's rep.

use axum::http::{HeaderMap, StatusCode};
use sha2::{Digest, Sha256};

use crate::config::{Role, Token};

/// The rep a token is scoped to, on the request's extensions after the route guard:
/// `RepScope(None)` for a token that may read any call (manager, admin, unscoped rep, or no
/// tokens configured).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RepScope(pub Option<String>);

/// One configured token.
#[derive(Debug)]
struct Entry {
    digest: [u8; 32],
    role: Role,
    rep_id: Option<String>,
}

/// Configured tokens, kept as digests so comparison time does not depend on the secret.
#[derive(Debug, Default)]
pub struct Tokens {
    entries: Vec<Entry>,
}

impl Tokens {
    pub fn new(tokens: &[Token]) -> Tokens {
        Tokens {
            entries: tokens
                .iter()
                .map(|t| Entry {
                    digest: digest(&t.secret),
                    role: t.role,
                    rep_id: t.rep_id.clone(),
                })
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Checks a request's token against `needed`. `query` is the query string of a
    /// WebSocket upgrade (`None` for other requests: their token must be in the header).
    pub fn check(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        needed: Role,
    ) -> Result<(), StatusCode> {
        self.authorize(headers, query, needed).map(|_| ())
    }

    /// As [`Tokens::check`], returning the rep the token is scoped to.
    pub fn authorize(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        needed: Role,
    ) -> Result<RepScope, StatusCode> {
        if self.entries.is_empty() {
            return Ok(RepScope(None));
        }
        let presented = bearer(headers).or_else(|| query.and_then(query_token));
        let Some(presented) = presented else {
            return Err(StatusCode::UNAUTHORIZED);
        };
        let d = digest(&presented);
        // Compare against every entry, without early exit.
        let mut found: Option<&Entry> = None;
        for entry in &self.entries {
            let mut diff = 0u8;
            for (a, b) in entry.digest.iter().zip(d.iter()) {
                diff |= a ^ b;
            }
            if diff == 0 {
                found = Some(entry);
            }
        }
        match found {
            None => Err(StatusCode::UNAUTHORIZED),
            Some(e) if e.role.allows(needed) => Ok(RepScope(e.rep_id.clone())),
            Some(_) => Err(StatusCode::FORBIDDEN),
        }
    }
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

/// The `token` query parameter, decoded as axum's `Query` would (`%XX` and `+`; a malformed
/// escape stays as text). Read here rather than by an extractor: the check runs in the
/// route guard, before any handler, on upgrades too.
fn query_token(query: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        let t = |name: &str, role, secret: &str| Token {
            name: name.into(),
            role,
            secret: secret.into(),
            rep_id: None,
        };
        Tokens::new(&[
            t("bridge", Role::Ingest, "ingest-token-0001"),
            t("panel", Role::Rep, "rep-token-00000001"),
            t("boss", Role::Manager, "manager-token-001"),
            t("ops", Role::Admin, "admin-token-00001"),
        ])
    }

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(axum::http::header::AUTHORIZATION, auth.parse().unwrap());
        h
    }

    #[test]
    fn header_or_query_token() {
        let t = tokens();
        assert_eq!(
            t.check(&headers("Bearer ingest-token-0001"), None, Role::Ingest),
            Ok(())
        );
        assert_eq!(
            t.check(&headers("bearer ingest-token-0001"), None, Role::Ingest),
            Ok(())
        );
        assert_eq!(
            t.check(
                &HeaderMap::new(),
                Some("a=1&token=rep-token-00000001"),
                Role::Rep
            ),
            Ok(())
        );
        assert_eq!(
            t.check(
                &HeaderMap::new(),
                Some("token=rep%2Dtoken-00000001"),
                Role::Rep
            ),
            Ok(())
        );
    }

    #[test]
    fn missing_or_unknown_is_401_wrong_role_is_403() {
        let t = tokens();
        assert_eq!(
            t.check(&HeaderMap::new(), None, Role::Rep),
            Err(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(
            t.check(&headers("Bearer nope"), None, Role::Rep),
            Err(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(
            t.check(&headers("Basic abc"), None, Role::Rep),
            Err(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(
            t.check(&headers("Bearer rep-token-00000001"), None, Role::Ingest),
            Err(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            t.check(&headers("Bearer manager-token-001"), None, Role::Ingest),
            Err(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            t.check(&headers("Bearer manager-token-001"), None, Role::Rep),
            Ok(())
        );
        assert_eq!(
            t.check(&headers("Bearer admin-token-00001"), None, Role::Ingest),
            Ok(())
        );
    }

    #[test]
    fn a_scoped_rep_token_carries_its_rep() {
        let t = Tokens::new(&[Token {
            name: "ana".into(),
            role: Role::Rep,
            secret: "rep-token-ana-00001".into(),
            rep_id: Some("r-ana".into()),
        }]);
        assert_eq!(
            t.authorize(&headers("Bearer rep-token-ana-00001"), None, Role::Rep),
            Ok(RepScope(Some("r-ana".into())))
        );
    }

    #[test]
    fn no_tokens_means_open() {
        assert_eq!(
            Tokens::default().check(&HeaderMap::new(), None, Role::Admin),
            Ok(())
        );
    }

    #[test]
    fn percent_decoding_is_total() {
        assert_eq!(query_token("token=a%2Fb+c%").as_deref(), Some("a/b c%"));
        assert_eq!(query_token("token=%zz%4").as_deref(), Some("%zz%4"));
        assert_eq!(
            query_token("a=1&to%6Ben=x%26y&token=z").as_deref(),
            Some("x&y"),
            "names are decoded too, and the first `token` counts"
        );
        assert_eq!(query_token("tokens=x&token"), Some(String::new()));
        assert_eq!(query_token("a=1"), None);
    }
}
