//! The command line: `serve`, `validate`, `test`, `replay`, `convert`; experiments (`report`,
//! `outcomes import`, `simulate`) in `cli/experiments.rs`. This is the composition root:
//! it loads configuration, builds the engine and the store, and wires them into the server.
//! `anyhow` is used only here, at the edge.
//!
//! Exit codes: 0 success, 1 the command's check failed (invalid cards, failed examples),
//! 2 usage or I/O error. Errors print as `cuedeck: <what>: <why>` on stderr.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use clap::{Args, Parser, Subcommand};

use crate::backtest;
use crate::config::{Overrides, ServeConfig};
use crate::convert::{self, HvbText};
use crate::engine::Engine;
use crate::library::{Library, LibraryError};
use crate::protocol::adapters::{CallSetup, SetupParams};
use crate::replay::{DecisionLine, InputFormat};

mod experiments;

#[derive(Debug, Parser)]
#[command(
    name = "cuedeck",
    version,
    about = "Real-time call-assist battlecards: live transcript in, the right card out"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service: WebSocket ingest, rep panel feed, HTTP API.
    Serve(ServeArgs),
    /// Check a card library; every error is printed with file:line:col.
    Validate {
        /// Card directory.
        #[arg(default_value = "battlecards")]
        dir: PathBuf,
    },
    /// Run every card's `examples` against its triggers.
    Test {
        /// Card directory.
        #[arg(default_value = "battlecards")]
        dir: PathBuf,
    },
    /// Replay recorded calls in-process: which cards would fire; `--summary` and `--diff`
    /// backtest a card library over many calls.
    Replay(ReplayArgs),
    /// Convert a recorded call into a live stream (JSON lines on stdout).
    Convert(ConvertArgs),
    /// A/B report per experiment: which card variant wins more deals.
    Report(experiments::ReportArgs),
    /// Deal outcomes from the CRM.
    Outcomes {
        #[command(subcommand)]
        command: experiments::OutcomesCommand,
    },
    /// Fill a store with a simulated experiment (calls, exposures, outcomes with a known
    /// true effect) for demos and checks.
    Simulate(experiments::SimulateArgs),
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Configuration file (TOML); flags and CUEDECK_* variables override it.
    #[arg(long, env = "CUEDECK_CONFIG")]
    config: Option<PathBuf>,
    /// Card directory [default: battlecards]
    #[arg(long, env = "CUEDECK_CARDS")]
    cards: Option<PathBuf>,
    /// Store URL: sqlite://FILE or postgres://… [default: sqlite://cuedeck.db]
    #[arg(long, env = "CUEDECK_DB")]
    db: Option<String>,
    /// Address to listen on, HTTP and WebSocket [default: 127.0.0.1:7700]
    #[arg(long, env = "CUEDECK_LISTEN")]
    listen: Option<SocketAddr>,
    /// Do not reload the cards when files change (SIGHUP and the reload endpoint still work).
    #[arg(long)]
    no_watch: bool,
    /// Log format on stderr.
    #[arg(long, env = "CUEDECK_LOG_FORMAT", value_enum, default_value = "pretty")]
    log_format: LogFormat,
}

