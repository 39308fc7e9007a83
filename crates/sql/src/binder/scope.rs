//! Scopes: the columns visible to an expression, and how names resolve to them.

use crate::error::{Error, ErrorKind, Result};
use crate::plan::Column;
use crate::types::SqlType;

/// One visible column.
#[derive(Clone, Debug)]
pub struct ScopeCol {
    /// The alias (or name) of the relation it belongs to.
    pub table: Option<String>,
    pub name: String,
    pub ty: SqlType,
    /// Hidden columns (a table's row id, the right side of USING) are not in `*` and not
    /// found by unqualified names.
    pub hidden: bool,
    pub table_oid: u32,
    pub attnum: i16,
}

/// The columns of a row, in order.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    pub cols: Vec<ScopeCol>,
}

/// The result of looking up a name in a scope.
pub enum Lookup {
    Found(usize),
    NotFound,
}

impl Scope {
    /// Returns a scope of anonymous columns.
    pub fn from_types(types: &[SqlType]) -> Scope {
        Scope {
            cols: types
                .iter()
                .enumerate()
                .map(|(i, t)| ScopeCol {
                    table: None,
                    name: format!("?column{i}?"),
                    ty: t.clone(),
                    hidden: true,
                    table_oid: 0,
                    attnum: 0,
                })
                .collect(),
        }
    }

    /// Returns the scope of a relation's columns under an alias.
    pub fn for_relation(alias: &str, cols: &[Column]) -> Scope {
        Scope {
            cols: cols
                .iter()
                .map(|c| ScopeCol {
                    table: Some(alias.to_string()),
                    name: c.name.clone(),
                    ty: c.ty.clone(),
                    hidden: false,
                    table_oid: c.table_oid,
                    attnum: c.column_attnum,
                })
                .collect(),
        }
    }

    /// Appends another scope's columns.
    pub fn extend(&mut self, other: Scope) {
        self.cols.extend(other.cols);
    }

    /// Returns the number of columns.
    pub fn len(&self) -> usize {
        self.cols.len()
    }

    /// Returns true if the scope has no columns.
    pub fn is_empty(&self) -> bool {
        self.cols.is_empty()
    }

    /// Finds `name` (optionally qualified by `table`): an error if it is ambiguous.
    pub fn lookup(&self, table: Option<&str>, name: &str) -> Result<Lookup> {
        let mut found = None;
        for (i, c) in self.cols.iter().enumerate() {
            let table_ok = match table {
                Some(t) => c.table.as_deref() == Some(t),
                None => !c.hidden,
            };
            if table_ok && c.name == name {
                if let Some(prev) = found {
                    let prev: usize = prev;
                    // The same column reached twice (e.g. through USING) is not ambiguous.
                    if self.cols[prev].table == c.table {
                        continue;
                    }
                    return Err(Error::new(
                        ErrorKind::AmbiguousColumn,
                        format!("column reference \"{name}\" is ambiguous"),
                    ));
                }
                found = Some(i);
            }
        }
        if found.is_none() && table.is_none() {
            // Hidden columns (row ids) are reachable by their exact name.
            found = self
                .cols
                .iter()
                .position(|c| c.hidden && c.name == name && c.table.is_some());
        }
        Ok(found.map_or(Lookup::NotFound, Lookup::Found))
    }

    /// Returns true if some column belongs to relation `table`.
    pub fn has_table(&self, table: &str) -> bool {
        self.cols.iter().any(|c| c.table.as_deref() == Some(table))
    }

    /// Returns the output columns of a scope (for derived tables and views).
    pub fn columns(&self) -> Vec<Column> {
        self.cols
            .iter()
            .map(|c| Column {
                name: c.name.clone(),
                ty: c.ty.clone(),
                table_oid: c.table_oid,
                column_attnum: c.attnum,
            })
            .collect()
    }
}
