//! Writes: INSERT, UPDATE and DELETE with their constraints and index maintenance.

use std::collections::HashSet;
use std::sync::Arc;

use super::ExecCtx;
use super::scan::TableCodec;
use crate::binder::{
    ConflictAction, DefaultValue, DeletePlan, InsertPlan, InsertSource, OnConflict, UpdatePlan,
};
use crate::catalog::{Descriptor, FkAction, ForeignKeyDesc, IndexDesc, TableDesc};
use crate::error::{Error, ErrorKind, Result};
use crate::expr::Expr;
use crate::plan::{Access, Scan};
use crate::textio;
use crate::value::{Row, Value};

/// The result of a write: rows affected and RETURNING rows.
pub struct WriteResult {
    pub count: u64,
    pub returning: Vec<Row>,
}

fn failing_row(codec: &TableCodec, row: &[Value]) -> String {
    let parts: Vec<String> = codec
        .table
        .live_columns()
        .zip(row)
        .filter(|(c, _)| !c.hidden)
        .map(|(c, v)| textio::to_text(v, &c.ty).unwrap_or_else(|| "null".into()))
        .collect();
    format!("Failing row contains ({}).", parts.join(", "))
}

fn key_detail(codec: &TableCodec, index: &IndexDesc, row: &[Value]) -> String {
    let mut names = Vec::new();
    let mut vals = Vec::new();
    for ic in &index.columns {
        if let (Some(c), Some(p)) = (
            codec.table.column_by_id(ic.column),
            codec.table.live_position(ic.column),
        ) {
            names.push(c.name.clone());
            vals.push(textio::to_text(&row[p], &c.ty).unwrap_or_else(|| "null".into()));
        }
    }
    format!("({})=({})", names.join(", "), vals.join(", "))
}

/// Checks NOT NULL and CHECK constraints of a new row.
fn check_row(
    cx: &ExecCtx<'_>,
    codec: &TableCodec,
    row: &[Value],
    checks: &[(String, Expr)],
) -> Result<()> {
    for (c, v) in codec.table.live_columns().zip(row) {
        if !c.nullable && v.is_null() {
            return Err(Error::new(
                ErrorKind::NotNullViolation,
                format!(
                    "null value in column \"{}\" of relation \"{}\" violates not-null constraint",
                    c.name, codec.table.name
                ),
            )
            .with_detail(failing_row(codec, row)));
        }
    }
    for (name, e) in checks {
        if cx.eval(e, row)?.as_bool() == Some(false) {
            return Err(Error::new(
                ErrorKind::CheckViolation,
                format!(
                    "new row for relation \"{}\" violates check constraint \"{name}\"",
                    codec.table.name
                ),
            )
            .with_detail(failing_row(codec, row)));
        }
    }
    Ok(())
}

/// Returns the primary key of an existing row that a new row collides with on `index`.
async fn conflict(
    cx: &mut ExecCtx<'_>,
    codec: &TableCodec,
    index: &IndexDesc,
    row: &[Value],
) -> Result<Option<Vec<u8>>> {
    if index.id == codec.table.primary.id {
        let key = codec.primary_key(row)?;
        return Ok(cx.txn.get(&key).await?.map(|_| key));
    }
    if !index.unique || codec.index_has_null(index, row) {
        return Ok(None);
    }
    let (k, _) = codec.index_entry(index, row)?;
    Ok(cx
        .txn
        .get(&k)
        .await?
        .map(|v| codec.primary_from_index_value(&v)))
}

fn unique_violation(codec: &TableCodec, index: &IndexDesc, row: &[Value]) -> Error {
    Error::new(
        ErrorKind::UniqueViolation,
        format!(
            "duplicate key value violates unique constraint \"{}\"",
            index.name
        ),
    )
    .with_detail(format!(
        "Key {} already exists.",
        key_detail(codec, index, row)
    ))
}

fn write_entries(cx: &mut ExecCtx<'_>, codec: &TableCodec, row: &[Value]) -> Result<()> {
    cx.txn
        .put(codec.primary_key(row)?, codec.encode_value(row)?)?;
    for index in &codec.table.indexes {
        let (k, v) = codec.index_entry(index, row)?;
        cx.txn.put(k, v)?;
    }
    Ok(())
}

fn delete_entries(cx: &mut ExecCtx<'_>, codec: &TableCodec, row: &[Value]) -> Result<()> {
    cx.txn.delete(codec.primary_key(row)?)?;
    for index in &codec.table.indexes {
        let (k, _) = codec.index_entry(index, row)?;
        cx.txn.delete(k)?;
    }
    Ok(())
}

