//! COPY text and CSV formats.

use crate::error::{Error, ErrorKind, Result};
use crate::textio;
use crate::types::SqlType;
use crate::value::Value;

/// The options of a COPY statement.
#[derive(Clone, Debug)]
pub struct CopyFormat {
    pub csv: bool,
    pub delimiter: char,
    pub null: String,
    pub header: bool,
    pub quote: char,
    pub escape: char,
    /// PostgreSQL's binary COPY format (decoded and encoded by the wire layer).
    pub binary: bool,
}

impl Default for CopyFormat {
    fn default() -> Self {
        CopyFormat {
            csv: false,
            delimiter: '\t',
            null: "\\N".into(),
            header: false,
            quote: '"',
            escape: '"',
            binary: false,
        }
    }
}

impl CopyFormat {
    /// The CSV defaults.
    pub fn csv() -> Self {
        CopyFormat {
            csv: true,
            delimiter: ',',
            null: String::new(),
            header: false,
            quote: '"',
            escape: '"',
            binary: false,
        }
    }
}

fn bad(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidTextRepresentation, msg)
}

/// Splits accumulated input into complete lines, leaving a partial last line in `buf`.
/// CSV lines may span several physical lines inside quotes.
pub fn take_lines(buf: &mut Vec<u8>, fmt: &CopyFormat) -> Vec<String> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    let mut i = 0;
    while i < buf.len() {
        let c = buf[i];
        if fmt.csv && c == fmt.quote as u8 {
            in_quotes = !in_quotes;
        } else if c == b'\n' && !in_quotes {
            let mut line = &buf[start..i];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            lines.push(String::from_utf8_lossy(line).into_owned());
            start = i + 1;
        }
        i += 1;
    }
    buf.drain(..start);
    lines
}

/// Parses one data line into values of `types`. Returns `None` for the end marker `\.`.
pub fn parse_line(line: &str, fmt: &CopyFormat, types: &[SqlType]) -> Result<Option<Vec<Value>>> {
    if line == "\\." {
        return Ok(None);
    }
    let fields: Vec<Option<String>> = if fmt.csv {
        split_csv(line, fmt)?
    } else {
        split_text(line, fmt)?
    };
    if fields.len() != types.len() {
        return Err(if fields.len() < types.len() {
            bad(format!("missing data for column {}", fields.len() + 1))
        } else {
            bad("extra data after last expected column")
        });
    }
    let mut out = Vec::with_capacity(types.len());
    for (f, t) in fields.into_iter().zip(types) {
        out.push(match f {
            None => Value::Null,
            Some(s) => textio::from_text(&s, t)?,
        });
    }
    Ok(Some(out))
}

fn split_text(line: &str, fmt: &CopyFormat) -> Result<Vec<Option<String>>> {
    let mut out = Vec::new();
    for raw in line.split(fmt.delimiter) {
        if raw == fmt.null {
            out.push(None);
            continue;
        }
        let mut s = String::with_capacity(raw.len());
        let mut chars = raw.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '\\' {
                s.push(c);
                continue;
            }
            match chars.next() {
                Some('t') => s.push('\t'),
                Some('n') => s.push('\n'),
                Some('r') => s.push('\r'),
                Some('b') => s.push('\u{8}'),
                Some('f') => s.push('\u{c}'),
                Some('v') => s.push('\u{b}'),
                Some(d) if d.is_digit(8) => {
                    let mut v = d.to_digit(8).unwrap_or(0);
                    for _ in 0..2 {
                        match chars.peek().and_then(|c| c.to_digit(8)) {
                            Some(x) => {
                                v = v * 8 + x;
                                chars.next();
                            }
                            None => break,
                        }
                    }
                    s.push(char::from_u32(v).unwrap_or('?'));
                }
                Some(o) => s.push(o),
                None => s.push('\\'),
            }
        }
        out.push(Some(s));
    }
    Ok(out)
}

fn split_csv(line: &str, fmt: &CopyFormat) -> Result<Vec<Option<String>>> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        let mut quoted = false;
        if chars.peek() == Some(&fmt.quote) {
            quoted = true;
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(bad("unterminated CSV quoted field")),
                    Some(c) if c == fmt.escape && chars.peek() == Some(&fmt.quote) => {
                        chars.next();
                        field.push(fmt.quote);
                    }
                    Some(c) if c == fmt.quote => break,
                    Some(c) => field.push(c),
                }
            }
        }
        while let Some(&c) = chars.peek() {
            if c == fmt.delimiter {
                break;
            }
            field.push(c);
            chars.next();
        }
        out.push(if !quoted && field == fmt.null {
            None
        } else {
            Some(field)
        });
        match chars.next() {
            Some(c) if c == fmt.delimiter => continue,
            _ => break,
        }
    }
    Ok(out)
}

/// Formats a row as one line (with its newline).
pub fn format_row(row: &[Value], types: &[SqlType], fmt: &CopyFormat) -> String {
    let mut parts = Vec::with_capacity(row.len());
    for (v, t) in row.iter().zip(types) {
        let s = match textio::to_text(v, t) {
            None => fmt.null.clone(),
            Some(s) if fmt.csv => {
                let needs = s.is_empty()
                    || s.contains(fmt.delimiter)
                    || s.contains(fmt.quote)
                    || s.contains('\n')
                    || s.contains('\r')
                    || s == fmt.null;
                if needs {
                    let q = fmt.quote.to_string();
                    format!("{q}{}{q}", s.replace(&q, &format!("{}{q}", fmt.escape)))
                } else {
                    s
                }
            }
            Some(s) => {
                let mut e = String::with_capacity(s.len());
                for c in s.chars() {
                    match c {
                        '\\' => e.push_str("\\\\"),
                        '\n' => e.push_str("\\n"),
                        '\r' => e.push_str("\\r"),
                        '\t' => e.push_str("\\t"),
                        c if c == fmt.delimiter => {
                            e.push('\\');
                            e.push(c);
                        }
                        c => e.push(c),
                    }
                }
                e
            }
        };
        parts.push(s);
    }
    let mut line = parts.join(&fmt.delimiter.to_string());
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_format_round_trips_escapes_and_nulls() {
        let types = [SqlType::Int4, SqlType::Text, SqlType::Text];
        let row = vec![Value::Int(1), Value::Text("a\tb\\c\nd".into()), Value::Null];
        let fmt = CopyFormat::default();
        let line = format_row(&row, &types, &fmt);
        assert_eq!(line, "1\ta\\tb\\\\c\\nd\t\\N\n");
        let back = parse_line(line.trim_end_matches('\n'), &fmt, &types)
            .unwrap()
            .unwrap();
        assert_eq!(back, row);
    }

    #[test]
    fn csv_quotes_and_embedded_newlines() {
        let fmt = CopyFormat::csv();
        let mut buf = b"1,\"x,\"\"y\"\"\"\n2,\"multi\nline\"\n3,".to_vec();
        let lines = take_lines(&mut buf, &fmt);
        assert_eq!(lines.len(), 2);
        assert_eq!(buf, b"3,");
        let types = [SqlType::Int4, SqlType::Text];
        assert_eq!(
            parse_line(&lines[0], &fmt, &types).unwrap().unwrap()[1],
            Value::Text("x,\"y\"".into())
        );
        assert_eq!(
            parse_line(&lines[1], &fmt, &types).unwrap().unwrap()[1],
            Value::Text("multi\nline".into())
        );
        assert_eq!(
            parse_line("4,", &fmt, &types).unwrap().unwrap()[1],
            Value::Null
        );
        assert!(parse_line("4", &fmt, &types).is_err());
    }
}
