//! Tool definitions for chat agents: `backupWorkspace`, `restoreWorkspace` (seed 000),
//! `exportAppData`, `importAppData` (seed 001), each with a JSON Schema (draft 2020-12)
//! of its input and of its output, plus validation of an input with field-level errors.
//!
//! A host lists [`tools`] to the agent (serialised as `name`, `description`,
//! `inputSchema`, `outputSchema`), checks each call with [`validate_input`] before running
//! it, and answers with the output built by [`backup_workspace_output`] and its siblings,
//! whose `summary` is the sentence the agent can say:
//!
//! ```
//! use backup_core::agent_tools::{tools, validate_input, RESTORE_WORKSPACE};
//! use serde_json::json;
//!
//! let names: Vec<_> = tools().iter().map(|t| t.name.clone()).collect();
//! assert_eq!(names, ["backupWorkspace", "restoreWorkspace", "exportAppData", "importAppData"]);
//!
//! let error = validate_input(RESTORE_WORKSPACE, &json!({ "backupId": "b1", "force": "yes" }))
//!     .unwrap_err();
//! assert_eq!(error.field_errors()[0].pointer, "/force");
//! ```
//!
//! Input schemas are closed (unknown fields are errors); output schemas allow extra fields
//! so a host can add its own (a download URL, a job id).

mod outputs;

use std::sync::OnceLock;

use serde::Serialize;
use serde_json::{json, Value};

pub use outputs::{
    backup_workspace_output, export_app_data_output, import_app_data_output,
    restore_workspace_output, ExportedArtifact,
};

use crate::{Error, ErrorKind, FieldError, Recipe, Result};

/// Backs up the whole workspace (config and data) into a new backup.
pub const BACKUP_WORKSPACE: &str = "backupWorkspace";
/// Restores a workspace from a backup, recreating its services.
pub const RESTORE_WORKSPACE: &str = "restoreWorkspace";
/// Exports one app's data.
pub const EXPORT_APP_DATA: &str = "exportAppData";
/// Imports data into one app.
pub const IMPORT_APP_DATA: &str = "importAppData";

const DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

/// One tool an agent can call.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolDefinition {
    /// The tool's name, e.g. `backupWorkspace`.
    pub name: String,
    /// What it does, for the agent.
    pub description: String,
    /// JSON Schema (draft 2020-12) of its input object.
    pub input_schema: Value,
    /// JSON Schema (draft 2020-12) of its output object.
    pub output_schema: Value,
}

/// Every tool, in a stable order.
pub fn tools() -> Vec<ToolDefinition> {
    compiled().iter().map(|c| c.definition.clone()).collect()
}

/// The tool called `name`, if there is one.
pub fn tool(name: &str) -> Option<ToolDefinition> {
    find(name).ok().map(|c| c.definition.clone())
}

/// Checks a tool's input against its input schema.
///
/// # Errors
///
/// [`ErrorKind::NotFound`] for an unknown tool; [`ErrorKind::InvalidInput`] with one
/// [`FieldError`] (JSON pointer into the input) per failing field. Messages never quote
/// a value.
pub fn validate_input(name: &str, input: &Value) -> Result<()> {
    let errors = find(name)?.input.config_errors(input);
    refuse(name, "input", errors)
}

/// Checks a tool's output against its output schema (for a host's own tests, or before
/// answering the agent).
///
/// # Errors
///
/// As [`validate_input`], for the output.
pub fn validate_output(name: &str, output: &Value) -> Result<()> {
    let errors = find(name)?.output.config_errors(output);
    refuse(name, "output", errors)
}

fn refuse(name: &str, what: &str, errors: Vec<FieldError>) -> Result<()> {
    if errors.is_empty() {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::InvalidInput,
        format!("the {what} of tool `{name}` does not match its schema"),
    )
    .with_hint("see the field errors; the tool's schema lists every allowed field")
    .with_field_errors(errors))
}

/// A definition with its schemas compiled by the same validator as recipe configs.
struct Compiled {
    definition: ToolDefinition,
    input: Recipe,
    output: Recipe,
}

