//! Service configuration: the `cuedeck.toml` file, `CUEDECK_*` environment variables and
//! command-line flags, with precedence flag > environment > file > default. Everything is
//! loaded and validated before a port is bound; an unknown key in the file is an error
//! naming its line and column.
//!
//! Every bound on what a client can grow is in [`Limits`], explicit and configurable.

use crate::location::{Location, Pos};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Bounds applied by `serve` (the `[limits]` table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Open TCP connections (HTTP and WebSocket) at once; a semaphore permit is taken
    /// before `accept`.
    pub max_connections: usize,
    /// Largest WebSocket message or frame; larger closes the socket with 1009.
    pub max_message_bytes: usize,
    /// A WebSocket with no inbound message for this long is closed.
    pub idle_timeout_seconds: u64,
    /// How long an ended call's state is kept so a reconnect resumes it.
    pub call_grace_seconds: u64,
    /// Records waiting in memory for the store writer; a full queue spills to disk.
    pub store_queue: usize,
    /// Bytes the spill file behind the store queue may hold; only when the queue and the
    /// spill are both full does the producing call wait.
    pub spill_max_bytes: u64,
    /// How long shutdown waits for connections to close and the store to drain.
    pub shutdown_grace_seconds: u64,
    /// Calls (live or in their grace period) held at once.
    pub max_calls: usize,
    /// Frames queued for one subscriber; a subscriber that falls this far behind is
    /// disconnected instead of slowing the call.
    pub subscriber_queue: usize,
    /// Subscribers of one call.
    pub max_subscribers_per_call: usize,
    /// Normalized transcript bytes one call keeps for window scopes.
    pub max_transcript_bytes: usize,
    /// Consecutive bad messages before the socket is closed with 1008.
    pub max_errors_in_a_row: u32,
    /// Every WebSocket is pinged this often; two unanswered pings drop it.
    pub ping_seconds: u64,
    /// Feedback messages a second per socket (bursts of twice that); over it: `limit`.
    pub feedback_per_second: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 20_000,
            max_message_bytes: 64 * 1024,
            idle_timeout_seconds: 600,
            call_grace_seconds: 30,
            store_queue: 65_536,
            spill_max_bytes: 1 << 30,
            shutdown_grace_seconds: 10,
            max_calls: 20_000,
            subscriber_queue: 256,
            max_subscribers_per_call: 16,
            max_transcript_bytes: 64 * 1024,
            max_errors_in_a_row: 10,
            ping_seconds: 15,
            feedback_per_second: 10,
        }
    }
}

impl Limits {
    fn check(&self) -> Result<(), String> {
        let positive = [
            ("max_connections", self.max_connections as u64),
            ("max_message_bytes", self.max_message_bytes as u64),
            ("idle_timeout_seconds", self.idle_timeout_seconds),
            ("store_queue", self.store_queue as u64),
            ("spill_max_bytes", self.spill_max_bytes),
            ("max_calls", self.max_calls as u64),
            ("subscriber_queue", self.subscriber_queue as u64),
            (
                "max_subscribers_per_call",
                self.max_subscribers_per_call as u64,
            ),
            ("max_transcript_bytes", self.max_transcript_bytes as u64),
            ("max_errors_in_a_row", u64::from(self.max_errors_in_a_row)),
            ("ping_seconds", self.ping_seconds),
            ("feedback_per_second", u64::from(self.feedback_per_second)),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(format!("limits.{name} must be greater than 0"));
            }
        }
        if self.max_message_bytes < 1024 {
            return Err("limits.max_message_bytes must be at least 1024".into());
        }
        Ok(())
    }
}

/// What a token may do. `admin` implies every role, `manager` implies `rep`; `ingest` is a
/// machine role implied only by `admin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Ingest,
    Rep,
    Manager,
    Admin,
}

