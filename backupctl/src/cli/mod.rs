//! The command line: arguments, the shared context, dispatch, exit codes.

mod args;
mod bundles;
mod check;
mod create;
mod diff;
mod restore;
mod schedule;
mod snapshot;

use std::path::PathBuf;
use std::sync::Arc;

use backup_core::{Error, ErrorKind, RecipeRegistry, Result};
use backup_repository::Repository;
use clap::Parser;

pub use args::{Cli, Command, ScheduleCommand};

use crate::config::{self, Config, CONFIG_ENV, DEFAULT_CONFIG};
use crate::exit::Exit;
use crate::host::{default_registry, ConfiguredHost};
use crate::output;
use crate::progress::Progress;

/// What every command gets: the parsed flags, the configuration, progress.
#[derive(Debug)]
pub(crate) struct Context {
    pub(crate) json: bool,
    pub(crate) config_path: PathBuf,
    pub(crate) progress: Arc<Progress>,
}

impl Context {
    pub(crate) fn config(&self) -> Result<Config> {
        config::load(&self.config_path)
    }

    pub(crate) fn registry(&self) -> Result<RecipeRegistry> {
        default_registry()
    }

    /// The repository, opened with the configured keys.
    pub(crate) async fn repository(&self, config: &Config) -> Result<Repository> {
        let mut repo = Repository::open(config.storage()?).await?;
        let (passphrase, identities) = config.keys()?;
        if let Some(p) = passphrase {
            repo = repo.with_passphrase(p);
        }
        if let Some(i) = identities {
            repo = repo.with_identities(i);
        }
        Ok(repo)
    }

    pub(crate) fn host(&self, config: &Config) -> Result<ConfiguredHost> {
        ConfiguredHost::from_config_with(config, self.registry()?)
    }
}

/// Runs the program: parses the arguments, runs the command until it ends or Ctrl-C,
/// prints the result, and returns the exit code.
pub fn main() -> u8 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    Exit::Ok.code()
                }
                _ => Exit::Usage.code(),
            };
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Exit::Error.code();
        }
    };
    let name = cli.command.name();
    let json = cli.json;
    let ctx = Context {
        json,
        config_path: cli
            .config
            .clone()
            .or_else(|| std::env::var_os(CONFIG_ENV).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG)),
        progress: Progress::for_stderr(json),
    };
    let outcome = runtime.block_on(run(&ctx, cli.command));
    ctx.progress.finish();
    let exit = match &outcome {
        Ok(exit) => *exit,
        Err(error) => Exit::for_error(error),
    };
    if let Err(error) = &outcome {
        if json {
            output::json_error(name, error, exit);
        } else {
            output::human_error(error);
        }
    }
    // Background clean-ups (lock removal, upload abort) were awaited in `run`; give the
    // runtime no more time than that.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    exit.code()
}

/// The error a Ctrl-C ends a command with.
pub(crate) fn interrupted() -> Error {
    Error::new(
        ErrorKind::Cancelled,
        "interrupted (Ctrl-C): the operation was cancelled",
    )
    .with_hint("nothing was published; locks were released and stopped services started")
}

async fn run(ctx: &Context, command: Command) -> Result<Exit> {
    match command {
        Command::CheckConfig(a) => check::run(ctx, a).await,
        Command::Init => bundles::init(ctx).await,
        Command::Create(a) => create::run(ctx, a).await,
        Command::List(a) => bundles::list(ctx, a).await,
        Command::Info(a) => bundles::info(ctx, a).await,
        Command::Verify(a) => bundles::verify(ctx, a).await,
        Command::Restore(a) => restore::restore(ctx, a).await,
        Command::Rollback(a) => restore::rollback(ctx, a).await,
        Command::Prune(a) => bundles::prune(ctx, a).await,
        Command::Lock(a) => bundles::lock(ctx, a).await,
        Command::Unlock(a) => bundles::unlock(ctx, a).await,
        Command::Label(a) => bundles::label(ctx, a).await,
        Command::Delete(a) => bundles::delete(ctx, a).await,
        Command::Diff(a) => diff::run(ctx, a).await,
        Command::ExportSnapshot(a) => snapshot::export(ctx, a).await,
        Command::ImportSnapshot(a) => snapshot::import(ctx, a).await,
        Command::Schedule(ScheduleCommand::Run) => schedule::run(ctx).await,
    }
}

/// Runs `work` until it ends or Ctrl-C arrives; on Ctrl-C, `work` is dropped (its tools
/// killed, its upload aborted, its locks released by background tasks, which get a
/// moment to run) and `Cancelled` returned.
pub(crate) async fn until_interrupted<T>(
    work: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    {
        let work = std::pin::pin!(work);
        tokio::select! {
            result = work => return result,
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    Err(interrupted())
}
