//! The TOML configuration: repository, encryption, services, schedules, retention.
//!
//! ```toml
//! [workspace]
//! slug = "shop"
//!
//! [repository]
//! path = "/var/backups/shop"            # or: url = "s3://bucket/prefix", endpoint = …
//!
//! [encryption]
//! passphrase = { env = "BACKUP_PASSPHRASE" }   # or { file = "/run/secrets/backup" }
//!
//! [services.db]
//! recipe = "postgres"
//! config = { host = "127.0.0.1", port = 5432, user = "app", database = "shop", password = { env = "PGPASSWORD" } }
//!
//! [services.uploads]
//! recipe = "directory"
//! dependsOn = ["db"]
//! config = { path = "/srv/shop/uploads" }
//!
//! [[schedules]]
//! name = "nightly"
//! every = "daily"
//! at = "02:30"
//! timeZone = "Europe/Berlin"
//!
//! [retention.default]
//! keepLast = 7
//! keepDaily = 14
//! ```
//!
//! Secrets never come from the command line: a recipe's secret fields (PostgreSQL's
//! `password`, …), the S3 keys and the passphrase are written as `{ env = "NAME" }` or
//! `{ file = "/path" }` and read when the file is loaded. A literal secret in the file is
//! refused.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use backup_core::bundle::{Encryption, Identities, Passphrase};
use backup_core::{Error, ErrorKind, FieldError, RecipeRegistry, Result};
use backup_repository::retention::RetentionPolicy;
use backup_repository::{S3Options, Storage};
use serde::Deserialize;
use serde_json::{Map, Value};

mod secret;

pub use backup_repository::schedule::ScheduleConfig;
pub use secret::SecretSource;

/// The environment variable naming the configuration file when `--config` is not given.
pub const CONFIG_ENV: &str = "BACKUPCTL_CONFIG";
/// The configuration file read when neither `--config` nor [`CONFIG_ENV`] is given.
pub const DEFAULT_CONFIG: &str = "backupctl.toml";

/// The whole configuration file, as written (secrets not yet read).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// The workspace the services belong to.
    #[serde(default)]
    pub workspace: WorkspaceConfig,
    /// Where bundles are stored.
    pub repository: RepositoryConfig,
    /// How bundles are encrypted (none when absent).
    #[serde(default)]
    pub encryption: Option<EncryptionConfig>,
    /// The services, by name.
    #[serde(default)]
    pub services: BTreeMap<String, ServiceConfig>,
    /// When backups are made by `schedule run` (the scheduler's own format: `name`,
    /// `every` daily/weekly/monthly with `at`, `weekday`, `day`, or `cron`; `timeZone`,
    /// `services`, `label`, `retention`, `missedRun`).
    #[serde(default)]
    pub schedules: Vec<ScheduleConfig>,
    /// What `prune` keeps (restic-style rules; see `backup_repository::retention`).
    #[serde(default)]
    pub retention: Option<RetentionPolicy>,
}

/// `[workspace]`: names written into every snapshot.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkspaceConfig {
    /// Short machine name.
    pub slug: String,
    /// Display name (the slug when absent).
    #[serde(default)]
    pub name: Option<String>,
}

impl Default for WorkspaceConfig {
    fn default() -> Self {
        WorkspaceConfig {
            slug: "default".into(),
            name: None,
        }
    }
}

/// `[repository]`: a local `path`, or an S3 `url` (`s3://bucket/prefix`) with options.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RepositoryConfig {
    /// A local directory (relative paths are relative to the configuration file).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// `s3://bucket/prefix`.
    #[serde(default)]
    pub url: Option<String>,
    /// S3 endpoint, e.g. `http://127.0.0.1:9000` (AWS when absent).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// S3 region (`us-east-1` when absent).
    #[serde(default)]
    pub region: Option<String>,
    /// Allow a plain `http://` endpoint that is not on loopback.
    #[serde(default)]
    pub allow_http: bool,
    /// S3 access key id (from `AWS_ACCESS_KEY_ID` when absent).
    #[serde(default)]
    pub access_key_id: Option<SecretSource>,
    /// S3 secret access key (from `AWS_SECRET_ACCESS_KEY` when absent).
    #[serde(default)]
    pub secret_access_key: Option<SecretSource>,
}