fn referenced_table(cx: &ExecCtx<'_>, id: u64) -> Result<Arc<TableDesc>> {
    match cx.session.catalog.get(id) {
        Some(Descriptor::Table(t)) => Ok(Arc::new(t.clone())),
        _ => Err(Error::internal(format!("referenced table {id} is missing"))),
    }
}

/// Checks that the row's foreign keys point at existing rows.
async fn check_foreign_keys(
    cx: &mut ExecCtx<'_>,
    codec: &TableCodec,
    row: &[Value],
    old: Option<&[Value]>,
) -> Result<()> {
    for fk in &codec.table.foreign_keys {
        let positions: Vec<usize> = fk
            .columns
            .iter()
            .map(|c| {
                codec
                    .table
                    .live_position(*c)
                    .ok_or_else(|| Error::internal("foreign key column is not live"))
            })
            .collect::<Result<_>>()?;
        let vals: Vec<Value> = positions.iter().map(|p| row[*p].clone()).collect();
        if vals.iter().any(Value::is_null) {
            continue;
        }
        if let Some(old) = old
            && positions.iter().all(|p| old[*p].not_distinct(&row[*p]))
        {
            continue;
        }
        let parent = referenced_table(cx, fk.ref_table)?;
        let found = find_referenced(cx, &parent, fk, &vals).await?;
        if !found {
            let names: Vec<String> = fk
                .columns
                .iter()
                .filter_map(|c| codec.table.column_by_id(*c).map(|c| c.name.clone()))
                .collect();
            let shown: Vec<String> = positions
                .iter()
                .zip(fk.columns.iter())
                .map(|(p, c)| {
                    let ty = codec
                        .table
                        .column_by_id(*c)
                        .map(|c| c.ty.clone())
                        .unwrap_or(crate::types::SqlType::Text);
                    textio::to_text(&row[*p], &ty).unwrap_or_default()
                })
                .collect();
            return Err(Error::new(
                ErrorKind::ForeignKeyViolation,
                format!(
                    "insert or update on table \"{}\" violates foreign key constraint \"{}\"",
                    codec.table.name, fk.name
                ),
            )
            .with_detail(format!(
                "Key ({})=({}) is not present in table \"{}\".",
                names.join(", "),
                shown.join(", "),
                parent.name
            )));
        }
    }
    Ok(())
}

/// Returns true if `parent` has a row whose `fk.ref_columns` equal `vals`.
async fn find_referenced(
    cx: &mut ExecCtx<'_>,
    parent: &Arc<TableDesc>,
    fk: &ForeignKeyDesc,
    vals: &[Value],
) -> Result<bool> {
    let conjuncts: Vec<Expr> = fk
        .ref_columns
        .iter()
        .zip(vals)
        .map(|(c, v)| {
            let pos = parent
                .live_position(*c)
                .ok_or_else(|| Error::internal("referenced column is not live"))?;
            let ty = parent
                .live_columns()
                .nth(pos)
                .map(|c| c.ty.clone())
                .unwrap_or(crate::types::SqlType::Text);
            Ok(equality(pos, ty, v.clone()))
        })
        .collect::<Result<_>>()?;
    let rows = filtered_scan(cx, parent.clone(), conjuncts, Some(1)).await?;
    Ok(!rows.is_empty())
}

fn equality(pos: usize, ty: crate::types::SqlType, v: Value) -> Expr {
    Expr::Binary {
        op: crate::ops::BinOp::Eq,
        left: Box::new(Expr::Column(pos, ty.clone())),
        right: Box::new(Expr::Literal(v, ty)),
        ty: crate::types::SqlType::Bool,
    }
}

/// Scans a table for rows matching column equalities, choosing an index.
async fn filtered_scan(
    cx: &mut ExecCtx<'_>,
    table: Arc<TableDesc>,
    conjuncts: Vec<Expr>,
    limit: Option<i64>,
) -> Result<Vec<Row>> {
    let choice = crate::binder::choose_access(&table, &conjuncts);
    let scan = Scan {
        table,
        index: choice.0,
        access: choice.1,
        reverse: false,
        filter: crate::expr::conjoin(conjuncts),
        limit: limit.map(|l| Expr::Literal(Value::Int(l), crate::types::SqlType::Int8)),
        lock: false,
    };
    super::scan::scan(cx, &scan).await
}

