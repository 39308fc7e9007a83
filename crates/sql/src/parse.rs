//! Parsing statement text with sqlparser (PostgreSQL dialect), with PostgreSQL's error
//! wording and positions, and PostgreSQL's identifier case folding.

use sqlparser::ast::{Ident, ObjectName, Statement};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Token, Tokenizer};

use crate::error::{Error, ErrorKind, Result};

/// A parsed statement and its text.
#[derive(Clone, Debug)]
pub struct Parsed {
    pub stmt: Statement,
    /// The statement's own text (for error positions and view definitions).
    pub sql: String,
    /// `ALTER TABLE <table> SPLIT AT <query>` (which sqlparser does not know): the table;
    /// `stmt` is then the query giving the split points.
    pub split_at: Option<ObjectName>,
}

/// Recognizes `ALTER TABLE name SPLIT AT query` and returns the name's and the query's
/// text.
fn split_at(text: &str) -> Option<(&str, &str)> {
    static SPLIT_AT: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"(?is)^\s*alter\s+table\s+(.+?)\s+split\s+at\s+(.+?)\s*;?\s*$")
            .expect("valid regex")
    });
    let c = SPLIT_AT.captures(text)?;
    Some((c.get(1)?.as_str(), c.get(2)?.as_str()))
}

/// Parses `ALTER TABLE name SPLIT AT query`.
fn parse_split_at(name: &str, query: &str, offset: usize) -> Result<Parsed> {
    let parser = |text: &str| {
        Parser::new(&PostgreSqlDialect {})
            .with_recursion_limit(256)
            .try_with_sql(text)
            .map_err(|e| syntax_error(text, &e, offset))
    };
    let table = parser(name)?
        .parse_object_name(false)
        .map_err(|e| syntax_error(name, &e, offset))?;
    let stmt = parser(query)?
        .parse_statement()
        .map_err(|e| syntax_error(query, &e, offset))?;
    if !matches!(stmt, Statement::Query(_)) {
        return Err(Error::new(
            ErrorKind::Syntax,
            "SPLIT AT takes a query giving the split points, such as VALUES (1), (2)",
        ));
    }
    Ok(Parsed {
        stmt,
        sql: query.to_string(),
        split_at: Some(table),
    })
}

/// Parses a string of one or more statements.
pub fn parse(sql: &str) -> Result<Vec<Parsed>> {
    let pieces = split_statements(sql);
    let mut out = Vec::with_capacity(pieces.len());
    for (offset, text) in pieces {
        if let Some((name, query)) = split_at(&text) {
            out.push(parse_split_at(name, query, offset)?);
            continue;
        }
        let text = compat(text);
        let stmts = Parser::new(&PostgreSqlDialect {})
            .with_recursion_limit(256)
            .try_with_sql(&text)
            .and_then(|mut p| p.parse_statements())
            .map_err(|e| syntax_error(&text, &e, offset))?;
        for stmt in stmts {
            out.push(Parsed {
                stmt,
                sql: text.clone(),
                split_at: None,
            });
        }
    }
    Ok(out)
}

/// Splits text at top-level semicolons (outside strings, identifiers and comments), so
/// that each statement is parsed alone and errors point into the whole text. Returns each
/// piece with the character offset where it starts.
/// Splits a string into statements with their byte offsets (without parsing them).
pub fn split_statements(sql: &str) -> Vec<(usize, String)> {
    // The common case, one statement without a semicolon, needs no tokenizing.
    if !sql.contains(';') {
        return if sql.trim().is_empty() {
            Vec::new()
        } else {
            vec![(0, sql.to_string())]
        };
    }
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize_with_location() else {
        return vec![(0, sql.to_string())];
    };
    let chars: Vec<char> = sql.chars().collect();
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(
            chars
                .iter()
                .enumerate()
                .filter(|(_, c)| **c == '\n')
                .map(|(i, _)| i + 1),
        )
        .collect();
    let offset_of = |line: u64, col: u64| -> Option<usize> {
        let ls = *line_starts.get(usize::try_from(line).ok()?.checked_sub(1)?)?;
        Some(ls + usize::try_from(col).ok()?.checked_sub(1)?)
    };
    let mut pieces = Vec::new();
    let mut start = 0;
    for t in &tokens {
        if t.token == Token::SemiColon
            && let Some(pos) = offset_of(t.span.start.line, t.span.start.column)
        {
            let text: String = chars[start..pos].iter().collect();
            if !text.trim().is_empty() {
                pieces.push((start, text));
            }
            start = pos + 1;
        }
    }
    let rest: String = chars[start.min(chars.len())..].iter().collect();
    if !rest.trim().is_empty() {
        pieces.push((start, rest));
    }
    pieces
}

