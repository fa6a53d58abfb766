//! Where a config error is and how it reads.
//!
//! Owns: [`ConfigError`] (one line naming the dotted key and the 1-based line and column of
//! the offending value, or key), finding the key at a byte offset of the text, and the serde
//! wording put in the words of a config file. Must not: decide what is an error (`check`
//! does).

use std::ops::Range;

/// A config that could not be parsed or validated. `Display` is one line: where (1-based line
/// and column, columns counted in characters), the dotted key, then what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{}", render(.key, .line, .column, .message))]
pub struct ConfigError {
    pub message: String,
    pub key: Option<String>,
    pub line: Option<usize>,
    pub column: Option<usize>,
}

fn render(
    key: &Option<String>,
    line: &Option<usize>,
    column: &Option<usize>,
    message: &str,
) -> String {
    let mut out = String::new();
    if let (Some(line), Some(column)) = (line, column) {
        out.push_str(&format!("line {line}, column {column}: "));
    }
    if let Some(key) = key {
        out.push_str(key);
        out.push_str(": ");
    }
    out.push_str(message);
    out
}

impl ConfigError {
    /// An error at byte offset `span.start` of `text`. Without an explicit `key`, the key is
    /// the innermost one whose name or value covers that offset.
    pub(super) fn at(
        text: &str,
        span: Range<usize>,
        key: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        let (line, column) = position(text, span.start);
        ConfigError {
            // toml's messages are one line today; keep the promise if that ever changes.
            message: message.into().replace('\n', "; "),
            key: key.or_else(|| key_at(text, span.start)),
            line: Some(line),
            column: Some(column),
        }
    }

    pub(super) fn from_toml(text: &str, e: &toml::de::Error) -> Self {
        let message = plain_words(e.message());
        match e.span() {
            Some(span) => {
                // A duplicate key is left out of the recovered tree: name it from the text.
                let key = (message == "duplicate key")
                    .then(|| bare_key_at(text, span.start))
                    .flatten();
                ConfigError::at(text, span, key, message)
            }
            None => ConfigError {
                message: message.replace('\n', "; "),
                key: None,
                line: None,
                column: None,
            },
        }
    }
}

/// serde's wording in the words of a config file: keys, values, tables, arrays.
fn plain_words(message: &str) -> String {
    let mut m = message.to_string();
    if let Some(rest) = m.strip_prefix("unknown field") {
        m = format!("unknown key{rest}");
    }
    if let Some(rest) = m.strip_prefix("unknown variant") {
        m = format!("unknown value{rest}");
    }
    // Raw struct names mean nothing to the reader.
    if let Some(i) = m.find("expected struct Raw") {
        m.truncate(i);
        m.push_str("expected a table");
    }
    // A key with a narrower range says so in its own check (e.g. `rings`: at least 1).
    m.replace(
        "expected u32",
        "expected a whole number from 0 to 4294967295",
    )
    .replace("expected i64", "expected a whole number")
    .replace("expected a sequence", "expected an array")
    .replace("expected a map", "expected a table")
}

/// The bare key starting at byte `offset`, if there is one.
fn bare_key_at(text: &str, offset: usize) -> Option<String> {
    let rest = text.get(offset..)?;
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .unwrap_or(rest.len());
    (end > 0).then(|| rest[..end].to_string())
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub(super) fn position(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// The dotted path of the innermost key whose name or value covers byte `offset`, e.g.
/// `rules.ring_answer.ring_cycle` or `teams[1].members`.
fn key_at(text: &str, offset: usize) -> Option<String> {
    // Recoverable parsing also names the key of a syntax error where the document allows.
    let (root, _) = toml::de::DeTable::parse_recoverable(text);
    let mut best = None;
    walk_table(root.get_ref(), "", offset, &mut best);
    best.map(|(_, path)| path)
}

fn walk_table(
    table: &toml::de::DeTable<'_>,
    prefix: &str,
    offset: usize,
    best: &mut Option<(usize, String)>,
) {
    for (key, value) in table.iter() {
        let path = join_key(prefix, key.get_ref());
        consider(key.span(), &path, offset, best);
        consider(value.span(), &path, offset, best);
        match value.get_ref() {
            toml::de::DeValue::Table(t) => walk_table(t, &path, offset, best),
            toml::de::DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let toml::de::DeValue::Table(t) = item.get_ref() {
                        let path = format!("{path}[{i}]");
                        consider(item.span(), &path, offset, best);
                        walk_table(t, &path, offset, best);
                    }
                }
            }
            _ => {}
        }
    }
}

fn consider(span: Range<usize>, path: &str, offset: usize, best: &mut Option<(usize, String)>) {
    let covers = span.start <= offset && offset < span.end.max(span.start + 1);
    // `<=`: on a tie the deeper key (visited later) is the more specific one.
    if covers && best.as_ref().is_none_or(|(len, _)| span.len() <= *len) {
        *best = Some((span.len(), path.to_string()));
    }
}

fn join_key(prefix: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let key = if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    };
    if prefix.is_empty() {
        key
    } else {
        format!("{prefix}.{key}")
    }
}