fn find(name: &str) -> Result<&'static Compiled> {
    compiled()
        .iter()
        .find(|c| c.definition.name == name)
        .ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("there is no agent tool `{name}`"),
            )
            .with_hint(format!(
                "the tools are {BACKUP_WORKSPACE}, {RESTORE_WORKSPACE}, {EXPORT_APP_DATA} \
                     and {IMPORT_APP_DATA}"
            ))
        })
}

fn compiled() -> &'static [Compiled] {
    static TOOLS: OnceLock<Vec<Compiled>> = OnceLock::new();
    TOOLS.get_or_init(|| {
        definitions()
            .into_iter()
            .enumerate()
            .filter_map(|(i, definition)| {
                // The schemas are fixed and compile (a test checks every tool is here).
                let input =
                    Recipe::builder(format!("tool-{i}-input"), definition.input_schema.clone())
                        .build()
                        .ok()?;
                let output =
                    Recipe::builder(format!("tool-{i}-output"), definition.output_schema.clone())
                        .build()
                        .ok()?;
                Some(Compiled {
                    definition,
                    input,
                    output,
                })
            })
            .collect()
    })
}

fn definitions() -> Vec<ToolDefinition> {
    let mut definitions = tool_list();
    for definition in &mut definitions {
        definition.input_schema["$schema"] = json!(DIALECT);
        definition.output_schema["$schema"] = json!(DIALECT);
    }
    definitions
}

fn tool_list() -> Vec<ToolDefinition> {
    vec![
        ToolDefinition {
            name: BACKUP_WORKSPACE.into(),
            description: "Back up the whole workspace: the config of every service and its \
                          data, into one verified backup. Returns the backup's id, its size \
                          and the services it holds."
                .into(),
            input_schema: closed(
                json!({
                    "label": {
                        "type": "string", "minLength": 1, "maxLength": 100,
                        "description": "A label to keep this backup by (labelled backups are never pruned)"
                    },
                    "purpose": {
                        "type": "string", "maxLength": 500,
                        "description": "What the backup is for, in the user's words"
                    },
                    "services": service_names("Back up only these services (default: all)")
                }),
                &[],
            ),
            output_schema: open(
                json!({
                    "backupId": { "type": "string", "minLength": 1 },
                    "createdAt": { "type": "string", "minLength": 1 },
                    "label": { "type": ["string", "null"] },
                    "sizeBytes": { "type": "integer", "minimum": 0 },
                    "serviceCount": { "type": "integer", "minimum": 0 },
                    "services": services_schema(),
                    "summary": summary_schema()
                }),
                &[
                    "backupId",
                    "createdAt",
                    "sizeBytes",
                    "serviceCount",
                    "services",
                    "summary",
                ],
            ),
        },
        ToolDefinition {
            name: RESTORE_WORKSPACE.into(),
            description: "Restore a workspace from a backup (or a user-provided snapshot): \
                          services are recreated in dependency order with new secrets, then \
                          their data is restored; on failure what was created is rolled back. \
                          Reports progress as it goes."
                .into(),
            input_schema: one_of(
                closed(
                    json!({
                        "backupId": {
                            "type": "string", "minLength": 1,
                            "description": "The backup to restore (from backupWorkspace)"
                        },
                        "snapshot": {
                            "type": "object",
                            "description": "A workspace snapshot the user provided, instead of a backup"
                        },
                        "services": service_names("Restore only these services (default: all)"),
                        "force": {
                            "type": "boolean",
                            "description": "Replace services of the same names that already exist"
                        },
                        "dryRun": {
                            "type": "boolean",
                            "description": "Only check and plan; change nothing"
                        }
                    }),
                    &[],
                ),
                &["backupId", "snapshot"],
            ),
            output_schema: open(
                json!({
                    "status": {
                        "enum": ["restored", "dryRun", "failed", "rolledBack", "rollbackFailed"]
                    },
                    "backupId": { "type": ["string", "null"] },
                    "services": services_schema(),
                    "created": names_schema(),
                    "replaced": names_schema(),
                    "error": error_schema(),
                    "summary": summary_schema()
                }),
                &["status", "services", "summary"],
            ),
        },
        ToolDefinition {
            name: EXPORT_APP_DATA.into(),
            description: "Export one app's data (a database dump, a file archive) as a \
                          download. Returns what was exported and its size."
                .into(),
            input_schema: closed(
                json!({
                    "service": service_name("The app (service name) whose data to export")
                }),
                &["service"],
            ),
            output_schema: open(
                json!({
                    "service": service_schema(),
                    "artifacts": {
                        "type": "array",
                        "items": open(json!({
                            "name": { "type": "string", "minLength": 1 },
                            "format": { "type": "string", "minLength": 1 },
                            "contentType": { "type": "string", "minLength": 1 },
                            "sizeBytes": { "type": "integer", "minimum": 0 }
                        }), &["name", "format", "contentType", "sizeBytes"])
                    },
                    "sizeBytes": { "type": "integer", "minimum": 0 },
                    "summary": summary_schema()
                }),
                &["service", "artifacts", "sizeBytes", "summary"],
            ),
        },
        ToolDefinition {
            name: IMPORT_APP_DATA.into(),
            description: "Import data into one running app, from a file the user uploaded or \
                          from a backup. The app's current data is replaced."
                .into(),
            input_schema: one_of(
                closed(
                    json!({
                        "service": service_name("The app (service name) to import into"),
                        "uploadId": {
                            "type": "string", "minLength": 1,
                            "description": "A file the user uploaded (an earlier exportAppData download)"
                        },
                        "backupId": {
                            "type": "string", "minLength": 1,
                            "description": "A backup holding the app's data"
                        },
                        "fromService": service_name(
                            "The service in the backup whose data to take (default: the same name)"
                        ),
                        "force": {
                            "type": "boolean",
                            "description": "Import even when the app already holds data"
                        }
                    }),
                    &["service"],
                ),
                &["uploadId", "backupId"],
            ),
            output_schema: open(
                json!({
                    "service": service_schema(),
                    "sizeBytes": { "type": "integer", "minimum": 0 },
                    "summary": summary_schema()
                }),
                &["service", "sizeBytes", "summary"],
            ),
        },
    ]
}