/// `[encryption]`: a passphrase, or age recipients (and identities to read with).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EncryptionConfig {
    /// Where the passphrase is read from.
    #[serde(default)]
    pub passphrase: Option<SecretSource>,
    /// age public keys (`age1…`) bundles are encrypted to.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// Where the age identities (`AGE-SECRET-KEY-…` lines) for reading are read from.
    #[serde(default)]
    pub identities: Option<SecretSource>,
}

/// `[services.NAME]`: one running service.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceConfig {
    /// Recipe slug: `postgres`, `redis`, `directory`, `sqlite`, `podman`, ….
    pub recipe: String,
    /// The recipe's config; secret fields as `{ env = … }` or `{ file = … }`.
    #[serde(default)]
    pub config: toml::Table,
    /// Services this one depends on (restored first).
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Command (argv, no shell) that stops the service for an export that needs it
    /// stopped (the directory adapter); without one, files are read as they are and a
    /// file changing while read fails the export.
    #[serde(default)]
    pub stop: Option<Vec<String>>,
    /// Command that starts it again.
    #[serde(default)]
    pub start: Option<Vec<String>>,
}

/// A service with its secrets read: what [`crate::ConfiguredHost`] serves.
#[derive(Clone, PartialEq)]
pub struct ResolvedService {
    /// Recipe slug.
    pub recipe: String,
    /// Full config, secrets included.
    pub config: Map<String, Value>,
    /// Services this one depends on.
    pub depends_on: Vec<String>,
    /// Stop command.
    pub stop: Option<Vec<String>>,
    /// Start command.
    pub start: Option<Vec<String>>,
}

impl std::fmt::Debug for ResolvedService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolvedService")
            .field("recipe", &self.recipe)
            .field("config_keys", &self.config.keys().collect::<Vec<_>>())
            .field("depends_on", &self.depends_on)
            .finish()
    }
}

/// Reads and parses a configuration file.
///
/// # Errors
///
/// [`ErrorKind::NotFound`] when the file is missing, [`ErrorKind::InvalidConfig`] with the
/// line and column of a TOML error or an unknown field.
pub fn load(path: &Path) -> Result<Config> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let kind = if e.kind() == std::io::ErrorKind::NotFound {
            ErrorKind::NotFound
        } else {
            ErrorKind::Io
        };
        Error::new(
            kind,
            format!("cannot read the configuration {}: {e}", path.display()),
        )
        .with_hint(format!(
            "pass --config FILE or set {CONFIG_ENV}; `backupctl --help` shows an example"
        ))
    })?;
    let mut config = parse(&text)?;
    if let (Some(repo), Some(dir)) = (config.repository.path.as_mut(), path.parent()) {
        if repo.is_relative() {
            *repo = dir.join(&*repo);
        }
    }
    Ok(config)
}

/// Parses configuration text.
///
/// # Errors
///
/// [`ErrorKind::InvalidConfig`] with the TOML error (line, column, unknown field).
pub fn parse(text: &str) -> Result<Config> {
    toml::from_str(text).map_err(|e| {
        let (line, col) = e
            .span()
            .map(|span| line_col(text, span.start))
            .unwrap_or((0, 0));
        Error::new(
            ErrorKind::InvalidConfig,
            format!(
                "the configuration is not valid at line {line}, column {col}: {}",
                e.message()
            ),
        )
        .with_field_errors(vec![FieldError {
            pointer: format!("line {line}"),
            message: e.message().to_string(),
        }])
    })
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    (line, col)
}

/// Collects field errors; `field` reads like the TOML path (`services.db.config.port`).
#[derive(Debug, Default)]
pub(crate) struct Issues(pub(crate) Vec<FieldError>);

impl Issues {
    pub(crate) fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            pointer: field.into(),
            message: message.into(),
        });
    }
}

