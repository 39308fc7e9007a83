//! Table scans, and the codec between rows and key-value entries of one table.

use std::collections::HashMap;
use std::sync::Arc;

use base::TenantId;
use codec::key::{Decoder, Direction};
use txn::Span;

use super::ExecCtx;
use crate::catalog::{IndexDesc, TableDesc};
use crate::error::{Error, Result};
use crate::plan::{Access, Scan};
use crate::rowcodec;
use crate::types::SqlType;
use crate::value::{Row, Value};

/// Encodes and decodes one table's rows and index entries.
pub struct TableCodec {
    pub table: Arc<TableDesc>,
    tenant: TenantId,
    /// Live-column positions of the primary key columns, with their key order.
    pk: Vec<(usize, Direction, codec::key::Nulls)>,
    live_types: Vec<SqlType>,
    /// Column id -> (live position, if live; type).
    by_id: HashMap<u32, (Option<usize>, SqlType)>,
    /// Values of columns added after a row was written.
    fills: Vec<Value>,
    primary_prefix: Vec<u8>,
}

impl TableCodec {
    /// Prepares the codec of a table.
    pub fn new(table: Arc<TableDesc>, tenant: TenantId) -> Result<TableCodec> {
        let live: Vec<_> = table.live_columns().collect();
        let live_types: Vec<SqlType> = live.iter().map(|c| c.ty.clone()).collect();
        let mut by_id = HashMap::new();
        for c in &table.columns {
            by_id.insert(
                c.id,
                (
                    table.live_position(c.id).filter(|_| !c.dropped),
                    c.ty.clone(),
                ),
            );
        }
        let pk = table
            .primary
            .columns
            .iter()
            .map(|ic| {
                let pos = table
                    .live_position(ic.column)
                    .ok_or_else(|| Error::internal("primary key column is not live"))?;
                Ok((pos, ic.direction(), ic.nulls()))
            })
            .collect::<Result<Vec<_>>>()?;
        let fills = live
            .iter()
            .map(|c| match &c.fill {
                Some(text) => crate::textio::from_text(text, &c.ty),
                None => Ok(Value::Null),
            })
            .collect::<Result<Vec<_>>>()?;
        let primary_prefix = table.index_prefix(tenant, table.primary.id);
        Ok(TableCodec {
            table,
            tenant,
            pk,
            live_types,
            by_id,
            fills,
            primary_prefix,
        })
    }

    /// Returns the number of live columns.
    pub fn width(&self) -> usize {
        self.live_types.len()
    }

    /// Returns the live-column types.
    pub fn types(&self) -> &[SqlType] {
        &self.live_types
    }

    /// Returns the primary key's live positions.
    pub fn pk_positions(&self) -> Vec<usize> {
        self.pk.iter().map(|(p, _, _)| *p).collect()
    }

    fn pk_suffix(&self, row: &[Value]) -> Result<Vec<u8>> {
        let mut k = Vec::new();
        for (pos, dir, nulls) in &self.pk {
            rowcodec::put_key(&mut k, &row[*pos], &self.live_types[*pos], *dir, *nulls)?;
        }
        Ok(k)
    }

    /// Returns the row's primary key.
    pub fn primary_key(&self, row: &[Value]) -> Result<Vec<u8>> {
        let mut k = self.primary_prefix.clone();
        k.extend(self.pk_suffix(row)?);
        Ok(k)
    }

    /// Returns a primary key from key column values (in primary-key order).
    pub fn primary_key_of(&self, values: &[Value]) -> Result<Vec<u8>> {
        let mut k = self.primary_prefix.clone();
        for ((pos, dir, nulls), v) in self.pk.iter().zip(values) {
            rowcodec::put_key(&mut k, v, &self.live_types[*pos], *dir, *nulls)?;
        }
        Ok(k)
    }

    /// Encodes the row's non-key columns.
    pub fn encode_value(&self, row: &[Value]) -> Result<Vec<u8>> {
        let pk_pos: Vec<usize> = self.pk_positions();
        let cols = self
            .table
            .live_columns()
            .enumerate()
            .filter(|(i, _)| !pk_pos.contains(i))
            .map(|(i, c)| (c.id, &self.live_types[i], &row[i], c.fill.is_some()));
        rowcodec::encode_row(cols)
    }

    /// Decodes a primary-index entry into a row of live columns.
    pub fn decode(&self, key: &[u8], value: &[u8]) -> Result<Row> {
        let mut row = self.fills.clone();
        let suffix = key
            .get(self.primary_prefix.len()..)
            .ok_or_else(|| Error::internal("key shorter than its prefix"))?;
        let mut d = Decoder::new(suffix);
        for (pos, dir, _) in &self.pk {
            row[*pos] = rowcodec::get_key(&mut d, &self.live_types[*pos], *dir)?;
        }
        rowcodec::decode_row(
            value,
            |id| self.by_id.get(&id).map(|(_, t)| t.clone()),
            |id, v| {
                if let Some((Some(pos), _)) = self.by_id.get(&id) {
                    row[*pos] = v;
                }
            },
        )?;
        Ok(row)
    }

