//! A small CSV reader for ground-truth and metadata files: RFC 4180 quoting (`"a,b"`, `""`), `\n` or `\r\n`
//! line ends, a UTF-8 byte-order mark, blank lines skipped, fields trimmed. Every row remembers its line number so
//! errors can name it.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

#[derive(Clone, Debug)]
pub struct Row {
    /// 1-based line number in the file.
    pub line: usize,
    pub fields: Vec<String>,
}

impl Row {
    pub fn get(&self, col: usize) -> &str {
        self.fields.get(col).map(String::as_str).unwrap_or("")
    }
}

/// A CSV file: its first row and the rest.
#[derive(Clone, Debug)]
pub struct Table {
    pub path: PathBuf,
    /// All rows, the header (if any) included.
    pub rows: Vec<Row>,
}

impl Table {
    /// Reads `path`; a missing file is an error naming it and `what` it should hold.
    pub fn read(path: &Path, what: &str) -> Result<Table> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::Invalid(format!("{}: missing CSV file ({what})", path.display())));
            }
            Err(e) => return Err(Error::io(path, e)),
        };
        let text = String::from_utf8(bytes).map_err(|_| Error::Invalid(format!("{}: not a UTF-8 text (CSV) file", path.display())))?;
        Ok(Table { path: path.to_path_buf(), rows: parse(&text) })
    }

    /// The first row, taken as the header; an empty file is an error.
    pub fn header(&self) -> Result<&Row> {
        self.rows.first().ok_or_else(|| Error::Invalid(format!("{}: empty CSV file (no header)", self.path.display())))
    }

    /// Rows after the header.
    pub fn records(&self) -> &[Row] {
        self.rows.get(1..).unwrap_or(&[])
    }

    /// Index of the header column named `name` (ASCII case-insensitive).
    pub fn column(&self, name: &str) -> Option<usize> {
        self.rows.first()?.fields.iter().position(|f| f.eq_ignore_ascii_case(name))
    }

    /// Like [`Table::column`], but a missing column is an error naming the file, the column and the header.
    pub fn require(&self, name: &str) -> Result<usize> {
        let header = self.header()?;
        self.column(name).ok_or_else(|| {
            Error::Invalid(format!("{}:{}: no column '{name}' in header [{}]", self.path.display(), header.line, header.fields.join(",")))
        })
    }

    /// An error about `row`: `path:line: msg`.
    pub fn err(&self, row: &Row, msg: impl fmt::Display) -> Error {
        Error::Invalid(format!("{}:{}: {msg}", self.path.display(), row.line))
    }
}

/// Splits CSV text into rows of trimmed fields.
pub fn parse(text: &str) -> Vec<Row> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rows = Vec::new();
    let mut fields = Vec::new();
    let mut field = String::new();
    let (mut in_quotes, mut was_quoted) = (false, false);
    let (mut line, mut row_line) = (1usize, 1usize);
    let mut chars = text.chars().peekable();
    let finish_row = |fields: &mut Vec<String>, rows: &mut Vec<Row>, row_line: usize| {
        if !(fields.len() == 1 && fields[0].is_empty()) {
            rows.push(Row { line: row_line, fields: std::mem::take(fields) });
        }
        fields.clear();
    };
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.trim().is_empty() && !was_quoted => {
                field.clear();
                in_quotes = true;
                was_quoted = true;
            }
            ',' => {
                fields.push(take_field(&mut field, was_quoted));
                was_quoted = false;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                fields.push(take_field(&mut field, was_quoted));
                was_quoted = false;
                finish_row(&mut fields, &mut rows, row_line);
                line += 1;
                row_line = line;
            }
            _ => field.push(c),
        }
    }
    if !field.is_empty() || !fields.is_empty() || was_quoted {
        fields.push(take_field(&mut field, was_quoted));
        finish_row(&mut fields, &mut rows, row_line);
    }
    rows
}

fn take_field(field: &mut String, quoted: bool) -> String {
    let f = std::mem::take(field);
    if quoted {
        f
    } else {
        f.trim().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_bom_crlf_and_blank_lines() {
        let rows = parse("\u{feff}a,b\r\n\r\n\"x,1\", 2 \n\"he said \"\"hi\"\"\",3");
        let got: Vec<(usize, Vec<&str>)> = rows.iter().map(|r| (r.line, r.fields.iter().map(String::as_str).collect())).collect();
        assert_eq!(got, vec![(1, vec!["a", "b"]), (3, vec!["x,1", "2"]), (4, vec!["he said \"hi\"", "3"])]);
    }
}
