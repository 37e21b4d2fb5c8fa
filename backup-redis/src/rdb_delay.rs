//! `lowerDisklessSyncDelay`: one owner per server for the lowered setting.
//!
//! Exports of one server that run at the same time share one lowering: the first reads
//! the original `repl-diskless-sync-delay` and sets 0, the last one to finish puts the
//! original back. Servers are told apart by their `run_id`, so two addresses of the same
//! server share the lowering too. When putting it back, a value someone else set in the
//! meantime (anything but the 0 we set) is left alone.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use backup_core::{Error, ErrorKind, Result};

use crate::config::RedisConfig;
use crate::resp::{Connection, Reply};
use crate::server::server_info;

const DELAY_SETTING: &[u8] = b"repl-diskless-sync-delay";

/// The lowering of one server, shared by its concurrent exports.
#[derive(Debug, Default)]
struct Lowered {
    /// Exports currently relying on the lowered value.
    holders: usize,
    /// The value to put back; kept when putting it back failed, so a later export does
    /// not mistake our 0 for the original.
    original: Option<String>,
}

type Slot = Arc<tokio::sync::Mutex<Lowered>>;

static OWNERS: LazyLock<Mutex<HashMap<String, Slot>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// One export's share of a lowered delay; give it back with [`release`](Self::release).
#[derive(Debug)]
pub(crate) struct DelayGuard {
    slot: Slot,
    config: RedisConfig,
}

/// Lowers `repl-diskless-sync-delay` to 0 on the server of `config`, or joins the
/// lowering another export of the same server holds.
pub(crate) async fn lower(config: &RedisConfig) -> Result<DelayGuard> {
    let mut control = Connection::open(config).await?;
    let info = server_info(&mut control).await?;
    let key = if info.run_id.is_empty() {
        control.endpoint().to_string()
    } else {
        info.run_id.clone()
    };
    let slot = {
        let mut owners = OWNERS.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(owners.entry(key).or_default())
    };
    let mut state = slot.lock().await;
    if state.holders == 0 {
        if state.original.is_none() {
            state.original = Some(read_delay(&mut control).await?);
        }
        let set = control
            .call(
                "CONFIG SET repl-diskless-sync-delay",
                &[b"CONFIG", b"SET", DELAY_SETTING, b"0"],
            )
            .await;
        if let Err(e) = set {
            // Nothing changed: forget the original unless an earlier restore failed.
            if read_delay(&mut control).await.ok().as_deref() != Some("0") {
                state.original = None;
            }
            return Err(e.with_hint(
                "the user needs CONFIG permission for lowerDisklessSyncDelay; or turn the option off",
            ));
        }
    }
    state.holders += 1;
    drop(state);
    Ok(DelayGuard {
        slot,
        config: config.clone(),
    })
}

impl DelayGuard {
    /// Gives this export's share back; the last one puts the original value back unless
    /// someone else changed the setting in the meantime.
    pub(crate) async fn release(self) -> Result<()> {
        let mut state = self.slot.lock().await;
        state.holders = state.holders.saturating_sub(1);
        if state.holders > 0 {
            return Ok(());
        }
        let Some(original) = state.original.clone() else {
            return Ok(());
        };
        let restored = async {
            let mut control = Connection::open(&self.config).await?;
            if read_delay(&mut control).await? != "0" {
                // Someone else set it after us: theirs wins.
                return Ok(());
            }
            control
                .call(
                    "CONFIG SET repl-diskless-sync-delay",
                    &[b"CONFIG", b"SET", DELAY_SETTING, original.as_bytes()],
                )
                .await
                .map(|_| ())
        }
        .await;
        match restored {
            Ok(()) => {
                state.original = None;
                Ok(())
            }
            Err(e) => Err(Error::new(
                e.kind(),
                format!("could not put repl-diskless-sync-delay back to {original}: {e}"),
            )
            .with_hint(format!(
                "set it back by hand: CONFIG SET repl-diskless-sync-delay {original}"
            ))),
        }
    }
}

/// `CONFIG GET repl-diskless-sync-delay`.
async fn read_delay(control: &mut Connection) -> Result<String> {
    let reply = control
        .call(
            "CONFIG GET repl-diskless-sync-delay",
            &[b"CONFIG", b"GET", DELAY_SETTING],
        )
        .await?;
    if let Reply::Array(Some(items)) = reply {
        if let Some(value) = items.get(1).and_then(Reply::text) {
            if value.chars().all(|c| c.is_ascii_digit()) && !value.is_empty() {
                return Ok(value);
            }
        }
    }
    Err(Error::new(
        ErrorKind::Unsupported,
        "the server does not report repl-diskless-sync-delay",
    )
    .with_hint("turn lowerDisklessSyncDelay off for this server"))
}