/// sqlparser takes only TRUE/FALSE after COPY's FREEZE and HEADER options; PostgreSQL
/// also takes ON/OFF/1/0 (pgbench sends `freeze on`).
fn compat(text: String) -> String {
    // VACUUM and ANALYZE are no-ops here; sqlparser does not take their PostgreSQL
    // forms with table names (`vacuum analyze pgbench_branches`).
    let first = text
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if first == "vacuum" || first == "analyze" || first == "analyse" {
        return "VACUUM".to_string();
    }
    copy_compat(text)
}

fn copy_compat(text: String) -> String {
    static BOOL_OPTION: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"(?i)\b(freeze|header)\s+(on|off|1|0)\b").expect("valid regex")
    });
    if !text
        .trim_start()
        .get(..4)
        .is_some_and(|s| s.eq_ignore_ascii_case("copy"))
    {
        return text;
    }
    BOOL_OPTION
        .replace_all(&text, |c: &regex::Captures<'_>| {
            let on = matches!(c[2].to_ascii_lowercase().as_str(), "on" | "1");
            format!("{} {}", &c[1], if on { "TRUE" } else { "FALSE" })
        })
        .into_owned()
}

/// Builds PostgreSQL's syntax error from a parser error.
fn syntax_error(sql: &str, err: &ParserError, offset: usize) -> Error {
    let msg = match err {
        ParserError::ParserError(m) | ParserError::TokenizerError(m) => m.clone(),
        ParserError::RecursionLimitExceeded => {
            return Error::new(
                ErrorKind::ProgramLimitExceeded,
                "statement is too deeply nested",
            );
        }
    };
    let (body, position) = match msg.rfind(" at Line: ") {
        Some(i) => (
            msg[..i].to_string(),
            location_to_position(sql, &msg[i + 10..]),
        ),
        None => (
            msg.clone(),
            msg.ends_with("found: EOF").then(|| sql.chars().count() + 1),
        ),
    };
    let message = if let Some(found) = body.split("found: ").nth(1) {
        if found == "EOF" {
            "syntax error at end of input".to_string()
        } else {
            let token = found.trim_matches('\'');
            format!("syntax error at or near \"{token}\"")
        }
    } else if body.to_ascii_lowercase().contains("unterminated") {
        "unterminated quoted string".to_string()
    } else {
        format!("syntax error: {body}")
    };
    Error::new(ErrorKind::Syntax, message)
        .with_detail(body)
        .at(position.map(|p| p + offset))
}

fn location_to_position(sql: &str, loc: &str) -> Option<usize> {
    let (l, c) = loc.split_once(", Column: ")?;
    let (line, col): (u64, u64) = (l.trim().parse().ok()?, c.trim().parse().ok()?);
    let (mut ln, mut cl) = (1u64, 1u64);
    for (idx, ch) in sql.chars().enumerate() {
        if ln == line && cl == col {
            return Some(idx + 1);
        }
        if ch == '\n' {
            ln += 1;
            cl = 1;
        } else {
            cl += 1;
        }
    }
    Some(sql.chars().count() + 1)
}

/// Folds an identifier as PostgreSQL does: unquoted names go to lower case.
pub fn ident(i: &Ident) -> String {
    match i.quote_style {
        Some('"') => i.value.clone(),
        _ => i.value.to_ascii_lowercase(),
    }
}

/// Folds every part of a qualified name.
pub fn object_name(n: &ObjectName) -> Result<Vec<String>> {
    n.0.iter()
        .map(|p| {
            p.as_ident()
                .map(ident)
                .ok_or_else(|| Error::unsupported(format!("the name part {p}")))
        })
        .collect()
}

/// Returns the last part of a qualified name and its qualifiers.
pub fn split_name(n: &ObjectName) -> Result<(Vec<String>, String)> {
    let mut parts = object_name(n)?;
    let last = parts
        .pop()
        .ok_or_else(|| Error::new(ErrorKind::Syntax, "empty name"))?;
    Ok((parts, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_statements_outside_strings() {
        let p = parse("SELECT 'a;b'; SELECT 2;;").unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].sql, "SELECT 'a;b'");
    }

    #[test]
    fn syntax_errors_have_postgres_wording_and_position() {
        let e = parse("SELECT 1;\nSELEC 2").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Syntax);
        assert_eq!(e.message, "syntax error at or near \"SELEC\"");
        assert_eq!(e.position, Some(11));
        let e = parse("SELECT * FROM").unwrap_err();
        assert_eq!(e.message, "syntax error at end of input");
        assert_eq!(e.position, Some(14));
    }
}
