//! A systemd-style unit file parser for quadlet files, used only for discovery: the files
//! themselves are stored and restored byte for byte.
//!
//! Supported syntax: `[Section]` headers; `Key=Value` assignments with whitespace around
//! key and value trimmed; comment lines starting with `#` or `;`; a line ending in `\`
//! continues on the next line (joined with a space, comment lines inside a continuation
//! skipped, as systemd does); repeated keys are kept in order, and an empty assignment
//! (`Key=`) clears the values before it. Values are kept as written (quotes included);
//! [`split_words`] and [`unquote`] interpret quoting where a key needs it.

use std::collections::BTreeMap;
use std::sync::Arc;

/// One `Key=Value` assignment, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// Section name without brackets (shared by the section's assignments, so a long
    /// name costs its bytes once, not once per assignment).
    pub section: Arc<str>,
    /// Key.
    pub key: String,
    /// Value as written (continuations joined), whitespace trimmed.
    pub value: String,
}

/// A parsed unit: every assignment in order (drop-ins appended after the main file).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitFile {
    assignments: Vec<Assignment>,
}

/// A line the parser could not read, with its 1-based number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseIssue {
    /// Line number (1-based) where the assignment started.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl UnitFile {
    /// Parses `text`, appending to this unit (call it again for each drop-in, in order).
    /// Lines that are neither sections, assignments nor comments are returned as issues
    /// and otherwise ignored.
    pub fn parse_more(&mut self, text: &str) -> Vec<ParseIssue> {
        let mut issues = Vec::new();
        let mut section: Arc<str> = Arc::from("");
        let mut interned: std::collections::HashMap<String, Arc<str>> =
            std::collections::HashMap::new();
        let mut lines = text.split('\n').enumerate().peekable();
        while let Some((index, raw)) = lines.next() {
            let line = raw.strip_suffix('\r').unwrap_or(raw).trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if line.starts_with('[') {
                match line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                    Some(name) if !name.is_empty() && !name.contains(['[', ']']) => {
                        // A section header repeated later reuses the name stored first.
                        section = Arc::clone(
                            interned
                                .entry(name.to_string())
                                .or_insert_with(|| Arc::from(name)),
                        );
                    }
                    _ => issues.push(ParseIssue {
                        line: index + 1,
                        message: format!("malformed section header `{line}`"),
                    }),
                }
                continue;
            }
            let mut joined = String::new();
            let mut current = line.to_string();
            // `\` at the end continues the assignment on the next non-comment line.
            while let Some(stripped) = current.strip_suffix('\\') {
                joined.push_str(stripped);
                joined.push(' ');
                current = String::new();
                for (_, next) in lines.by_ref() {
                    let next = next.strip_suffix('\r').unwrap_or(next).trim();
                    if next.starts_with('#') || next.starts_with(';') {
                        continue;
                    }
                    current = next.to_string();
                    break;
                }
            }
            joined.push_str(&current);
            let Some((key, value)) = joined.split_once('=') else {
                issues.push(ParseIssue {
                    line: index + 1,
                    message: format!("`{}` is not a `Key=Value` assignment", joined.trim()),
                });
                continue;
            };
            let key = key.trim();
            if section.is_empty() || key.is_empty() {
                issues.push(ParseIssue {
                    line: index + 1,
                    message: if key.is_empty() {
                        "assignment without a key".to_string()
                    } else {
                        format!("`{key}` is assigned outside of any section")
                    },
                });
                continue;
            }
            self.assignments.push(Assignment {
                section: Arc::clone(&section),
                key: key.to_string(),
                value: value.trim().to_string(),
            });
        }
        issues
    }

    /// Parses one file.
    pub fn parse(text: &str) -> (UnitFile, Vec<ParseIssue>) {
        let mut unit = UnitFile::default();
        let issues = unit.parse_more(text);
        (unit, issues)
    }

    /// Every assignment in order.
    pub fn assignments(&self) -> &[Assignment] {
        &self.assignments
    }

    /// Every value of `key` in `section`, in order; an empty assignment clears the ones
    /// before it (systemd's list semantics).
    pub fn all(&self, section: &str, key: &str) -> Vec<&str> {
        let mut values = Vec::new();
        for a in &self.assignments {
            if &*a.section == section && a.key == key {
                if a.value.is_empty() {
                    values.clear();
                } else {
                    values.push(a.value.as_str());
                }
            }
        }
        values
    }

    /// The last value of `key` in `section` (later assignments override earlier ones).
    pub fn last(&self, section: &str, key: &str) -> Option<&str> {
        self.assignments
            .iter()
            .rev()
            .find(|a| &*a.section == section && a.key == key)
            .map(|a| a.value.as_str())
            .filter(|v| !v.is_empty())
    }

    /// Sections in order of first appearance, with how many assignments each has.
    pub fn sections(&self) -> BTreeMap<&str, usize> {
        let mut map = BTreeMap::new();
        for a in &self.assignments {
            *map.entry(&*a.section).or_insert(0) += 1;
        }
        map
    }
}

/// Splits a value into words the way systemd does for lists: whitespace separates words,
/// `"…"` and `'…'` group, `\` escapes the next character. Unbalanced quotes run to the end.
pub fn split_words(value: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (_, '\\') => {
                if let Some(next) = chars.next() {
                    word.push(next);
                }
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// The value with quoting removed when it is one quoted word (`"a b"` → `a b`), else as is.
pub fn unquote(value: &str) -> String {
    let words = split_words(value);
    match words.as_slice() {
        [one] if value.starts_with(['"', '\'']) => one.clone(),
        _ => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuations_join_with_a_space_and_skip_comment_lines() {
        let (unit, issues) = UnitFile::parse(
            "[Container]\nExec=sleep \\\n# comment\n  1000\nVolume=a:/a\n; c\nVolume=b:/b\n",
        );
        assert!(issues.is_empty(), "{issues:?}");
        assert_eq!(unit.last("Container", "Exec"), Some("sleep  1000"));
        assert_eq!(unit.all("Container", "Volume"), vec!["a:/a", "b:/b"]);
    }

    #[test]
    fn an_empty_assignment_clears_the_list() {
        let (unit, _) = UnitFile::parse("[C]\nVolume=a:/a\nVolume=\nVolume=b:/b\n");
        assert_eq!(unit.all("C", "Volume"), vec!["b:/b"]);
    }

    #[test]
    fn quoted_words_split_and_unquote() {
        assert_eq!(
            split_words(r#"a "b c" 'd e' f\ g"#),
            vec!["a", "b c", "d e", "f g"]
        );
        assert_eq!(unquote(r#""my vol:/data""#), "my vol:/data");
        assert_eq!(unquote("plain:/x"), "plain:/x");
    }

    #[test]
    fn malformed_lines_are_reported_not_fatal() {
        let (unit, issues) = UnitFile::parse("Key=outside\n[Bad\n[S]\nno equals\nK=v\n");
        assert_eq!(issues.len(), 3, "{issues:?}");
        assert_eq!(unit.last("S", "K"), Some("v"));
    }
}
