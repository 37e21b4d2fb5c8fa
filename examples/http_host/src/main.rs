//! `http-host`: an HTTP host over a workspace described by a `backupctl.toml`.
//!
//! ```text
//! HTTP_HOST_TOKEN=… http-host --config backupctl.toml [--listen 127.0.0.1:8080]
//!     [--token-file PATH] [--read-only] [--max-upload-bytes N] [--heartbeat-ms N]
//! ```
//!
//! Prints `listening on http://ADDR` on stdout once it accepts connections. The token
//! is read from `--token-file` or the `HTTP_HOST_TOKEN` environment variable and is
//! never printed.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http_host_example::auth::{SingleWorkspace, Token};
use http_host_example::routes;
use http_host_example::state::{AppState, Settings};

/// The environment variable the token is read from.
const TOKEN_ENV: &str = "HTTP_HOST_TOKEN";

#[derive(Debug)]
struct Args {
    config: PathBuf,
    listen: String,
    token_file: Option<PathBuf>,
    settings: Settings,
}

fn value(args: &mut impl Iterator<Item = String>, flag: &str) -> Result<String, String> {
    args.next().ok_or_else(|| format!("{flag} needs a value"))
}

fn number(text: &str, flag: &str) -> Result<u64, String> {
    text.parse()
        .map_err(|_| format!("{flag} needs a number, got {text:?}"))
}

fn parse_args() -> Result<Args, String> {
    let mut out = Args {
        config: std::env::var_os(backupctl::config::CONFIG_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(backupctl::config::DEFAULT_CONFIG)),
        listen: "127.0.0.1:8080".into(),
        token_file: None,
        settings: Settings {
            read_only: false,
            max_upload_bytes: 1 << 30,
            heartbeat: Duration::from_secs(15),
        },
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--config" => out.config = PathBuf::from(value(&mut args, &flag)?),
            "--listen" => out.listen = value(&mut args, &flag)?,
            "--token-file" => out.token_file = Some(PathBuf::from(value(&mut args, &flag)?)),
            "--read-only" => out.settings.read_only = true,
            "--max-upload-bytes" => {
                out.settings.max_upload_bytes = number(&value(&mut args, &flag)?, &flag)?;
            }
            "--heartbeat-ms" => {
                let ms = number(&value(&mut args, &flag)?, &flag)?;
                out.settings.heartbeat = Duration::from_millis(ms.max(10));
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(out)
}

fn read_token(file: Option<&PathBuf>) -> Result<Token, String> {
    let text = match file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?,
        None => std::env::var(TOKEN_ENV)
            .map_err(|_| format!("no API token: set {TOKEN_ENV} or pass --token-file"))?,
    };
    Token::new(&text)
}

async fn run() -> Result<(), String> {
    let args = parse_args()?;
    let token = read_token(args.token_file.as_ref())?;
    let config = backupctl::config::load(&args.config).map_err(|e| e.to_string())?;
    let owners = Arc::new(SingleWorkspace {
        slug: config.workspace.slug.clone(),
    });
    let state = AppState::from_config(&config, owners, args.settings)
        .await
        .map_err(|e| e.to_string())?;
    let app = routes::router(state, token);
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "listening on http://{addr}");
    let _ = stdout.flush();
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("http-host: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