    /// Returns true if any of an index's columns is NULL in the row.
    pub fn index_has_null(&self, index: &IndexDesc, row: &[Value]) -> bool {
        index.columns.iter().any(|ic| {
            self.table
                .live_position(ic.column)
                .is_some_and(|p| row[p].is_null())
        })
    }

    /// Returns the index entry of a row: a unique index with no NULL key column is keyed
    /// by its columns alone (so a duplicate collides); other entries append the primary
    /// key. The value is always the primary key suffix.
    pub fn index_entry(&self, index: &IndexDesc, row: &[Value]) -> Result<(Vec<u8>, Vec<u8>)> {
        let mut k = self.table.index_prefix(self.tenant, index.id);
        for ic in &index.columns {
            let pos = self
                .table
                .live_position(ic.column)
                .ok_or_else(|| Error::internal("index column is not live"))?;
            rowcodec::put_key(
                &mut k,
                &row[pos],
                &self.live_types[pos],
                ic.direction(),
                ic.nulls(),
            )?;
        }
        let suffix = self.pk_suffix(row)?;
        if !index.unique || self.index_has_null(index, row) {
            k.extend_from_slice(&suffix);
        }
        Ok((k, suffix))
    }

    /// Returns the primary key an index entry points to.
    pub fn primary_from_index_value(&self, value: &[u8]) -> Vec<u8> {
        let mut k = self.primary_prefix.clone();
        k.extend_from_slice(value);
        k
    }

    /// Encodes values of leading index columns (for lookups and spans).
    fn index_key(&self, index: &IndexDesc, values: &[Value]) -> Result<Vec<u8>> {
        let mut k = self.table.index_prefix(self.tenant, index.id);
        for (ic, v) in index.columns.iter().zip(values) {
            let pos = self
                .table
                .live_position(ic.column)
                .ok_or_else(|| Error::internal("index column is not live"))?;
            rowcodec::put_key(&mut k, v, &self.live_types[pos], ic.direction(), ic.nulls())?;
        }
        Ok(k)
    }
}

/// Returns every key of a table (all its indexes), for TRUNCATE and DROP.
pub async fn scan_keys_for_truncate(
    cx: &mut ExecCtx<'_>,
    table: &TableDesc,
) -> Result<Vec<Vec<u8>>> {
    let mut span = table.span(cx.tenant);
    let mut keys = Vec::new();
    loop {
        let out = cx.txn.scan(&span, 1024, false).await?;
        keys.extend(out.pairs.into_iter().map(|(k, _)| k));
        match out.resume {
            Some(r) => span.start = r,
            None => return Ok(keys),
        }
    }
}

fn index_of(table: &TableDesc, id: u32) -> Result<&IndexDesc> {
    table
        .all_indexes()
        .find(|i| i.id == id)
        .ok_or_else(|| Error::internal(format!("index {id} not found")))
}

/// Runs a scan.
pub async fn scan(cx: &mut ExecCtx<'_>, s: &Scan) -> Result<Vec<Row>> {
    let codec = TableCodec::new(s.table.clone(), cx.tenant)?;
    let index = index_of(&s.table, s.index)?.clone();
    let primary = index.id == s.table.primary.id;
    let limit = match &s.limit {
        Some(e) => match cx.eval(e, &[])? {
            Value::Int(n) if n >= 0 => Some(n as usize),
            _ => None,
        },
        None => None,
    };
    let mut out = Vec::new();
    match &s.access {
        Access::Points(tuples) => {
            let mut keys = Vec::with_capacity(tuples.len());
            for t in tuples {
                let mut vals = Vec::with_capacity(t.len());
                for e in t {
                    vals.push(cx.eval_full(e, &[]).await?);
                }
                if vals.iter().any(Value::is_null) {
                    continue;
                }
                keys.push(codec.index_key(&index, &vals)?);
            }
            keys.sort();
            keys.dedup();
            let primary_keys = if primary {
                keys
            } else {
                let entries = cx.txn.batch_get(&keys).await?;
                entries
                    .into_iter()
                    .flatten()
                    .map(|v| codec.primary_from_index_value(&v))
                    .collect()
            };
            fetch_rows(cx, &codec, s, primary_keys, limit, &mut out).await?;
        }
        Access::Full | Access::Range { .. } => {
            let span = range_span(cx, &codec, &index, &s.access).await?;
            let Some(mut span) = span else { return Ok(out) };
            let page = limit.map_or(256, |l| l.clamp(1, 256));
            loop {
                cx.check_cancel()?;
                let res = cx.txn.scan(&span, page, s.reverse).await?;
                cx.rows_read += res.pairs.len() as u64;
                if primary {
                    if s.lock {
                        let keys: Vec<Vec<u8>> = res.pairs.iter().map(|(k, _)| k.clone()).collect();
                        let remaining = limit.map(|l| l - out.len());
                        fetch_rows(cx, &codec, s, keys, remaining, &mut out).await?;
                    } else {
                        for (k, v) in &res.pairs {
                            let row = codec.decode(k, v)?;
                            if passes(cx, s, &row).await? {
                                out.push(row);
                                if limit.is_some_and(|l| out.len() >= l) {
                                    return Ok(out);
                                }
                            }
                        }
                    }
                } else {
                    let keys: Vec<Vec<u8>> = res
                        .pairs
                        .iter()
                        .map(|(_, v)| codec.primary_from_index_value(v))
                        .collect();
                    let remaining = limit.map(|l| l - out.len());
                    fetch_rows(cx, &codec, s, keys, remaining, &mut out).await?;
                }
                if limit.is_some_and(|l| out.len() >= l) {
                    break;
                }
                match res.resume {
                    Some(r) if s.reverse => span.end = r,
                    Some(r) => span.start = r,
                    None => break,
                }
            }
        }
    }
    Ok(out)
}