impl Role {
    /// Does a token with this role satisfy `needed`?
    pub fn allows(self, needed: Role) -> bool {
        match self {
            Role::Admin => true,
            Role::Manager => matches!(needed, Role::Manager | Role::Rep),
            Role::Rep => needed == Role::Rep,
            Role::Ingest => needed == Role::Ingest,
        }
    }

    pub fn as_str(self) -> &'static str {
        crate::names::name_of(&self)
    }
}

/// A bearer token as configured. The secret is never logged or printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    pub name: String,
    pub role: Role,
    pub secret: String,
    /// For a `rep` token: the one rep whose calls it may subscribe to (`None`: any call).
    pub rep_id: Option<String>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("rep_id", &self.rep_id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Shortest accepted token secret.
pub const MIN_TOKEN_LEN: usize = 16;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    name: String,
    role: Role,
    token: Option<String>,
    token_env: Option<String>,
    rep_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    listen: Option<String>,
    cards: Option<PathBuf>,
    db: Option<String>,
    watch: Option<bool>,
    metrics_listen: Option<String>,
    #[serde(default)]
    allowed_origins: Vec<String>,
    #[serde(default)]
    tokens: Vec<RawToken>,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    store: StoreSettings,
}

/// The `[store]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreSettings {
    /// Where the spill file and dead letters go.
    spill_dir: Option<PathBuf>,
}

/// Values given on the command line or in the environment (already merged by the CLI:
/// a flag wins over its environment variable). `None` falls back to the file, then the
/// default.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub cards: Option<PathBuf>,
    pub db: Option<String>,
    pub watch: Option<bool>,
}

/// The resolved configuration of `serve`.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub cards: PathBuf,
    pub db: String,
    pub watch: bool,
    pub tokens: Vec<Token>,
    pub limits: Limits,
    /// `[store] spill_dir`; `None`: next to the SQLite file, or the working directory
    /// ([`crate::store::default_spill_dir`]).
    pub spill_dir: Option<PathBuf>,
    /// Where `/metrics` is served instead of the main port (`None`: on the main port).
    pub metrics_listen: Option<SocketAddr>,
    /// Origins besides the server's own that may open WebSockets and send non-GET
    /// requests (exact `scheme://host[:port]`).
    pub allowed_origins: Vec<String>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 7700)),
            cards: PathBuf::from("battlecards"),
            db: "sqlite://cuedeck.db".into(),
            watch: true,
            tokens: Vec::new(),
            limits: Limits::default(),
            spill_dir: None,
            metrics_listen: None,
            allowed_origins: Vec::new(),
        }
    }
}

/// A configuration problem, with where it is.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{at}: {message}")]
    Invalid { at: Location, message: String },
    #[error("{0}")]
    Value(String),
}

