//! The `postgres` recipe's config: where the server is, who connects, what is dumped.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::RECIPE;
use backup_core::{Error, ErrorKind, Result};

/// The default PostgreSQL port.
pub const DEFAULT_PORT: u16 = 5432;

/// Seconds `pg_dump` waits for a table lock unless the config sets `lockWaitTimeout`.
pub const DEFAULT_LOCK_WAIT_TIMEOUT_SECS: u32 = 60;

/// The zlib level of custom dumps unless the config sets `compressionLevel`.
pub const DEFAULT_COMPRESSION_LEVEL: u8 = 1;

/// Config of a `postgres` service, as stored in a workspace snapshot (camelCase JSON).
///
/// Exactly one way of naming databases is used: `database`, `databases`, or
/// `allDatabases` (every non-template database except `postgres`, plus any in
/// `databases`). `password` is a secret: it is stripped from snapshot exports, passed to
/// the tools only through `PGPASSWORD`, and never shown by `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PostgresConfig {
    /// Host name or address of the server (or a Unix socket directory).
    pub host: String,
    /// TCP port, 5432 by default.
    #[serde(default = "default_port")]
    pub port: u16,
    /// Role the tools connect as.
    pub user: String,
    /// Password of `user` (secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// The one database to export or import.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// Several databases, one artifact each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub databases: Option<Vec<String>>,
    /// Every non-template database of the server except `postgres`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all_databases: bool,
    /// libpq `sslmode` (`disable`, `allow`, `prefer`, `require`, `verify-ca`, `verify-full`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sslmode: Option<SslMode>,
    /// Dump format, custom by default.
    #[serde(default)]
    pub format: DumpFormat,
    /// Schema and data (default) or schema only.
    #[serde(default)]
    pub scope: DumpScope,
    /// zlib level (0–9) of a custom dump's table data, pg_dump's `--compress`; 1 by
    /// default. Level 1 is within a few percent of pg_dump's own default (6) in size on
    /// typical table data at a fraction of its CPU, which is most of pg_dump's work; 0
    /// leaves compression to the bundle's zstd (the smallest bundles, more CPU in this
    /// process). Custom format only: a plain dump is always plain text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression_level: Option<u8>,
    /// Absolute directory holding `pg_dump`, `pg_restore` and `psql` (as seen by the
    /// service's command runner); unset, they are found on `PATH`. Use it to pick client
    /// tools at least as new as the server (pg_dump refuses newer servers), and on Debian
    /// to call `/usr/lib/postgresql/<major>/bin` directly instead of the `pg_wrapper`
    /// script (a Perl start-up per call).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bin_dir: Option<String>,
    /// Seconds `pg_dump` waits for the shared lock on each table before it gives up
    /// (`--lock-wait-timeout`); 60 by default. A session holding an `ACCESS EXCLUSIVE`
    /// lock (a migration, `VACUUM FULL`) then fails the export with a clear error
    /// instead of blocking it forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_wait_timeout: Option<u32>,
    /// Role that owns a restored database and every object restored into it; `user` by
    /// default. Dumps are portable (`--no-owner --no-privileges`), so restored objects
    /// belong to the role that creates them: the import creates them as this role
    /// (`pg_restore --role`, `SET ROLE` for plain dumps), so an application that
    /// connects as it can read and write everything. `user` must be a superuser or a
    /// member of it, and the role must be allowed to create what the dump holds (only
    /// trusted extensions, unless it is a superuser).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

fn default_port() -> u16 {
    DEFAULT_PORT
}

impl fmt::Debug for PostgresConfig {
    // The password is a secret: Debug says only whether one is set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("database", &self.database)
            .field("databases", &self.databases)
            .field("all_databases", &self.all_databases)
            .field("sslmode", &self.sslmode)
            .field("format", &self.format)
            .field("scope", &self.scope)
            .field("compression_level", &self.compression_level)
            .field("bin_dir", &self.bin_dir)
            .field("lock_wait_timeout", &self.lock_wait_timeout)
            .field("owner", &self.owner)
            .finish()
    }
}

impl PostgresConfig {
    /// A config for one database on `host:port` as `user`, custom format, full scope.
    pub fn new(host: impl Into<String>, port: u16, user: impl Into<String>) -> Self {
        PostgresConfig {
            host: host.into(),
            port,
            user: user.into(),
            password: None,
            database: None,
            databases: None,
            all_databases: false,
            sslmode: None,
            format: DumpFormat::default(),
            scope: DumpScope::default(),
            compression_level: None,
            bin_dir: None,
            lock_wait_timeout: None,
            owner: None,
        }
    }

