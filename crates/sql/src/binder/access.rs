//! Index selection: turning one table's predicates into key spans.
//!
//! For each index (the primary first), walk its columns in order: an equality with a
//! row-independent value (a literal, a parameter, an outer column) extends the key prefix;
//! an IN list on the last needed column of a unique index gives several point lookups;
//! the first column without equality may take range bounds. The index with full equality
//! on a unique key wins (point lookups); otherwise the longest prefix, then any range.
//! Predicates stay in the scan's filter as well, so the span only has to be a superset.

use crate::catalog::{IndexDesc, IndexState, TableDesc};
use crate::expr::Expr;
use crate::ops::BinOp;
use crate::plan::Access;
use crate::types::SqlType;

/// The chosen access path.
pub struct Choice {
    pub index: u32,
    pub access: Access,
}

/// A predicate on one column of the table.
enum Pred<'a> {
    Eq(&'a Expr),
    In(&'a [Expr]),
    Lower(&'a Expr, bool),
    Upper(&'a Expr, bool),
}

/// Returns true if a value of type `v` can be used to seek a key of column type `col`:
/// the same family, so the key encoding orders them alike.
pub(super) fn seekable(col: &SqlType, v: &SqlType) -> bool {
    use crate::types::TypeFamily as F;
    let (cf, vf) = (col.family(), v.family());
    match (cf, vf) {
        (F::Integer, F::Integer) => true,
        (F::String, F::String) => !matches!(col, SqlType::Char(_)) || matches!(v, SqlType::Char(_)),
        (a, b) => a == b && col.base() == v.base(),
    }
}

/// Extracts column predicates (`col op value`) from the table-local conjuncts.
fn column_preds<'a>(conjuncts: &'a [Expr], table: &TableDesc) -> Vec<(usize, Pred<'a>)> {
    let live: Vec<&SqlType> = table.live_columns().map(|c| &c.ty).collect();
    let mut out = Vec::new();
    for c in conjuncts {
        match c {
            Expr::Binary {
                op, left, right, ..
            } if op.is_comparison() && *op != BinOp::NotEq => {
                let (col, val, op) = match (left.as_ref(), right.as_ref()) {
                    (Expr::Column(i, _), v) if v.is_row_independent() => (*i, v, *op),
                    (v, Expr::Column(i, _)) if v.is_row_independent() => (*i, v, op.commute()),
                    _ => continue,
                };
                if !live.get(col).is_some_and(|t| seekable(t, &val.ty())) {
                    continue;
                }
                let p = match op {
                    BinOp::Eq => Pred::Eq(val),
                    BinOp::Gt => Pred::Lower(val, false),
                    BinOp::GtEq => Pred::Lower(val, true),
                    BinOp::Lt => Pred::Upper(val, false),
                    BinOp::LtEq => Pred::Upper(val, true),
                    _ => continue,
                };
                out.push((col, p));
            }
            Expr::InList {
                expr,
                list,
                negated: false,
            } => {
                if let Expr::Column(i, _) = expr.as_ref()
                    && list.iter().all(|v| {
                        v.is_row_independent() && live.get(*i).is_some_and(|t| seekable(t, &v.ty()))
                    })
                {
                    out.push((*i, Pred::In(list)));
                }
            }
            Expr::Between {
                expr,
                low,
                high,
                negated: false,
            } => {
                if let Expr::Column(i, _) = expr.as_ref()
                    && low.is_row_independent()
                    && high.is_row_independent()
                    && live
                        .get(*i)
                        .is_some_and(|t| seekable(t, &low.ty()) && seekable(t, &high.ty()))
                {
                    out.push((*i, Pred::Lower(low, true)));
                    out.push((*i, Pred::Upper(high, true)));
                }
            }
            _ => {}
        }
    }
    out
}

/// Chooses an index and key access for a table given predicates over its live-column
/// layout.
pub fn choose(table: &TableDesc, conjuncts: &[Expr]) -> Choice {
    let preds = column_preds(conjuncts, table);
    let mut best = Choice {
        index: table.primary.id,
        access: Access::Full,
    };
    let mut best_score = (0u8, 0usize, 0u8);
    for index in table
        .all_indexes()
        .filter(|i| i.state == IndexState::Public)
    {
        let Some((access, _, score)) = consider(table, index, &preds) else {
            continue;
        };
        // Prefer the primary index on ties: no second lookup.
        if score > best_score
            || (score == best_score
                && best.index != table.primary.id
                && index.id == table.primary.id)
        {
            best_score = score;
            best = Choice {
                index: index.id,
                access,
            };
        }
    }
    best
}

fn consider(
    table: &TableDesc,
    index: &IndexDesc,
    preds: &[(usize, Pred<'_>)],
) -> Option<(Access, usize, (u8, usize, u8))> {
    let mut prefix: Vec<Expr> = Vec::new();
    let mut in_list: Option<&[Expr]> = None;
    for (n, ic) in index.columns.iter().enumerate() {
        let pos = table.live_position(ic.column)?;
        let eq = preds.iter().find_map(|(c, p)| match p {
            Pred::Eq(v) if *c == pos => Some(*v),
            _ => None,
        });
        if let Some(v) = eq {
            prefix.push(v.clone());
            continue;
        }
        // An IN list on the last column of a unique index: point lookups.
        let is_last = n + 1 == index.columns.len();
        if is_last && index.unique && in_list.is_none() {
            in_list = preds.iter().find_map(|(c, p)| match p {
                Pred::In(list) if *c == pos => Some(*list),
                _ => None,
            });
            if in_list.is_some() {
                break;
            }
        }
        // Range bounds on this column end the prefix.
        let lower = preds.iter().find_map(|(c, p)| match p {
            Pred::Lower(v, inc) if *c == pos => Some(((*v).clone(), *inc)),
            _ => None,
        });
        let upper = preds.iter().find_map(|(c, p)| match p {
            Pred::Upper(v, inc) if *c == pos => Some(((*v).clone(), *inc)),
            _ => None,
        });
        if prefix.is_empty() && lower.is_none() && upper.is_none() {
            return None;
        }
        let eq_prefix = prefix.len();
        let has_range = u8::from(lower.is_some() || upper.is_some());
        return Some((
            Access::Range {
                prefix,
                lower,
                upper,
            },
            eq_prefix,
            (1, eq_prefix, has_range),
        ));
    }
    if let Some(list) = in_list {
        let points = list
            .iter()
            .map(|v| {
                let mut p = prefix.clone();
                p.push(v.clone());
                p
            })
            .collect();
        let n = prefix.len();
        return Some((Access::Points(points), n, (2, n + 1, 0)));
    }
    let n = prefix.len();
    if index.unique {
        Some((Access::Points(vec![prefix]), n, (3, n, 0)))
    } else {
        Some((
            Access::Range {
                prefix,
                lower: None,
                upper: None,
            },
            n,
            (1, n, 0),
        ))
    }
}
