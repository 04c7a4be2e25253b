//! `cuedeck report`, `cuedeck outcomes import` and `cuedeck simulate`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use clap::{Args, Subcommand};

use super::{Failure, engine, load};
use crate::outcomes;
use crate::report::{self, ExperimentDef, ReportOptions, ReportParams, render};
use crate::store::Store;
use crate::timestamp::Timestamp;

const DEFAULT_DB: &str = "sqlite://cuedeck.db";

#[derive(Debug, Args)]
pub(super) struct ReportArgs {
    /// Store URL: sqlite://FILE or postgres://…
    #[arg(long, env = "CUEDECK_DB", default_value = DEFAULT_DB)]
    db: String,
    /// Card directory: the experiments' variants and weights come from the cards.
    #[arg(long, env = "CUEDECK_CARDS", default_value = "battlecards")]
    cards: PathBuf,
    /// Only this experiment (its key) [default: every experiment in the cards]
    #[arg(long)]
    experiment: Option<String>,
    /// Output: an aligned table, JSON (one object per experiment and line) or CSV.
    #[arg(long, value_enum, default_value = "table")]
    format: ReportFormat,
    #[command(flatten)]
    params: ReportParams,
}

/// `report --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum ReportFormat {
    Table,
    Json,
    Csv,
}

#[derive(Debug, Subcommand)]
pub(super) enum OutcomesCommand {
    /// Import deal outcomes from a CSV file with the header
    /// deal_id,outcome,amount,currency,closed_at (amounts in decimal major units).
    Import(ImportArgs),
}

#[derive(Debug, Args)]
pub(super) struct ImportArgs {
    /// Store URL: sqlite://FILE or postgres://…
    #[arg(long, env = "CUEDECK_DB", default_value = DEFAULT_DB)]
    db: String,
    /// Import the good rows even if some are bad (bad rows are still listed).
    #[arg(long)]
    skip_bad: bool,
    /// The CSV file.
    file: PathBuf,
}

#[derive(Debug, Args)]
pub(super) struct SimulateArgs {
    /// Store URL to fill: sqlite://FILE or postgres://…
    #[arg(long, env = "CUEDECK_DB", default_value = DEFAULT_DB)]
    db: String,
    /// Card directory (the experiment and its card come from here).
    #[arg(long, default_value = "battlecards")]
    cards: PathBuf,
    /// Experiment key [default: the first experiment in the cards]
    #[arg(long)]
    experiment: Option<String>,
    /// Deals to simulate.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    deals: u64,
    /// True relative lift of every treatment arm's win rate over the baseline.
    #[arg(long, default_value_t = 0.1, allow_negative_numbers = true)]
    lift: f64,
    /// The baseline's win rate among closed deals.
    #[arg(long, default_value_t = 0.25)]
    base_rate: f64,
    /// Random seed (the same seed writes the same data).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// First calls are spread over this many days before now.
    #[arg(long, default_value_t = 180)]
    days: u32,
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
        .map_err(Failure::from)
}

/// Opens the store; a report on an SQLite file that does not exist is an error rather
/// than an empty new database.
async fn open_store(url: &str, must_exist: bool) -> anyhow::Result<Store> {
    if must_exist {
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            let path = path.split('?').next().unwrap_or(path);
            if !path.is_empty() && path != ":memory:" && !Path::new(path).exists() {
                return Err(anyhow!("no such database file {path}"));
            }
        }
    }
    Ok(Store::open(url).await?)
}

