//! Binding INSERT, UPDATE and DELETE.

use std::sync::Arc;

use sqlparser::ast::{self as ast, AssignmentTarget, FromTable, SelectItem, SetExpr, TableFactor};

use super::Binder;
use super::expr::ExprCtx;
use super::scope::{Scope, ScopeCol};
use crate::catalog::{Descriptor, TableDesc};
use crate::error::{Error, ErrorKind, Result};
use crate::expr::Expr;
use crate::parse;
use crate::plan::{Column, Plan};
use crate::types::SqlType;

/// How a column gets its value when none is given.
#[derive(Clone, Debug)]
pub enum DefaultValue {
    Null,
    Expr(Expr),
    /// The next value of a sequence (SERIAL, IDENTITY).
    Sequence(u64),
    /// A fresh row id (tables without a primary key).
    RowId,
}

#[derive(Clone, Debug)]
pub enum ConflictAction {
    Nothing,
    /// `SET` assignments and an optional `WHERE`, over the existing row followed by the
    /// proposed row (`EXCLUDED`).
    Update {
        assignments: Vec<(usize, Expr)>,
        filter: Option<Expr>,
    },
}

#[derive(Clone, Debug)]
pub struct OnConflict {
    /// The unique index whose conflicts are handled; `None` for any (DO NOTHING only).
    pub index: Option<u32>,
    pub action: ConflictAction,
}

/// Where inserted rows come from.
#[derive(Clone, Debug)]
pub enum InsertSource {
    /// VALUES rows; `None` marks DEFAULT.
    Values(Vec<Vec<Option<Expr>>>),
    Query(Plan),
    DefaultValues,
}

#[derive(Clone, Debug)]
pub struct InsertPlan {
    pub table: Arc<TableDesc>,
    /// Live-column positions the source provides, in source order.
    pub targets: Vec<usize>,
    pub source: InsertSource,
    /// The default of every live column, by position.
    pub defaults: Vec<DefaultValue>,
    pub checks: Vec<(String, Expr)>,
    pub on_conflict: Option<OnConflict>,
    pub returning: Option<Vec<Expr>>,
    pub columns: Vec<Column>,
}

#[derive(Clone, Debug)]
pub struct UpdatePlan {
    pub table: Arc<TableDesc>,
    /// Rows to update: the table's live columns first, then columns of FROM items.
    pub scan: Plan,
    /// New values by live-column position, over a scan row.
    pub assignments: Vec<(usize, Expr)>,
    pub defaults: Vec<DefaultValue>,
    pub checks: Vec<(String, Expr)>,
    pub returning: Option<Vec<Expr>>,
    pub columns: Vec<Column>,
}

#[derive(Clone, Debug)]
pub struct DeletePlan {
    pub table: Arc<TableDesc>,
    pub scan: Plan,
    pub returning: Option<Vec<Expr>>,
    pub columns: Vec<Column>,
}

fn is_default(e: &ast::Expr) -> bool {
    matches!(e, ast::Expr::Identifier(i) if i.quote_style.is_none() && i.value.eq_ignore_ascii_case("default"))
}

/// The scope of a table's rows.
pub fn table_scope(t: &TableDesc, alias: &str) -> Scope {
    Scope {
        cols: t
            .live_columns()
            .map(|c| ScopeCol {
                table: Some(alias.to_string()),
                name: c.name.clone(),
                ty: c.ty.clone(),
                hidden: c.hidden,
                table_oid: t.id as u32,
                attnum: t
                    .visible_columns()
                    .position(|v| v.id == c.id)
                    .map_or(0, |p| p as i16 + 1),
            })
            .collect(),
    }
}

