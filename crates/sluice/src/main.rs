//! The `sluice` command: parses the command line, loads the configuration,
//! and hands it to the runtime. It only wires things together; every
//! capability lives in a library crate.

mod logging;
mod progress;
mod resources;
mod summary;
mod top;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use logging::LogFormat;
use sluice_config::{Config, SourceConfig};
use sluice_core::{Registry, Shutdown};
use sluice_runtime::Verdict;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The default job, embedded so `sluice run` works on a fresh machine.
const DEFAULT_CONFIG: &str = include_str!("../../../config/default.toml");
const DEFAULT_CONFIG_NAME: &str = "<embedded config/default.toml>";

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "A fast node-level log pipeline: keeps every error and slow request, budgets the rest, never ships a secret.",
    long_about = "sluice reads what applications write to stdout (node log files, stdin, Kafka), parses JSON \
                  without copying, stitches stack traces, redacts secrets, samples within per-service budgets \
                  and ships to storage.\n\nStart with `sluice run`: it runs the embedded default job (a \
                  realistic generated workload → the full stage chain → zstd files under ./data/out) and \
                  prints what happened. Then copy config/default.toml and make it yours."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log filter for sluice's own logs (e.g. `info`, `sluice=debug`).
    #[arg(long, global = true, env = "SLUICE_LOG", default_value = "info")]
    log: String,
    /// Format of sluice's own logs on stderr: `auto` is JSON lines when
    /// stderr is not a terminal (a pod's log, a file), text otherwise.
    #[arg(long, global = true, value_enum, env = "SLUICE_LOG_FORMAT", default_value_t = LogFormat::Auto)]
    log_format: LogFormat,
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline until its input ends (or SIGINT/SIGTERM), then print a summary.
    Run {
        /// Configuration file; without it, the embedded config/default.toml.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Force the live progress line on (default: the config's `report.progress`, on a terminal).
        #[arg(long, conflicts_with = "no_progress")]
        progress: bool,
        /// Force the live progress line off.
        #[arg(long)]
        no_progress: bool,
    },
    /// Check a configuration: exit 0 if valid, else print where and why and exit 2.
    Validate {
        /// Configuration file to check.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Write the built-in workload to stdout (NDJSON mixed with plain-text traces).
    Generate {
        /// Number of lines.
        #[arg(long, short = 'n', default_value_t = 1000)]
        count: u64,
        /// Seed: the same seed gives the same lines.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Number of services.
        #[arg(long, default_value_t = 20)]
        services: usize,
    },
    /// Run a configuration as fast as possible and report MB/s, events/s, CPU seconds and peak RSS.
    Bench {
        /// Configuration file; without it, the embedded default job.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Override the generator sources' line count.
        #[arg(long)]
        count: Option<u64>,
    },
    /// A live view of a running sluice through its admin endpoint: rates, queues, breakers, budgets (one snapshot when stdout is not a terminal).
    Top {
        /// The admin endpoint's address.
        #[arg(long, default_value = "127.0.0.1:9598")]
        address: String,
        /// Refresh interval (also the span the first rates are measured over).
        #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
        interval: std::time::Duration,
    },
    /// Print the SQL that creates the table a storage sink writes (`sluice schema clickhouse | clickhouse-client`).
    Schema {
        /// The storage.
        #[arg(value_enum)]
        target: SchemaTarget,
    },
}

/// Storages with a schema to create.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum SchemaTarget {
    /// deploy/clickhouse/schema.sql: the `clickhouse` sink's default table.
    Clickhouse,
}

/// Transparent huge pages off for this process (unless `MIMALLOC_ALLOW_THP`
/// is set, which then decides). mimalloc asks for them on its arenas, and
/// each batch buffer then holds whole 2 MiB pages the kernel must clear on
/// first touch: off, the whole job's peak RSS fell from 117-122 to 72-79 MB
/// at the same CPU (README, Benchmarks).
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // SAFETY: prctl(2) with PR_SET_THP_DISABLE only sets a flag on this
        // process; it reads no memory of ours. Failure (an old kernel)
        // leaves the default, which is harmless.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    }
}

