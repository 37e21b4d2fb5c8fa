//! The conformance suite every adapter runs against a real server.
//!
//! An adapter's test implements [`ConformanceFixture`] over a real server it started, then
//! calls the public async functions here (or [`run_all`]). Each function panics with a
//! message naming the broken guarantee, like any test assertion.

use async_trait::async_trait;
use backup_core::{Recipe, Result, ServiceTarget};

/// How much data [`ConformanceFixture::fill`] puts into a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataSize {
    /// Nothing: the service exists but holds no data.
    Empty,
    /// A few KiB to a few MiB of varied data.
    Small,
    /// More than 64 MiB.
    Large,
}

/// What an adapter's test provides so the suite can exercise it on a real server.
#[async_trait]
pub trait ConformanceFixture: Send + Sync {
    /// The recipe under test, with its exporter and importer.
    fn recipe(&self) -> Recipe;

    /// A new, empty service on the real server (its own database, instance or directory),
    /// named `name`.
    async fn new_service(&self, name: &str) -> Result<ServiceTarget>;

    /// Fills `service` with data of roughly `size`.
    async fn fill(&self, service: &ServiceTarget, size: DataSize) -> Result<()>;

    /// A digest of the service's whole content: equal digests mean equal data.
    async fn digest(&self, service: &ServiceTarget) -> Result<String>;

    /// A service whose export must fail (a missing database, a stopped server, …).
    async fn broken_service(&self, name: &str) -> Result<ServiceTarget>;
}