/// Enforces the foreign keys that point at `table` when a row is deleted (`new` None) or
/// its referenced columns change.
async fn check_referencing(
    cx: &mut ExecCtx<'_>,
    table: &TableDesc,
    old: &[Value],
    new: Option<&[Value]>,
    depth: usize,
) -> Result<()> {
    if depth > 32 {
        return Err(Error::new(
            ErrorKind::ProgramLimitExceeded,
            "foreign key cascade is too deep",
        ));
    }
    let children: Vec<TableDesc> = cx
        .session
        .catalog
        .referencing(table.id)
        .into_iter()
        .cloned()
        .collect();
    for child in children {
        for fk in child
            .foreign_keys
            .iter()
            .filter(|f| f.ref_table == table.id)
        {
            let positions: Vec<usize> = fk
                .ref_columns
                .iter()
                .map(|c| {
                    table
                        .live_position(*c)
                        .ok_or_else(|| Error::internal("referenced column is not live"))
                })
                .collect::<Result<_>>()?;
            let vals: Vec<Value> = positions.iter().map(|p| old[*p].clone()).collect();
            if vals.iter().any(Value::is_null) {
                continue;
            }
            if let Some(new) = new
                && positions.iter().all(|p| old[*p].not_distinct(&new[*p]))
            {
                continue;
            }
            let child = Arc::new(child.clone());
            let conjuncts: Vec<Expr> = fk
                .columns
                .iter()
                .zip(&vals)
                .map(|(c, v)| {
                    let pos = child
                        .live_position(*c)
                        .ok_or_else(|| Error::internal("foreign key column is not live"))?;
                    let ty = child
                        .live_columns()
                        .nth(pos)
                        .map(|c| c.ty.clone())
                        .unwrap_or(crate::types::SqlType::Text);
                    Ok(equality(pos, ty, v.clone()))
                })
                .collect::<Result<_>>()?;
            let action = if new.is_none() {
                fk.on_delete
            } else {
                fk.on_update
            };
            let limit = if matches!(action, FkAction::NoAction | FkAction::Restrict) {
                Some(1)
            } else {
                None
            };
            let rows = filtered_scan(cx, child.clone(), conjuncts, limit).await?;
            if rows.is_empty() {
                continue;
            }
            match (action, new) {
                (FkAction::Cascade, None) => {
                    let codec = TableCodec::new(child.clone(), cx.tenant)?;
                    for r in rows {
                        Box::pin(check_referencing(cx, &child, &r, None, depth + 1)).await?;
                        delete_entries(cx, &codec, &r)?;
                    }
                }
                (FkAction::SetNull | FkAction::SetDefault, _) => {
                    let codec = TableCodec::new(child.clone(), cx.tenant)?;
                    for r in rows {
                        let mut n = r.clone();
                        for c in &fk.columns {
                            if let Some(p) = child.live_position(*c) {
                                n[p] = Value::Null;
                            }
                        }
                        check_row(cx, &codec, &n, &[])?;
                        delete_entries(cx, &codec, &r)?;
                        write_entries(cx, &codec, &n)?;
                    }
                }
                _ => {
                    let names: Vec<String> = fk
                        .ref_columns
                        .iter()
                        .filter_map(|c| table.column_by_id(*c).map(|c| c.name.clone()))
                        .collect();
                    let shown: Vec<String> = positions
                        .iter()
                        .zip(&fk.ref_columns)
                        .map(|(p, c)| {
                            let ty = table
                                .column_by_id(*c)
                                .map(|c| c.ty.clone())
                                .unwrap_or(crate::types::SqlType::Text);
                            textio::to_text(&old[*p], &ty).unwrap_or_default()
                        })
                        .collect();
                    return Err(Error::new(
                        ErrorKind::ForeignKeyViolation,
                        format!("update or delete on table \"{}\" violates foreign key constraint \"{}\" on table \"{}\"", table.name, fk.name, child.name),
                    )
                    .with_detail(format!("Key ({})=({}) is still referenced from table \"{}\".", names.join(", "), shown.join(", "), child.name)));
                }
            }
        }
    }
    Ok(())
}

