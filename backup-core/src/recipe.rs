//! Recipes: service types with a config schema, secret fields, and optional data adapters.

use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use crate::data::{DataExporter, DataImporter};
use crate::secrets::SecretGenerator;
use crate::{Error, ErrorKind, FieldError, Result};

/// A config field whose value is a secret: stripped on export, regenerated on import.
#[derive(Debug, Clone)]
pub struct SecretField {
    /// Top-level config key.
    pub name: String,
    /// How a new value is made on import.
    pub generator: SecretGenerator,
}

/// The value a snapshot holds for a secret field the source service did not have (absent,
/// `null` or empty in its config): an empty string.
///
/// A set secret is removed from the snapshot and a new one generated on import (the
/// behaviour of version-1 snapshots from the TypeScript platform, which never carry this
/// marker); a secret marked unset stays unset, so a Redis without a password comes back
/// without one. An empty string is a valid optional string for the platform's schemas,
/// which regenerate every secret anyway.
pub const UNSET_SECRET: &str = "";

/// A service type: `postgres`, `redis`, `minio`, `directory`, …
///
/// # Config fields with special handling
///
/// - *secret* fields ([`RecipeBuilder::secret`]) are never written to a snapshot; on
///   import a new value is generated, or none when the source had none
///   ([`UNSET_SECRET`]);
/// - *host settings* ([`RecipeBuilder::host_setting`]) choose a program the host runs
///   (a tool directory, a binary path). They belong to the machine, not to the data: they
///   are stripped from snapshots on export and dropped from a snapshot's config on import
///   unless the caller opts in
///   ([`crate::workspace::ImportOptions::trust_snapshot_host_settings`]). A restored
///   service takes them from `config_overrides`; a data restore into an existing service
///   uses that service's own config.
#[derive(Clone)]
pub struct Recipe {
    slug: String,
    description: String,
    config_schema: Value,
    validator: Arc<jsonschema::Validator>,
    secret_fields: Vec<SecretField>,
    host_settings: Vec<String>,
    exporter: Option<Arc<dyn DataExporter>>,
    importer: Option<Arc<dyn DataImporter>>,
    data_export_description: Option<String>,
}

impl fmt::Debug for Recipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recipe")
            .field("slug", &self.slug)
            .field("secret_fields", &self.secret_fields)
            .field("host_settings", &self.host_settings)
            .field("exporter", &self.exporter)
            .field("importer", &self.importer)
            .finish_non_exhaustive()
    }
}

impl Recipe {
    /// Starts building a recipe with `slug` and a JSON Schema for its config.
    pub fn builder(slug: impl Into<String>, config_schema: Value) -> RecipeBuilder {
        RecipeBuilder {
            slug: slug.into(),
            description: String::new(),
            config_schema,
            secret_fields: Vec::new(),
            host_settings: Vec::new(),
            exporter: None,
            importer: None,
            data_export_description: None,
        }
    }

    /// The recipe's slug.
    pub fn slug(&self) -> &str {
        &self.slug
    }

    /// Human-readable description of the service type.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// JSON Schema of the config.
    pub fn config_schema(&self) -> &Value {
        &self.config_schema
    }

    /// Secret fields.
    pub fn secret_fields(&self) -> &[SecretField] {
        &self.secret_fields
    }

    /// Top-level config fields that are the host's, not the snapshot's (see
    /// [`RecipeBuilder::host_setting`]).
    pub fn host_settings(&self) -> &[String] {
        &self.host_settings
    }

    /// The data exporter, if the recipe has data.
    pub fn exporter(&self) -> Option<&Arc<dyn DataExporter>> {
        self.exporter.as_ref()
    }

    /// The data importer, if the recipe has data.
    pub fn importer(&self) -> Option<&Arc<dyn DataImporter>> {
        self.importer.as_ref()
    }

    /// What a data export of this recipe contains, in words.
    pub fn data_export_description(&self) -> Option<&str> {
        self.data_export_description.as_deref()
    }

