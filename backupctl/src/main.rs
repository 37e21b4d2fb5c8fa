//! `backupctl`: see `backupctl --help`.

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(backupctl::cli::main())
}