async fn default_value(cx: &mut ExecCtx<'_>, d: &DefaultValue) -> Result<Value> {
    Ok(match d {
        DefaultValue::Null => Value::Null,
        DefaultValue::Expr(e) => cx.eval_full(e, &[]).await?,
        DefaultValue::RowId => Value::Int(cx.sequences.row_id()),
        DefaultValue::Sequence(id) => {
            let seq = match cx.session.catalog.get(*id) {
                Some(Descriptor::Sequence(s)) => s.clone(),
                _ => return Err(Error::internal(format!("sequence {id} is missing"))),
            };
            Value::Int(cx.sequences.next(cx.tenant, &seq).await?)
        }
    })
}

/// Runs an INSERT.
pub async fn insert(cx: &mut ExecCtx<'_>, plan: &InsertPlan) -> Result<WriteResult> {
    let codec = TableCodec::new(plan.table.clone(), cx.tenant)?;
    let width = codec.width();
    let sources: Vec<Vec<Option<Value>>> = match &plan.source {
        InsertSource::DefaultValues => vec![Vec::new()],
        InsertSource::Values(rows) => {
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let mut vals = Vec::with_capacity(r.len());
                for e in r {
                    vals.push(match e {
                        Some(e) => Some(cx.eval_full(e, &[]).await?),
                        None => None,
                    });
                }
                out.push(vals);
            }
            out
        }
        InsertSource::Query(p) => cx
            .exec(p)
            .await?
            .into_iter()
            .map(|r| r.into_iter().map(Some).collect())
            .collect(),
    };
    let mut result = WriteResult {
        count: 0,
        returning: Vec::new(),
    };
    let mut touched: HashSet<Vec<u8>> = HashSet::new();
    let mut fk_pending: Vec<Row> = Vec::new();
    let blind = blind_upsert(cx, plan);
    for src in sources {
        cx.check_cancel()?;
        let mut row: Row = vec![Value::Null; width];
        let mut provided = vec![false; width];
        for (k, v) in src.into_iter().enumerate() {
            if let Some(v) = v {
                row[plan.targets[k]] = v;
                provided[plan.targets[k]] = true;
            }
        }
        for pos in 0..width {
            if !provided[pos] {
                row[pos] = default_value(cx, &plan.defaults[pos]).await?;
            }
        }
        check_row(cx, &codec, &row, &plan.checks)?;
        // Unique constraints, primary key first. A blind upsert's row replaces whatever is
        // stored under its key, so it reads nothing.
        let mut collided = None;
        for index in plan.table.all_indexes().filter(|i| i.unique && !blind) {
            if let Some(existing) = conflict(cx, &codec, index, &row).await? {
                collided = Some((index.clone(), existing));
                break;
            }
        }
        if let Some((index, existing)) = collided {
            let handled = match &plan.on_conflict {
                Some(oc) if oc.index.is_none_or(|i| i == index.id) => oc,
                _ => return Err(unique_violation(&codec, &index, &row)),
            };
            match &handled.action {
                ConflictAction::Nothing => continue,
                ConflictAction::Update {
                    assignments,
                    filter,
                } => {
                    if !touched.insert(existing.clone()) {
                        return Err(cardinality_violation());
                    }
                    let current = cx
                        .txn
                        .lock_for_update(std::slice::from_ref(&existing))
                        .await?;
                    let Some(Some(bytes)) = current.into_iter().next() else {
                        continue;
                    };
                    let old = codec.decode(&existing, &bytes)?;
                    let mut combined = old.clone();
                    combined.extend(row.iter().cloned());
                    if let Some(f) = filter
                        && cx.eval_full(f, &combined).await?.as_bool() != Some(true)
                    {
                        continue;
                    }
                    let mut new = old.clone();
                    for (pos, e) in assignments {
                        new[*pos] = cx.eval_full(e, &combined).await?;
                    }
                    apply_update(cx, &codec, &old, &new, &plan.checks).await?;
                    result.count += 1;
                    if let Some(ret) = &plan.returning {
                        result.returning.push(
                            ret.iter()
                                .map(|e| cx.eval(e, &new))
                                .collect::<Result<_>>()?,
                        );
                    }
                    continue;
                }
            }
        }
        if !touched.insert(codec.primary_key(&row)?) && blind {
            return Err(cardinality_violation());
        }
        write_entries(cx, &codec, &row)?;
        // Foreign keys are checked once the statement's rows are written, so a row may
        // reference itself or another row of the same statement.
        if !codec.table.foreign_keys.is_empty() {
            fk_pending.push(row.clone());
        }
        result.count += 1;
        if let Some(ret) = &plan.returning {
            let mut vals = Vec::with_capacity(ret.len());
            for e in ret {
                vals.push(cx.eval_full(e, &row).await?);
            }
            result.returning.push(vals);
        }
    }
    for row in &fk_pending {
        check_foreign_keys(cx, &codec, row, None).await?;
    }
    Ok(result)
}

