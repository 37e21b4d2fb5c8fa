//! Writing test configuration files: JSON values as TOML text, and a `PATH` that finds
//! PostgreSQL's tools for the programs a test starts.

use serde_json::Value;

use crate::postgres_server::PG_BIN_DIR;

/// `value` as a TOML inline value: objects become inline tables (`{ a = 1, b = "x" }`),
/// everything else its JSON text (strings, numbers, booleans and arrays read the same).
pub fn toml_inline(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let parts: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k} = {}", toml_inline(v)))
                .collect();
            format!("{{ {} }}", parts.join(", "))
        }
        other => other.to_string(),
    }
}

/// This process's `PATH` with PostgreSQL's tool directory first, for a child process
/// (`backupctl`, the HTTP host) that runs `pg_dump` / `pg_restore`.
pub fn path_with_postgres() -> String {
    format!("{PG_BIN_DIR}:{}", std::env::var("PATH").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_objects_become_inline_tables_and_scalars_keep_their_json_text() {
        let value = serde_json::json!({"a": 1, "b": {"c": "x y", "d": [1, 2]}, "e": true});
        assert_eq!(
            toml_inline(&value),
            r#"{ a = 1, b = { c = "x y", d = [1,2] }, e = true }"#
        );
    }

    #[test]
    fn the_postgres_tools_come_first_on_the_path() {
        assert!(path_with_postgres().starts_with(&format!("{PG_BIN_DIR}:")));
    }
}