/// `serve --log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Args)]
struct ReplayArgs {
    /// Card directory.
    #[arg(long, default_value = "battlecards")]
    cards: PathBuf,
    /// Input format: native or a provider's messages as JSON lines, or a Harper Valley
    /// Bank transcript (hvb).
    #[arg(long, value_enum, default_value = "native")]
    format: InputFormat,
    /// Which Harper Valley Bank transcript: the ASR output or the human correction.
    #[arg(long, value_enum, default_value = "asr")]
    text: HvbText,
    #[command(flatten)]
    setup: SetupArgs,
    /// Print JSON: one object per decision (with --diff, per change; with --summary, one
    /// document).
    #[arg(long)]
    json: bool,
    /// Per card over all the calls: fires, fires per 100 calls, calls with a fire, the
    /// speaker split and examples.
    #[arg(long)]
    summary: bool,
    /// Compare with an older card library: the decisions the change adds and removes.
    #[arg(long, value_name = "OLD_CARDS_DIR", conflicts_with = "summary")]
    diff: Option<PathBuf>,
    /// Recorded calls: files, or directories of *.json, *.jsonl, *.ndjson files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// The ids a recorded call is filed under.
#[derive(Debug, Args)]
struct CallIds {
    /// Call id [default: the file name without its extension]
    #[arg(long)]
    call_id: Option<String>,
    #[arg(long)]
    deal_id: Option<String>,
    #[arg(long)]
    rep_id: Option<String>,
}

/// Call set-up for streams that do not begin with a native `start`
/// (docs/protocol.md#setting-the-call-up).
#[derive(Debug, Args)]
struct SetupArgs {
    #[command(flatten)]
    ids: CallIds,
    /// The provider channel of the rep; every other channel is the prospect.
    #[arg(long, conflicts_with = "rep_speaker")]
    rep_channel: Option<String>,
    /// The provider diarization label of the rep; every other label is the prospect.
    #[arg(long)]
    rep_speaker: Option<String>,
}

impl SetupArgs {
    fn setup(&self) -> Result<CallSetup, Failure> {
        let params = SetupParams {
            call_id: self.ids.call_id.clone(),
            deal_id: self.ids.deal_id.clone(),
            rep_id: self.ids.rep_id.clone(),
            rep_channel: self.rep_channel.clone(),
            rep_speaker: self.rep_speaker.clone(),
        };
        Ok(params.setup().map_err(|e| anyhow!("{e}"))?)
    }
}

#[derive(Debug, Args)]
struct ConvertArgs {
    /// Format of the recorded call.
    #[arg(long, value_enum)]
    from: ConvertFrom,
    /// Stream format written to stdout.
    #[arg(long, value_enum)]
    to: ConvertTo,
    /// Which Harper Valley Bank transcript: the ASR output or the human correction.
    #[arg(long, value_enum, default_value = "asr")]
    text: HvbText,
    #[command(flatten)]
    ids: CallIds,
    /// The recorded call.
    file: PathBuf,
}

/// `convert --from`: the recorded call formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ConvertFrom {
    Hvb,
}

/// `convert --to`: the stream formats a recorded call is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ConvertTo {
    Deepgram,
    Native,
}

/// A failure with its exit code.
struct Failure {
    code: u8,
    error: anyhow::Error,
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Failure { code: 2, error }
    }
}

/// Entry point used by `main`.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(f) => {
            eprintln!("cuedeck: {:#}", f.error);
            ExitCode::from(f.code)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, Failure> {
    match cli.command {
        Command::Validate { dir } => validate(&dir),
        Command::Test { dir } => test(&dir),
        Command::Replay(args) => replay_cmd(&args),
        Command::Convert(args) => convert_cmd(&args),
        Command::Serve(args) => serve(args),
        Command::Report(args) => experiments::report_cmd(&args),
        Command::Outcomes { command } => experiments::outcomes_cmd(&command),
        Command::Simulate(args) => experiments::simulate_cmd(&args),
    }
}

/// Loads a library; invalid cards are exit code 1 with every error printed.
fn load(dir: &Path) -> Result<Library, Failure> {
    match Library::load_dir(dir) {
        Ok(lib) => Ok(lib),
        Err(LibraryError::Invalid(errors)) => {
            for e in &errors {
                eprintln!("{e}");
            }
            Err(Failure {
                code: 1,
                error: anyhow!(
                    "{}: {} error(s) in the card library",
                    dir.display(),
                    errors.len()
                ),
            })
        }
        Err(e @ LibraryError::Io { .. }) => Err(anyhow!(e).context("loading cards").into()),
    }
}

fn engine(dir: &Path) -> Result<Engine, Failure> {
    let lib = load(dir)?;
    Engine::new(lib).map_err(|e| anyhow!(e).into())
}

fn validate(dir: &Path) -> Result<ExitCode, Failure> {
    let lib = load(dir)?;
    let phrases: usize = lib
        .cards()
        .iter()
        .map(|c| {
            c.triggers.any.len()
                + c.triggers.all.iter().map(Vec::len).sum::<usize>()
                + c.triggers.unless.len()
        })
        .sum();
    println!(
        "{}: {} cards, {} phrases, version {}",
        dir.display(),
        lib.cards().len(),
        phrases,
        lib.version()
    );
    Ok(ExitCode::SUCCESS)
}