fn cardinality_violation() -> Error {
    Error::new(
        ErrorKind::CardinalityViolation,
        "ON CONFLICT DO UPDATE command cannot affect row a second time",
    )
    .with_hint("Ensure that no rows proposed for insertion within the same command have duplicate constrained values.")
}

/// True if the INSERT is an upsert whose outcome does not depend on the stored row: `ON
/// CONFLICT (primary key) DO UPDATE` with no `WHERE`, setting every other column to its
/// `EXCLUDED` value, on a table with no secondary index and no foreign key either way.
/// Updating a colliding row then leaves exactly the row an insert would write (same
/// checks, same count, same `RETURNING`), so the row is written blind, without reading or
/// locking the old one. Concurrent blind writes of one key serialize in commit order.
fn blind_upsert(cx: &ExecCtx<'_>, plan: &InsertPlan) -> bool {
    let table = &plan.table;
    let Some(OnConflict {
        index: Some(index),
        action:
            ConflictAction::Update {
                assignments,
                filter: None,
            },
    }) = &plan.on_conflict
    else {
        return false;
    };
    if *index != table.primary.id
        || !table.indexes.is_empty()
        || !table.foreign_keys.is_empty()
        || !cx.session.catalog.referencing(table.id).is_empty()
    {
        return false;
    }
    let width = table.live_columns().count();
    table.live_columns().enumerate().all(|(pos, c)| {
        let in_key = table.primary.columns.iter().any(|k| k.column == c.id);
        let set = assignments.iter().filter(|(p, _)| *p == pos);
        match in_key {
            true => set.count() == 0,
            false => {
                let mut set = set;
                matches!(set.next(), Some((_, Expr::Column(i, _))) if *i == width + pos)
                    && set.next().is_none()
            }
        }
    })
}

/// Replaces `old` with `new`: checks constraints, rewrites changed index entries.
async fn apply_update(
    cx: &mut ExecCtx<'_>,
    codec: &TableCodec,
    old: &[Value],
    new: &[Value],
    checks: &[(String, Expr)],
) -> Result<()> {
    check_row(cx, codec, new, checks)?;
    let old_pk = codec.primary_key(old)?;
    let new_pk = codec.primary_key(new)?;
    let pk_changed = old_pk != new_pk;
    if pk_changed {
        if cx.txn.get(&new_pk).await?.is_some() {
            return Err(unique_violation(codec, &codec.table.primary, new));
        }
        check_referencing(cx, &codec.table, old, Some(new), 0).await?;
    } else if codec.table.foreign_keys.is_empty()
        && cx.session.catalog.referencing(codec.table.id).is_empty()
    {
        // Fast path below.
    } else {
        check_referencing(cx, &codec.table, old, Some(new), 0).await?;
    }
    check_foreign_keys(cx, codec, new, Some(old)).await?;
    for index in &codec.table.indexes {
        let (ok, _) = codec.index_entry(index, old)?;
        let (nk, nv) = codec.index_entry(index, new)?;
        if ok == nk && !pk_changed {
            continue;
        }
        if index.unique
            && !codec.index_has_null(index, new)
            && let Some(v) = cx.txn.get(&nk).await?
            && codec.primary_from_index_value(&v) != old_pk
        {
            return Err(unique_violation(codec, index, new));
        }
        cx.txn.delete(ok)?;
        cx.txn.put(nk, nv)?;
    }
    if pk_changed {
        cx.txn.delete(old_pk)?;
    }
    cx.txn.put(new_pk, codec.encode_value(new)?)?;
    Ok(())
}

/// Runs an UPDATE.
pub async fn update(cx: &mut ExecCtx<'_>, plan: &UpdatePlan) -> Result<WriteResult> {
    let codec = TableCodec::new(plan.table.clone(), cx.tenant)?;
    let width = codec.width();
    let rows = cx.exec(&plan.scan).await?;
    let mut result = WriteResult {
        count: 0,
        returning: Vec::new(),
    };
    let mut seen = HashSet::new();
    for row in rows {
        cx.check_cancel()?;
        let old = &row[..width];
        if !seen.insert(codec.primary_key(old)?) {
            continue;
        }
        let mut new = old.to_vec();
        for (pos, e) in &plan.assignments {
            new[*pos] = cx.eval_full(e, &row).await?;
        }
        apply_update(cx, &codec, old, &new, &plan.checks).await?;
        result.count += 1;
        if let Some(ret) = &plan.returning {
            let mut full = new.clone();
            full.extend(row[width..].iter().cloned());
            let mut vals = Vec::with_capacity(ret.len());
            for e in ret {
                vals.push(cx.eval_full(e, &full).await?);
            }
            result.returning.push(vals);
        }
    }
    Ok(result)
}

