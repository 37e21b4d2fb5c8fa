//! Database-level properties a dump does not carry: encoding, locale (collation, ctype,
//! provider, ICU locale), per-database settings (`ALTER DATABASE … SET`, and
//! `ALTER ROLE … IN DATABASE … SET`), comment and owner.
//!
//! The exporter records them in the artifact metadata ([`keys::DATABASE_PROPERTIES`]);
//! the importer creates the database with them and applies the settings and the comment
//! once the data is in. The values come from a bundle, which may be hostile: every name
//! is quoted as an identifier or checked against a strict pattern, every value is an SQL
//! string literal, and nothing from the bundle is executed as SQL text.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use backup_core::{ArtifactDescriptor, Error, ErrorKind, Result};

use crate::connection::{ident, literal};
use crate::metadata::keys;

/// What a database was created with, and what was set on it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseProperties {
    /// Character set encoding (`UTF8`, `SQL_ASCII`, …).
    pub encoding: String,
    /// `LC_COLLATE` (`datcollate`).
    pub collate: String,
    /// `LC_CTYPE` (`datctype`).
    pub ctype: String,
    /// `libc`, `icu` or `builtin`; absent before PostgreSQL 15 (libc).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale_provider: Option<String>,
    /// The ICU (or builtin) locale when the provider is not libc.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_locale: Option<String>,
    /// Owner of the source database (informational: the restored database belongs to the
    /// config's `owner` role, see [`crate::PostgresConfig::owner_role`]).
    pub owner: String,
    /// `COMMENT ON DATABASE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// `ALTER DATABASE … SET` settings, as `name=value` (`pg_db_role_setting.setconfig`).
    #[serde(default)]
    pub settings: Vec<String>,
    /// `ALTER ROLE r IN DATABASE … SET` settings by role, as `name=value`; restored for
    /// the roles that exist on the target.
    #[serde(default)]
    pub role_settings: BTreeMap<String, Vec<String>>,
}

/// The query (run in the database itself) that returns its [`DatabaseProperties`] as one
/// JSON line. `to_jsonb(d)` reads the columns that differ between server versions
/// (`datlocprovider` since 15, `daticulocale` 15–16, `datlocale` since 17) without
/// failing where they do not exist.
pub(crate) const PROPERTIES_SQL: &str = "SELECT json_build_object(\
 'encoding', pg_catalog.pg_encoding_to_char(d.encoding), \
 'collate', d.datcollate, 'ctype', d.datctype, \
 'localeProvider', CASE to_jsonb(d) ->> 'datlocprovider' WHEN 'c' THEN 'libc' WHEN 'i' THEN 'icu' \
   WHEN 'b' THEN 'builtin' ELSE NULL END, \
 'providerLocale', COALESCE(to_jsonb(d) ->> 'datlocale', to_jsonb(d) ->> 'daticulocale'), \
 'owner', pg_catalog.pg_get_userbyid(d.datdba), \
 'comment', pg_catalog.shobj_description(d.oid, 'pg_database'), \
 'settings', COALESCE((SELECT to_json(s.setconfig) FROM pg_catalog.pg_db_role_setting s \
   WHERE s.setdatabase = d.oid AND s.setrole = 0), '[]'::json), \
 'roleSettings', COALESCE((SELECT json_object_agg(r.rolname, s.setconfig ORDER BY r.rolname) \
   FROM pg_catalog.pg_db_role_setting s JOIN pg_catalog.pg_roles r ON r.oid = s.setrole \
   WHERE s.setdatabase = d.oid), '{}'::json)) \
 FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database();";

/// Settings whose value is a list of (possibly quoted) names: they are split and each
/// element given as its own literal, as pg_dump does (`SET search_path TO 'a', 'b'`).
const LIST_SETTINGS: &[&str] = &[
    "search_path",
    "temp_tablespaces",
    "session_preload_libraries",
    "shared_preload_libraries",
    "local_preload_libraries",
    "unix_socket_directories",
];