async fn passes(cx: &mut ExecCtx<'_>, s: &Scan, row: &[Value]) -> Result<bool> {
    match &s.filter {
        None => Ok(true),
        Some(f) => {
            if f.has_subquery() {
                cx.prepare(f, row).await?;
            }
            cx.eval_bool(f, row)
        }
    }
}

/// Reads rows by primary key (locking them if the scan locks), keeping those that pass
/// the filter, in the order of `keys`.
async fn fetch_rows(
    cx: &mut ExecCtx<'_>,
    codec: &TableCodec,
    s: &Scan,
    keys: Vec<Vec<u8>>,
    limit: Option<usize>,
    out: &mut Vec<Row>,
) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let values = if s.lock {
        cx.txn.lock_for_update(&keys).await?
    } else {
        cx.txn.batch_get(&keys).await?
    };
    cx.rows_read += keys.len() as u64;
    let start = out.len();
    for (k, v) in keys.iter().zip(values) {
        let Some(v) = v else { continue };
        let row = codec.decode(k, &v)?;
        if passes(cx, s, &row).await? {
            out.push(row);
            if limit.is_some_and(|l| out.len() - start >= l) {
                break;
            }
        }
    }
    Ok(())
}

/// Computes the key span of a range access; `None` if it is empty (a NULL bound).
async fn range_span(
    cx: &mut ExecCtx<'_>,
    codec: &TableCodec,
    index: &IndexDesc,
    access: &Access,
) -> Result<Option<Span>> {
    let base = codec.table.index_prefix(cx.tenant, index.id);
    let end_of = |k: &[u8]| codec::key::prefix_end(k).unwrap_or_default();
    let Access::Range {
        prefix,
        lower,
        upper,
    } = access
    else {
        return Ok(Some(Span {
            start: base.clone(),
            end: end_of(&base),
        }));
    };
    let mut vals = Vec::new();
    for e in prefix {
        let v = cx.eval_full(e, &[]).await?;
        if v.is_null() {
            return Ok(None);
        }
        vals.push(v);
    }
    let key_prefix = codec.index_key(index, &vals)?;
    let mut start = key_prefix.clone();
    let mut end = end_of(&key_prefix);
    let col = index.columns.get(prefix.len());
    let desc = col.is_some_and(|c| c.desc);
    // On a descending column, a lower bound on values is an upper bound on keys.
    let (lo, hi) = if desc { (upper, lower) } else { (lower, upper) };
    let bound_key = |cx: &ExecCtx<'_>, v: &Value| -> Result<Vec<u8>> {
        let mut all = vals.clone();
        all.push(v.clone());
        let _ = cx;
        codec.index_key(index, &all)
    };
    if let Some((e, inclusive)) = lo {
        let v = cx.eval_full(e, &[]).await?;
        if v.is_null() {
            return Ok(None);
        }
        let k = bound_key(cx, &v)?;
        start = if *inclusive { k } else { end_of(&k) };
    }
    if let Some((e, inclusive)) = hi {
        let v = cx.eval_full(e, &[]).await?;
        if v.is_null() {
            return Ok(None);
        }
        let k = bound_key(cx, &v)?;
        end = if *inclusive { end_of(&k) } else { k };
    }
    if !end.is_empty() && start >= end {
        return Ok(None);
    }
    Ok(Some(Span { start, end }))
}