    /// Sets the one database.
    pub fn with_database(mut self, database: impl Into<String>) -> Self {
        self.database = Some(database.into());
        self
    }

    /// Sets the password.
    pub fn with_password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Sets the dump format.
    pub fn with_format(mut self, format: DumpFormat) -> Self {
        self.format = format;
        self
    }

    /// Sets the dump scope.
    pub fn with_scope(mut self, scope: DumpScope) -> Self {
        self.scope = scope;
        self
    }

    /// Sets the zlib level of custom dumps (0–9).
    pub fn with_compression_level(mut self, level: u8) -> Self {
        self.compression_level = Some(level);
        self
    }

    /// The zlib level a custom dump is written with.
    pub fn custom_compression_level(&self) -> u8 {
        self.compression_level.unwrap_or(DEFAULT_COMPRESSION_LEVEL)
    }

    /// Sets how many seconds `pg_dump` waits for a table lock.
    pub fn with_lock_wait_timeout(mut self, seconds: u32) -> Self {
        self.lock_wait_timeout = Some(seconds);
        self
    }

    /// Seconds `pg_dump` waits for a table lock ([`DEFAULT_LOCK_WAIT_TIMEOUT_SECS`] unless
    /// set).
    pub fn lock_wait_timeout_secs(&self) -> u32 {
        self.lock_wait_timeout
            .unwrap_or(DEFAULT_LOCK_WAIT_TIMEOUT_SECS)
    }

    /// Sets the role that owns restored databases and objects.
    pub fn with_owner(mut self, role: impl Into<String>) -> Self {
        self.owner = Some(role.into());
        self
    }

    /// The role that owns restored databases and objects: [`owner`](Self::owner), else
    /// [`user`](Self::user).
    pub fn owner_role(&self) -> &str {
        self.owner.as_deref().unwrap_or(&self.user)
    }

    /// Sets the directory of the client tools.
    pub fn with_bin_dir(mut self, dir: impl Into<String>) -> Self {
        self.bin_dir = Some(dir.into());
        self
    }

    /// The path of a client tool (`pg_dump`, `pg_restore`, `psql`): in
    /// [`bin_dir`](Self::bin_dir) when set, else the bare name for a `PATH` lookup.
    pub fn program(&self, tool: &str) -> String {
        match &self.bin_dir {
            Some(dir) => format!("{}/{tool}", dir.trim_end_matches('/')),
            None => tool.to_string(),
        }
    }

    /// Parses and checks a service config.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidConfig`] when the JSON does not match, or when no database (or
    /// more than one way of naming them) is given. Messages never quote values.
    pub fn from_json(config: &Value) -> Result<Self> {
        let parsed: PostgresConfig = serde_json::from_value(config.clone()).map_err(|e| {
            // serde's message may quote a value (a password of the wrong type): keep only
            // its category.
            Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "config does not match recipe `{RECIPE}` ({})",
                    classify_serde_error(&e)
                ),
            )
            .with_hint("check the service config against the postgres recipe's schema")
        })?;
        parsed.validate()?;
        Ok(parsed)
    }

    fn validate(&self) -> Result<()> {
        let ways = usize::from(self.database.is_some())
            + usize::from(self.databases.is_some() && !self.all_databases)
            + usize::from(self.all_databases);
        if ways != 1 {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                "the postgres config must name its data with exactly one of `database`, \
                 `databases` or `allDatabases`",
            )
            .with_hint(
                "set `database` for one database, `databases` for a list, or `allDatabases: true`",
            ));
        }
        let names = self.database.iter().chain(self.databases.iter().flatten());
        for name in names {
            if name.is_empty() || name.len() > 63 || name.contains('\0') {
                return Err(Error::new(
                    ErrorKind::InvalidConfig,
                    "a database name must have 1 to 63 bytes and no NUL",
                ));
            }
        }
        if let Some(level) = self.compression_level {
            if level > 9 {
                return Err(Error::new(
                    ErrorKind::InvalidConfig,
                    "`compressionLevel` must be between 0 and 9",
                )
                .with_hint(
                    "0 leaves compression to the bundle, 1 is the default, 9 the smallest dump",
                ));
            }
            if self.format == DumpFormat::Sql {
                return Err(Error::new(
                    ErrorKind::InvalidConfig,
                    "`compressionLevel` applies to custom dumps only",
                )
                .with_hint(
                    "remove it, or use `format: custom`; plain dumps are compressed by the bundle",
                ));
            }
        }
        if let Some(owner) = &self.owner {
            if owner.is_empty() || owner.len() > 63 || owner.contains('\0') {
                return Err(Error::new(
                    ErrorKind::InvalidConfig,
                    "`owner` must be a role name of 1 to 63 bytes and no NUL",
                ));
            }
        }
        if self.lock_wait_timeout == Some(0) {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                "`lockWaitTimeout` must be at least 1 second",
            )
            .with_hint("leave it out for the default of 60 seconds"));
        }
        if let Some(dir) = &self.bin_dir {
            if !dir.starts_with('/') || dir.contains('\0') {
                return Err(Error::new(
                    ErrorKind::InvalidConfig,
                    "`binDir` must be an absolute directory path",
                )
                .with_hint("for example /usr/lib/postgresql/15/bin, or leave it out to use PATH"));
            }
        }
        Ok(())
    }
}