impl DatabaseProperties {
    /// Parses the output of [`PROPERTIES_SQL`].
    pub(crate) fn parse(output: &str) -> Result<Self> {
        serde_json::from_str(output.trim()).map_err(|e| {
            Error::new(
                ErrorKind::ToolFailed,
                format!("psql returned database properties that do not parse: {e}"),
            )
        })
    }

    /// The properties an artifact recorded; `None` for artifacts from before they were
    /// recorded.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] when the metadata is there but malformed.
    pub fn from_descriptor(artifact: &ArtifactDescriptor) -> Result<Option<Self>> {
        match artifact.metadata.get(keys::DATABASE_PROPERTIES) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(value) => serde_json::from_value(value.clone()).map(Some).map_err(|_| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "artifact `{}` has malformed `{}` metadata",
                        artifact.name,
                        keys::DATABASE_PROPERTIES
                    ),
                )
                .with_hint("use an artifact exported by the postgres adapter, with its manifest metadata")
            }),
        }
    }

    /// Checks, without a server, that the properties can be turned into SQL (what
    /// [`create_options`](Self::create_options) and
    /// [`apply_script`](Self::apply_script) refuse).
    ///
    /// # Errors
    ///
    /// As those two.
    pub(crate) fn validate(&self) -> Result<()> {
        self.create_options(u32::MAX)?;
        self.apply_script("check").map(|_| ())
    }

    /// The options after `CREATE DATABASE name TEMPLATE template0` that recreate the
    /// encoding and locale, for a server of `server_version_num`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] for an encoding or provider that is not a plain word;
    /// [`ErrorKind::UnsupportedVersion`] for an ICU or builtin locale on a server that
    /// has no locale providers.
    pub(crate) fn create_options(&self, server_version_num: u32) -> Result<String> {
        if !is_word(&self.encoding) {
            return Err(bad_property("encoding"));
        }
        let texts = [&self.collate, &self.ctype]
            .into_iter()
            .chain(self.provider_locale.as_ref());
        if texts.into_iter().any(|t| t.contains('\0')) {
            return Err(bad_property("locale"));
        }
        let mut sql = format!(
            " ENCODING {} LC_COLLATE {} LC_CTYPE {}",
            literal(&self.encoding),
            literal(&self.collate),
            literal(&self.ctype)
        );
        let provider = self.locale_provider.as_deref().unwrap_or("libc");
        let locale = self.provider_locale.as_deref().unwrap_or_default();
        match provider {
            "libc" if server_version_num < 150_000 => {}
            "libc" => sql.push_str(" LOCALE_PROVIDER libc"),
            "icu" | "builtin" if server_version_num < 150_000 => {
                return Err(Error::new(
                    ErrorKind::UnsupportedVersion,
                    format!("the database used the {provider} locale provider, which this server (before PostgreSQL 15) lacks"),
                )
                .with_hint("restore into PostgreSQL 15 or newer"));
            }
            "icu" => sql.push_str(&format!(
                " LOCALE_PROVIDER icu ICU_LOCALE {}",
                literal(locale)
            )),
            "builtin" => sql.push_str(&format!(
                " LOCALE_PROVIDER builtin BUILTIN_LOCALE {}",
                literal(locale)
            )),
            _ => return Err(bad_property("localeProvider")),
        }
        Ok(sql)
    }

    /// The psql script that applies the settings and the comment to `database` (run once
    /// the data is in, so a setting such as `default_transaction_read_only` cannot get in
    /// the restore's way). Role settings are applied for roles that exist here only.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] for a setting that is not `name=value` with a plain
    /// (dotted) name.
    pub(crate) fn apply_script(&self, database: &str) -> Result<String> {
        let db = ident(database);
        let texts = self
            .settings
            .iter()
            .chain(self.role_settings.keys())
            .chain(self.role_settings.values().flatten())
            .chain(self.comment.as_ref());
        if texts.into_iter().any(|t| t.contains('\0')) {
            return Err(bad_property("settings"));
        }
        let mut sql = String::new();
        for setting in &self.settings {
            sql.push_str(&format!(
                "ALTER DATABASE {db} SET {};\n",
                set_clause(setting)?
            ));
        }
        for (role, settings) in &self.role_settings {
            for setting in settings {
                let statement = format!(
                    "ALTER ROLE {} IN DATABASE {db} SET {}",
                    ident(role),
                    set_clause(setting)?
                );
                // \gexec runs the statement (a literal here) only where the role exists.
                sql.push_str(&format!(
                    "SELECT {} WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = {}) \\gexec\n",
                    literal(&statement),
                    literal(role)
                ));
            }
        }
        if let Some(comment) = &self.comment {
            sql.push_str(&format!(
                "COMMENT ON DATABASE {db} IS {};\n",
                literal(comment)
            ));
        }
        Ok(sql)
    }
}