/// Runs a DELETE.
pub async fn delete(cx: &mut ExecCtx<'_>, plan: &DeletePlan) -> Result<WriteResult> {
    let codec = TableCodec::new(plan.table.clone(), cx.tenant)?;
    let width = codec.width();
    let rows = cx.exec(&plan.scan).await?;
    let mut result = WriteResult {
        count: 0,
        returning: Vec::new(),
    };
    let mut seen = HashSet::new();
    let has_children = !cx.session.catalog.referencing(plan.table.id).is_empty();
    for row in rows {
        cx.check_cancel()?;
        let old = &row[..width];
        if !seen.insert(codec.primary_key(old)?) {
            continue;
        }
        if has_children {
            check_referencing(cx, &plan.table, old, None, 0).await?;
        }
        delete_entries(cx, &codec, old)?;
        result.count += 1;
        if let Some(ret) = &plan.returning {
            let mut vals = Vec::with_capacity(ret.len());
            for e in ret {
                vals.push(cx.eval_full(e, &row).await?);
            }
            result.returning.push(vals);
        }
    }
    Ok(result)
}

/// Writes a backfilled index entry for every row of a table (CREATE INDEX), checking
/// uniqueness.
pub async fn backfill_index(
    cx: &mut ExecCtx<'_>,
    table: Arc<TableDesc>,
    index: &IndexDesc,
) -> Result<u64> {
    let codec = TableCodec::new(table.clone(), cx.tenant)?;
    let scan = Scan {
        table: table.clone(),
        index: table.primary.id,
        access: Access::Full,
        reverse: false,
        filter: None,
        limit: None,
        lock: false,
    };
    let rows = super::scan::scan(cx, &scan).await?;
    let mut n = 0;
    for row in rows {
        let (k, v) = codec.index_entry(index, &row)?;
        if index.unique && !codec.index_has_null(index, &row) && cx.txn.get(&k).await?.is_some() {
            return Err(Error::new(
                ErrorKind::UniqueViolation,
                format!("could not create unique index \"{}\"", index.name),
            )
            .with_detail(format!(
                "Key {} is duplicated.",
                key_detail(&codec, index, &row)
            )));
        }
        cx.txn.put(k, v)?;
        n += 1;
    }
    Ok(n)
}

/// Returns every row of a table (for rewrites: ADD PRIMARY KEY, ALTER COLUMN TYPE).
pub async fn all_rows(cx: &mut ExecCtx<'_>, table: Arc<TableDesc>) -> Result<Vec<Row>> {
    let scan = Scan {
        index: table.primary.id,
        table,
        access: Access::Full,
        reverse: false,
        filter: None,
        limit: None,
        lock: false,
    };
    super::scan::scan(cx, &scan).await
}

/// Writes rows of a table (new layout) with all their entries, checking uniqueness.
pub async fn write_rows(cx: &mut ExecCtx<'_>, table: Arc<TableDesc>, rows: &[Row]) -> Result<()> {
    let codec = TableCodec::new(table.clone(), cx.tenant)?;
    for row in rows {
        check_row(cx, &codec, row, &[])?;
        for index in table.all_indexes().filter(|i| i.unique) {
            if conflict(cx, &codec, index, row).await?.is_some() {
                return Err(unique_violation(&codec, index, row));
            }
        }
        write_entries(cx, &codec, row)?;
    }
    Ok(())
}

/// Checks a new foreign key against every existing row (ALTER TABLE ADD FOREIGN KEY).
pub async fn validate_foreign_key(
    cx: &mut ExecCtx<'_>,
    table: Arc<TableDesc>,
    fk: &ForeignKeyDesc,
) -> Result<()> {
    let mut t = (*table).clone();
    t.foreign_keys = vec![fk.clone()];
    let t = Arc::new(t);
    let codec = TableCodec::new(t.clone(), cx.tenant)?;
    for row in all_rows(cx, t.clone()).await? {
        check_foreign_keys(cx, &codec, &row, None).await?;
    }
    Ok(())
}