fn classify_serde_error(error: &serde_json::Error) -> String {
    let text = error.to_string();
    // "unknown field `x`" and "missing field `x`" name fields, not values: keep them.
    if text.starts_with("unknown field") || text.starts_with("missing field") {
        match text.find(", expected") {
            Some(cut) => text[..cut].to_string(),
            None => text,
        }
    } else {
        "a field has the wrong type or value".to_string()
    }
}

/// libpq `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS only if the server insists.
    Allow,
    /// TLS when the server offers it.
    Prefer,
    /// TLS always, no certificate check.
    Require,
    /// TLS, with the server certificate checked against a CA.
    VerifyCa,
    /// TLS, certificate and host name checked.
    VerifyFull,
}

impl SslMode {
    /// The libpq spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// The dump format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DumpFormat {
    /// `pg_dump -Fc`, restored with `pg_restore` (default).
    #[default]
    Custom,
    /// A plain SQL script (`--clean --if-exists`), restored with `psql`.
    Sql,
}

impl DumpFormat {
    /// `custom` or `sql`.
    pub fn as_str(self) -> &'static str {
        match self {
            DumpFormat::Custom => "custom",
            DumpFormat::Sql => "sql",
        }
    }

    /// The artifact format identifier.
    pub fn artifact_format(self) -> &'static str {
        match self {
            DumpFormat::Custom => backup_core::artifact::formats::POSTGRES_CUSTOM,
            DumpFormat::Sql => backup_core::artifact::formats::POSTGRES_SQL,
        }
    }

    /// The artifact file extension.
    pub fn extension(self) -> &'static str {
        match self {
            DumpFormat::Custom => "dump",
            DumpFormat::Sql => "sql",
        }
    }

    /// The MIME type of the dump bytes.
    pub fn content_type(self) -> &'static str {
        match self {
            DumpFormat::Custom => "application/vnd.postgresql.custom-dump",
            DumpFormat::Sql => "application/sql",
        }
    }

    /// The format of an artifact format identifier, if it is a postgres one.
    pub fn from_artifact_format(format: &str) -> Option<Self> {
        match format {
            backup_core::artifact::formats::POSTGRES_CUSTOM => Some(DumpFormat::Custom),
            backup_core::artifact::formats::POSTGRES_SQL => Some(DumpFormat::Sql),
            _ => None,
        }
    }
}

/// What a dump contains.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DumpScope {
    /// Schema and data (default).
    #[default]
    Full,
    /// Schema only (`--schema-only`): fast and small, for migrations.
    Schema,
}

impl DumpScope {
    /// `full` or `schema`.
    pub fn as_str(self) -> &'static str {
        match self {
            DumpScope::Full => "full",
            DumpScope::Schema => "schema",
        }
    }
}