fn bad_property(what: &str) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("the artifact's database property `{what}` is not acceptable"),
    )
    .with_hint("the bundle's metadata is damaged or was not written by the postgres adapter")
}

/// ASCII letters, digits and `_` only, not empty.
fn is_word(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `name TO value[, value…]` for a `name=value` setting, with the name checked (dotted
/// words, as custom settings have) and quoted, and each value a literal.
fn set_clause(setting: &str) -> Result<String> {
    let (name, value) = setting
        .split_once('=')
        .ok_or_else(|| bad_property("settings"))?;
    let parts: Vec<&str> = name.split('.').collect();
    if parts
        .iter()
        .any(|p| !is_word(p) || p.as_bytes()[0].is_ascii_digit())
    {
        return Err(bad_property("settings"));
    }
    let name_sql = parts
        .iter()
        .map(|p| ident(&p.to_ascii_lowercase()))
        .collect::<Vec<_>>()
        .join(".");
    let values = if LIST_SETTINGS.contains(&name.to_ascii_lowercase().as_str()) {
        let items = split_list(value);
        if items.is_empty() {
            vec![literal("")]
        } else {
            items.iter().map(|v| literal(v)).collect()
        }
    } else {
        vec![literal(value)]
    };
    Ok(format!("{name_sql} TO {}", values.join(", ")))
}

/// Splits a list setting's value like PostgreSQL's `SplitGUCList`: comma-separated,
/// whitespace around elements dropped, double-quoted elements kept as written (with `""`
/// for a quote).
fn split_list(value: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut chars = value.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut item = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                if c == '"' {
                    if chars.peek() == Some(&'"') {
                        chars.next();
                        item.push('"');
                    } else {
                        break;
                    }
                } else {
                    item.push(c);
                }
            }
            while chars.peek().is_some_and(|c| *c != ',') {
                chars.next();
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == ',' {
                    break;
                }
                item.push(c);
                chars.next();
            }
            item = item.trim_end().to_string();
        }
        items.push(item);
        if chars.next().is_none() {
            break;
        }
    }
    items
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn list_settings_are_split_like_postgres_and_quoted_as_literals() {
        assert_eq!(
            split_list("\"$user\", public ,\"we\"\"ird, x\""),
            vec!["$user", "public", "we\"ird, x"]
        );
        assert_eq!(
            set_clause("search_path=\"$user\", public").unwrap(),
            "\"search_path\" TO '$user', 'public'"
        );
        assert_eq!(
            set_clause("myapp.note=it's").unwrap(),
            "\"myapp\".\"note\" TO 'it''s'"
        );
    }

    #[test]
    fn hostile_setting_names_and_properties_are_refused() {
        for setting in [
            "work_mem; DROP DATABASE x=1",
            "=1",
            "1abc=2",
            "a..b=1",
            "no_equals",
        ] {
            assert!(set_clause(setting).is_err(), "{setting}");
        }
        let props = DatabaseProperties {
            encoding: "UTF8' OWNER x --".into(),
            ..DatabaseProperties::default()
        };
        assert!(props.create_options(150_000).is_err());
        let props = DatabaseProperties {
            encoding: "UTF8".into(),
            locale_provider: Some("icu; DROP".into()),
            ..DatabaseProperties::default()
        };
        assert!(props.create_options(150_000).is_err());
    }
}
