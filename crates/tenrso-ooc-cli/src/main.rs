//! `tenrso-ooc`: the command-line front end.

mod allocator;
mod cli;
mod commands;
mod interrupt;
mod job;
mod progress;
mod report;
mod telemetry;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use clap::error::ErrorKind;
use serde_json::{Value, json};
use tenrso_ooc::exec::{ExecOptions, RankFigures, Session};
use tenrso_ooc::telemetry::TimelineRecorder;

use crate::cli::{Cli, Command};
use crate::progress::Bar;

/// What every command gets: the session, the progress sink and the run mode.
pub struct Context {
    /// The session: memory pool, spill area, metrics.
    pub session: Session,
    /// Progress bars on stderr.
    pub progress: Bar,
    /// Print the plan instead of running (planned operations).
    pub explain: bool,
}

/// What a command produced: a text for people, a JSON object for programs,
/// and whether it succeeded.
pub struct Outcome {
    /// Printed without `--json`.
    pub text: String,
    /// Printed with `--json`.
    pub json: Value,
    /// Why the command failed although it ran to its end (`verify` found
    /// bad chunks): printed as an `error:` line, and the exit status is 1.
    pub failure: Option<String>,
}

fn main() -> ExitCode {
    // First thing, before any thread starts, so every setting takes effect.
    tenrso_ooc::memory::tune_allocator();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(err),
    };
    let otlp = match telemetry::start_otlp(cli.global.otlp_endpoint.as_deref()) {
        Ok(otlp) => otlp,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    telemetry::init_logging(cli.global.log_format, otlp.as_ref());
    let code = {
        let name = cli.command.name();
        let _command = tracing::info_span!(
            "command",
            "otel.name" = format!("tenrso-ooc {name}"),
            command = name,
            explain = cli.global.explain,
        )
        .entered();
        run_command(&cli, otlp.as_ref())
    };
    telemetry::finish_otlp(otlp);
    code
}