impl ServeConfig {
    /// Loads the file (if any), applies overrides, reads token secrets from the
    /// environment, and validates the result.
    pub fn load(
        file: Option<&Path>,
        overrides: &Overrides,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ServeConfig, ConfigError> {
        let raw = match file {
            None => RawFile::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                toml::from_str::<RawFile>(&text).map_err(|e| {
                    let pos = e
                        .span()
                        .map_or(Pos::START, |s| Pos::of_offset(&text, s.start));
                    ConfigError::Invalid {
                        at: Location::new(path.display().to_string(), pos),
                        message: e.message().trim().to_string(),
                    }
                })?
            }
        };
        let d = ServeConfig::default();
        let address = |key: &str, s: Option<String>| match s {
            None => Ok(None),
            Some(s) => s.parse::<SocketAddr>().map(Some).map_err(|e| {
                ConfigError::Value(format!(
                    "`{key}`: {s:?} is not an address like 127.0.0.1:7700 ({e})"
                ))
            }),
        };
        let file_listen = address("listen", raw.listen)?;
        let metrics_listen = address("metrics_listen", raw.metrics_listen)?;
        for origin in &raw.allowed_origins {
            check_origin(origin).map_err(|why| {
                ConfigError::Value(format!("`allowed_origins`: {origin:?} {why}"))
            })?;
        }
        let mut tokens = Vec::new();
        for (i, t) in raw.tokens.into_iter().enumerate() {
            let which = format!("tokens[{i}] ({:?})", t.name);
            let secret = match (t.token, t.token_env) {
                (Some(s), None) => s,
                (None, Some(var)) => env(&var).ok_or_else(|| {
                    ConfigError::Value(format!("{which}: environment variable {var} is not set"))
                })?,
                _ => {
                    return Err(ConfigError::Value(format!(
                        "{which}: set exactly one of `token` and `token_env`"
                    )));
                }
            };
            if secret.len() < MIN_TOKEN_LEN {
                return Err(ConfigError::Value(format!(
                    "{which}: a token must be at least {MIN_TOKEN_LEN} characters"
                )));
            }
            if tokens.iter().any(|x: &Token| x.secret == secret) {
                return Err(ConfigError::Value(format!(
                    "{which}: the same token is configured twice"
                )));
            }
            if let Some(rep) = &t.rep_id {
                if t.role != Role::Rep {
                    return Err(ConfigError::Value(format!(
                        "{which}: `rep_id` is for tokens with role `rep`"
                    )));
                }
                if rep.is_empty()
                    || rep.len() > crate::protocol::MAX_ID_LEN
                    || rep.chars().any(char::is_control)
                {
                    return Err(ConfigError::Value(format!(
                        "{which}: `rep_id` must be 1 to {} bytes without control characters",
                        crate::protocol::MAX_ID_LEN
                    )));
                }
            }
            tokens.push(Token {
                name: t.name,
                role: t.role,
                secret,
                rep_id: t.rep_id,
            });
        }
        raw.limits.check().map_err(ConfigError::Value)?;
        Ok(ServeConfig {
            listen: overrides.listen.or(file_listen).unwrap_or(d.listen),
            cards: overrides.cards.clone().or(raw.cards).unwrap_or(d.cards),
            db: overrides.db.clone().or(raw.db).unwrap_or(d.db),
            watch: overrides.watch.or(raw.watch).unwrap_or(d.watch),
            tokens,
            limits: raw.limits,
            spill_dir: raw.store.spill_dir,
            metrics_listen,
            allowed_origins: raw.allowed_origins,
        })
    }

    /// Refuses an unauthenticated service on a non-loopback address.
    pub fn check_exposure(&self) -> Result<(), ConfigError> {
        if self.tokens.is_empty() && !self.listen.ip().is_loopback() {
            return Err(ConfigError::Value(format!(
                "refusing to listen on {} without access tokens: configure [[tokens]] or bind a loopback address",
                self.listen
            )));
        }
        Ok(())
    }
}