/// The JSON Schema of [`PostgresConfig`].
pub fn config_schema() -> Value {
    let db_name = json!({"type": "string", "minLength": 1, "maxLength": 63});
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "PostgreSQL service",
        "type": "object",
        "additionalProperties": false,
        "required": ["host", "user"],
        "properties": {
            "host": {"type": "string", "minLength": 1, "description": "Host name, address or socket directory"},
            "port": {"type": "integer", "minimum": 1, "maximum": 65535, "default": DEFAULT_PORT},
            "user": {"type": "string", "minLength": 1, "description": "Role the tools connect as"},
            "password": {"type": "string", "description": "Password of the role (secret)"},
            "database": db_name,
            "databases": {"type": "array", "items": db_name, "minItems": 1, "uniqueItems": true},
            "allDatabases": {"type": "boolean", "default": false},
            "sslmode": {"enum": ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]},
            "format": {"enum": ["custom", "sql"], "default": "custom"},
            "scope": {"enum": ["full", "schema"], "default": "full"},
            "compressionLevel": {"type": "integer", "minimum": 0, "maximum": 9, "default": DEFAULT_COMPRESSION_LEVEL, "description": "zlib level of custom dumps (pg_dump --compress)"},
            "binDir": {"type": "string", "pattern": "^/", "description": "Absolute directory of pg_dump, pg_restore and psql; PATH when unset"},
            "owner": {"type": "string", "minLength": 1, "maxLength": 63, "description": "Role that owns restored databases and objects; the user by default"},
            "lockWaitTimeout": {"type": "integer", "minimum": 1, "default": DEFAULT_LOCK_WAIT_TIMEOUT_SECS, "description": "Seconds pg_dump waits for a table lock before the export fails (pg_dump --lock-wait-timeout)"}
        },
        "oneOf": [
            {"required": ["database"], "not": {"anyOf": [{"required": ["databases"]}, {"required": ["allDatabases"], "properties": {"allDatabases": {"const": true}}}]}},
            {"required": ["databases"], "not": {"anyOf": [{"required": ["database"]}, {"required": ["allDatabases"], "properties": {"allDatabases": {"const": true}}}]}},
            {"required": ["allDatabases"], "properties": {"allDatabases": {"const": true}}, "not": {"required": ["database"]}}
        ]
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_and_debug_hides_the_password() {
        let config = PostgresConfig::from_json(&json!({
            "host": "db", "user": "app", "password": "s3cr3t-Pa55", "database": "app"
        }))
        .unwrap();
        assert_eq!(config.port, DEFAULT_PORT);
        assert_eq!(config.format, DumpFormat::Custom);
        assert_eq!(config.scope, DumpScope::Full);
        assert!(!format!("{config:?}").contains("s3cr3t-Pa55"));
    }

    #[test]
    fn unknown_fields_and_missing_databases_are_refused() {
        let err = PostgresConfig::from_json(
            &json!({"host": "db", "user": "a", "database": "x", "dbname": "y"}),
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig);
        let err = PostgresConfig::from_json(&json!({"host": "db", "user": "a"})).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    }

    #[test]
    fn compression_level_defaults_to_1_and_is_checked() {
        let base = json!({"host": "db", "user": "a", "database": "x"});
        assert_eq!(
            PostgresConfig::from_json(&base)
                .unwrap()
                .custom_compression_level(),
            1
        );
        let mut config = base.clone();
        config["compressionLevel"] = json!(0);
        assert_eq!(
            PostgresConfig::from_json(&config)
                .unwrap()
                .custom_compression_level(),
            0
        );
        config["compressionLevel"] = json!(12);
        let err = PostgresConfig::from_json(&config).unwrap_err();
        assert!(err.message().contains("compressionLevel"), "{err}");
        config["compressionLevel"] = json!(5);
        config["format"] = json!("sql");
        let err = PostgresConfig::from_json(&config).unwrap_err();
        assert!(err.message().contains("custom dumps only"), "{err}");
    }

    #[test]
    fn bin_dir_picks_the_tools_and_must_be_absolute() {
        let base = json!({"host": "db", "user": "a", "database": "x"});
        let on_path = PostgresConfig::from_json(&base).unwrap();
        assert_eq!(on_path.program("pg_dump"), "pg_dump");
        let mut with_dir = base.clone();
        with_dir["binDir"] = json!("/usr/lib/postgresql/15/bin/");
        let config = PostgresConfig::from_json(&with_dir).unwrap();
        assert_eq!(
            config.program("pg_dump"),
            "/usr/lib/postgresql/15/bin/pg_dump"
        );
        with_dir["binDir"] = json!("bin");
        let err = PostgresConfig::from_json(&with_dir).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig);
        assert!(err.message().contains("binDir"), "{err}");
    }

    #[test]
    fn lock_wait_timeout_defaults_to_60_seconds_and_must_be_positive() {
        let base = json!({"host": "db", "user": "a", "database": "x"});
        let config = PostgresConfig::from_json(&base).unwrap();
        assert_eq!(
            config.lock_wait_timeout_secs(),
            DEFAULT_LOCK_WAIT_TIMEOUT_SECS
        );
        let mut set = base.clone();
        set["lockWaitTimeout"] = json!(5);
        assert_eq!(
            PostgresConfig::from_json(&set)
                .unwrap()
                .lock_wait_timeout_secs(),
            5
        );
        set["lockWaitTimeout"] = json!(0);
        let err = PostgresConfig::from_json(&set).unwrap_err();
        assert!(err.message().contains("lockWaitTimeout"), "{err}");
    }

    #[test]
    fn a_wrongly_typed_password_is_not_quoted() {
        let err = PostgresConfig::from_json(
            &json!({"host": "db", "user": "a", "database": "x", "password": 123456789}),
        )
        .unwrap_err();
        assert!(!err.to_string().contains("123456789"), "{err}");
    }
}