/// An object schema with these properties and no others.
fn closed(properties: Value, required: &[&str]) -> Value {
    let mut schema = open(properties, required);
    schema["additionalProperties"] = json!(false);
    schema
}

/// An object schema with these properties (others allowed).
fn open(properties: Value, required: &[&str]) -> Value {
    json!({
        "type": "object",
        "properties": properties,
        "required": required
    })
}

/// `schema` with exactly one of `fields` required.
fn one_of(mut schema: Value, fields: &[&str]) -> Value {
    let choices: Vec<Value> = fields.iter().map(|f| json!({ "required": [f] })).collect();
    schema["oneOf"] = Value::Array(choices);
    schema
}

fn service_name(description: &str) -> Value {
    json!({ "type": "string", "minLength": 1, "maxLength": 200, "description": description })
}

fn service_names(description: &str) -> Value {
    json!({
        "type": "array",
        "items": { "type": "string", "minLength": 1, "maxLength": 200 },
        "minItems": 1,
        "uniqueItems": true,
        "description": description
    })
}

fn names_schema() -> Value {
    json!({ "type": "array", "items": { "type": "string" } })
}

fn service_schema() -> Value {
    open(
        json!({
            "name": { "type": "string", "minLength": 1 },
            "recipe": { "type": ["string", "null"] },
            "displayName": { "type": "string", "minLength": 1 }
        }),
        &["name", "recipe", "displayName"],
    )
}

fn services_schema() -> Value {
    json!({ "type": "array", "items": service_schema() })
}

fn summary_schema() -> Value {
    json!({
        "type": "string",
        "minLength": 1,
        "description": "What happened, in one or two sentences the agent can say"
    })
}

fn error_schema() -> Value {
    json!({
        "type": ["object", "null"],
        "properties": {
            "kind": { "type": "string" },
            "message": { "type": "string" },
            "hint": { "type": ["string", "null"] }
        },
        "required": ["kind", "message"]
    })
}
