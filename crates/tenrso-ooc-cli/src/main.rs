//! `tenrso-ooc`: the command-line front end.

mod cli;
mod commands;
mod process_memory;
mod progress;

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use serde_json::{Value, json};
use tenrso_ooc::exec::{ExecOptions, Session};

use crate::cli::{Cli, Command};
use crate::progress::Bar;

/// What every command gets: the run options, the progress sink and the output mode.
pub struct Context {
    /// The session: memory pool, spill area, metrics.
    pub session: Session,
    /// Progress bars on stderr.
    pub progress: Bar,
}

/// What a command produced: a text for people, a JSON object for programs,
/// and whether it succeeded.
pub struct Outcome {
    /// Printed without `--json`.
    pub text: String,
    /// Printed with `--json`.
    pub json: Value,
    /// False makes the process exit with status 1 (e.g. `verify` found bad chunks).
    pub success: bool,
}

fn main() -> ExitCode {
    process_memory::configure_allocator();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(err),
    };
    let default_limit = match cli.command {
        Command::Demo(_) => 64 << 20,
        _ => tenrso_ooc::exec::default_memory_limit(),
    };
    let mut exec = ExecOptions::default()
        .with_memory_limit(cli.global.memory_limit.map_or(default_limit, |s| s.0));
    if let Some(threads) = cli.global.threads {
        exec = exec.with_threads(threads);
    }
    let ctx = Context {
        session: Session::new(exec),
        progress: Bar::new(!cli.global.quiet && !cli.global.json),
    };
    let result = match &cli.command {
        Command::Create(args) => commands::create::run(args, &ctx),
        Command::Info(args) => commands::info::run(args),
        Command::Verify(args) => commands::verify::run(args, &ctx),
        Command::Import(args) => commands::transfer::import(args, &ctx),
        Command::Export(args) => commands::transfer::export(args, &ctx),
        Command::Demo(args) => commands::demo::run(args, &ctx),
    };
    match result {
        Ok(outcome) => {
            if cli.global.json {
                println!("{}", outcome.json);
            } else {
                print!("{}", outcome.text);
            }
            if outcome.success {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(err) => {
            if cli.global.json {
                println!("{}", json!({ "error": err.to_string() }));
            }
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
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
    if std::env::args().any(|a| a == "--json") {
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