fn test(dir: &Path) -> Result<ExitCode, Failure> {
    let engine = engine(dir)?;
    let report = crate::examples::run(&engine);
    for f in &report.failures {
        println!("FAIL {f}");
    }
    let passed = report.examples - report.failures.len();
    println!(
        "{} cards, {} examples: {} passed, {} failed",
        report.cards,
        report.examples,
        passed,
        report.failures.len()
    );
    Ok(if report.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn replay_cmd(args: &ReplayArgs) -> Result<ExitCode, Failure> {
    let input = backtest::Input {
        format: args.format,
        setup: args.setup.setup().map_err(|f| f.error.context("replay"))?,
        text: args.text,
    };
    let engine = engine(&args.cards)?;
    let files = backtest::expand(&args.files).map_err(|e| anyhow!("replay: {e}"))?;
    if args.summary || args.diff.is_some() {
        return backtest_cmd(args, &engine, &files, &input);
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for file in &files {
        let r = backtest::replay_file(&engine, file, &input).map_err(|e| anyhow!("replay: {e}"))?;
        let call_id = &r.info.call_id;
        for d in &r.decisions {
            let written = if args.json {
                let line = serde_json::to_string(&DecisionLine::new(call_id, d))
                    .map_err(|e| anyhow!(e))?;
                writeln!(out, "{line}")
            } else {
                let variant = d
                    .variant_id()
                    .map(|v| format!(" [{v}]"))
                    .unwrap_or_default();
                writeln!(
                    out,
                    "{call_id}  {:>9}  {:<8}  {:<12}  {}{variant}  on {:?} ({})",
                    format_clock(d.t_ms),
                    d.speaker.as_str(),
                    d.reason.as_str(),
                    d.card.id,
                    d.phrase.as_ref(),
                    d.segment_id
                )
            };
            written.context("replay: writing output")?;
        }
        if !args.json {
            let shown = r.decisions.iter().filter(|d| d.shown()).count();
            writeln!(
                out,
                "{call_id}: {} messages, {} decisions, {shown} cards shown",
                r.messages,
                r.decisions.len()
            )
            .context("replay: writing output")?;
        }
    }
    out.flush().context("replay: writing output")?;
    Ok(ExitCode::SUCCESS)
}

/// `replay --summary` and `replay --diff`.
fn backtest_cmd(
    args: &ReplayArgs,
    engine: &Engine,
    files: &[PathBuf],
    input: &backtest::Input,
) -> Result<ExitCode, Failure> {
    let runs = backtest::replay_all(engine, files, input).map_err(|e| anyhow!("replay: {e}"))?;
    let text = if let Some(old_dir) = &args.diff {
        let old = self::engine(old_dir)?;
        let old_runs =
            backtest::replay_all(&old, files, input).map_err(|e| anyhow!("replay: {e}"))?;
        let diff = backtest::diff(&old_runs, &runs);
        if args.json {
            let mut lines = String::new();
            for c in &diff.changes {
                lines.push_str(&serde_json::to_string(c).map_err(|e| anyhow!(e))?);
                lines.push('\n');
            }
            lines
        } else {
            diff.render()
        }
    } else {
        let summary = backtest::summarize(engine.library(), &runs);
        if args.json {
            serde_json::to_string_pretty(&summary).map_err(|e| anyhow!(e))? + "\n"
        } else {
            summary.render()
        }
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("replay: writing output")?;
    Ok(ExitCode::SUCCESS)
}

fn convert_cmd(args: &ConvertArgs) -> Result<ExitCode, Failure> {
    let json = std::fs::read_to_string(&args.file)
        .with_context(|| format!("convert: cannot read {}", args.file.display()))?;
    let segments = convert::parse_hvb(&json, args.text)
        .map_err(|e| anyhow!("convert: {}: {e}", args.file.display()))?;
    let stem = args
        .file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned());
    let setup = CallSetup {
        call_id: args.ids.call_id.clone().or(stem),
        deal_id: args.ids.deal_id.clone(),
        rep_id: args.ids.rep_id.clone(),
        rep_label: None,
    };
    setup.check().map_err(|e| anyhow!("convert: {e}"))?;
    let lines = match args.to {
        ConvertTo::Deepgram => convert::to_deepgram(&segments, &setup),
        ConvertTo::Native => convert::to_native(&segments, &setup),
    };
    let mut out = std::io::stdout().lock();
    out.write_all(lines.as_bytes())
        .and_then(|()| out.flush())
        .context("convert: writing output")?;
    Ok(ExitCode::SUCCESS)
}

/// `mm:ss.mmm` on the call clock.
fn format_clock(t_ms: u64) -> String {
    format!(
        "{:02}:{:02}.{:03}",
        t_ms / 60_000,
        (t_ms / 1000) % 60,
        t_ms % 1000
    )
}

fn serve(args: ServeArgs) -> Result<ExitCode, Failure> {
    init_tracing(args.log_format);
    // CUEDECK_WATCH=false disables watching like --no-watch does.
    let env_watch = std::env::var("CUEDECK_WATCH").ok().map(|v| {
        !matches!(
            v.to_ascii_lowercase().as_str(),
            "0" | "false" | "no" | "off"
        )
    });
    let overrides = Overrides {
        listen: args.listen,
        cards: args.cards.clone(),
        db: args.db.clone(),
        watch: if args.no_watch {
            Some(false)
        } else {
            env_watch
        },
    };
    let env = |name: &str| std::env::var(name).ok();
    let config = ServeConfig::load(args.config.as_deref(), &overrides, &env)
        .map_err(|e| anyhow!(e).context("serve: configuration"))?;
    config
        .check_exposure()
        .map_err(|e| anyhow!(e).context("serve"))?;
    // Everything is loaded and validated before a port is bound.
    let engine = engine(&config.cards)?;
    raise_nofile_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("serve: starting the runtime")?;
    runtime.block_on(async move {
        let store = crate::store::Store::open(&config.db)
            .await
            .with_context(|| {
                format!("serve: opening the store {}", crate::store::redact(&config.db))
            })?;
        let spill = crate::store::SpillOptions {
            dir: config
                .spill_dir
                .clone()
                .unwrap_or_else(|| crate::store::default_spill_dir(&config.db)),
            max_bytes: config.limits.spill_max_bytes,
        };
        let (handle, writer) =
            crate::store::spawn_writer_with_spill(store.clone(), config.limits.store_queue, &spill)
                .context("serve: opening the spill")?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("serve: cannot listen on {}", config.listen))?;
        let addr = listener.local_addr().context("serve: local address")?;
        let metrics_listener = match config.metrics_listen {
            None => None,
            Some(at) => Some(
                tokio::net::TcpListener::bind(at)
                    .await
                    .with_context(|| format!("serve: cannot listen on {at} (metrics_listen)"))?,
            ),
        };
        if config.tokens.is_empty() {
            tracing::warn!(%addr, "no access tokens configured: every route is open, loopback only");
        }
        tracing::info!(
            %addr,
            cards = engine.library().cards().len(),
            version = engine.library().version(),
            tokens = config.tokens.len(),
            "cuedeck listening"
        );
        eprintln!(
            "cuedeck: listening on http://{addr}/ with {} cards",
            engine.library().cards().len()
        );
        let state = crate::server::AppState::with_options(
            engine,
            store.clone(),
            handle,
            config.limits,
            crate::server::Tokens::new(&config.tokens),
            crate::server::HttpOptions {
                allowed_origins: config.allowed_origins.clone(),
                separate_metrics: metrics_listener.is_some(),
            },
        );
        if let Some(listener) = metrics_listener {
            let at = listener.local_addr().context("serve: metrics address")?;
            tracing::info!(%at, "metrics on their own address");
            let st = state.clone();
            tokio::spawn(async move {
                if let Err(error) = crate::server::run_metrics(listener, st).await {
                    tracing::error!(%error, "the metrics listener stopped");
                }
            });
        }
        if config.watch {
            if let Err(error) = crate::server::reload::watch(state.clone()) {
                tracing::warn!(%error, "file watching is off; SIGHUP and POST /v1/admin/reload still reload");
            }
        }
        spawn_sighup_reload(state.clone());
        crate::server::run(listener, state.clone(), shutdown_signal())
            .await
            .context("serve")?;
        state.release_store();
        drop(state);
        let written = writer.finish().await.context("serve: draining the store")?;
        store.close().await;
        tracing::info!(records = written, "stopped");
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Reloads the card library on SIGHUP.
fn spawn_sighup_reload(state: std::sync::Arc<crate::server::AppState>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP");
            return;
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the card library");
            crate::server::reload::reload(&state).await;
        }
    });
    #[cfg(not(unix))]
    let _ = state;
}

/// Every call is a socket: raise the soft `nofile` limit to the hard limit, as servers
/// holding many idle connections do (a soft limit of 1,024 would cap a node at ~1,000
/// calls). The hard limit is the operator's; `limits.max_connections` still applies.
#[allow(
    unsafe_code,
    reason = "the one audited unsafe block: two libc calls on a local struct"
)]
fn raise_nofile_limit() {
    #[cfg(unix)]
    // SAFETY: getrlimit/setrlimit read and write only the local struct passed by pointer.
    unsafe {
        let mut l = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 && l.rlim_cur < l.rlim_max {
            let wanted = l.rlim_max;
            l.rlim_cur = wanted;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &l) != 0 {
                tracing::warn!(wanted, "cannot raise the open file limit");
            }
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received");
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CUEDECK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: log files and collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = if format == LogFormat::Json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
