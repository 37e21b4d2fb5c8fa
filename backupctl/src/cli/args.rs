//! Arguments (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::exit::EXIT_CODES_HELP;

const AFTER_HELP: &str = concat!(
    "The configuration (TOML) is read from --config, else $BACKUPCTL_CONFIG, else ./backupctl.toml.\n",
    "Secrets come only from environment variables or files it names, never from the command line.\n\n",
    "With --json every command prints exactly one JSON object on stdout:\n",
    "  {\"command\": NAME, \"ok\": true, \"result\": …}\n",
    "  {\"command\": NAME, \"ok\": false, \"exitCode\": N, \"error\": {\"kind\", \"message\", \"hint\", \"fieldErrors\": [{\"field\", \"message\"}]}}\n",
    "Progress goes to stderr: bars on a terminal, plain lines otherwise, nothing with --json.\n",
    "Ctrl-C cancels cleanly (exit 130): nothing half-written is listed, locks are released, stopped\n",
    "services are started again. A restore is never stopped halfway: it finishes or rolls back.\n\n",
);

/// The operator's command line over a backup repository.
#[derive(Debug, Parser)]
#[command(name = "backupctl", version, about, after_help = format!("{AFTER_HELP}{EXIT_CODES_HELP}"))]
pub struct Cli {
    /// The configuration file.
    #[arg(long, short = 'c', global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print one JSON object on stdout instead of tables (see below).
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the configuration (every field error); connect only with --connect.
    CheckConfig(CheckConfigArgs),
    /// Create the repository the configuration names.
    Init,
    /// Back up the configured services into the repository.
    Create(CreateArgs),
    /// List bundles, newest first (index, name/label, date, size, purpose).
    List(ListArgs),
    /// Show one bundle: manifest, services, artifacts.
    Info(BundleArg),
    /// Re-read a bundle (or all) and check every checksum.
    Verify(VerifyArgs),
    /// Restore a bundle into the configured services: shows what is replaced, asks for
    /// the service (or bundle) name unless --yes, takes a safety backup, rolls back on failure.
    Restore(RestoreArgs),
    /// Emergency: restore the newest bundle that verifies, without asking.
    Rollback(RollbackArgs),
    /// Remove bundles the retention policy does not keep, and old orphans.
    Prune(PruneArgs),
    /// Lock a bundle so it is never pruned or deleted.
    Lock(LockArgs),
    /// Remove a bundle's lock.
    Unlock(BundleArg),
    /// Set (or with --clear remove) a bundle's label.
    Label(LabelArgs),
    /// Delete a bundle.
    Delete(BundleArg),
    /// Compare two bundles: services, artifact sizes, PostgreSQL schema and row counts.
    Diff(DiffArgs),
    /// Print the workspace snapshot (configuration only, secrets stripped) as JSON.
    ExportSnapshot(ExportSnapshotArgs),
    /// Validate a workspace snapshot file and print its services as configuration TOML.
    ImportSnapshot(ImportSnapshotArgs),
    /// Run the configured schedules.
    #[command(subcommand)]
    Schedule(ScheduleCommand),
}

/// `schedule …`.
#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Run the configured schedules in the foreground until Ctrl-C.
    Run,
}

impl Command {
    /// The command's name, as typed.
    pub fn name(&self) -> &'static str {
        match self {
            Command::CheckConfig(_) => "check-config",
            Command::Init => "init",
            Command::Create(_) => "create",
            Command::List(_) => "list",
            Command::Info(_) => "info",
            Command::Verify(_) => "verify",
            Command::Restore(_) => "restore",
            Command::Rollback(_) => "rollback",
            Command::Prune(_) => "prune",
            Command::Lock(_) => "lock",
            Command::Unlock(_) => "unlock",
            Command::Label(_) => "label",
            Command::Delete(_) => "delete",
            Command::Diff(_) => "diff",
            Command::ExportSnapshot(_) => "export-snapshot",
            Command::ImportSnapshot(_) => "import-snapshot",
            Command::Schedule(ScheduleCommand::Run) => "schedule run",
        }
    }
}

/// `check-config`.
#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// Also open the repository and reach every service.
    #[arg(long)]
    pub connect: bool,
}

/// `create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// A label, e.g. before-migration (shown in lists, kept by keepLabels rules).
    #[arg(long)]
    pub label: Option<String>,
    /// What the backup is for, e.g. "Release v1.0 production snapshot".
    #[arg(long)]
    pub purpose: Option<String>,
    /// Why it was made now.
    #[arg(long)]
    pub reason: Option<String>,
    /// PostgreSQL schema only (no table data); other services are left out.
    #[arg(long)]
    pub schema_only: bool,
    /// Only these services (repeatable; all when absent).
    #[arg(long = "service", value_name = "NAME")]
    pub services: Vec<String>,
}

/// A bundle kind, as typed.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KindArg {
    /// Asked for by a user.
    Manual,
    /// Made by a schedule or guard.
    Automatic,
    /// Taken before a restore.
    Safety,
}

/// `list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only bundles holding this service.
    #[arg(long)]
    pub service: Option<String>,
    /// Only bundles of this kind.
    #[arg(long, value_enum)]
    pub kind: Option<KindArg>,
}

/// One bundle: its index in `list`, its id (or an 8+ character prefix) or its name.
#[derive(Debug, Args)]
pub struct BundleArg {
    /// Index, id, id prefix or name.
    pub bundle: String,
}

/// `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Index, id, id prefix or name.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub bundle: Option<String>,
    /// Verify every bundle.
    #[arg(long)]
    pub all: bool,
}

/// `prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Show what would be removed, remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Orphans younger than this many hours are left alone.
    #[arg(long, default_value_t = 24)]
    pub grace_hours: u64,
}

/// `lock`.
#[derive(Debug, Args)]
pub struct LockArgs {
    /// Index, id, id prefix or name.
    pub bundle: String,
    /// Until when (RFC 3339, e.g. 2027-01-01T00:00:00Z); forever when absent.
    #[arg(long)]
    pub until: Option<String>,
}

/// `label`.
#[derive(Debug, Args)]
pub struct LabelArgs {
    /// Index, id, id prefix or name.
    pub bundle: String,
    /// The new label.
    #[arg(required_unless_present = "clear", conflicts_with = "clear")]
    pub label: Option<String>,
    /// Remove the label.
    #[arg(long)]
    pub clear: bool,
}

/// `diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The earlier bundle.
    pub before: String,
    /// The later bundle.
    pub after: String,
}

/// `export-snapshot`.
#[derive(Debug, Args)]
pub struct ExportSnapshotArgs {
    /// Write to this file instead of stdout.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
}

/// `import-snapshot`.
#[derive(Debug, Args)]
pub struct ImportSnapshotArgs {
    /// The snapshot JSON file (seed 000's WorkspaceSnapshot format).
    pub file: PathBuf,
}

/// `restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// `latest`, or an index, id, id prefix or name.
    pub bundle: String,
    /// Only these services (and those they depend on); repeatable.
    #[arg(long = "service", value_name = "NAME")]
    pub services: Vec<String>,
    /// Verify, check and show what would be replaced; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for the typed confirmation.
    #[arg(long)]
    pub yes: bool,
}

/// `rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Restore the newest bundle that verifies, now, without a prompt.
    #[arg(long, required = true)]
    pub emergency: bool,
    /// Only these services; repeatable.
    #[arg(long = "service", value_name = "NAME")]
    pub services: Vec<String>,
}