impl Config {
    /// Every problem in the configuration, each naming its field: unknown recipes,
    /// configs that fail their recipe's JSON Schema, literal or unreadable secrets,
    /// unknown or cyclic `dependsOn`, a repository without exactly one of `path` / `url`,
    /// bad schedules, an empty retention policy. Connects nowhere.
    pub fn check(&self, registry: &RecipeRegistry) -> Vec<FieldError> {
        let mut issues = Issues::default();
        self.check_repository(&mut issues);
        self.check_encryption(&mut issues);
        let _ = self.resolve_services(registry, &mut issues);
        self.check_dependencies(&mut issues);
        for (i, schedule) in self.schedules.iter().enumerate() {
            let field = format!("schedules[{i}]");
            if let Err(e) = schedule.to_schedule() {
                issues.add(field.clone(), e.to_string());
            }
            for name in schedule.services.iter().flatten() {
                if !self.services.contains_key(name) {
                    issues.add(
                        format!("{field}.services"),
                        format!("`{name}` is not a configured service"),
                    );
                }
            }
        }
        if let Some(policy) = &self.retention {
            if let Err(e) = backup_repository::retention::plan(&[], policy, jiff::Timestamp::now())
            {
                issues.add("retention", e.to_string());
            }
        }
        issues.0
    }