    /// Validates a config, reporting every failing field with its JSON pointer.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidConfig`] with one [`FieldError`] per failing field.
    pub fn validate_config(&self, config: &Value) -> Result<()> {
        let errors = self.config_errors(config);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::InvalidConfig,
                format!("config does not match recipe `{}`", self.slug),
            )
            .with_field_errors(errors))
        }
    }

    /// Every failing field of `config`, with JSON pointers relative to the config.
    ///
    /// Messages never quote the failing value: it may be a secret.
    pub fn config_errors(&self, config: &Value) -> Vec<FieldError> {
        self.validator
            .iter_errors(config)
            .map(|error| FieldError {
                pointer: error.instance_path().to_string(),
                message: describe_validation_error(&error),
            })
            .collect()
    }

    /// Removes secret fields from a config.
    pub fn strip_secrets(
        &self,
        config: &serde_json::Map<String, Value>,
    ) -> serde_json::Map<String, Value> {
        let mut stripped = config.clone();
        for field in &self.secret_fields {
            stripped.remove(&field.name);
        }
        stripped
    }

    /// Fills every secret field with a newly generated value.
    pub fn generate_secrets(&self, config: &mut serde_json::Map<String, Value>) {
        for field in &self.secret_fields {
            config.insert(
                field.name.clone(),
                Value::String(field.generator.generate()),
            );
        }
    }

    /// The config a snapshot records for a deployment's `config`: host settings removed,
    /// each set secret removed, each secret the service does not have (absent, `null` or
    /// an empty string) recorded as [`UNSET_SECRET`].
    pub fn snapshot_config(
        &self,
        config: &serde_json::Map<String, Value>,
    ) -> serde_json::Map<String, Value> {
        let mut snapshot = self.strip_secrets(config);
        for field in &self.secret_fields {
            let unset = match config.get(&field.name) {
                None | Some(Value::Null) => true,
                Some(Value::String(value)) => value.is_empty(),
                Some(_) => false,
            };
            if unset {
                snapshot.insert(field.name.clone(), Value::String(UNSET_SECRET.into()));
            }
        }
        for field in &self.host_settings {
            snapshot.remove(field);
        }
        snapshot
    }

    /// The config a service is recreated with from a snapshot's `config` (before
    /// overrides): every secret absent from it is newly generated, every secret marked
    /// [`UNSET_SECRET`] is left out (the source had none), any other value of a secret
    /// field is replaced by a new one (a snapshot never supplies secrets), and host
    /// settings are dropped unless `trust_host_settings`.
    pub fn restored_config(
        &self,
        snapshot: &serde_json::Map<String, Value>,
        trust_host_settings: bool,
    ) -> serde_json::Map<String, Value> {
        let mut config = snapshot.clone();
        for field in &self.secret_fields {
            let unset = matches!(
                snapshot.get(&field.name),
                Some(Value::String(marker)) if marker == UNSET_SECRET
            );
            if unset {
                config.remove(&field.name);
            } else {
                config.insert(
                    field.name.clone(),
                    Value::String(field.generator.generate()),
                );
            }
        }
        if !trust_host_settings {
            for field in &self.host_settings {
                config.remove(field);
            }
        }
        config
    }
}

fn describe_validation_error(error: &jsonschema::ValidationError<'_>) -> String {
    // A jsonschema error's Display quotes the failing value, which can be a secret (a
    // password of the wrong type or length). Describe the failing keyword instead; only
    // `required` and `additionalProperties` are quoted, as they name properties, not values.
    let keyword = error
        .schema_path()
        .as_str()
        .rsplit('/')
        .next()
        .unwrap_or("")
        .to_string();
    match keyword.as_str() {
        "required" | "additionalProperties" => error.to_string(),
        "type" => "has the wrong type for this field".to_string(),
        "enum" => "is not one of the allowed values".to_string(),
        "const" => "is not the required value".to_string(),
        "minimum" | "exclusiveMinimum" => "is below the allowed minimum".to_string(),
        "maximum" | "exclusiveMaximum" => "is above the allowed maximum".to_string(),
        "minLength" => "is too short".to_string(),
        "maxLength" => "is too long".to_string(),
        "pattern" | "format" => "does not have the required format".to_string(),
        "" => "is invalid".to_string(),
        other => format!("fails the `{other}` rule of the schema"),
    }
}

/// Builds a [`Recipe`].
#[derive(Debug)]
pub struct RecipeBuilder {
    slug: String,
    description: String,
    config_schema: Value,
    secret_fields: Vec<SecretField>,
    host_settings: Vec<String>,
    exporter: Option<Arc<dyn DataExporter>>,
    importer: Option<Arc<dyn DataImporter>>,
    data_export_description: Option<String>,
}

impl RecipeBuilder {
    /// Declares a top-level config field as a host setting: it chooses a program the host
    /// runs (e.g. PostgreSQL's `binDir`), so it is never taken from a bundle. It is
    /// stripped from snapshots on export, and dropped from a snapshot's config on import
    /// unless the caller opts in; set it with `config_overrides` instead.
    pub fn host_setting(mut self, name: impl Into<String>) -> Self {
        self.host_settings.push(name.into());
        self
    }

    /// Sets the description.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Declares a top-level config field as a secret.
    pub fn secret(mut self, name: impl Into<String>, generator: SecretGenerator) -> Self {
        self.secret_fields.push(SecretField {
            name: name.into(),
            generator,
        });
        self
    }

    /// Sets the data exporter.
    pub fn exporter(mut self, exporter: Arc<dyn DataExporter>) -> Self {
        self.exporter = Some(exporter);
        self
    }

    /// Sets the data importer.
    pub fn importer(mut self, importer: Arc<dyn DataImporter>) -> Self {
        self.importer = Some(importer);
        self
    }

    /// Sets the description of what a data export contains.
    pub fn data_export_description(mut self, description: impl Into<String>) -> Self {
        self.data_export_description = Some(description.into());
        self
    }

    /// Compiles the schema and builds the recipe.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] when the slug is empty or the schema does not compile.
    pub fn build(self) -> Result<Recipe> {
        if self.slug.is_empty()
            || !self
                .slug
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "recipe slug `{}` must be lowercase letters, digits and `-`",
                    self.slug
                ),
            ));
        }
        let validator = jsonschema::validator_for(&self.config_schema).map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "config schema of recipe `{}` does not compile: {e}",
                    self.slug
                ),
            )
        })?;
        Ok(Recipe {
            slug: self.slug,
            description: self.description,
            config_schema: self.config_schema,
            validator: Arc::new(validator),
            secret_fields: self.secret_fields,
            host_settings: self.host_settings,
            exporter: self.exporter,
            importer: self.importer,
            data_export_description: self.data_export_description,
        })
    }
}
