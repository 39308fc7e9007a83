//! Lookup joins: an equi-join whose right side is a whole-table scan becomes an index
//! lookup per distinct left key when the left side is small (a point or prefix lookup, a
//! LIMIT, a short VALUES list), so that `orders JOIN customers ON c.id = o.customer_id
//! WHERE o.id = 5` reads one customer instead of all of them.
//!
//! There are no table statistics yet: "small" is judged from the shape of the left plan.

use super::access::seekable;
use crate::catalog::IndexState;
use crate::expr::Expr;
use crate::plan::{Access, JoinKind, Plan, Scan};

/// VALUES lists up to this many rows count as small.
const SMALL_VALUES: usize = 1000;

/// Rewrites the joins of one query block (not its subqueries, which are bound, and
/// rewritten, on their own).
pub fn choose_lookup_joins(plan: Plan) -> Plan {
    let plan = plan.map_inputs(&mut choose_lookup_joins);
    let Plan::Join {
        left,
        right,
        kind,
        on,
        equi,
    } = plan
    else {
        return plan;
    };
    let fits = matches!(
        kind,
        JoinKind::Inner | JoinKind::Left | JoinKind::Semi | JoinKind::Anti
    ) && !equi.is_empty()
        && is_small(&left);
    if fits
        && let Plan::Scan(scan) = right.as_ref()
        && matches!(scan.access, Access::Full)
        && scan.limit.is_none()
        && let Some((index, keys, points)) = pick_index(scan, &equi)
    {
        let mut scan = scan.clone();
        scan.index = index;
        return Plan::LookupJoin {
            left,
            scan,
            keys,
            points,
            kind,
            on,
            equi,
        };
    }
    Plan::Join {
        left,
        right,
        kind,
        on,
        equi,
    }
}

/// Returns true if the plan produces few rows, judged from its shape.
fn is_small(plan: &Plan) -> bool {
    match plan {
        Plan::Scan(s) => match &s.access {
            Access::Points(_) => true,
            Access::Range {
                prefix,
                lower,
                upper,
            } => !prefix.is_empty() || (lower.is_some() && upper.is_some()),
            Access::Full => s.limit.is_some(),
        },
        Plan::Values { rows, .. } => rows.len() <= SMALL_VALUES,
        Plan::Limit { limit: Some(_), .. } => true,
        Plan::Aggregate { group_by, .. } => group_by.is_empty(),
        Plan::Filter { input, .. }
        | Plan::Project { input, .. }
        | Plan::Sort { input, .. }
        | Plan::Distinct { input, .. }
        | Plan::Limit { input, .. } => is_small(input),
        Plan::LookupJoin { left, points, .. } => *points && is_small(left),
        _ => false,
    }
}

/// Finds the index to look rows up through: the equi-join conditions must give values
/// for a prefix of its columns. A unique index (or the primary key) covered entirely
/// wins, giving point lookups; otherwise the longest prefix. Returns the index, the key
/// expressions over the left row (in index column order), and whether they are points.
fn pick_index(scan: &Scan, equi: &[(Expr, Expr)]) -> Option<(u32, Vec<Expr>, bool)> {
    let live: Vec<_> = scan.table.live_columns().collect();
    // Column id -> the left expression it equals.
    let mut bound = Vec::new();
    for (le, re) in equi {
        if let Expr::Column(pos, _) = re
            && let Some(col) = live.get(*pos)
            && seekable(&col.ty, &le.ty())
        {
            bound.push((col.id, le));
        }
    }
    let mut best: Option<(u32, Vec<Expr>, bool)> = None;
    for index in scan
        .table
        .all_indexes()
        .filter(|i| i.state == IndexState::Public)
    {
        let mut keys = Vec::new();
        for ic in &index.columns {
            match bound.iter().find(|(id, _)| *id == ic.column) {
                Some((_, le)) => keys.push((*le).clone()),
                None => break,
            }
        }
        if keys.is_empty() {
            continue;
        }
        let points = keys.len() == index.columns.len()
            && (index.unique || index.id == scan.table.primary.id);
        let better = match &best {
            None => true,
            Some((_, bk, bp)) => (points, keys.len()) > (*bp, bk.len()),
        };
        if better {
            best = Some((index.id, keys, points));
        }
    }
    best
}