fn main() -> ExitCode {
    no_transparent_huge_pages();
    let cli = Cli::parse();
    logging::init(&cli.log, cli.log_format);
    let result = match cli.command {
        Command::Run {
            config,
            progress,
            no_progress,
        } => run(config.as_deref(), progress, no_progress),
        Command::Validate { config } => validate(&config),
        Command::Generate { count, seed, services } => generate(count, seed, services),
        Command::Bench { config, count } => bench(config.as_deref(), count),
        Command::Top { address, interval } => runtime()
            .and_then(|rt| rt.block_on(top::run(&address, interval)))
            .map(|()| ExitCode::SUCCESS),
        Command::Schema {
            target: SchemaTarget::Clickhouse,
        } => {
            print!("{}", include_str!("../../../deploy/clickhouse/schema.sql"));
            Ok(ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sluice: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn load(path: Option<&Path>) -> anyhow::Result<Config> {
    Ok(match path {
        Some(p) => sluice_config::load(p)?,
        None => sluice_config::parse(DEFAULT_CONFIG, Path::new(DEFAULT_CONFIG_NAME), &|k| {
            std::env::var(k).ok()
        })?,
    })
}

fn validate(path: &Path) -> anyhow::Result<ExitCode> {
    match sluice_config::load(path) {
        Ok(c) => {
            println!(
                "{}: ok ({} source{}, {} sink{})",
                path.display(),
                c.sources.len(),
                plural(c.sources.len()),
                c.sinks.len(),
                plural(c.sinks.len())
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::from(2))
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn generate(count: u64, seed: u64, services: usize) -> anyhow::Result<ExitCode> {
    let cfg = sluice_config::GeneratorConfig {
        seed,
        services: services.clamp(1, 10_000),
        ..Default::default()
    };
    let settings = sluice_io::generator_source::settings(&cfg).map_err(anyhow::Error::msg)?;
    let mut workload = sluice_generator::Workload::new(settings);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut buf = Vec::with_capacity(1 << 20);
    while workload.lines() < count {
        buf.clear();
        workload.fill(&mut buf, 1 << 20, count - workload.lines());
        match out.write_all(&buf) {
            Ok(()) => {}
            // `sluice generate | head` is a normal way to look at it.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
            Err(e) => return Err(e).context("writing to stdout"),
        }
    }
    out.flush().context("writing to stdout")?;
    Ok(ExitCode::SUCCESS)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("sluice-io")
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Run `config` to its end with signal handling and, when `progress` gives
/// an interval (and optional total), a live display; returns the report, the
/// metrics and what it cost.
fn execute(
    config: &Config,
    progress: Option<(std::time::Duration, Option<u64>)>,
    reload: Option<sluice_runtime::ConfigLoader>,
) -> anyhow::Result<(sluice_runtime::RunReport, Registry, resources::Usage)> {
    let registry = Registry::new();
    let shutdown = Shutdown::new();
    let rt = runtime()?;
    let before = resources::Usage::now();
    let report = rt.block_on(async {
        sluice_runtime::install_signal_handlers(shutdown.clone());
        let live = progress.map(|(every, total)| progress::Live::start(&registry, every, total));
        let report = sluice_runtime::run(config, &registry, shutdown, reload).await;
        if let Some(l) = live {
            l.finish();
        }
        report
    })?;
    Ok((report, registry, resources::Usage::now().since(&before)))
}

fn run(path: Option<&Path>, force_progress: bool, no_progress: bool) -> anyhow::Result<ExitCode> {
    let config = load(path)?;
    let show_progress = !no_progress && (force_progress || (config.report.progress && std::io::stderr().is_terminal()));
    // A reload reads the same file again; the embedded default has none.
    let reload = path.map(|p| {
        let p = p.to_path_buf();
        Box::new(move || sluice_config::load(&p).map_err(|e| e.to_string())) as sluice_runtime::ConfigLoader
    });
    let (report, registry, usage) = execute(&config, show_progress.then_some((config.report.interval, None)), reload)?;
    if config.report.summary {
        eprint!("{}", summary::render(&report, &registry, &usage));
    }
    Ok(match report.verdict() {
        // Held in a disk buffer is safe: the next start delivers it.
        Verdict::Clean | Verdict::Held(_) => ExitCode::SUCCESS,
        Verdict::NotClean(_) => {
            for e in &report.errors {
                eprintln!("sluice: {e}");
            }
            ExitCode::from(1)
        }
    })
}

fn bench(path: Option<&Path>, count: Option<u64>) -> anyhow::Result<ExitCode> {
    let mut config = load(path)?;
    let mut total_bytes = None;
    for source in config.sources.values_mut() {
        match source {
            SourceConfig::Generator(g) => {
                if count.is_some() {
                    g.count = count;
                }
                g.rate = None;
                if g.count.is_none() {
                    anyhow::bail!("bench needs an end: give the generator a `count` (or pass --count)");
                }
            }
            SourceConfig::Stdin(_) => total_bytes = resources::stdin_file_size(),
            SourceConfig::File(f) => {
                if !f.exit_at_eof {
                    anyhow::bail!("bench needs an end: set `exit_at_eof = true` on file sources");
                }
            }
            SourceConfig::Kafka(_) => anyhow::bail!("bench needs an end: a kafka source never ends by itself"),
        }
    }
    let (report, registry, usage) = execute(
        &config,
        Some((std::time::Duration::from_millis(200), total_bytes)),
        None,
    )?;
    print!("{}", summary::render_bench(&report, &registry, &usage));
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
