//! Loading configuration-like JSON (rules, policies, diagnostics) with errors that name the file,
//! the JSON path and the fix.

use serde::de::DeserializeOwned;

/// Largest configuration document accepted (rules files, policies). Bigger input is rejected
/// before parsing.
pub const MAX_CONFIG_BYTES: usize = 1024 * 1024;

/// A document that could not be loaded: where, what, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: at {path}: {message}; fix: {fix}")]
pub struct ConfigError {
    /// The file (or logical source, e.g. `scenario web-app-crash: policy`).
    pub file: String,
    /// JSON path of the offending value (`rules[3].when.all[1].gt`), `$` for the whole document.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub fix: String,
}

impl ConfigError {
    pub fn new(
        file: impl Into<String>,
        path: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            file: file.into(),
            path: path.into(),
            message: message.into(),
            fix: fix.into(),
        }
    }
}

/// Reads a configuration file; returns its name for error messages and its text.
pub fn read_file(path: &std::path::Path) -> Result<(String, String), ConfigError> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((file, text)),
        Err(e) => Err(ConfigError::new(
            file,
            "$",
            format!("cannot read the file: {e}"),
            "check the path and permissions",
        )),
    }
}

/// Deserialises `text` as `T`, turning serde's error into a [`ConfigError`] whose path is the JSON
/// path of the bad value and whose fix comes from `fix_for(path, message)`.
pub fn parse_json<T: DeserializeOwned>(
    file: &str,
    text: &str,
    fix_for: impl Fn(&str, &str) -> String,
) -> Result<T, ConfigError> {
    if text.len() > MAX_CONFIG_BYTES {
        return Err(ConfigError::new(
            file,
            "$",
            format!(
                "document is {} bytes, more than the {MAX_CONFIG_BYTES}-byte limit",
                text.len()
            ),
            "split the document or remove unused entries",
        ));
    }
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = json_path(&err.path().to_string());
        let inner = err.into_inner();
        let message = strip_position(&inner.to_string());
        let fix = if inner.is_syntax() || inner.is_eof() {
            format!(
                "the document is not valid JSON near line {} column {}: check for a missing comma, quote or bracket",
                inner.line(),
                inner.column()
            )
        } else {
            fix_for(&path, &message)
        };
        ConfigError { file: file.to_owned(), path, message, fix }
    })
}

/// serde_path_to_error prints `.` for the root and `a.b[1]` otherwise; we print `$` and `a.b[1]`.
fn json_path(p: &str) -> String {
    if p.is_empty() || p == "." {
        "$".to_owned()
    } else {
        p.to_owned()
    }
}

/// serde_json appends " at line L column C"; the path already says where.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

/// The last field name of a JSON path (`rules[3].when.gt` → `gt`, `a.b[2]` → `b`).
pub fn last_field(path: &str) -> &str {
    let trimmed = path.trim_end_matches(|c: char| c == ']' || c.is_ascii_digit() || c == '[');
    trimmed.rsplit('.').next().unwrap_or(trimmed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Doc {
        items: Vec<Item>,
    }
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Item {
        n: u32,
    }

    #[test]
    fn errors_name_the_path_of_the_bad_value() {
        let err = parse_json::<Doc>("f.json", r#"{"items":[{"n":1},{"n":-2}]}"#, |p, _| {
            format!("fix {p}")
        })
        .expect_err("negative");
        assert_eq!(err.file, "f.json");
        assert_eq!(err.path, "items[1].n");
        assert!(err.message.contains("-2"), "{}", err.message);
        assert_eq!(err.fix, "fix items[1].n");
    }

    #[test]
    fn unknown_fields_are_named() {
        let err = parse_json::<Doc>("f.json", r#"{"items":[],"itmes":[]}"#, |_, _| String::new())
            .expect_err("unknown");
        assert!(err.message.contains("itmes"), "{}", err.message);
    }

    #[test]
    fn syntax_errors_give_line_and_column_in_the_fix() {
        let err = parse_json::<Doc>("f.json", "{\"items\": [\n}", |_, _| String::new())
            .expect_err("syntax");
        assert!(err.fix.contains("line 2"), "{}", err.fix);
    }

    #[test]
    fn oversized_documents_are_rejected_before_parsing() {
        let big = " ".repeat(MAX_CONFIG_BYTES + 1);
        let err = parse_json::<Doc>("f.json", &big, |_, _| String::new()).expect_err("big");
        assert_eq!(err.path, "$");
    }

    #[test]
    fn last_field_of_a_path() {
        assert_eq!(last_field("rules[3].when.gt"), "gt");
        assert_eq!(last_field("a.b[2]"), "b");
        assert_eq!(last_field("cooldown_s"), "cooldown_s");
    }
}