    /// Fails with every problem [`check`](Self::check) finds.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidConfig`] with the field errors.
    pub fn validate(&self, registry: &RecipeRegistry) -> Result<()> {
        let issues = self.check(registry);
        if issues.is_empty() {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::InvalidConfig,
            format!("the configuration has {} problem(s)", issues.len()),
        )
        .with_hint("run `backupctl check-config` to see them all")
        .with_field_errors(issues))
    }

    fn check_repository(&self, issues: &mut Issues) {
        let r = &self.repository;
        match (&r.path, &r.url) {
            (Some(_), Some(_)) => issues.add("repository", "give `path` or `url`, not both"),
            (None, None) => issues.add(
                "repository",
                "give `path` (a local directory) or `url` (s3://bucket/prefix)",
            ),
            (None, Some(url)) => {
                if parse_s3_url(url).is_none() {
                    issues.add(
                        "repository.url",
                        "must read s3://bucket or s3://bucket/prefix",
                    );
                }
            }
            (Some(_), None) => {}
        }
        for (field, source) in [
            ("repository.accessKeyId", &r.access_key_id),
            ("repository.secretAccessKey", &r.secret_access_key),
        ] {
            if let Some(Err(e)) = source.as_ref().map(SecretSource::read) {
                issues.add(field, e.to_string());
            }
        }
    }

    fn check_encryption(&self, issues: &mut Issues) {
        let Some(enc) = &self.encryption else { return };
        if enc.passphrase.is_some() && !enc.recipients.is_empty() {
            issues.add("encryption", "give `passphrase` or `recipients`, not both");
        }
        if let Some(Err(e)) = enc.passphrase.as_ref().map(SecretSource::read) {
            issues.add("encryption.passphrase", e.to_string());
        }
        if !enc.recipients.is_empty() {
            if let Err(e) = Encryption::recipients(&enc.recipients) {
                issues.add("encryption.recipients", e.to_string());
            }
        }
        if let Some(Err(e)) = enc.identities.as_ref().map(SecretSource::read) {
            issues.add("encryption.identities", e.to_string());
        }
    }

    fn check_dependencies(&self, issues: &mut Issues) {
        for (name, service) in &self.services {
            for dep in &service.depends_on {
                if dep == name {
                    issues.add(format!("services.{name}.dependsOn"), "names itself");
                } else if !self.services.contains_key(dep) {
                    issues.add(
                        format!("services.{name}.dependsOn"),
                        format!("`{dep}` is not a configured service"),
                    );
                }
            }
        }
        if let Some(cycle) = find_cycle(&self.services) {
            issues.add(
                "services",
                format!("dependsOn forms a cycle: {}", cycle.join(" -> ")),
            );
        }
    }

    /// The services with their secrets read, checked against their recipes.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidConfig`] with every field error of the services.
    pub fn services(&self, registry: &RecipeRegistry) -> Result<BTreeMap<String, ResolvedService>> {
        let mut issues = Issues::default();
        let resolved = self.resolve_services(registry, &mut issues);
        self.check_dependencies(&mut issues);
        if issues.0.is_empty() {
            Ok(resolved)
        } else {
            Err(Error::new(
                ErrorKind::InvalidConfig,
                format!("the configured services have {} problem(s)", issues.0.len()),
            )
            .with_hint("run `backupctl check-config` to see them all")
            .with_field_errors(issues.0))
        }
    }

    fn resolve_services(
        &self,
        registry: &RecipeRegistry,
        issues: &mut Issues,
    ) -> BTreeMap<String, ResolvedService> {
        let mut out = BTreeMap::new();
        for (name, service) in &self.services {
            let field = format!("services.{name}");
            let recipe = match registry.get(&service.recipe) {
                Ok(recipe) => recipe,
                Err(e) => {
                    issues.add(format!("{field}.recipe"), e.to_string());
                    continue;
                }
            };
            let secrets: BTreeSet<&str> = recipe
                .secret_fields()
                .iter()
                .map(|s| s.name.as_str())
                .collect();
            let config = secret::resolve_config(
                &service.config,
                &secrets,
                &format!("{field}.config"),
                issues,
            );
            for error in recipe.config_errors(&Value::Object(config.clone())) {
                let pointer = error.pointer.trim_start_matches('/').replace('/', ".");
                let at = if pointer.is_empty() {
                    format!("{field}.config")
                } else {
                    format!("{field}.config.{pointer}")
                };
                issues.add(at, error.message);
            }
            for (label, cmd) in [("stop", &service.stop), ("start", &service.start)] {
                if cmd.as_ref().is_some_and(Vec::is_empty) {
                    issues.add(
                        format!("{field}.{label}"),
                        "an empty command; give argv, e.g. [\"systemctl\", \"stop\", \"app\"]",
                    );
                }
            }
            if service.stop.is_some() != service.start.is_some() {
                issues.add(field.clone(), "give both `stop` and `start`, or neither");
            }
            out.insert(
                name.clone(),
                ResolvedService {
                    recipe: service.recipe.clone(),
                    config,
                    depends_on: service.depends_on.clone(),
                    stop: service.stop.clone(),
                    start: service.start.clone(),
                },
            );
        }
        out
    }

    /// Where the repository lives, with S3 keys read.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidConfig`] for a repository section without exactly one of
    /// `path` / `url`, or an unreadable secret.
    pub fn storage(&self) -> Result<Storage> {
        let mut issues = Issues::default();
        self.check_repository(&mut issues);
        if let Some(first) = issues.0.first() {
            return Err(
                Error::new(ErrorKind::InvalidConfig, first.to_string()).with_field_errors(issues.0)
            );
        }
        let r = &self.repository;
        if let Some(path) = &r.path {
            return Ok(Storage::Local(path.clone()));
        }
        let url = r.url.as_deref().unwrap_or_default();
        let (bucket, prefix) = parse_s3_url(url).unwrap_or_default();
        Ok(Storage::S3(S3Options {
            bucket,
            prefix,
            endpoint: r.endpoint.clone(),
            region: r.region.clone(),
            access_key_id: r
                .access_key_id
                .as_ref()
                .map(SecretSource::read)
                .transpose()?,
            secret_access_key: r
                .secret_access_key
                .as_ref()
                .map(SecretSource::read)
                .transpose()?,
            allow_http: r.allow_http,
        }))
    }

    /// The encryption a new repository is initialised with.
    ///
    /// # Errors
    ///
    /// An unreadable passphrase, invalid recipients.
    pub fn init_encryption(&self) -> Result<Encryption> {
        match &self.encryption {
            None => Ok(Encryption::None),
            Some(e) if !e.recipients.is_empty() => Encryption::recipients(&e.recipients),
            Some(e) => match &e.passphrase {
                Some(source) => Ok(Encryption::passphrase(Passphrase::new(source.read()?))),
                None => Ok(Encryption::None),
            },
        }
    }

    /// The passphrase and identities given for reading and writing, if any.
    ///
    /// # Errors
    ///
    /// An unreadable secret or invalid identities.
    pub fn keys(&self) -> Result<(Option<Passphrase>, Option<Identities>)> {
        let Some(e) = &self.encryption else {
            return Ok((None, None));
        };
        let passphrase = e
            .passphrase
            .as_ref()
            .map(|s| s.read().map(Passphrase::new))
            .transpose()?;
        let identities = e
            .identities
            .as_ref()
            .map(|s| s.read().and_then(|text| Identities::parse(&text)))
            .transpose()?;
        Ok((passphrase, identities))
    }
}

