//! Bounds on untrusted JSON (a bundle's manifest and snapshot, artifact metadata), so that
//! parsing cannot amplify a file of a few megabytes into gigabytes of memory or a deep
//! recursion.
//!
//! Two tools:
//!
//! - [`check_shape`] scans raw bytes once, allocating nothing, and refuses a document
//!   nested deeper or holding more values than allowed, *before* any parser builds a
//!   tree from it;
//! - [`deserialize_bounded_map`] builds a `serde_json` map from any deserializer while
//!   counting, so a bound holds whatever format the data comes from.

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::Deserializer;
use serde_json::{Map, Value};

/// How large a JSON document may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct JsonLimits {
    /// Deepest nesting of arrays and objects (the top-level object is depth 1).
    pub(crate) max_depth: usize,
    /// Most values in all, object keys included.
    pub(crate) max_values: usize,
    /// Most bytes of string and number text in all, object keys included.
    pub(crate) max_text_bytes: usize,
}

/// Scans `json` once without allocating and says what bound it exceeds, if any.
///
/// The scan is lexical: it does not validate JSON (the parser that runs next does), it
/// only counts, so any input (valid or not) is refused or passed in linear time.
pub(crate) fn check_shape(json: &[u8], limits: JsonLimits) -> Option<String> {
    let mut depth: usize = 0;
    let mut values: usize = 0;
    let mut text: usize = 0;
    let mut i = 0;
    while i < json.len() {
        let start = i;
        match json[i] {
            b'"' => {
                i += 1;
                while i < json.len() && json[i] != b'"' {
                    i += if json[i] == b'\\' { 2 } else { 1 };
                }
                values += 1;
                text += (i - start).saturating_sub(1);
            }
            b'{' | b'[' => {
                depth += 1;
                values += 1;
                if depth > limits.max_depth {
                    return Some(format!(
                        "it is nested deeper than {} levels (at byte {start})",
                        limits.max_depth
                    ));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'-' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' => {
                while i + 1 < json.len()
                    && matches!(json[i + 1], b'-' | b'+' | b'.' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
                {
                    i += 1;
                }
                values += 1;
                text += i + 1 - start;
            }
            _ => {}
        }
        if values > limits.max_values {
            return Some(format!(
                "it holds more than {} JSON values (at byte {start})",
                limits.max_values
            ));
        }
        if text > limits.max_text_bytes {
            return Some(format!(
                "it holds more than {} bytes of text (at byte {start})",
                limits.max_text_bytes
            ));
        }
        i += 1;
    }
    None
}

/// What is left of a document's allowance while it is being built.
struct Budget {
    limits: JsonLimits,
    what: &'static str,
    values: usize,
    text: usize,
}

impl Budget {
    fn charge<E: de::Error>(&mut self, text: usize) -> Result<(), E> {
        self.values += 1;
        self.text = self.text.saturating_add(text);
        if self.values > self.limits.max_values {
            return Err(E::custom(format!(
                "{} holds more than {} JSON values",
                self.what, self.limits.max_values
            )));
        }
        if self.text > self.limits.max_text_bytes {
            return Err(E::custom(format!(
                "{} holds more than {} bytes of text",
                self.what, self.limits.max_text_bytes
            )));
        }
        Ok(())
    }
}

/// Deserializes a JSON object into a `serde_json` map, refusing (with an error naming
/// `what` and the bound) a value nested deeper, holding more values or more text than
/// `limits` allow. The bound holds while the map is built: an oversized input fails
/// before it has been allocated.
pub(crate) fn deserialize_bounded_map<'de, D: Deserializer<'de>>(
    deserializer: D,
    limits: JsonLimits,
    what: &'static str,
) -> Result<Map<String, Value>, D::Error> {
    let mut budget = Budget {
        limits,
        what,
        values: 0,
        text: 0,
    };
    let seed = Bounded {
        budget: &mut budget,
        depth: 0,
    };
    match deserializer.deserialize_map(seed)? {
        Value::Object(map) => Ok(map),
        _ => Err(de::Error::custom(format!("{what} must be a JSON object"))),
    }
}

/// A value being built against a [`Budget`], at `depth` (0 outside any container).
struct Bounded<'a> {
    budget: &'a mut Budget,
    depth: usize,
}

impl Bounded<'_> {
    fn nested<E: de::Error>(&mut self) -> Result<Bounded<'_>, E> {
        let depth = self.depth + 1;
        if depth > self.budget.limits.max_depth {
            return Err(E::custom(format!(
                "{} is nested deeper than {} levels",
                self.budget.what, self.budget.limits.max_depth
            )));
        }
        Ok(Bounded {
            budget: &mut *self.budget,
            depth,
        })
    }
}