/// Runs the command `cli` names: its exit status. `otlp` exports the
/// session's metrics.
fn run_command(cli: &Cli, otlp: Option<&telemetry::Otlp>) -> ExitCode {
    let job = match job::Job::start() {
        Ok(job) => job,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    if job.ranks.is_distributed() && !cli.command.runs_distributed() {
        eprintln!(
            "{}{}",
            job.error_prefix(),
            job::refuse_distributed(cli.command.name(), job.ranks.size())
        );
        return job.fail(2);
    }
    let default_limit = match cli.command {
        Command::Demo(_) => 64 << 20,
        _ => tenrso_ooc::exec::default_memory_limit(),
    };
    let mut exec = ExecOptions::default()
        .with_memory_limit(cli.global.memory_limit.map_or(default_limit, |s| s.0))
        .with_spill_dirs(cli.global.spill_dirs.clone())
        .with_spill_codec(cli.global.spill_codec)
        .with_spill_migration(cli.global.spill_migration)
        .with_durability(cli.global.durability)
        .with_readers(usize::from(cli.global.readers))
        .with_cache_policy(cli.global.cache_policy);
    if let Some(threads) = cli.global.threads {
        exec = exec.with_threads(threads);
    }
    if let Some(dir) = &cli.global.local_dir {
        exec = exec.with_local_dir(dir);
    }
    let ctx = Context {
        session: Session::new(exec).with_ranks(job.ranks.clone()),
        // Rank 0 speaks for the job; the others print only errors.
        progress: Bar::new(job.is_root() && !cli.global.quiet && !cli.global.json),
        explain: cli.global.explain,
    };
    interrupt::install(ctx.session.cancel_token().clone(), job.is_root());
    telemetry::watch_metrics(otlp, &ctx.session);
    let started = Instant::now();
    let report_path = cli.global.report.as_ref().filter(|_| job.is_root());
    // The report's timeline: the metrics sampled every 100 ms.
    let recorder = report_path.and_then(|_| {
        TimelineRecorder::start(ctx.session.metrics().clone(), Duration::from_millis(100))
            .inspect_err(|e| eprintln!("warning: the run report will have no timeline: {e}"))
            .ok()
    });
    let metrics_addr = cli.global.metrics_addr.as_deref().filter(|_| job.is_root());
    let result = match telemetry::serve_metrics(metrics_addr, &ctx.session)
        .and_then(|_server| run(&cli.command, &ctx))
    {
        // `--explain` answers a request refused as too large with its numbers.
        Err(tenrso_ooc::Error::MemoryLimit {
            limit,
            required,
            what,
            ..
        }) if ctx.explain => Ok(commands::operation::refused_plan(limit, required, &what)),
        other => other,
    };
    // Work after the command's own (the report) can fail too: its error is
    // printed and the exit status says so, while the outputs stay valid.
    let mut late_error = None;
    // Each rank's figures, gathered by every rank (all got here).
    let mut peaks_line = None;
    let mut rank_figures = Vec::new();
    let result = result.map(|outcome| {
        if ctx.explain || !job.ranks.is_distributed() {
            return outcome;
        }
        rank_figures = RankFigures::gather(&ctx.session);
        let (outcome, line) = with_rank_peaks(outcome, &rank_figures);
        peaks_line = Some(line);
        outcome
    });
    if let Some(path) = report_path {
        let outcome = result
            .as_ref()
            .map(|o| &o.json)
            .map_err(ToString::to_string);
        let timeline = recorder.map(TimelineRecorder::finish);
        let mut run =
            report::run_report(&ctx.session, started.elapsed(), timeline.as_ref(), outcome);
        report::add_ranks(&mut run, &rank_figures);
        if let Err(err) = report::write(path, &run) {
            late_error = Some(format!(
                "the run report was not written: {}",
                one_line(&err.to_string())
            ));
        }
    }
    if let (Err(tenrso_ooc::Error::Cancelled), Some(code)) = (&result, interrupt::exit_code()) {
        // Dropping the session removes its spill area.
        drop(ctx);
        if job.is_root() {
            eprintln!("interrupted: spill files removed; every chunk already written is complete");
        }
        return ExitCode::from(code);
    }
    match result {
        Ok(outcome) if !job.is_root() => {
            // The outcome is the job's (rank 0 prints it), failure included.
            if outcome.failure.is_some() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Ok(outcome) => {
            if cli.global.json {
                println!("{}", outcome.json);
            } else {
                print!("{}", outcome.text);
                // On stderr, with the summaries (stdout may hold a value).
                if let Some(line) = peaks_line {
                    eprintln!("{line}");
                }
            }
            let errors: Vec<&String> = outcome.failure.iter().chain(&late_error).collect();
            for line in &errors {
                eprintln!("error: {line}");
            }
            if errors.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(err) => {
            let line = one_line(&err.to_string());
            let hint = hint(&err);
            if cli.global.json && job.is_root() {
                let mut report = json!({ "error": line });
                if let Some(hint) = hint {
                    report["hint"] = json!(hint);
                }
                println!("{report}");
            }
            let prefix = job.error_prefix();
            match hint {
                Some(hint) => eprintln!("{prefix}{line}; hint: {hint}"),
                None => eprintln!("{prefix}{line}"),
            }
            if let Some(line) = &late_error {
                eprintln!("{prefix}{line}");
            }
            job.fail(1)
        }
    }
}

/// `outcome` with each rank's peak resident memory in
/// `ranks_peak_rss_bytes`, and a line saying them for stderr.
fn with_rank_peaks(mut outcome: Outcome, ranks: &[RankFigures]) -> (Outcome, String) {
    let peaks: Vec<u64> = ranks.iter().map(|r| r.peak_rss).collect();
    let listed: Vec<String> = peaks
        .iter()
        .enumerate()
        .map(|(r, p)| format!("rank {r} {}", tenrso_ooc::ByteSize(*p)))
        .collect();
    let line = format!(
        "  {} ranks, peak memory: {}",
        peaks.len(),
        listed.join(", ")
    );
    if let Some(map) = outcome.json.as_object_mut() {
        map.insert("ranks_peak_rss_bytes".into(), json!(peaks));
    }
    (outcome, line)
}

/// What to change on the command line for errors a flag can fix: the
/// library names its settings (`ExecOptions::memory_limit`), the CLI names
/// the flags that set them. On the error's line, which stays one line.
fn hint(err: &tenrso_ooc::Error) -> Option<&'static str> {
    use tenrso_ooc::{Error, Remedy};
    match err {
        Error::MemoryLimit {
            remedy: Remedy::LargerChunks,
            ..
        } => Some("raise --memory-limit, or rechunk the input into larger chunks"),
        Error::MemoryLimit {
            remedy: Remedy::LowerRank,
            ..
        } => Some("raise --memory-limit or lower --rank/--ranks"),
        Error::MemoryLimit { .. } | Error::MemoryExhausted { .. } => {
            Some("raise --memory-limit or use smaller --chunks")
        }
        Error::SpillFull { .. } | Error::TierFull { .. } => {
            Some("add --spill-dir PATH[:CAP] or raise its cap")
        }
        Error::Corrupt { .. } => Some("`tenrso-ooc verify ARRAY` lists every bad chunk"),
        _ => None,
    }
}

/// An error message on one line: decoders of foreign formats report nested
/// context on several (flatbuffers' verifier, for one), and hostile input
/// (file names, header bytes) can carry control characters — terminal
/// escapes, carriage returns, Unicode line breaks — which are shown escaped.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
        .chars()
        .fold(String::new(), |mut line, c| {
            if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
                line.extend(c.escape_default());
            } else {
                line.push(c);
            }
            line
        })
}

fn run(command: &Command, ctx: &Context) -> tenrso_ooc::Result<Outcome> {
    match command {
        Command::Create(args) => commands::create::run(args, ctx),
        Command::Info(args) => commands::info::run(args),
        Command::Verify(args) => commands::verify::run(args, ctx),
        Command::Import(args) => commands::transfer::import(args, ctx),
        Command::Export(args) => commands::transfer::export(args, ctx),
        Command::Map(args) => commands::map::run(args, ctx),
        Command::Reduce(args) => commands::reduce::run(args, ctx),
        Command::Transpose(args) => commands::reorganize::transpose(args, ctx),
        Command::Rechunk(args) => commands::reorganize::rechunk(args, ctx),
        Command::Einsum(args) => commands::einsum::run(args, ctx),
        Command::Cp(args) => commands::decompose::cp(args, ctx),
        Command::Tucker(args) => commands::decompose::tucker(args, ctx),
        Command::Reconstruct(args) => commands::decompose::reconstruct(args, ctx),
        Command::Demo(args) => commands::demo::run(args, ctx),
        Command::Report(args) => commands::report::run(args),
        Command::Replay(args) => commands::replay::run(args),
    }
}

/// Reports a command-line error: clap's message on stderr (help and version
/// go to stdout with success), plus `{"error": …}` on stdout under `--json`.
fn usage_error(err: clap::Error) -> ExitCode {
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) {
        let _ = err.print();
        return ExitCode::SUCCESS;
    }
    // Arguments as the OS gave them: any byte sequence, never a panic.
    if std::env::args_os().any(|a| a == "--json") {
        let message = err.render().to_string();
        let first = message
            .lines()
            .next()
            .unwrap_or("invalid arguments")
            .trim_start_matches("error: ");
        println!("{}", json!({ "error": first }));
    }
    let _ = err.print();
    ExitCode::from(2)
}