impl Binder<'_> {
    /// Binds a column's DEFAULT.
    pub fn column_default(
        &mut self,
        t: &TableDesc,
        col: &crate::catalog::ColumnDesc,
    ) -> Result<DefaultValue> {
        if col.hidden && col.name == crate::catalog::ROWID {
            return Ok(DefaultValue::RowId);
        }
        let Some(text) = &col.default else {
            return Ok(DefaultValue::Null);
        };
        if let Some(seq) = self.sequence_default(text)? {
            return Ok(DefaultValue::Sequence(seq));
        }
        let parsed = sqlparser::parser::Parser::new(&sqlparser::dialect::PostgreSqlDialect {})
            .try_with_sql(text)
            .and_then(|mut p| p.parse_expr())
            .map_err(|e| {
                Error::internal(format!(
                    "stored default of {}.{} does not parse: {e}",
                    t.name, col.name
                ))
            })?;
        let empty = Scope::default();
        let e = self.bind_expr(&parsed, &mut ExprCtx::plain(&empty, "DEFAULT expressions"))?;
        Ok(DefaultValue::Expr(
            self.coerce_assign(e, &col.ty, &col.name)?,
        ))
    }

    /// Recognises `nextval('name')` defaults and returns the sequence id.
    fn sequence_default(&self, text: &str) -> Result<Option<u64>> {
        let t = text.trim();
        let Some(rest) = t.strip_prefix("nextval('") else {
            return Ok(None);
        };
        let Some(end) = rest.find('\'') else {
            return Ok(None);
        };
        let name = &rest[..end];
        let (schema, seq) = match name.split_once('.') {
            Some((s, n)) => (Some(s), n),
            None => (None, name),
        };
        let sid = self.schema_id(schema)?;
        match self.catalog.lookup(sid, seq) {
            Some(Descriptor::Sequence(s)) => Ok(Some(s.id)),
            _ => Err(Error::new(
                ErrorKind::UndefinedTable,
                format!("relation \"{name}\" does not exist"),
            )),
        }
    }

    /// Binds a table's CHECK constraints over its row scope.
    pub fn table_checks(&mut self, t: &TableDesc, scope: &Scope) -> Result<Vec<(String, Expr)>> {
        let mut out = Vec::new();
        for c in &t.checks {
            let parsed = sqlparser::parser::Parser::new(&sqlparser::dialect::PostgreSqlDialect {})
                .try_with_sql(&c.expr)
                .and_then(|mut p| p.parse_expr())
                .map_err(|e| {
                    Error::internal(format!("stored check {} does not parse: {e}", c.name))
                })?;
            let e =
                self.bind_predicate(&parsed, &mut ExprCtx::plain(scope, "check constraints"))?;
            out.push((c.name.clone(), e));
        }
        Ok(out)
    }

    fn bind_returning(
        &mut self,
        items: &Option<Vec<SelectItem>>,
        scope: &Scope,
    ) -> Result<(Option<Vec<Expr>>, Vec<Column>)> {
        let Some(items) = items else {
            return Ok((None, Vec::new()));
        };
        let mut exprs = Vec::new();
        let mut cols = Vec::new();
        let mut cx = ExprCtx::plain(scope, "RETURNING");
        for item in items {
            match item {
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => {
                    for (i, c) in scope.cols.iter().enumerate() {
                        if !c.hidden {
                            exprs.push(Expr::Column(i, c.ty.clone()));
                            cols.push(Column {
                                name: c.name.clone(),
                                ty: c.ty.clone(),
                                table_oid: c.table_oid,
                                column_attnum: c.attnum,
                            });
                        }
                    }
                }
                SelectItem::UnnamedExpr(e) => {
                    let b = self.bind_expr(e, &mut cx)?;
                    let name = match e {
                        ast::Expr::Identifier(i) => parse::ident(i),
                        ast::Expr::CompoundIdentifier(p) => {
                            p.last().map(parse::ident).unwrap_or_default()
                        }
                        _ => "?column?".to_string(),
                    };
                    cols.push(Column::new(name, b.ty()));
                    exprs.push(b);
                }
                SelectItem::ExprWithAlias { expr, alias } => {
                    let b = self.bind_expr(expr, &mut cx)?;
                    cols.push(Column::new(parse::ident(alias), b.ty()));
                    exprs.push(b);
                }
                SelectItem::ExprWithAliases { .. } => {
                    return Err(Error::unsupported("multiple aliases"));
                }
            }
        }
        Ok((Some(exprs), cols))
    }

    /// Binds INSERT.
    pub fn bind_insert(&mut self, ins: &ast::Insert) -> Result<InsertPlan> {
        let ast::TableObject::TableName(name) = &ins.table else {
            return Err(Error::unsupported("INSERT into a table function"));
        };
        let table = self.table(name)?;
        let alias = ins
            .table_alias
            .as_ref()
            .map_or(table.name.clone(), |a| parse::ident(&a.alias));
        let live: Vec<&crate::catalog::ColumnDesc> = table.live_columns().collect();
        let mut targets: Vec<usize> = if ins.columns.is_empty() {
            let all: Vec<usize> = live
                .iter()
                .enumerate()
                .filter(|(_, c)| !c.hidden)
                .map(|(i, _)| i)
                .collect();
            // Without a column list, the values fill the first columns (the rest get their
            // defaults), as in PostgreSQL.
            let given = match ins.source.as_deref().map(|q| q.body.as_ref()) {
                Some(SetExpr::Values(v)) => v.rows.iter().map(|r| r.len()).max(),
                _ => None,
            };
            match given {
                Some(n) if n < all.len() => all[..n].to_vec(),
                _ => all,
            }
        } else {
            let mut t = Vec::new();
            for c in &ins.columns {
                let n = parse::object_name(c)?.last().cloned().unwrap_or_default();
                let pos = live
                    .iter()
                    .position(|l| l.name == n && !l.hidden)
                    .ok_or_else(|| {
                        Error::new(
                            ErrorKind::UndefinedColumn,
                            format!(
                                "column \"{n}\" of relation \"{}\" does not exist",
                                table.name
                            ),
                        )
                    })?;
                if t.contains(&pos) {
                    return Err(Error::new(
                        ErrorKind::DuplicateColumn,
                        format!("column \"{n}\" specified more than once"),
                    ));
                }
                t.push(pos);
            }
            t
        };
        let overriding = ins.overriding.is_some();
        // Only an explicit value for a GENERATED ALWAYS identity column is an error; DEFAULT
        // is fine.
        let always_error = |name: &str| {
            Error::new(
                ErrorKind::GeneratedAlways,
                format!("cannot insert a non-DEFAULT value into column \"{name}\""),
            )
            .with_detail(format!(
                "Column \"{name}\" is an identity column defined as GENERATED ALWAYS."
            ))
            .with_hint("Use OVERRIDING SYSTEM VALUE to override.")
        };
        let target_types: Vec<SqlType> = targets.iter().map(|p| live[*p].ty.clone()).collect();
        let source = match &ins.source {
            None => InsertSource::DefaultValues,
            Some(q) => match q.body.as_ref() {
                SetExpr::Values(v)
                    if q.order_by.is_none() && q.limit_clause.is_none() && q.with.is_none() =>
                {
                    let empty = Scope::default();
                    let mut rows = Vec::new();
                    for row in &v.rows {
                        if row.len() > targets.len() {
                            return Err(Error::new(
                                ErrorKind::Syntax,
                                "INSERT has more expressions than target columns",
                            ));
                        }
                        if row.len() < targets.len() {
                            return Err(Error::new(
                                ErrorKind::Syntax,
                                "INSERT has more target columns than expressions",
                            ));
                        }
                        let mut out = Vec::new();
                        for (k, e) in row.iter().enumerate() {
                            if is_default(e) {
                                out.push(None);
                                continue;
                            }
                            if live[targets[k]].identity == Some(true) && !overriding {
                                return Err(always_error(&live[targets[k]].name));
                            }
                            let b = self.bind_expr(e, &mut ExprCtx::plain(&empty, "VALUES"))?;
                            out.push(Some(self.coerce_assign(
                                b,
                                &target_types[k],
                                &live[targets[k]].name,
                            )?));
                        }
                        rows.push(out);
                    }
                    InsertSource::Values(rows)
                }
                _ => {
                    let (plan, cols) = self.bind_query(q)?;
                    if ins.columns.is_empty() && cols.len() < targets.len() {
                        targets.truncate(cols.len());
                    }
                    if let Some(&p) = targets.iter().find(|&&p| live[p].identity == Some(true))
                        && !overriding
                    {
                        return Err(always_error(&live[p].name));
                    }
                    if cols.len() > targets.len() {
                        return Err(Error::new(
                            ErrorKind::Syntax,
                            "INSERT has more expressions than target columns",
                        ));
                    }
                    if cols.len() < targets.len() {
                        return Err(Error::new(
                            ErrorKind::Syntax,
                            "INSERT has more target columns than expressions",
                        ));
                    }
                    let mut exprs = Vec::new();
                    for (k, c) in cols.iter().enumerate() {
                        let e = Expr::Column(k, c.ty.clone());
                        exprs.push(self.coerce_assign(
                            e,
                            &target_types[k],
                            &live[targets[k]].name,
                        )?);
                    }
                    InsertSource::Query(Plan::Project {
                        input: Box::new(plan),
                        exprs,
                    })
                }
            },
        };
        let mut defaults = Vec::new();
        for c in &live {
            defaults.push(self.column_default(&table, c)?);
        }
        let scope = table_scope(&table, &alias);
        let checks = self.table_checks(&table, &scope)?;
        let on_conflict = match &ins.on {
            None => None,
            Some(ast::OnInsert::OnConflict(oc)) => Some(self.bind_on_conflict(&table, &alias, oc)?),
            Some(_) => return Err(Error::unsupported("ON DUPLICATE KEY UPDATE")),
        };
        let (returning, columns) = self.bind_returning(&ins.returning, &scope)?;
        Ok(InsertPlan {
            table,
            targets,
            source,
            defaults,
            checks,
            on_conflict,
            returning,
            columns,
        })
    }

    fn bind_on_conflict(
        &mut self,
        table: &Arc<TableDesc>,
        alias: &str,
        oc: &ast::OnConflict,
    ) -> Result<OnConflict> {
        let index = match &oc.conflict_target {
            None => None,
            Some(ast::ConflictTarget::Columns { columns, predicate }) => {
                if predicate.is_some() {
                    return Err(Error::unsupported("ON CONFLICT with a WHERE on the target"));
                }
                let names: Vec<String> = columns.iter().map(parse::ident).collect();
                let ids: Vec<u32> = names
                    .iter()
                    .map(|n| {
                        table.column(n).map(|c| c.id).ok_or_else(|| {
                            Error::new(
                                ErrorKind::UndefinedColumn,
                                format!("column \"{n}\" does not exist"),
                            )
                        })
                    })
                    .collect::<Result<_>>()?;
                let found = table.all_indexes().find(|i| {
                    i.unique
                        && i.columns.len() == ids.len()
                        && i.columns.iter().all(|c| ids.contains(&c.column))
                });
                Some(found.map(|i| i.id).ok_or_else(|| {
                    Error::new(ErrorKind::InvalidColumnReference, "there is no unique or exclusion constraint matching the ON CONFLICT specification")
                })?)
            }
            Some(ast::ConflictTarget::OnConstraint(name)) => {
                let n = parse::object_name(name)?
                    .last()
                    .cloned()
                    .unwrap_or_default();
                let found = table.all_indexes().find(|i| i.unique && i.name == n);
                Some(found.map(|i| i.id).ok_or_else(|| {
                    Error::new(
                        ErrorKind::UndefinedObject,
                        format!(
                            "constraint \"{n}\" for table \"{}\" does not exist",
                            table.name
                        ),
                    )
                })?)
            }
        };
        let action = match &oc.action {
            ast::OnConflictAction::DoNothing => ConflictAction::Nothing,
            ast::OnConflictAction::DoUpdate(du) => {
                if index.is_none() {
                    return Err(Error::new(
                        ErrorKind::Syntax,
                        "ON CONFLICT DO UPDATE requires inference specification or constraint name",
                    )
                    .with_hint("For example, ON CONFLICT (column_name)."));
                }
                let mut scope = table_scope(table, alias);
                scope.extend(table_scope(table, "excluded"));
                let mut assignments = Vec::new();
                for a in &du.assignments {
                    let cols = assignment_columns(&a.target)?;
                    if cols.len() != 1 {
                        return Err(Error::unsupported("multi-column assignment in ON CONFLICT"));
                    }
                    let pos = table
                        .live_columns()
                        .position(|c| c.name == cols[0] && !c.hidden)
                        .ok_or_else(|| {
                            Error::new(
                                ErrorKind::UndefinedColumn,
                                format!(
                                    "column \"{}\" of relation \"{}\" does not exist",
                                    cols[0], table.name
                                ),
                            )
                        })?;
                    let ty = table
                        .live_columns()
                        .nth(pos)
                        .map(|c| c.ty.clone())
                        .unwrap_or(SqlType::Text);
                    let e = if is_default(&a.value) {
                        return Err(Error::unsupported("DEFAULT in ON CONFLICT DO UPDATE"));
                    } else {
                        let b =
                            self.bind_expr(&a.value, &mut ExprCtx::plain(&scope, "ON CONFLICT"))?;
                        self.coerce_assign(b, &ty, &cols[0])?
                    };
                    assignments.push((pos, e));
                }
                let filter = match &du.selection {
                    Some(w) => Some(self.bind_predicate(w, &mut ExprCtx::plain(&scope, "WHERE"))?),
                    None => None,
                };
                ConflictAction::Update {
                    assignments,
                    filter,
                }
            }
        };
        Ok(OnConflict { index, action })
    }

    /// Binds UPDATE.
    pub fn bind_update(&mut self, u: &ast::Update) -> Result<UpdatePlan> {
        let TableFactor::Table { name, alias, .. } = &u.table.relation else {
            return Err(Error::unsupported("UPDATE of this target"));
        };
        if !u.table.joins.is_empty() {
            return Err(Error::unsupported("UPDATE with joins in the target"));
        }
        let table = self.table(name)?;
        let alias_name = alias
            .as_ref()
            .map_or(table.name.clone(), |a| parse::ident(&a.name));
        let mut from = vec![ast::TableWithJoins {
            relation: u.table.relation.clone(),
            joins: vec![],
        }];
        if let Some(f) = &u.from {
            let (ast::UpdateTableFromKind::AfterSet(items)
            | ast::UpdateTableFromKind::BeforeSet(items)) = f;
            from.extend(items.iter().cloned());
        }
        let (scan, scope) = self.bind_from(&from, u.selection.as_ref(), true)?;
        let scan = keep_target_first(scan, &table);
        let mut assignments = Vec::new();
        let mut defaults = Vec::new();
        for c in table.live_columns() {
            defaults.push(self.column_default(&table, c)?);
        }
        for a in &u.assignments {
            let cols = assignment_columns(&a.target)?;
            let values: Vec<&ast::Expr> = match (&a.target, &a.value) {
                (AssignmentTarget::Tuple(_), ast::Expr::Tuple(v)) => v.iter().collect(),
                (AssignmentTarget::Tuple(_), _) => {
                    return Err(Error::unsupported(
                        "assigning a subquery to several columns",
                    ));
                }
                _ => vec![&a.value],
            };
            if values.len() != cols.len() {
                return Err(Error::new(
                    ErrorKind::Syntax,
                    "number of columns does not match number of values",
                ));
            }
            for (n, v) in cols.iter().zip(values) {
                let pos = table
                    .live_columns()
                    .position(|c| c.name == *n && !c.hidden)
                    .ok_or_else(|| {
                        Error::new(
                            ErrorKind::UndefinedColumn,
                            format!(
                                "column \"{n}\" of relation \"{}\" does not exist",
                                table.name
                            ),
                        )
                    })?;
                let col = table.live_columns().nth(pos).expect("position found above");
                if assignments.iter().any(|(p, _)| *p == pos) {
                    return Err(Error::new(
                        ErrorKind::DuplicateColumn,
                        format!("multiple assignments to same column \"{n}\""),
                    ));
                }
                if col.identity == Some(true) && !is_default(v) {
                    return Err(Error::new(
                        ErrorKind::GeneratedAlways,
                        format!("column \"{n}\" can only be updated to DEFAULT"),
                    )
                    .with_detail(format!(
                        "Column \"{n}\" is an identity column defined as GENERATED ALWAYS."
                    )));
                }
                let e = if is_default(v) {
                    match &defaults[pos] {
                        DefaultValue::Expr(e) => e.clone(),
                        DefaultValue::Null => Expr::null(col.ty.clone()),
                        _ => {
                            return Err(Error::unsupported(
                                "SET col = DEFAULT for a sequence-backed column",
                            ));
                        }
                    }
                } else {
                    let b = self.bind_expr(v, &mut ExprCtx::plain(&scope, "UPDATE"))?;
                    self.coerce_assign(b, &col.ty, n)?
                };
                assignments.push((pos, e));
            }
        }
        let tscope = table_scope(&table, &alias_name);
        let checks = self.table_checks(&table, &tscope)?;
        let (returning, columns) = self.bind_returning(&u.returning, &scope)?;
        Ok(UpdatePlan {
            table,
            scan,
            assignments,
            defaults,
            checks,
            returning,
            columns,
        })
    }

    /// Binds DELETE.
    pub fn bind_delete(&mut self, d: &ast::Delete) -> Result<DeletePlan> {
        let items = match &d.from {
            FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => t,
        };
        let [target] = items.as_slice() else {
            return Err(Error::unsupported("DELETE from several tables"));
        };
        let TableFactor::Table { name, .. } = &target.relation else {
            return Err(Error::unsupported("DELETE from this target"));
        };
        if !target.joins.is_empty() {
            return Err(Error::unsupported("DELETE with joins in the target"));
        }
        let table = self.table(name)?;
        let mut from = vec![ast::TableWithJoins {
            relation: target.relation.clone(),
            joins: vec![],
        }];
        if let Some(using) = &d.using {
            from.extend(using.iter().cloned());
        }
        let (scan, scope) = self.bind_from(&from, d.selection.as_ref(), true)?;
        let scan = keep_target_first(scan, &table);
        let (returning, columns) = self.bind_returning(&d.returning, &scope)?;
        Ok(DeletePlan {
            table,
            scan,
            returning,
            columns,
        })
    }
}

fn assignment_columns(t: &AssignmentTarget) -> Result<Vec<String>> {
    match t {
        AssignmentTarget::ColumnName(n) => Ok(vec![
            parse::object_name(n)?.last().cloned().unwrap_or_default(),
        ]),
        AssignmentTarget::Tuple(ns) => ns
            .iter()
            .map(|n| Ok(parse::object_name(n)?.last().cloned().unwrap_or_default()))
            .collect(),
    }
}

/// The executor expects the target table's columns at the start of each row; `bind_from`
/// keeps FROM order, so that holds. This documents and checks it.
fn keep_target_first(plan: Plan, table: &TableDesc) -> Plan {
    debug_assert!(plan.types().len() >= table.live_columns().count());
    plan
}