/// Why `origin` is not an exact origin (`scheme://host[:port]`, lowercase, nothing after):
/// the server compares origins as text, so a path or a wildcard would never match.
fn check_origin(origin: &str) -> Result<(), &'static str> {
    let Some((scheme, host)) = origin.split_once("://") else {
        return Err("is not an origin like https://crm.example.com");
    };
    if !matches!(scheme, "http" | "https") {
        return Err("must start with http:// or https://");
    }
    if host.is_empty() || host.contains(['/', '?', '#', '*', '@', ' ']) {
        return Err("must be scheme://host[:port] with no path and no wildcard");
    }
    if origin.chars().any(|c| c.is_ascii_uppercase()) {
        return Err("must be lowercase, as browsers send it");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cuedeck.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn defaults_without_a_file() {
        let c = ServeConfig::load(None, &Overrides::default(), &no_env).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:7700");
        assert_eq!(c.db, "sqlite://cuedeck.db");
        assert!(c.watch);
        assert_eq!(c.limits, Limits::default());
    }

    #[test]
    fn precedence_flag_over_file_over_default() {
        let (_d, path) = write(
            "listen = \"127.0.0.1:9000\"\ndb = \"sqlite://file.db\"\nwatch = false\n[limits]\nmax_message_bytes = 2048\n",
        );
        let c = ServeConfig::load(Some(&path), &Overrides::default(), &no_env).unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.db, "sqlite://file.db");
        assert!(!c.watch);
        assert_eq!(c.limits.max_message_bytes, 2048);
        assert_eq!(c.limits.max_connections, 20_000);
        let o = Overrides {
            listen: Some("127.0.0.1:9100".parse().unwrap()),
            db: Some("sqlite://flag.db".into()),
            ..Overrides::default()
        };
        let c = ServeConfig::load(Some(&path), &o, &no_env).unwrap();
        assert_eq!(c.listen.port(), 9100);
        assert_eq!(c.db, "sqlite://flag.db");
        assert_eq!(c.cards, PathBuf::from("battlecards"));
    }

    #[test]
    fn unknown_keys_name_their_line() {
        let (_d, path) = write("listen = \"127.0.0.1:1\"\n\n[limits]\nmax_conections = 5\n");
        let e = ServeConfig::load(Some(&path), &Overrides::default(), &no_env).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("cuedeck.toml:4:1: unknown field `max_conections`"),
            "{msg}"
        );
        let (_d, path) = write("lisen = 1\n");
        let msg = ServeConfig::load(Some(&path), &Overrides::default(), &no_env)
            .unwrap_err()
            .to_string();
        assert!(msg.contains(":1:1: unknown field `lisen`"), "{msg}");
    }

    #[test]
    fn tokens_from_the_file_or_the_environment() {
        let (_d, path) = write(
            "[[tokens]]\nname = \"bridge\"\nrole = \"ingest\"\ntoken = \"0123456789abcdef\"\n\n[[tokens]]\nname = \"boss\"\nrole = \"admin\"\ntoken_env = \"BOSS_TOKEN\"\n",
        );
        let env = |k: &str| (k == "BOSS_TOKEN").then(|| "fedcba9876543210".to_string());
        let c = ServeConfig::load(Some(&path), &Overrides::default(), &env).unwrap();
        assert_eq!(c.tokens.len(), 2);
        assert_eq!(c.tokens[1].role, Role::Admin);
        assert!(
            !format!("{:?}", c.tokens).contains("fedcba"),
            "secrets are redacted"
        );
        let e = ServeConfig::load(Some(&path), &Overrides::default(), &no_env).unwrap_err();
        assert!(
            e.to_string()
                .contains("environment variable BOSS_TOKEN is not set")
        );
    }

    #[test]
    fn bad_values_are_refused() {
        let (_d, path) = write("[[tokens]]\nname = \"x\"\nrole = \"ingest\"\ntoken = \"short\"\n");
        let e = ServeConfig::load(Some(&path), &Overrides::default(), &no_env).unwrap_err();
        assert!(e.to_string().contains("at least 16 characters"), "{e}");
        let (_d, path) = write("[limits]\nstore_queue = 0\n");
        let e = ServeConfig::load(Some(&path), &Overrides::default(), &no_env).unwrap_err();
        assert!(
            e.to_string()
                .contains("limits.store_queue must be greater than 0"),
            "{e}"
        );
        let (_d, path) =
            write("[[tokens]]\nname = \"x\"\nrole = \"boss\"\ntoken = \"0123456789abcdef\"\n");
        let e = ServeConfig::load(Some(&path), &Overrides::default(), &no_env).unwrap_err();
        assert!(e.to_string().contains("cuedeck.toml:3:8"), "{e}");
    }

    #[test]
    fn the_spill_is_configured_by_limits_and_store() {
        let (_d, path) = write(
            "[limits]\nspill_max_bytes = 4096\n[store]\nspill_dir = \"/var/spool/cuedeck\"\n",
        );
        let c = ServeConfig::load(Some(&path), &Overrides::default(), &no_env).unwrap();
        assert_eq!(c.limits.spill_max_bytes, 4096);
        assert_eq!(c.spill_dir, Some(PathBuf::from("/var/spool/cuedeck")));
        let (_d, path) = write("[store]\nspill = \"x\"\n");
        let e = ServeConfig::load(Some(&path), &Overrides::default(), &no_env).unwrap_err();
        assert!(e.to_string().contains("unknown field `spill`"), "{e}");
        let (_d, path) = write("[limits]\nspill_max_bytes = 0\n");
        let e = ServeConfig::load(Some(&path), &Overrides::default(), &no_env).unwrap_err();
        assert!(e.to_string().contains("limits.spill_max_bytes"), "{e}");
    }

    #[test]
    fn no_tokens_means_loopback_only() {
        let mut c = ServeConfig {
            listen: "0.0.0.0:7700".parse().unwrap(),
            ..ServeConfig::default()
        };
        assert!(c.check_exposure().is_err());
        c.tokens.push(Token {
            name: "t".into(),
            role: Role::Admin,
            secret: "0123456789abcdef".into(),
            rep_id: None,
        });
        assert!(c.check_exposure().is_ok());
    }

    #[test]
    fn origins_metrics_listen_and_rep_scopes() {
        let (_d, path) = write(
            "metrics_listen = \"127.0.0.1:9100\"\nallowed_origins = [\"https://crm.example.com\"]\n\
             [[tokens]]\nname = \"ana\"\nrole = \"rep\"\nrep_id = \"r-7\"\ntoken = \"0123456789abcdef\"\n",
        );
        let c = ServeConfig::load(Some(&path), &Overrides::default(), &no_env).unwrap();
        assert_eq!(c.metrics_listen, Some("127.0.0.1:9100".parse().unwrap()));
        assert_eq!(c.allowed_origins, ["https://crm.example.com"]);
        assert_eq!(c.tokens[0].rep_id.as_deref(), Some("r-7"));
        for bad in [
            "https://crm.example.com/",
            "https://*.example.com",
            "crm.example.com",
            "HTTPS://CRM.example.com",
        ] {
            let (_d, path) = write(&format!("allowed_origins = [{bad:?}]\n"));
            let e = ServeConfig::load(Some(&path), &Overrides::default(), &no_env).unwrap_err();
            assert!(e.to_string().contains("allowed_origins"), "{bad}: {e}");
        }
        let (_d, path) = write(
            "[[tokens]]\nname = \"x\"\nrole = \"admin\"\nrep_id = \"r-7\"\ntoken = \"0123456789abcdef\"\n",
        );
        let e = ServeConfig::load(Some(&path), &Overrides::default(), &no_env).unwrap_err();
        assert!(
            e.to_string()
                .contains("`rep_id` is for tokens with role `rep`"),
            "{e}"
        );
    }

    #[test]
    fn role_order() {
        assert!(Role::Admin.allows(Role::Ingest));
        assert!(Role::Manager.allows(Role::Rep));
        assert!(!Role::Manager.allows(Role::Ingest));
        assert!(!Role::Manager.allows(Role::Admin));
        assert!(!Role::Rep.allows(Role::Manager));
        assert!(!Role::Ingest.allows(Role::Rep));
    }
}

#[cfg(test)]
mod example_file {
    use super::*;

    /// The documented example file loads and states the defaults.
    #[test]
    fn the_example_config_is_valid_and_shows_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("cuedeck.example.toml");
        let c = ServeConfig::load(Some(&path), &Overrides::default(), &|_| None).unwrap();
        let d = ServeConfig::default();
        assert_eq!(c.listen, d.listen);
        assert_eq!(c.cards, d.cards);
        assert_eq!(c.db, d.db);
        assert_eq!(c.watch, d.watch);
        assert_eq!(c.limits, Limits::default());
        assert_eq!(c.spill_dir, d.spill_dir);
        assert_eq!(c.metrics_listen, d.metrics_listen);
        assert_eq!(c.allowed_origins, d.allowed_origins);
    }
}