impl<'de> DeserializeSeed<'de> for Bounded<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Bounded<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.budget.charge(1)?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.budget.charge(8)?;
        Ok(Value::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.budget.charge(8)?;
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.budget.charge(8)?;
        Ok(Value::from(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.budget.charge(v.len())?;
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.budget.charge(v.len())?;
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.budget.charge(1)?;
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Value, A::Error> {
        self.budget.charge(1)?;
        let mut items = Vec::new();
        loop {
            let inner = self.nested()?;
            match seq.next_element_seed(inner)? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut access: A) -> Result<Value, A::Error> {
        self.budget.charge(1)?;
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            self.budget.charge(key.len())?;
            let inner = self.nested()?;
            let value = access.next_value_seed(inner)?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

/// Says what bound `map` exceeds, if any: the same count [`deserialize_bounded_map`]
/// makes, for checking a value before it is written.
pub(crate) fn map_problem(map: &Map<String, Value>, limits: JsonLimits) -> Option<String> {
    // The object itself counts as one value of one byte, as in `Bounded::visit_map`.
    let mut tally = Tally {
        limits,
        values: 1,
        text: 1,
    };
    tally.entries(map, 1)
}

/// The running count of [`map_problem`].
struct Tally {
    limits: JsonLimits,
    values: usize,
    text: usize,
}

impl Tally {
    fn add(&mut self, text: usize) -> Option<String> {
        self.values += 1;
        self.text = self.text.saturating_add(text);
        if self.values > self.limits.max_values {
            return Some(format!(
                "it holds more than {} JSON values",
                self.limits.max_values
            ));
        }
        if self.text > self.limits.max_text_bytes {
            return Some(format!(
                "it holds more than {} bytes of text",
                self.limits.max_text_bytes
            ));
        }
        None
    }

    /// Counts the entries of an object whose values are at `depth`.
    fn entries(&mut self, map: &Map<String, Value>, depth: usize) -> Option<String> {
        for (key, item) in map {
            if let Some(problem) = self.add(key.len()).or_else(|| self.value(item, depth)) {
                return Some(problem);
            }
        }
        None
    }

    /// Counts `value`, found at `depth`.
    fn value(&mut self, value: &Value, depth: usize) -> Option<String> {
        let text = match value {
            Value::String(s) => s.len(),
            Value::Number(_) => 8,
            Value::Bool(_) | Value::Null | Value::Array(_) | Value::Object(_) => 1,
        };
        if let Some(problem) = self.add(text) {
            return Some(problem);
        }
        if matches!(value, Value::Array(_) | Value::Object(_)) && depth + 1 > self.limits.max_depth
        {
            return Some(format!(
                "it is nested deeper than {} levels",
                self.limits.max_depth
            ));
        }
        match value {
            Value::Array(items) => items.iter().find_map(|item| self.value(item, depth + 1)),
            Value::Object(map) => self.entries(map, depth + 1),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: JsonLimits = JsonLimits {
        max_depth: 3,
        max_values: 10,
        max_text_bytes: 20,
    };

    #[test]
    fn brackets_and_quotes_inside_strings_do_not_count_as_structure() {
        let json = br#"{"a":"[[[[[[\"{{{{"}"#;
        assert_eq!(check_shape(json, SMALL), None);
    }

    #[test]
    fn the_scan_names_the_bound_exceeded() {
        let deep = check_shape(b"[[[[1]]]]", SMALL).unwrap_or_default();
        assert!(deep.contains("nested deeper than 3"), "{deep}");
        let many = check_shape(b"[1,2,3,4,5,6,7,8,9,10,11]", SMALL).unwrap_or_default();
        assert!(many.contains("more than 10 JSON values"), "{many}");
        let long = check_shape(br#"["aaaaaaaaaaaaaaaaaaaaaaaaa"]"#, SMALL).unwrap_or_default();
        assert!(long.contains("more than 20 bytes"), "{long}");
    }

    #[test]
    fn the_scan_and_the_bounded_parse_agree_with_the_tally() {
        let limits = JsonLimits {
            max_depth: 3,
            max_values: 1000,
            max_text_bytes: 1000,
        };
        for (json, ok) in [
            (r#"{"a":[[1]]}"#, true),
            (r#"{"a":[[[1]]]}"#, false),
            (r#"{"a":[[]]}"#, true),
            (r#"{"a":[[[]]]}"#, false),
        ] {
            let mut de = serde_json::Deserializer::from_str(json);
            let parsed = deserialize_bounded_map(&mut de, limits, "test metadata");
            assert_eq!(parsed.is_ok(), ok, "{json}: {parsed:?}");
            let map: Map<String, Value> = serde_json::from_str(json).unwrap_or_default();
            assert_eq!(map_problem(&map, limits).is_none(), ok, "{json}");
        }
    }
}
