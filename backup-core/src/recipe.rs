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

/// A service type: `postgres`, `redis`, `minio`, `directory`, …
#[derive(Clone)]
pub struct Recipe {
    slug: String,
    description: String,
    config_schema: Value,
    validator: Arc<jsonschema::Validator>,
    secret_fields: Vec<SecretField>,
    exporter: Option<Arc<dyn DataExporter>>,
    importer: Option<Arc<dyn DataImporter>>,
    data_export_description: Option<String>,
}

impl fmt::Debug for Recipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recipe")
            .field("slug", &self.slug)
            .field("secret_fields", &self.secret_fields)
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
    exporter: Option<Arc<dyn DataExporter>>,
    importer: Option<Arc<dyn DataImporter>>,
    data_export_description: Option<String>,
}

impl RecipeBuilder {
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
            exporter: self.exporter,
            importer: self.importer,
            data_export_description: self.data_export_description,
        })
    }
}