pub(super) fn report_cmd(args: &ReportArgs) -> Result<ExitCode, Failure> {
    let lib = load(&args.cards)?;
    let mut defs = ExperimentDef::from_library(&lib);
    if let Some(key) = &args.experiment {
        let known: Vec<String> = defs.iter().map(|d| d.key.clone()).collect();
        defs.retain(|d| d.key == *key);
        if defs.is_empty() {
            return Err(anyhow!(
                "report: no experiment `{key}` in {} (experiments: {})",
                args.cards.display(),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )
            .into());
        }
    }
    let opts = args
        .params
        .options(ReportOptions::today().as_of)
        .map_err(|e| anyhow!("report: {}: {}", e.flag(), e.message))?;
    let reports = runtime()?.block_on(async {
        let store = open_store(&args.db, true).await.with_context(|| {
            format!(
                "report: opening the store {}",
                crate::store::redact(&args.db)
            )
        })?;
        let mut out = Vec::new();
        for def in &defs {
            out.push(
                report::build(&store, def, &opts)
                    .await
                    .with_context(|| format!("report: {}", def.key))?,
            );
        }
        store.close().await;
        Ok::<_, anyhow::Error>(out)
    })?;
    let text = match args.format {
        ReportFormat::Json => reports
            .iter()
            .map(|r| render::json(r) + "\n")
            .collect::<String>(),
        ReportFormat::Csv => render::csv(&reports).context("report: writing CSV")?,
        ReportFormat::Table if reports.is_empty() => {
            format!("no experiments in {}\n", args.cards.display())
        }
        ReportFormat::Table => reports
            .iter()
            .map(render::table)
            .collect::<Vec<_>>()
            .join("\n"),
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

pub(super) fn outcomes_cmd(cmd: &OutcomesCommand) -> Result<ExitCode, Failure> {
    let OutcomesCommand::Import(args) = cmd;
    let file = args.file.display();
    let data = std::fs::read(&args.file)
        .with_context(|| format!("outcomes import: cannot read {file}"))?;
    let parsed = outcomes::read_csv(&data).map_err(|e| Failure {
        code: 1,
        error: anyhow!("outcomes import: {file}: {e}"),
    })?;
    for bad in &parsed.bad {
        eprintln!("cuedeck: outcomes import: {file}: {bad}");
    }
    if !parsed.bad.is_empty() && !args.skip_bad {
        return Err(Failure {
            code: 1,
            error: anyhow!(
                "outcomes import: {file}: {} bad row(s), nothing imported (fix them, or \
                 import the {} good row(s) with --skip-bad)",
                parsed.bad.len(),
                parsed.outcomes.len()
            ),
        });
    }
    let received_at = Timestamp::now();
    let rows: Vec<_> = parsed
        .outcomes
        .into_iter()
        .map(|o| o.into_row(received_at))
        .collect();
    runtime()?.block_on(async {
        let store = open_store(&args.db, false).await.with_context(|| {
            format!(
                "outcomes import: opening the store {}",
                crate::store::redact(&args.db)
            )
        })?;
        store
            .insert_outcomes(&rows)
            .await
            .context("outcomes import: writing")?;
        store.close().await;
        Ok::<_, anyhow::Error>(())
    })?;
    println!(
        "{file}: imported {} outcome(s){}",
        rows.len(),
        if parsed.bad.is_empty() {
            String::new()
        } else {
            format!(", skipped {} bad row(s)", parsed.bad.len())
        }
    );
    Ok(ExitCode::SUCCESS)
}

pub(super) fn simulate_cmd(args: &SimulateArgs) -> Result<ExitCode, Failure> {
    let engine = engine(&args.cards)?;
    let mut params = crate::simulate::SimParams::new(args.deals, args.lift, args.seed);
    params.experiment = args.experiment.clone();
    params.base_rate = args.base_rate;
    params.days = args.days;
    let summary = runtime()?.block_on(async {
        let store = open_store(&args.db, false).await.with_context(|| {
            format!(
                "simulate: opening the store {}",
                crate::store::redact(&args.db)
            )
        })?;
        let summary = crate::simulate::run(&store, &engine, &params)
            .await
            .context("simulate")?;
        store.close().await;
        Ok::<_, anyhow::Error>(summary)
    })?;
    println!(
        "simulated {} deals, {} calls, {} exposures, {} outcome updates into {}",
        summary.deals,
        summary.calls,
        summary.exposures,
        summary.outcome_rows,
        crate::store::redact(&args.db)
    );
    println!(
        "experiment {} (card {}), true win rates:",
        summary.experiment_key, summary.card_id
    );
    for (id, deals, rate) in &summary.variants {
        println!("  {id:<12} {deals:>8} deals  {:.1}%", rate * 100.0);
    }
    println!(
        "try: cuedeck report --db {} --cards {} --experiment {}",
        crate::store::redact(&args.db),
        args.cards.display(),
        summary.experiment_key
    );
    Ok(ExitCode::SUCCESS)
}