/// `s3://bucket/prefix` → (bucket, prefix).
fn parse_s3_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return None;
    }
    Some((bucket.to_string(), prefix.trim_matches('/').to_string()))
}

/// A `dependsOn` cycle among known services, as names (first repeated last).
fn find_cycle(services: &BTreeMap<String, ServiceConfig>) -> Option<Vec<String>> {
    fn visit<'a>(
        name: &'a str,
        services: &'a BTreeMap<String, ServiceConfig>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| *n == name) {
            let mut cycle: Vec<String> = path[at..].iter().map(|s| s.to_string()).collect();
            cycle.push(name.to_string());
            return Some(cycle);
        }
        if !done.insert(name) {
            return None;
        }
        path.push(name);
        for dep in services
            .get(name)
            .map(|s| &s.depends_on)
            .into_iter()
            .flatten()
        {
            if dep != name && services.contains_key(dep) {
                if let Some(cycle) = visit(dep, services, path, done) {
                    return Some(cycle);
                }
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    services
        .keys()
        .find_map(|name| visit(name, services, &mut Vec::new(), &mut done))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn registry() -> RecipeRegistry {
        crate::host::default_registry().unwrap()
    }

    #[test]
    fn a_schema_error_names_the_toml_field() {
        let config = parse(
            r#"
            [repository]
            path = "/tmp/r"
            [services.db]
            recipe = "postgres"
            config = { host = "h", port = "not a number", user = "u", database = "d" }
            "#,
        )
        .unwrap();
        let issues = config.check(&registry());
        assert!(
            issues
                .iter()
                .any(|i| i.pointer == "services.db.config.port"),
            "{issues:?}"
        );
    }

    #[test]
    fn a_literal_secret_is_refused_and_an_env_secret_is_read() {
        let config = parse(
            r#"
            [repository]
            path = "/tmp/r"
            [services.db]
            recipe = "postgres"
            config = { host = "h", user = "u", database = "d", password = "hunter2" }
            [services.db2]
            recipe = "postgres"
            config = { host = "h", user = "u", database = "d", password = { env = "BACKUPCTL_TEST_UNSET_VAR" } }
            "#,
        )
        .unwrap();
        let issues = config.check(&registry());
        let text = format!("{issues:?}");
        assert!(text.contains("services.db.config.password"), "{text}");
        assert!(text.contains("BACKUPCTL_TEST_UNSET_VAR"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn unknown_fields_cycles_and_unknown_dependencies_are_reported() {
        let err = parse("[repository]\npath = \"/r\"\nbogus = 1\n").unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");
        let config = parse(
            r#"
            [repository]
            url = "s3://bucket/p"
            [services.a]
            recipe = "directory"
            dependsOn = ["b"]
            config = { path = "/a" }
            [services.b]
            recipe = "directory"
            dependsOn = ["a", "zzz"]
            config = { path = "/b" }
            "#,
        )
        .unwrap();
        let text = format!("{:?}", config.check(&registry()));
        assert!(text.contains("cycle"), "{text}");
        assert!(text.contains("zzz"), "{text}");
    }

    #[test]
    fn a_bad_schedule_and_an_unknown_scheduled_service_are_reported() {
        let config = parse(
            r#"
            [repository]
            path = "/tmp/r"
            [[schedules]]
            name = "nightly"
            every = "daily"
            [[schedules]]
            name = "hourly"
            cron = "0 * * * *"
            services = ["nope"]
            "#,
        )
        .unwrap();
        let issues = config.check(&registry());
        assert!(
            issues.iter().any(|i| i.pointer == "schedules[0]"),
            "{issues:?}"
        );
        assert!(
            issues.iter().any(|i| i.pointer == "schedules[1].services"),
            "{issues:?}"
        );
    }
}
