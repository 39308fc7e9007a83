//! Set-returning functions in FROM.

use crate::datetime;
use crate::error::{Error, ErrorKind, Result};
use crate::plan::TableFunc;
use crate::value::{Row, Value};

const MAX_ROWS: usize = 100_000_000;

fn too_many() -> Error {
    Error::new(
        ErrorKind::ProgramLimitExceeded,
        format!("set-returning function would produce more than {MAX_ROWS} rows"),
    )
}

/// Produces the rows of a table function for evaluated arguments.
pub fn run(func: TableFunc, args: &[Value], ordinality: bool) -> Result<Vec<Row>> {
    if args.iter().any(Value::is_null) && func != TableFunc::Unnest {
        return Ok(Vec::new());
    }
    let mut rows: Vec<Row> = match func {
        TableFunc::GenerateSeries => match (&args[0], &args[1]) {
            (Value::Int(a), Value::Int(b)) => {
                let step = match args.get(2) {
                    Some(Value::Int(s)) => *s,
                    _ => 1,
                };
                if step == 0 {
                    return Err(Error::new(
                        ErrorKind::InvalidParameterValue,
                        "step size cannot equal zero",
                    ));
                }
                let count = if (step > 0 && a > b) || (step < 0 && a < b) {
                    0
                } else {
                    ((b - a) / step) as u128 + 1
                };
                if count as usize > MAX_ROWS {
                    return Err(too_many());
                }
                (0..count as i64)
                    .map(|i| vec![Value::Int(a + i * step)])
                    .collect()
            }
            (Value::Numeric(_) | Value::Int(_), Value::Numeric(_) | Value::Int(_)) => {
                let to_d = |v: &Value| match v {
                    Value::Numeric(d) => *d,
                    Value::Int(i) => rust_decimal::Decimal::from(*i),
                    _ => rust_decimal::Decimal::ZERO,
                };
                let (a, b) = (to_d(&args[0]), to_d(&args[1]));
                let step = args.get(2).map_or(rust_decimal::Decimal::ONE, to_d);
                if step.is_zero() {
                    return Err(Error::new(
                        ErrorKind::InvalidParameterValue,
                        "step size cannot equal zero",
                    ));
                }
                let mut out = Vec::new();
                let mut x = a;
                while (step.is_sign_positive() && x <= b) || (step.is_sign_negative() && x >= b) {
                    out.push(vec![Value::Numeric(x)]);
                    if out.len() > MAX_ROWS {
                        return Err(too_many());
                    }
                    x += step;
                }
                out
            }
            (a @ (Value::Timestamp(_) | Value::TimestampTz(_)), b) => {
                let Some(Value::Interval(step)) = args.get(2) else {
                    return Err(Error::new(
                        ErrorKind::UndefinedFunction,
                        "generate_series over timestamps needs an interval step",
                    ));
                };
                if step.sort_key() == 0 {
                    return Err(Error::new(
                        ErrorKind::InvalidParameterValue,
                        "step size cannot equal zero",
                    ));
                }
                let tz = matches!(a, Value::TimestampTz(_));
                let naive = |v: &Value| match v {
                    Value::Timestamp(t) => *t,
                    Value::TimestampTz(t) => t.naive_utc(),
                    _ => chrono::NaiveDateTime::default(),
                };
                let (mut x, end) = (naive(a), naive(b));
                let forward = step.sort_key() > 0;
                let mut out = Vec::new();
                while (forward && x <= end) || (!forward && x >= end) {
                    out.push(vec![if tz {
                        Value::TimestampTz(x.and_utc())
                    } else {
                        Value::Timestamp(x)
                    }]);
                    if out.len() > MAX_ROWS {
                        return Err(too_many());
                    }
                    x = datetime::add_interval(x, step)?;
                }
                out
            }
            _ => {
                return Err(Error::new(
                    ErrorKind::UndefinedFunction,
                    "function generate_series does not exist for these argument types",
                ));
            }
        },
        TableFunc::Single => vec![vec![args[0].clone()]],
        TableFunc::Unnest => match &args[0] {
            Value::Array(items) => items.iter().map(|v| vec![v.clone()]).collect(),
            _ => Vec::new(),
        },
        TableFunc::JsonbArrayElements | TableFunc::JsonbArrayElementsText => match &args[0] {
            Value::Json(j) => match j.as_ref() {
                serde_json::Value::Array(items) => items
                    .iter()
                    .map(|v| {
                        vec![if func == TableFunc::JsonbArrayElements {
                            Value::Json(Box::new(v.clone()))
                        } else {
                            crate::json::as_text(v).map_or(Value::Null, Value::Text)
                        }]
                    })
                    .collect(),
                _ => {
                    return Err(Error::new(
                        ErrorKind::InvalidParameterValue,
                        "cannot extract elements from a non-array",
                    ));
                }
            },
            _ => Vec::new(),
        },
        TableFunc::JsonbEach | TableFunc::JsonbEachText | TableFunc::JsonbObjectKeys => match &args
            [0]
        {
            Value::Json(j) => match j.as_ref() {
                serde_json::Value::Object(m) => {
                    let mut keys: Vec<&String> = m.keys().collect();
                    keys.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
                    keys.into_iter()
                        .map(|k| match func {
                            TableFunc::JsonbObjectKeys => vec![Value::Text(k.clone())],
                            TableFunc::JsonbEach => {
                                vec![Value::Text(k.clone()), Value::Json(Box::new(m[k].clone()))]
                            }
                            _ => vec![
                                Value::Text(k.clone()),
                                crate::json::as_text(&m[k]).map_or(Value::Null, Value::Text),
                            ],
                        })
                        .collect()
                }
                _ => {
                    return Err(Error::new(
                        ErrorKind::InvalidParameterValue,
                        "cannot call this function on a non-object",
                    ));
                }
            },
            _ => Vec::new(),
        },
        TableFunc::RegexpSplitToTable => {
            let (Value::Text(s), Value::Text(p)) = (&args[0], &args[1]) else {
                return Ok(Vec::new());
            };
            let re = crate::functions::compile_regex(p, false)?;
            re.split(s)
                .map(|part| vec![Value::Text(part.to_string())])
                .collect()
        }
        TableFunc::GenerateSubscripts => match (&args[0], args.get(1)) {
            (Value::Array(items), Some(Value::Int(1))) => (1..=items.len() as i64)
                .map(|i| vec![Value::Int(i)])
                .collect(),
            _ => Vec::new(),
        },
    };
    if ordinality {
        for (i, r) in rows.iter_mut().enumerate() {
            r.push(Value::Int(i as i64 + 1));
        }
    }
    Ok(rows)
}
