//! The facts a volume export records besides its tar (the volume's mount point, the
//! root's owner and mode, whether it holds anything), gathered by `podman volume
//! inspect` and one `find` *beside* the export instead of before it: the export's
//! fixed cost is one podman start, like the native command's.

use backup_core::{Error, ErrorKind, Result};
use tokio_util::task::AbortOnDropHandle;

use crate::cli::{Podman, RootAttributes};

/// What the inspection found: the root's owner and mode, and whether the volume holds
/// anything.
pub(crate) type Inspected = (RootAttributes, bool);

/// An inspection running on its own task; aborted when dropped (an export that is
/// cancelled leaves nothing running).
pub(crate) struct Inspection(AbortOnDropHandle<Result<Inspected>>);

impl Inspection {
    /// Starts inspecting `volume`.
    pub(crate) fn start(podman: &Podman, volume: &str) -> Self {
        let podman = podman.clone();
        let volume = volume.to_string();
        Self(AbortOnDropHandle::new(tokio::spawn(async move {
            inspect(&podman, &volume).await
        })))
    }

    /// Waits for the inspection's outcome.
    pub(crate) async fn outcome(self) -> Result<Inspected> {
        self.0.await.map_err(|e| {
            Error::new(
                ErrorKind::Cancelled,
                format!("the volume inspection did not finish: {e}"),
            )
        })?
    }
}

async fn inspect(podman: &Podman, volume: &str) -> Result<Inspected> {
    let info = podman.volume_inspect(volume).await?.ok_or_else(|| {
        Error::new(
            ErrorKind::NotFound,
            format!("volume `{volume}` does not exist"),
        )
    })?;
    podman.inspect_root(info.local_mountpoint()?).await
}
