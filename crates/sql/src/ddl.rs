//! DDL: changes to the catalog, made inside the statement's transaction.

use std::sync::Arc;

use sqlparser::ast::{self as ast, ColumnOption, Statement, TableConstraint};

use crate::binder::{self, Binder, DefaultValue};
use crate::catalog::{
    Catalog, CheckDesc, ColumnDesc, DatabaseDesc, Descriptor, FkAction, ForeignKeyDesc,
    IndexColumn, IndexDesc, IndexState, PRIMARY_INDEX, ROWID, SchemaDesc, SequenceDesc, TableDesc,
    ViewDesc,
};
use crate::error::{Error, ErrorKind, Result};
use crate::executor::{self, ExecCtx};
use crate::parse;
use crate::types::SqlType;

/// What a DDL statement needs.
pub struct DdlCtx<'a, 'b> {
    pub cx: &'a mut ExecCtx<'b>,
    pub catalog: &'a mut Catalog,
    pub db_id: u64,
}

fn schema_of(catalog: &Catalog, db_id: u64, schema: Option<&str>) -> Result<u64> {
    let name = schema.unwrap_or("public");
    catalog.schema(db_id, name).map(|s| s.id).ok_or_else(|| {
        Error::new(
            ErrorKind::UndefinedSchema,
            format!("schema \"{name}\" does not exist"),
        )
    })
}

fn duplicate_relation(name: &str) -> Error {
    Error::new(
        ErrorKind::DuplicateTable,
        format!("relation \"{name}\" already exists"),
    )
}

fn undefined(name: &str) -> Error {
    Error::new(
        ErrorKind::UndefinedTable,
        format!("relation \"{name}\" does not exist"),
    )
}

/// A notice for the client (e.g. "relation already exists, skipping").
pub type Notice = Vec<String>;

impl DdlCtx<'_, '_> {
    /// A binder for this session's catalog and search path.
    fn binder(&self) -> Binder<'_> {
        Binder::new(self.catalog, self.db_id, vec![])
            .with_search_path(self.cx.session.search_path())
    }

    /// Resolves a name to create or drop: (schema id, relation name).
    fn split(&self, name: &ast::ObjectName) -> Result<(u64, String)> {
        let b = self.binder();
        let (schema, n) = b.qualified(name)?;
        if matches!(schema.as_deref(), Some("pg_catalog" | "information_schema")) {
            return Err(Error::new(
                ErrorKind::InvalidName,
                format!(
                    "permission denied to create \"{}.{n}\"",
                    schema.unwrap_or_default()
                ),
            ));
        }
        if n.len() > 63 {
            return Err(Error::new(
                ErrorKind::ProgramLimitExceeded,
                format!("identifier \"{n}\" is too long (the limit is 63 bytes)"),
            ));
        }
        let sid = match schema.as_deref() {
            Some(s) => schema_of(self.catalog, self.db_id, Some(s))?,
            // Unqualified: the first schema on the path that has it, else the first one
            // (where a new object is created).
            None => match b
                .search_schemas()
                .into_iter()
                .find(|sid| self.catalog.lookup(*sid, &n).is_some())
            {
                Some(sid) => sid,
                None => b.schema_id(None)?,
            },
        };
        Ok((sid, n))
    }

    fn tenant(&self) -> base::TenantId {
        self.cx.tenant
    }

    fn put(&mut self, d: Descriptor) -> Result<()> {
        let tenant = self.tenant();
        self.catalog.put(self.cx.txn, tenant, d)
    }

    fn finish(&mut self) -> Result<()> {
        let tenant = self.tenant();
        self.catalog.commit_changes(self.cx.txn, tenant)
    }

    /// Runs a DDL statement; returns the command tag and an optional notice.
    pub async fn run(&mut self, stmt: &Statement, sql: &str) -> Result<(String, Notice)> {
        let (tag, notice) = match stmt {
            Statement::CreateDatabase {
                db_name,
                if_not_exists,
                ..
            } => {
                let name = parse::object_name(db_name)?.join(".");
                if self.catalog.database(&name).is_some() {
                    if *if_not_exists {
                        return Ok((
                            "CREATE DATABASE".into(),
                            vec![format!("database \"{name}\" already exists, skipping")],
                        ));
                    }
                    return Err(Error::new(
                        ErrorKind::DuplicateDatabase,
                        format!("database \"{name}\" already exists"),
                    ));
                }
                let id = self.catalog.allocate_id();
                self.put(Descriptor::Database(DatabaseDesc { id, name }))?;
                let sid = self.catalog.allocate_id();
                self.put(Descriptor::Schema(SchemaDesc {
                    id: sid,
                    db_id: id,
                    name: "public".into(),
                }))?;
                ("CREATE DATABASE".into(), vec![])
            }
            Statement::CreateSchema {
                schema_name,
                if_not_exists,
                ..
            } => {
                let name = match schema_name {
                    ast::SchemaName::Simple(n) => parse::object_name(n)?.join("."),
                    _ => return Err(Error::unsupported("CREATE SCHEMA AUTHORIZATION")),
                };
                if name.starts_with("pg_") {
                    return Err(Error::new(
                        ErrorKind::InvalidName,
                        format!("unacceptable schema name \"{name}\""),
                    )
                    .with_detail("The prefix \"pg_\" is reserved for system schemas."));
                }
                if self.catalog.schema(self.db_id, &name).is_some() || name == "information_schema"
                {
                    if *if_not_exists {
                        return Ok((
                            "CREATE SCHEMA".into(),
                            vec![format!("schema \"{name}\" already exists, skipping")],
                        ));
                    }
                    return Err(Error::new(
                        ErrorKind::DuplicateSchema,
                        format!("schema \"{name}\" already exists"),
                    ));
                }
                let id = self.catalog.allocate_id();
                self.put(Descriptor::Schema(SchemaDesc {
                    id,
                    db_id: self.db_id,
                    name,
                }))?;
                ("CREATE SCHEMA".into(), vec![])
            }
            Statement::CreateTable(ct) => return self.create_table(ct).await,
            Statement::CreateIndex(ci) => return self.create_index(ci).await,
            Statement::CreateSequence {
                if_not_exists,
                name,
                sequence_options,
                temporary,
            } => {
                if *temporary {
                    return Err(Error::unsupported("temporary sequences"));
                }
                let (sid, n) = self.split(name)?;
                if self.relation_exists(sid, &n) {
                    if *if_not_exists {
                        return Ok((
                            "CREATE SEQUENCE".into(),
                            vec![format!("relation \"{n}\" already exists, skipping")],
                        ));
                    }
                    return Err(duplicate_relation(&n));
                }
                let mut seq = SequenceDesc {
                    id: self.catalog.allocate_id(),
                    db_id: self.db_id,
                    schema_id: sid,
                    name: n,
                    start: 1,
                    increment: 1,
                    min: 1,
                    max: i64::MAX,
                    cycle: false,
                    owned_by: None,
                };
                apply_sequence_options(&mut seq, sequence_options, true)?;
                self.put(Descriptor::Sequence(seq))?;
                ("CREATE SEQUENCE".into(), vec![])
            }
            Statement::CreateView(cv) => {
                if cv.materialized {
                    return Err(Error::unsupported("materialized views"));
                }
                let (sid, n) = self.split(&cv.name)?;
                let mut b = self.binder();
                let (_, cols) = b.bind_query(&cv.query)?;
                let mut columns: Vec<(String, SqlType)> = cols
                    .iter()
                    .map(|c| (c.name.clone(), c.ty.clone()))
                    .collect();
                for (c, alias) in columns.iter_mut().zip(&cv.columns) {
                    c.0 = parse::ident(&alias.name);
                }
                let existing = self.catalog.lookup(sid, &n).cloned();
                let id = match existing {
                    Some(Descriptor::View(v)) if cv.or_replace => {
                        // As in PostgreSQL, a replacement keeps the old columns (names and
                        // types, in order) and may only add new ones at the end.
                        if columns.len() < v.columns.len() {
                            return Err(Error::new(
                                ErrorKind::InvalidTableDefinition,
                                "cannot drop columns from view",
                            ));
                        }
                        for ((old_name, old_ty), (new_name, new_ty)) in
                            v.columns.iter().zip(&columns)
                        {
                            if old_name != new_name {
                                return Err(Error::new(
                                    ErrorKind::InvalidTableDefinition,
                                    format!(
                                        "cannot change name of view column \"{old_name}\" to \"{new_name}\""
                                    ),
                                ));
                            }
                            if old_ty != new_ty {
                                return Err(Error::new(
                                    ErrorKind::InvalidTableDefinition,
                                    format!(
                                        "cannot change data type of view column \"{old_name}\" from {} to {}",
                                        old_ty.pg_name(),
                                        new_ty.pg_name()
                                    ),
                                ));
                            }
                        }
                        v.id
                    }
                    Some(_) if cv.if_not_exists => {
                        return Ok((
                            "CREATE VIEW".into(),
                            vec![format!("relation \"{n}\" already exists, skipping")],
                        ));
                    }
                    Some(_) => return Err(duplicate_relation(&n)),
                    None => self.catalog.allocate_id(),
                };
                let query_sql = if cv.columns.is_empty() {
                    cv.query.to_string()
                } else {
                    // Keep the column names by wrapping the query.
                    let names: Vec<String> = columns
                        .iter()
                        .map(|(n, _)| format!("\"{}\"", n.replace('"', "\"\"")))
                        .collect();
                    format!("SELECT * FROM ({}) AS v({})", cv.query, names.join(", "))
                };
                self.put(Descriptor::View(ViewDesc {
                    id,
                    db_id: self.db_id,
                    schema_id: sid,
                    name: n,
                    sql: query_sql,
                    columns,
                }))?;
                ("CREATE VIEW".into(), vec![])
            }
            Statement::Drop {
                object_type,
                if_exists,
                names,
                cascade,
                ..
            } => return self.drop(object_type, *if_exists, names, *cascade).await,
            Statement::Truncate(t) => {
                let mut tables = Vec::new();
                for target in &t.table_names {
                    tables.push(self.binder().table(&target.name)?);
                }
                if matches!(t.cascade, Some(ast::CascadeOption::Cascade)) {
                    // Referencing tables are truncated too, transitively.
                    let mut i = 0;
                    while i < tables.len() {
                        let children: Vec<Arc<TableDesc>> = self
                            .catalog
                            .referencing(tables[i].id)
                            .into_iter()
                            .map(|c| Arc::new(c.clone()))
                            .collect();
                        for c in children {
                            if !tables.iter().any(|x| x.id == c.id) {
                                tables.push(c);
                            }
                        }
                        i += 1;
                    }
                }
                let ids: Vec<u64> = tables.iter().map(|x| x.id).collect();
                for table in tables {
                    let outside: Vec<&TableDesc> = self
                        .catalog
                        .referencing(table.id)
                        .into_iter()
                        .filter(|c| !ids.contains(&c.id))
                        .collect();
                    if let Some(child) = outside.first().map(|c| c.name.clone()) {
                        {
                            return Err(Error::new(ErrorKind::FeatureNotSupported, "cannot truncate a table referenced in a foreign key constraint")
                                .with_detail(format!("Table \"{child}\" references \"{}\".", table.name))
                                .with_hint("Truncate table \"{child}\" at the same time, or use TRUNCATE ... CASCADE."));
                        }
                    }
                    self.delete_table_data(&table).await?;
                    if matches!(t.identity, Some(ast::TruncateIdentityOption::Restart)) {
                        self.restart_sequences(&table).await?;
                    }
                }
                return Ok(("TRUNCATE TABLE".into(), vec![]));
            }
            Statement::AlterTable(at) => return self.alter_table(at).await,
            _ => {
                return Err(Error::unsupported(format!(
                    "the statement {}",
                    sql.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
                )));
            }
        };
        self.finish()?;
        Ok((tag, notice))
    }

    /// True if a table, view, sequence or index named `name` exists in schema `sid` (they
    /// share one namespace, as in PostgreSQL).
    fn relation_exists(&self, sid: u64, name: &str) -> bool {
        self.catalog.lookup(sid, name).is_some()
            || self.catalog.all().any(|d| match d {
                Descriptor::Table(t) => {
                    t.schema_id == sid
                        && t.all_indexes()
                            .any(|i| i.name == name && !(i.id == t.primary.id && t.has_rowid()))
                }
                _ => false,
            })
    }

    /// Views (other than those in `skip`) whose query reads relation `id`, directly or
    /// through other views.
    fn dependent_views(&self, id: u64, skip: &[u64]) -> Vec<ViewDesc> {
        let views: Vec<ViewDesc> = self
            .catalog
            .all()
            .filter_map(|d| match d {
                Descriptor::View(v) if !skip.contains(&v.id) => Some(v.clone()),
                _ => None,
            })
            .collect();
        let mut out: Vec<ViewDesc> = Vec::new();
        let mut targets = vec![id];
        while let Some(t) = targets.pop() {
            for v in &views {
                if out.iter().any(|o| o.id == v.id) {
                    continue;
                }
                if self.view_reads(v, t) {
                    targets.push(v.id);
                    out.push(v.clone());
                }
            }
        }
        out
    }

    /// True if the view's query names relation `id`.
    fn view_reads(&self, v: &ViewDesc, id: u64) -> bool {
        use std::ops::ControlFlow;
        let Ok(parsed) = parse::parse(&v.sql) else {
            return false;
        };
        let b = Binder::new(self.catalog, v.db_id, vec![]);
        let mut found = false;
        for p in &parsed {
            let _ = ast::visit_relations(&p.stmt, |name| {
                let hit = b.qualified(name).ok().and_then(|(schema, n)| {
                    let sid = match schema {
                        Some(s) => b.schema_id(Some(&s)).ok()?,
                        None => v.schema_id,
                    };
                    self.catalog.lookup(sid, &n).map(Descriptor::id)
                });
                if hit == Some(id) {
                    found = true;
                    return ControlFlow::Break(());
                }
                ControlFlow::Continue(())
            });
        }
        found
    }

    async fn restart_sequences(&mut self, table: &TableDesc) -> Result<()> {
        let seqs: Vec<SequenceDesc> = self
            .catalog
            .all()
            .filter_map(|d| match d {
                Descriptor::Sequence(s) if s.owned_by.is_some_and(|(t, _)| t == table.id) => {
                    Some(s.clone())
                }
                _ => None,
            })
            .collect();
        for s in seqs {
            let tenant = self.tenant();
            self.cx
                .txn
                .delete(crate::catalog::sequence_key(tenant, s.id))?;
            self.cx.sequences.forget(s.id);
        }
        Ok(())
    }

    async fn delete_table_data(&mut self, table: &TableDesc) -> Result<()> {
        for k in executor::scan_keys_for_truncate(self.cx, table).await? {
            self.cx.txn.delete(k)?;
        }
        Ok(())
    }

    async fn create_table(&mut self, ct: &ast::CreateTable) -> Result<(String, Notice)> {
        if ct.temporary {
            return Err(Error::unsupported("temporary tables"));
        }
        if ct.like.is_some() || ct.inherits.is_some() || ct.partition_by.is_some() {
            return Err(Error::unsupported(
                "CREATE TABLE with LIKE, INHERITS or PARTITION BY",
            ));
        }
        let (sid, name) = self.split(&ct.name)?;
        if self.relation_exists(sid, &name) {
            if ct.if_not_exists {
                return Ok((
                    "CREATE TABLE".into(),
                    vec![format!("relation \"{name}\" already exists, skipping")],
                ));
            }
            return Err(duplicate_relation(&name));
        }
        let id = self.catalog.allocate_id();
        let mut table = TableDesc {
            id,
            db_id: self.db_id,
            schema_id: sid,
            name: name.clone(),
            columns: Vec::new(),
            next_column_id: 1,
            primary: IndexDesc {
                id: PRIMARY_INDEX,
                name: format!("{name}_pkey"),
                columns: vec![],
                unique: true,
                state: IndexState::Public,
                constraint: true,
            },
            indexes: Vec::new(),
            next_index_id: PRIMARY_INDEX + 1,
            checks: Vec::new(),
            foreign_keys: Vec::new(),
        };
        let mut pk: Option<Vec<IndexColumn>> = None;
        let mut uniques: Vec<(Option<String>, Vec<u32>)> = Vec::new();
        let mut fks: Vec<(Option<String>, Vec<u32>, &ast::ForeignKeyConstraint)> = Vec::new();
        let mut checks: Vec<(Option<String>, &ast::Expr, Option<String>)> = Vec::new();
        let mut sequences = Vec::new();
        if let Some(q) = &ct.query {
            // CREATE TABLE ... AS SELECT: columns from the query.
            let mut b = self.binder();
            let (plan, cols) = b.bind_query(q)?;
            let subplans = std::mem::take(&mut b.subplans);
            for c in &cols {
                let ty = if c.ty == SqlType::Unknown {
                    SqlType::Text
                } else {
                    c.ty.clone()
                };
                let cid = table.next_column_id;
                table.next_column_id += 1;
                table.columns.push(ColumnDesc {
                    id: cid,
                    name: c.name.clone(),
                    ty,
                    nullable: true,
                    default: None,
                    hidden: false,
                    dropped: false,
                    identity: None,
                    fill: None,
                });
            }
            self.add_rowid(&mut table);
            self.put(Descriptor::Table(table.clone()))?;
            self.finish()?;
            let table = Arc::new(table);
            let rows = {
                let mut sub = ExecCtx::new(
                    self.cx.txn,
                    self.cx.tenant,
                    self.cx.params,
                    self.cx.session,
                    &subplans,
                    self.cx.sequences,
                    self.cx.cancel,
                );
                sub.exec(&plan).await?
            };
            let mut full = Vec::with_capacity(rows.len());
            for r in rows {
                let mut row = r;
                row.push(crate::value::Value::Int(self.cx.sequences.row_id()));
                full.push(row);
            }
            executor::dml::write_rows(self.cx, table, &full).await?;
            return Ok((format!("SELECT {}", full.len()), vec![]));
        }
        for col in &ct.columns {
            let cname = parse::ident(&col.name);
            if table.columns.iter().any(|c| c.name == cname) {
                return Err(Error::new(
                    ErrorKind::DuplicateColumn,
                    format!("column \"{cname}\" specified more than once"),
                ));
            }
            let ty = binder::data_type(&col.data_type)?;
            let cid = table.next_column_id;
            table.next_column_id += 1;
            let mut desc = ColumnDesc {
                id: cid,
                name: cname.clone(),
                ty: ty.clone(),
                nullable: true,
                default: None,
                hidden: false,
                dropped: false,
                identity: None,
                fill: None,
            };
            if binder::is_serial(&col.data_type) {
                let seq = self.owned_sequence(&table, &cname, cid, sid, &[])?;
                desc.default = Some(format!("nextval('{}'::regclass)", seq.name));
                desc.nullable = false;
                sequences.push(seq);
            }
            for opt in &col.options {
                let cons_name = opt.name.as_ref().map(parse::ident);
                match &opt.option {
                    ColumnOption::Null => desc.nullable = true,
                    ColumnOption::NotNull => desc.nullable = false,
                    ColumnOption::Default(e) => {
                        if desc.default.is_some()
                            && desc.identity.is_none()
                            && binder::is_serial(&col.data_type)
                        {
                            return Err(Error::new(
                                ErrorKind::Syntax,
                                format!(
                                    "multiple default values specified for column \"{cname}\" of table \"{name}\""
                                ),
                            ));
                        }
                        desc.default = Some(e.to_string());
                    }
                    ColumnOption::PrimaryKey(_) => {
                        if pk.is_some() {
                            return Err(Error::new(
                                ErrorKind::InvalidTableDefinition,
                                format!(
                                    "multiple primary keys for table \"{name}\" are not allowed"
                                ),
                            ));
                        }
                        pk = Some(vec![IndexColumn {
                            column: cid,
                            desc: false,
                            nulls_first: false,
                        }]);
                        if let Some(n) = cons_name {
                            table.primary.name = n;
                        }
                        desc.nullable = false;
                    }
                    ColumnOption::Unique(_) => uniques.push((cons_name, vec![cid])),
                    ColumnOption::ForeignKey(fk) => fks.push((cons_name, vec![cid], fk)),
                    ColumnOption::Check(c) => {
                        checks.push((cons_name, c.expr.as_ref(), Some(cname.clone())))
                    }
                    ColumnOption::Generated {
                        generated_as,
                        sequence_options,
                        generation_expr: None,
                        ..
                    } => {
                        let always = matches!(generated_as, ast::GeneratedAs::Always);
                        let seq = self.owned_sequence(
                            &table,
                            &cname,
                            cid,
                            sid,
                            sequence_options.as_deref().unwrap_or(&[]),
                        )?;
                        desc.default = Some(format!("nextval('{}'::regclass)", seq.name));
                        desc.identity = Some(always);
                        desc.nullable = false;
                        sequences.push(seq);
                    }
                    ColumnOption::Generated { .. } => {
                        return Err(Error::unsupported("generated columns"));
                    }
                    ColumnOption::Collation(c) => {
                        let n = parse::object_name(c)?.join(".");
                        if !matches!(
                            n.as_str(),
                            "C" | "POSIX" | "default" | "pg_catalog.default" | "ucs_basic"
                        ) {
                            return Err(Error::unsupported(format!(
                                "collation \"{n}\" (only \"C\" is supported)"
                            )));
                        }
                    }
                    other => return Err(Error::unsupported(format!("the column option {other}"))),
                }
            }
            table.columns.push(desc);
        }
        for c in &ct.constraints {
            match c {
                TableConstraint::PrimaryKey(p) => {
                    if pk.is_some() {
                        return Err(Error::new(
                            ErrorKind::InvalidTableDefinition,
                            format!("multiple primary keys for table \"{name}\" are not allowed"),
                        ));
                    }
                    pk = Some(index_columns(&table, &p.columns)?);
                    if let Some(n) = &p.name {
                        table.primary.name = parse::ident(n);
                    }
                }
                TableConstraint::Unique(u) => {
                    let cols = index_columns(&table, &u.columns)?
                        .into_iter()
                        .map(|c| c.column)
                        .collect();
                    uniques.push((u.name.as_ref().map(parse::ident), cols));
                }
                TableConstraint::ForeignKey(fk) => {
                    let cols = fk
                        .columns
                        .iter()
                        .map(|c| column_id(&table, &parse::ident(c)))
                        .collect::<Result<_>>()?;
                    fks.push((fk.name.as_ref().map(parse::ident), cols, fk));
                }
                TableConstraint::Check(ch) => {
                    checks.push((ch.name.as_ref().map(parse::ident), ch.expr.as_ref(), None))
                }
                other => return Err(Error::unsupported(format!("the table constraint {other}"))),
            }
        }
        match pk {
            Some(cols) => {
                for ic in &cols {
                    let c = table
                        .columns
                        .iter_mut()
                        .find(|c| c.id == ic.column)
                        .expect("resolved above");
                    if !crate::rowcodec::keyable(&c.ty) {
                        return Err(Error::unsupported(format!(
                            "a primary key on a column of type {}",
                            c.ty.pg_name()
                        )));
                    }
                    c.nullable = false;
                }
                table.primary.columns = cols;
            }
            None => self.add_rowid(&mut table),
        }
        for (cname, cols) in uniques {
            self.add_unique(&mut table, cname, cols)?;
        }
        for (cname, expr, col) in checks {
            if let Some(n) = &cname
                && table.checks.iter().any(|c| c.name == *n)
            {
                return Err(Error::new(
                    ErrorKind::DuplicateObject,
                    format!("constraint \"{n}\" for relation \"{name}\" already exists"),
                ));
            }
            let n = cname.unwrap_or_else(|| {
                // PostgreSQL names an unnamed check after the first column it mentions,
                // numbering repeats.
                let col = col.clone().or_else(|| {
                    let mut first = None;
                    let _ = ast::visit_expressions(expr, |e| {
                        if first.is_none()
                            && let ast::Expr::Identifier(i) = e
                        {
                            let n = parse::ident(i);
                            if table.columns.iter().any(|c| c.name == n) {
                                first = Some(n);
                            }
                        }
                        std::ops::ControlFlow::<()>::Continue(())
                    });
                    first
                });
                let base = match &col {
                    Some(c) => format!("{name}_{c}_check"),
                    None => format!("{name}_check"),
                };
                let mut n = base.clone();
                let mut k = 0;
                while table.checks.iter().any(|c| c.name == n) {
                    k += 1;
                    n = format!("{base}{k}");
                }
                n
            });
            table.checks.push(CheckDesc {
                name: n,
                expr: expr.to_string(),
            });
        }
        for (cname, cols, fk) in fks {
            let desc = self.foreign_key(&table, cname, cols, fk)?;
            table.foreign_keys.push(desc);
        }
        // Validate defaults and checks by binding them now.
        {
            let mut b = self.binder();
            let scope = binder::table_scope(&table, &name);
            for c in table.live_columns() {
                if c.default.is_some()
                    && !c
                        .default
                        .as_deref()
                        .is_some_and(|d| d.starts_with("nextval("))
                {
                    b.column_default(&table, c)?;
                }
            }
            b.table_checks(&table, &scope)?;
        }
        for s in sequences {
            self.put(Descriptor::Sequence(s))?;
        }
        self.put(Descriptor::Table(table))?;
        self.finish()?;
        Ok(("CREATE TABLE".into(), vec![]))
    }

    fn add_rowid(&mut self, table: &mut TableDesc) {
        let cid = table.next_column_id;
        table.next_column_id += 1;
        table.columns.push(ColumnDesc {
            id: cid,
            name: ROWID.into(),
            ty: SqlType::Int8,
            nullable: false,
            default: None,
            hidden: true,
            dropped: false,
            identity: None,
            fill: None,
        });
        table.primary.columns = vec![IndexColumn {
            column: cid,
            desc: false,
            nulls_first: false,
        }];
    }

    fn owned_sequence(
        &mut self,
        table: &TableDesc,
        col: &str,
        cid: u32,
        sid: u64,
        opts: &[ast::SequenceOptions],
    ) -> Result<SequenceDesc> {
        let mut base = format!("{}_{col}_seq", table.name);
        let mut n = 1;
        while self.catalog.lookup(sid, &base).is_some() {
            base = format!("{}_{col}_seq{n}", table.name);
            n += 1;
        }
        let mut seq = SequenceDesc {
            id: self.catalog.allocate_id(),
            db_id: self.db_id,
            schema_id: sid,
            name: base,
            start: 1,
            increment: 1,
            min: 1,
            max: i64::MAX,
            cycle: false,
            owned_by: Some((table.id, cid)),
        };
        apply_sequence_options(&mut seq, opts, true)?;
        Ok(seq)
    }

    fn add_unique(
        &mut self,
        table: &mut TableDesc,
        cname: Option<String>,
        cols: Vec<u32>,
    ) -> Result<IndexDesc> {
        for c in &cols {
            let col = table
                .column_by_id(*c)
                .ok_or_else(|| Error::internal("unique column missing"))?;
            if !crate::rowcodec::keyable(&col.ty) {
                return Err(Error::unsupported(format!(
                    "a unique constraint on a column of type {}",
                    col.ty.pg_name()
                )));
            }
        }
        let names: Vec<String> = cols
            .iter()
            .filter_map(|c| table.column_by_id(*c).map(|c| c.name.clone()))
            .collect();
        let n = cname.unwrap_or_else(|| format!("{}_{}_key", table.name, names.join("_")));
        if table.all_indexes().any(|i| i.name == n) || self.relation_exists(table.schema_id, &n) {
            return Err(duplicate_relation(&n));
        }
        let idx = IndexDesc {
            id: table.next_index_id,
            name: n,
            columns: cols
                .into_iter()
                .map(|c| IndexColumn {
                    column: c,
                    desc: false,
                    nulls_first: false,
                })
                .collect(),
            unique: true,
            state: IndexState::Public,
            constraint: true,
        };
        table.next_index_id += 1;
        table.indexes.push(idx.clone());
        Ok(idx)
    }

    fn foreign_key(
        &self,
        table: &TableDesc,
        cname: Option<String>,
        cols: Vec<u32>,
        fk: &ast::ForeignKeyConstraint,
    ) -> Result<ForeignKeyDesc> {
        let b = self.binder();
        let (_, pname) = b.qualified(&fk.foreign_table)?;
        let parent: TableDesc = if pname == table.name {
            table.clone()
        } else {
            (*b.table(&fk.foreign_table)?).clone()
        };
        let ref_cols: Vec<u32> = if fk.referred_columns.is_empty() {
            if parent.has_rowid() {
                return Err(Error::new(
                    ErrorKind::InvalidTableDefinition,
                    format!(
                        "there is no primary key for referenced table \"{}\"",
                        parent.name
                    ),
                ));
            }
            parent.primary.columns.iter().map(|c| c.column).collect()
        } else {
            fk.referred_columns
                .iter()
                .map(|c| column_id(&parent, &parse::ident(c)))
                .collect::<Result<_>>()?
        };
        if ref_cols.len() != cols.len() {
            return Err(Error::new(
                ErrorKind::InvalidForeignKey,
                "number of referencing and referenced columns for foreign key disagree",
            ));
        }
        let unique = parent.all_indexes().any(|i| {
            i.unique
                && i.columns.len() == ref_cols.len()
                && i.columns.iter().all(|c| ref_cols.contains(&c.column))
        });
        if !unique {
            let names: Vec<String> = ref_cols
                .iter()
                .filter_map(|c| parent.column_by_id(*c).map(|c| c.name.clone()))
                .collect();
            return Err(Error::new(
                ErrorKind::InvalidForeignKey,
                format!(
                    "there is no unique constraint matching given keys for referenced table \"{}\"",
                    parent.name
                ),
            )
            .with_detail(format!("Referenced columns: {}", names.join(", "))));
        }
        for (c, r) in cols.iter().zip(&ref_cols) {
            let (ct, rt) = (
                table.column_by_id(*c).map(|c| c.ty.clone()),
                parent.column_by_id(*r).map(|c| c.ty.clone()),
            );
            if let (Some(ct), Some(rt)) = (ct, rt)
                && ct.family() != rt.family()
            {
                return Err(Error::new(
                    ErrorKind::DatatypeMismatch,
                    "foreign key constraint cannot be implemented",
                )
                .with_detail(format!(
                    "Key columns are of incompatible types: {} and {}.",
                    ct.pg_name(),
                    rt.pg_name()
                )));
            }
        }
        let names: Vec<String> = cols
            .iter()
            .filter_map(|c| table.column_by_id(*c).map(|c| c.name.clone()))
            .collect();
        let action = |a: &Option<ast::ReferentialAction>| match a {
            None | Some(ast::ReferentialAction::NoAction) => FkAction::NoAction,
            Some(ast::ReferentialAction::Restrict) => FkAction::Restrict,
            Some(ast::ReferentialAction::Cascade) => FkAction::Cascade,
            Some(ast::ReferentialAction::SetNull) => FkAction::SetNull,
            Some(ast::ReferentialAction::SetDefault) => FkAction::SetDefault,
        };
        if matches!(action(&fk.on_update), FkAction::Cascade) {
            return Err(Error::unsupported("ON UPDATE CASCADE"));
        }
        Ok(ForeignKeyDesc {
            name: cname.unwrap_or_else(|| format!("{}_{}_fkey", table.name, names.join("_"))),
            columns: cols,
            ref_table: parent.id,
            ref_columns: ref_cols,
            on_delete: action(&fk.on_delete),
            on_update: action(&fk.on_update),
        })
    }

    async fn create_index(&mut self, ci: &ast::CreateIndex) -> Result<(String, Notice)> {
        if ci.predicate.is_some() {
            return Err(Error::unsupported("partial indexes"));
        }
        if !ci.include.is_empty() {
            return Err(Error::unsupported("INCLUDE columns"));
        }
        if let Some(u) = &ci.using
            && !matches!(u, ast::IndexType::BTree)
        {
            return Err(Error::unsupported(format!("index method {u}")));
        }
        let b = self.binder();
        let table = b.table(&ci.table_name)?;
        let mut t = (*table).clone();
        let cols = index_columns(&t, &ci.columns)?;
        for ic in &cols {
            let c = t
                .column_by_id(ic.column)
                .ok_or_else(|| Error::internal("index column missing"))?;
            if !crate::rowcodec::keyable(&c.ty) {
                return Err(Error::unsupported(format!(
                    "an index on a column of type {}",
                    c.ty.pg_name()
                )));
            }
        }
        let names: Vec<String> = cols
            .iter()
            .filter_map(|c| t.column_by_id(c.column).map(|c| c.name.clone()))
            .collect();
        let name = match &ci.name {
            Some(n) => parse::object_name(n)?.last().cloned().unwrap_or_default(),
            None => {
                let mut base = format!("{}_{}_idx", t.name, names.join("_"));
                let mut k = 1;
                while t.all_indexes().any(|i| i.name == base)
                    || self.catalog.lookup(t.schema_id, &base).is_some()
                {
                    base = format!("{}_{}_idx{k}", t.name, names.join("_"));
                    k += 1;
                }
                base
            }
        };
        if t.all_indexes().any(|i| i.name == name) || self.relation_exists(t.schema_id, &name) {
            if ci.if_not_exists {
                return Ok((
                    "CREATE INDEX".into(),
                    vec![format!("relation \"{name}\" already exists, skipping")],
                ));
            }
            return Err(duplicate_relation(&name));
        }
        let idx = IndexDesc {
            id: t.next_index_id,
            name,
            columns: cols,
            unique: ci.unique,
            state: IndexState::Public,
            constraint: false,
        };
        t.next_index_id += 1;
        t.indexes.push(idx.clone());
        executor::dml::backfill_index(self.cx, Arc::new(t.clone()), &idx).await?;
        self.put(Descriptor::Table(t))?;
        self.finish()?;
        Ok(("CREATE INDEX".into(), vec![]))
    }

    async fn drop(
        &mut self,
        kind: &ast::ObjectType,
        if_exists: bool,
        names: &[ast::ObjectName],
        cascade: bool,
    ) -> Result<(String, Notice)> {
        let tag = match kind {
            ast::ObjectType::Table => "DROP TABLE",
            ast::ObjectType::View => "DROP VIEW",
            ast::ObjectType::Index => "DROP INDEX",
            ast::ObjectType::Sequence => "DROP SEQUENCE",
            ast::ObjectType::Schema => "DROP SCHEMA",
            ast::ObjectType::Database => "DROP DATABASE",
            other => return Err(Error::unsupported(format!("DROP {other}"))),
        };
        let mut notice = Vec::new();
        // Relations dropped by this statement: dependencies among them do not block it.
        let dropping: Vec<u64> = names
            .iter()
            .filter_map(|n| self.split(n).ok())
            .filter_map(|(sid, n)| self.catalog.lookup(sid, &n).map(Descriptor::id))
            .collect();
        for name in names {
            match kind {
                ast::ObjectType::Database => {
                    let n = parse::object_name(name)?.join(".");
                    let Some(db) = self.catalog.database(&n).cloned() else {
                        if if_exists {
                            notice.push(format!("database \"{n}\" does not exist, skipping"));
                            continue;
                        }
                        return Err(Error::new(
                            ErrorKind::UndefinedDatabase,
                            format!("database \"{n}\" does not exist"),
                        ));
                    };
                    if db.id == self.db_id {
                        return Err(Error::new(
                            ErrorKind::ObjectNotInPrerequisiteState,
                            "cannot drop the currently open database",
                        ));
                    }
                    let owned: Vec<Descriptor> = self
                        .catalog
                        .all()
                        .filter(|d| match d {
                            Descriptor::Schema(s) => s.db_id == db.id,
                            Descriptor::Table(t) => t.db_id == db.id,
                            Descriptor::View(v) => v.db_id == db.id,
                            Descriptor::Sequence(s) => s.db_id == db.id,
                            _ => false,
                        })
                        .cloned()
                        .collect();
                    for d in owned {
                        if let Descriptor::Table(t) = &d {
                            self.delete_table_data(t).await?;
                        }
                        let tenant = self.tenant();
                        self.catalog.remove(self.cx.txn, tenant, d.id())?;
                    }
                    let tenant = self.tenant();
                    self.catalog.remove(self.cx.txn, tenant, db.id)?;
                }
                ast::ObjectType::Schema => {
                    let n = parse::object_name(name)?.join(".");
                    let Some(s) = self.catalog.schema(self.db_id, &n).cloned() else {
                        if if_exists {
                            notice.push(format!("schema \"{n}\" does not exist, skipping"));
                            continue;
                        }
                        return Err(Error::new(
                            ErrorKind::UndefinedSchema,
                            format!("schema \"{n}\" does not exist"),
                        ));
                    };
                    let members: Vec<Descriptor> = self
                        .catalog
                        .all()
                        .filter(|d| match d {
                            Descriptor::Table(t) => t.schema_id == s.id,
                            Descriptor::View(v) => v.schema_id == s.id,
                            Descriptor::Sequence(q) => q.schema_id == s.id,
                            _ => false,
                        })
                        .cloned()
                        .collect();
                    if !members.is_empty() && !cascade {
                        return Err(Error::new(
                            ErrorKind::DependentObjectsStillExist,
                            format!("cannot drop schema {n} because other objects depend on it"),
                        )
                        .with_hint("Use DROP ... CASCADE to drop the dependent objects too."));
                    }
                    for d in members {
                        if let Descriptor::Table(t) = &d {
                            self.delete_table_data(t).await?;
                        }
                        let tenant = self.tenant();
                        self.catalog.remove(self.cx.txn, tenant, d.id())?;
                    }
                    let tenant = self.tenant();
                    self.catalog.remove(self.cx.txn, tenant, s.id)?;
                }
                ast::ObjectType::Index => {
                    let (sid, n) = self.split(name)?;
                    let owner = self.catalog.all().find_map(|d| match d {
                        Descriptor::Table(t)
                            if t.schema_id == sid && t.indexes.iter().any(|i| i.name == n) =>
                        {
                            Some(t.clone())
                        }
                        _ => None,
                    });
                    let Some(mut t) = owner else {
                        if self.catalog.all().any(|d| matches!(d, Descriptor::Table(t) if t.schema_id == sid && t.primary.name == n)) {
                            return Err(Error::new(ErrorKind::DependentObjectsStillExist, format!("cannot drop index {n} because constraint {n} on its table requires it"))
                                .with_hint("You can drop the constraint instead."));
                        }
                        if if_exists {
                            notice.push(format!("index \"{n}\" does not exist, skipping"));
                            continue;
                        }
                        return Err(Error::new(
                            ErrorKind::UndefinedObject,
                            format!("index \"{n}\" does not exist"),
                        ));
                    };
                    let idx = t
                        .indexes
                        .iter()
                        .find(|i| i.name == n)
                        .cloned()
                        .expect("found above");
                    if idx.constraint && !cascade {
                        return Err(Error::new(ErrorKind::DependentObjectsStillExist, format!("cannot drop index {n} because constraint {n} on table {} requires it", t.name))
                            .with_hint(format!("You can drop constraint {n} on table {} instead.", t.name)));
                    }
                    self.delete_index_data(&t, &idx).await?;
                    t.indexes.retain(|i| i.id != idx.id);
                    self.put(Descriptor::Table(t))?;
                }
                _ => {
                    let (sid, n) = self.split(name)?;
                    let found = self.catalog.lookup(sid, &n).cloned();
                    let matches_kind = match (&found, kind) {
                        (Some(Descriptor::Table(_)), ast::ObjectType::Table) => true,
                        (Some(Descriptor::View(_)), ast::ObjectType::View) => true,
                        (Some(Descriptor::Sequence(_)), ast::ObjectType::Sequence) => true,
                        (None, _) => false,
                        (Some(_), _) => {
                            let what = match kind {
                                ast::ObjectType::Table => "a table",
                                ast::ObjectType::View => "a view",
                                _ => "a sequence",
                            };
                            return Err(Error::new(
                                ErrorKind::WrongObjectType,
                                format!("\"{n}\" is not {what}"),
                            )
                            .with_hint(format!(
                                "Use DROP {} to remove it.",
                                found.as_ref().map_or("", |d| match d {
                                    Descriptor::Table(_) => "TABLE",
                                    Descriptor::View(_) => "VIEW",
                                    _ => "SEQUENCE",
                                })
                            )));
                        }
                    };
                    if !matches_kind {
                        if if_exists {
                            let what = match kind {
                                ast::ObjectType::Table => "table",
                                ast::ObjectType::View => "view",
                                _ => "sequence",
                            };
                            notice.push(format!("{what} \"{n}\" does not exist, skipping"));
                            continue;
                        }
                        return Err(match kind {
                            ast::ObjectType::Table
                            | ast::ObjectType::Sequence
                            | ast::ObjectType::View => undefined(&n),
                            _ => undefined(&n),
                        });
                    }
                    let d = found.expect("checked above");
                    let views = self.dependent_views(d.id(), &dropping);
                    if let Some(v) = views.first() {
                        if !cascade {
                            let what = if matches!(d, Descriptor::View(_)) {
                                "view"
                            } else {
                                "table"
                            };
                            return Err(Error::new(
                                ErrorKind::DependentObjectsStillExist,
                                format!(
                                    "cannot drop {what} {n} because other objects depend on it"
                                ),
                            )
                            .with_detail(format!("view {} depends on {what} {n}", v.name))
                            .with_hint("Use DROP ... CASCADE to drop the dependent objects too."));
                        }
                        for v in &views {
                            let tenant = self.tenant();
                            self.catalog.remove(self.cx.txn, tenant, v.id)?;
                        }
                    }
                    if let Descriptor::Table(t) = &d {
                        let children: Vec<TableDesc> = self
                            .catalog
                            .referencing(t.id)
                            .into_iter()
                            .filter(|c| c.id != t.id && !dropping.contains(&c.id))
                            .cloned()
                            .collect();
                        if !children.is_empty() {
                            if !cascade {
                                return Err(Error::new(
                                    ErrorKind::DependentObjectsStillExist,
                                    format!(
                                        "cannot drop table {} because other objects depend on it",
                                        t.name
                                    ),
                                )
                                .with_detail(format!(
                                    "constraint {} on table {} depends on table {}",
                                    children[0]
                                        .foreign_keys
                                        .iter()
                                        .find(|f| f.ref_table == t.id)
                                        .map_or("", |f| f.name.as_str()),
                                    children[0].name,
                                    t.name
                                ))
                                .with_hint(
                                    "Use DROP ... CASCADE to drop the dependent objects too.",
                                ));
                            }
                            for mut c in children {
                                c.foreign_keys.retain(|f| f.ref_table != t.id);
                                self.put(Descriptor::Table(c))?;
                            }
                        }
                        self.delete_table_data(t).await?;
                        let owned: Vec<u64> = self
                            .catalog
                            .all()
                            .filter_map(|x| match x {
                                Descriptor::Sequence(s)
                                    if s.owned_by.is_some_and(|(tid, _)| tid == t.id) =>
                                {
                                    Some(s.id)
                                }
                                _ => None,
                            })
                            .collect();
                        for s in owned {
                            let tenant = self.tenant();
                            self.catalog.remove(self.cx.txn, tenant, s)?;
                        }
                    }
                    let tenant = self.tenant();
                    self.catalog.remove(self.cx.txn, tenant, d.id())?;
                }
            }
        }
        self.finish()?;
        Ok((tag.into(), notice))
    }

    async fn delete_index_data(&mut self, t: &TableDesc, idx: &IndexDesc) -> Result<()> {
        let prefix = t.index_prefix(self.tenant(), idx.id);
        let mut span = txn::Span {
            end: codec::key::prefix_end(&prefix).unwrap_or_default(),
            start: prefix,
        };
        loop {
            let out = self.cx.txn.scan(&span, 1024, false).await?;
            for (k, _) in out.pairs {
                self.cx.txn.delete(k)?;
            }
            match out.resume {
                Some(r) => span.start = r,
                None => return Ok(()),
            }
        }
    }

    async fn alter_table(&mut self, at: &ast::AlterTable) -> Result<(String, Notice)> {
        let b = self.binder();
        let table = match b.table(&at.name) {
            Ok(t) => t,
            Err(e) if at.if_exists && e.kind == ErrorKind::UndefinedTable => {
                return Ok((
                    "ALTER TABLE".into(),
                    vec![format!("relation \"{}\" does not exist, skipping", at.name)],
                ));
            }
            Err(e) => return Err(e),
        };
        let mut t = (*table).clone();
        for op in &at.operations {
            self.alter_one(&mut t, op).await?;
        }
        self.put(Descriptor::Table(t))?;
        self.finish()?;
        Ok(("ALTER TABLE".into(), vec![]))
    }

    async fn alter_one(&mut self, t: &mut TableDesc, op: &ast::AlterTableOperation) -> Result<()> {
        use ast::AlterTableOperation as Op;
        match op {
            Op::AddColumn {
                column_def,
                if_not_exists,
                ..
            } => {
                let cname = parse::ident(&column_def.name);
                if t.column(&cname).is_some() {
                    if *if_not_exists {
                        return Ok(());
                    }
                    return Err(Error::new(
                        ErrorKind::DuplicateColumn,
                        format!(
                            "column \"{cname}\" of relation \"{}\" already exists",
                            t.name
                        ),
                    ));
                }
                let ty = binder::data_type(&column_def.data_type)?;
                let cid = t.next_column_id;
                t.next_column_id += 1;
                let mut col = ColumnDesc {
                    id: cid,
                    name: cname.clone(),
                    ty: ty.clone(),
                    nullable: true,
                    default: None,
                    hidden: false,
                    dropped: false,
                    identity: None,
                    fill: None,
                };
                let mut new_index = None;
                let mut new_check = None;
                let mut new_fk = None;
                for o in &column_def.options {
                    match &o.option {
                        ColumnOption::Null => col.nullable = true,
                        ColumnOption::NotNull => col.nullable = false,
                        ColumnOption::Default(e) => col.default = Some(e.to_string()),
                        ColumnOption::Unique(_) => {
                            new_index = Some(o.name.as_ref().map(parse::ident))
                        }
                        ColumnOption::Check(c) => {
                            new_check =
                                Some((o.name.as_ref().map(parse::ident), c.expr.to_string()))
                        }
                        ColumnOption::ForeignKey(fk) => {
                            new_fk = Some((o.name.as_ref().map(parse::ident), fk.clone()))
                        }
                        ColumnOption::PrimaryKey(_) => {
                            return Err(Error::unsupported("ADD COLUMN ... PRIMARY KEY"));
                        }
                        other => {
                            return Err(Error::unsupported(format!(
                                "the column option {other} in ADD COLUMN"
                            )));
                        }
                    }
                }
                if binder::is_serial(&column_def.data_type) {
                    return Err(Error::unsupported(
                        "adding a serial column to an existing table",
                    ));
                }
                // Existing rows take the default's value, which must be a constant.
                if let Some(d) = &col.default {
                    let mut b = self.binder();
                    match b.column_default(t, &col)? {
                        DefaultValue::Expr(e) if e.is_constant() => {
                            let v = self.cx.eval(&e, &[])?;
                            col.fill = crate::textio::to_text(&v, &ty);
                        }
                        _ => {
                            return Err(Error::unsupported(format!(
                                "ADD COLUMN with the volatile default {d}"
                            )));
                        }
                    }
                }
                if !col.nullable && col.fill.is_none() && self.has_rows(t).await? {
                    return Err(Error::new(
                        ErrorKind::NotNullViolation,
                        format!(
                            "column \"{cname}\" of relation \"{}\" contains null values",
                            t.name
                        ),
                    ));
                }
                t.columns.push(col);
                if let Some(name) = new_index {
                    let idx = self.add_unique(t, name, vec![cid])?;
                    executor::dml::backfill_index(self.cx, Arc::new(t.clone()), &idx).await?;
                }
                if let Some((name, expr)) = new_check {
                    let n = name.unwrap_or_else(|| format!("{}_{cname}_check", t.name));
                    t.checks.push(CheckDesc {
                        name: n.clone(),
                        expr,
                    });
                    self.validate_check(t, &n).await?;
                }
                if let Some((name, fk)) = new_fk {
                    let desc = self.foreign_key(t, name, vec![cid], &fk)?;
                    executor::dml::validate_foreign_key(self.cx, Arc::new(t.clone()), &desc)
                        .await?;
                    t.foreign_keys.push(desc);
                }
            }
            Op::DropColumn {
                column_names,
                if_exists,
                drop_behavior,
                ..
            } => {
                for cn in column_names {
                    let cname = parse::ident(cn);
                    let Some(col) = t.column(&cname).filter(|c| !c.hidden).cloned() else {
                        if *if_exists {
                            continue;
                        }
                        return Err(Error::new(
                            ErrorKind::UndefinedColumn,
                            format!(
                                "column \"{cname}\" of relation \"{}\" does not exist",
                                t.name
                            ),
                        ));
                    };
                    if t.primary.columns.iter().any(|c| c.column == col.id) && !t.has_rowid() {
                        return Err(Error::unsupported("dropping a primary key column"));
                    }
                    let dependent_indexes: Vec<IndexDesc> = t
                        .indexes
                        .iter()
                        .filter(|i| i.columns.iter().any(|c| c.column == col.id))
                        .cloned()
                        .collect();
                    if !dependent_indexes.is_empty()
                        && !dependent_indexes.iter().all(|i| i.columns.len() == 1)
                        && !matches!(drop_behavior, Some(ast::DropBehavior::Cascade))
                    {
                        return Err(Error::new(ErrorKind::DependentObjectsStillExist, format!("cannot drop column {cname} of table {} because other objects depend on it", t.name))
                            .with_hint("Use DROP ... CASCADE to drop the dependent objects too."));
                    }
                    for idx in &dependent_indexes {
                        self.delete_index_data(t, idx).await?;
                    }
                    t.indexes
                        .retain(|i| !i.columns.iter().any(|c| c.column == col.id));
                    t.foreign_keys.retain(|f| !f.columns.contains(&col.id));
                    let c = t
                        .columns
                        .iter_mut()
                        .find(|c| c.id == col.id)
                        .expect("found above");
                    c.dropped = true;
                    c.name = format!("........pg.dropped.{}........", col.id);
                    c.default = None;
                }
            }
            Op::RenameColumn {
                old_column_name,
                new_column_name,
            } => {
                let (old, new) = (parse::ident(old_column_name), parse::ident(new_column_name));
                if t.column(&new).is_some() {
                    return Err(Error::new(
                        ErrorKind::DuplicateColumn,
                        format!("column \"{new}\" of relation \"{}\" already exists", t.name),
                    ));
                }
                let c = t
                    .columns
                    .iter_mut()
                    .find(|c| !c.dropped && !c.hidden && c.name == old)
                    .ok_or_else(|| {
                        Error::new(
                            ErrorKind::UndefinedColumn,
                            format!("column \"{old}\" does not exist"),
                        )
                    })?;
                c.name = new;
            }
            Op::RenameTable { table_name } => {
                let name = match table_name {
                    ast::RenameTableNameKind::To(n) | ast::RenameTableNameKind::As(n) => {
                        parse::object_name(n)?.last().cloned().unwrap_or_default()
                    }
                };
                if self.relation_exists(t.schema_id, &name) {
                    return Err(duplicate_relation(&name));
                }
                t.name = name;
            }
            Op::AddConstraint { constraint, .. } => match constraint {
                TableConstraint::PrimaryKey(p) => {
                    if !t.has_rowid() {
                        return Err(Error::new(
                            ErrorKind::InvalidTableDefinition,
                            format!(
                                "multiple primary keys for table \"{}\" are not allowed",
                                t.name
                            ),
                        ));
                    }
                    let cols = index_columns(t, &p.columns)?;
                    self.rewrite_primary_key(t, cols, p.name.as_ref().map(parse::ident))
                        .await?;
                }
                TableConstraint::Unique(u) => {
                    let cols = index_columns(t, &u.columns)?
                        .into_iter()
                        .map(|c| c.column)
                        .collect();
                    let idx = self.add_unique(t, u.name.as_ref().map(parse::ident), cols)?;
                    executor::dml::backfill_index(self.cx, Arc::new(t.clone()), &idx).await?;
                }
                TableConstraint::Check(ch) => {
                    let n = ch
                        .name
                        .as_ref()
                        .map(parse::ident)
                        .unwrap_or_else(|| format!("{}_check", t.name));
                    if t.checks.iter().any(|c| c.name == n) {
                        return Err(Error::new(
                            ErrorKind::DuplicateObject,
                            format!(
                                "constraint \"{n}\" for relation \"{}\" already exists",
                                t.name
                            ),
                        ));
                    }
                    t.checks.push(CheckDesc {
                        name: n.clone(),
                        expr: ch.expr.to_string(),
                    });
                    self.validate_check(t, &n).await?;
                }
                TableConstraint::ForeignKey(fk) => {
                    let cols = fk
                        .columns
                        .iter()
                        .map(|c| column_id(t, &parse::ident(c)))
                        .collect::<Result<_>>()?;
                    let desc = self.foreign_key(t, fk.name.as_ref().map(parse::ident), cols, fk)?;
                    executor::dml::validate_foreign_key(self.cx, Arc::new(t.clone()), &desc)
                        .await?;
                    t.foreign_keys.push(desc);
                }
                other => return Err(Error::unsupported(format!("ADD {other}"))),
            },
            Op::DropConstraint {
                name, if_exists, ..
            } => {
                let n = parse::ident(name);
                let before = (t.checks.len(), t.foreign_keys.len(), t.indexes.len());
                t.checks.retain(|c| c.name != n);
                t.foreign_keys.retain(|f| f.name != n);
                if let Some(idx) = t
                    .indexes
                    .iter()
                    .find(|i| i.name == n && i.constraint)
                    .cloned()
                {
                    self.delete_index_data(t, &idx).await?;
                    t.indexes.retain(|i| i.id != idx.id);
                }
                if before == (t.checks.len(), t.foreign_keys.len(), t.indexes.len()) {
                    if t.primary.name == n && !t.has_rowid() {
                        return Err(Error::unsupported("dropping a primary key"));
                    }
                    if !*if_exists {
                        return Err(Error::new(
                            ErrorKind::UndefinedObject,
                            format!(
                                "constraint \"{n}\" of relation \"{}\" does not exist",
                                t.name
                            ),
                        ));
                    }
                }
            }
            Op::AlterColumn { column_name, op } => {
                let cname = parse::ident(column_name);
                let pos = t
                    .columns
                    .iter()
                    .position(|c| !c.dropped && !c.hidden && c.name == cname)
                    .ok_or_else(|| {
                        Error::new(
                            ErrorKind::UndefinedColumn,
                            format!(
                                "column \"{cname}\" of relation \"{}\" does not exist",
                                t.name
                            ),
                        )
                    })?;
                match op {
                    ast::AlterColumnOperation::SetNotNull => {
                        t.columns[pos].nullable = false;
                        let snapshot = t.clone();
                        let rows =
                            executor::dml::all_rows(self.cx, Arc::new(snapshot.clone())).await?;
                        let live = snapshot
                            .live_position(snapshot.columns[pos].id)
                            .expect("live column");
                        if rows.iter().any(|r| r[live].is_null()) {
                            return Err(Error::new(
                                ErrorKind::NotNullViolation,
                                format!(
                                    "column \"{cname}\" of relation \"{}\" contains null values",
                                    t.name
                                ),
                            ));
                        }
                    }
                    ast::AlterColumnOperation::DropNotNull => {
                        if t.primary
                            .columns
                            .iter()
                            .any(|c| c.column == t.columns[pos].id)
                            && !t.has_rowid()
                        {
                            return Err(Error::new(
                                ErrorKind::InvalidTableDefinition,
                                format!("column \"{cname}\" is in a primary key"),
                            ));
                        }
                        t.columns[pos].nullable = true;
                    }
                    ast::AlterColumnOperation::SetDefault { value } => {
                        t.columns[pos].default = Some(value.to_string());
                        let mut b = self.binder();
                        b.column_default(t, &t.columns[pos])?;
                    }
                    ast::AlterColumnOperation::DropDefault => t.columns[pos].default = None,
                    other => return Err(Error::unsupported(format!("ALTER COLUMN {other}"))),
                }
            }
            other => return Err(Error::unsupported(format!("ALTER TABLE {other}"))),
        }
        Ok(())
    }

    async fn has_rows(&mut self, t: &TableDesc) -> Result<bool> {
        let prefix = t.index_prefix(self.tenant(), t.primary.id);
        let span = txn::Span {
            end: codec::key::prefix_end(&prefix).unwrap_or_default(),
            start: prefix,
        };
        Ok(!self.cx.txn.scan(&span, 1, false).await?.pairs.is_empty())
    }

    async fn validate_check(&mut self, t: &TableDesc, name: &str) -> Result<()> {
        let mut b = self.binder();
        let scope = binder::table_scope(t, &t.name);
        let checks = b.table_checks(t, &scope)?;
        let Some((_, expr)) = checks.into_iter().find(|(n, _)| n == name) else {
            return Ok(());
        };
        for row in executor::dml::all_rows(self.cx, Arc::new(t.clone())).await? {
            if self.cx.eval(&expr, &row)?.as_bool() == Some(false) {
                return Err(Error::new(
                    ErrorKind::CheckViolation,
                    format!(
                        "check constraint \"{name}\" of relation \"{}\" is violated by some row",
                        t.name
                    ),
                ));
            }
        }
        Ok(())
    }

    /// ADD PRIMARY KEY on a table keyed by its hidden row id: rewrites every row under the
    /// new key, in this transaction.
    async fn rewrite_primary_key(
        &mut self,
        t: &mut TableDesc,
        cols: Vec<IndexColumn>,
        name: Option<String>,
    ) -> Result<()> {
        for ic in &cols {
            let c = t
                .column_by_id(ic.column)
                .ok_or_else(|| Error::internal("key column missing"))?;
            if !crate::rowcodec::keyable(&c.ty) {
                return Err(Error::unsupported(format!(
                    "a primary key on a column of type {}",
                    c.ty.pg_name()
                )));
            }
        }
        let old = Arc::new(t.clone());
        let rows = executor::dml::all_rows(self.cx, old.clone()).await?;
        for ic in &cols {
            let pos = old.live_position(ic.column).expect("live column");
            if rows.iter().any(|r| r[pos].is_null()) {
                let n = old
                    .column_by_id(ic.column)
                    .map(|c| c.name.clone())
                    .unwrap_or_default();
                return Err(Error::new(
                    ErrorKind::NotNullViolation,
                    format!(
                        "column \"{n}\" of relation \"{}\" contains null values",
                        t.name
                    ),
                ));
            }
        }
        self.delete_table_data(&old).await?;
        let rowid = old.primary.columns[0].column;
        let rowid_pos = old.live_position(rowid).expect("row id is live");
        for ic in &cols {
            if let Some(c) = t.columns.iter_mut().find(|c| c.id == ic.column) {
                c.nullable = false;
            }
        }
        if let Some(c) = t.columns.iter_mut().find(|c| c.id == rowid) {
            c.dropped = true;
            c.name = format!("........pg.dropped.{rowid}........");
        }
        t.primary.columns = cols;
        if let Some(n) = name {
            t.primary.name = n;
        }
        let new_rows: Vec<crate::value::Row> = rows
            .into_iter()
            .map(|mut r| {
                r.remove(rowid_pos);
                r
            })
            .collect();
        executor::dml::write_rows(self.cx, Arc::new(t.clone()), &new_rows).await
    }
}

fn column_id(t: &TableDesc, name: &str) -> Result<u32> {
    t.column(name)
        .filter(|c| !c.hidden)
        .map(|c| c.id)
        .ok_or_else(|| {
            Error::new(
                ErrorKind::UndefinedColumn,
                format!("column \"{name}\" named in key does not exist"),
            )
        })
}

fn index_columns(t: &TableDesc, cols: &[ast::IndexColumn]) -> Result<Vec<IndexColumn>> {
    let mut out: Vec<IndexColumn> = Vec::new();
    for c in cols {
        let name = match &c.column.expr {
            ast::Expr::Identifier(i) => parse::ident(i),
            other => {
                return Err(Error::unsupported(format!(
                    "an index on the expression {other}"
                )));
            }
        };
        let id = column_id(t, &name)?;
        if out.iter().any(|o| o.column == id) {
            return Err(Error::new(
                ErrorKind::DuplicateColumn,
                format!("column \"{name}\" appears twice in primary key constraint"),
            ));
        }
        let desc = matches!(c.column.options.sort, Some(ast::OrderBySort::Desc));
        out.push(IndexColumn {
            column: id,
            desc,
            nulls_first: c.column.options.nulls_first.unwrap_or(desc),
        });
    }
    Ok(out)
}

fn seq_value(e: &ast::Expr) -> Result<i64> {
    let s = e.to_string().replace(' ', "");
    s.parse().map_err(|_| {
        Error::new(
            ErrorKind::InvalidParameterValue,
            format!("invalid sequence option value {e}"),
        )
    })
}

fn apply_sequence_options(
    seq: &mut SequenceDesc,
    opts: &[ast::SequenceOptions],
    creating: bool,
) -> Result<()> {
    let mut start_set = false;
    for o in opts {
        match o {
            ast::SequenceOptions::IncrementBy(e, _) => seq.increment = seq_value(e)?,
            ast::SequenceOptions::MinValue(Some(e)) => seq.min = seq_value(e)?,
            ast::SequenceOptions::MinValue(None) => {
                seq.min = if seq.increment > 0 { 1 } else { i64::MIN }
            }
            ast::SequenceOptions::MaxValue(Some(e)) => seq.max = seq_value(e)?,
            ast::SequenceOptions::MaxValue(None) => {
                seq.max = if seq.increment > 0 { i64::MAX } else { -1 }
            }
            ast::SequenceOptions::StartWith(e, _) => {
                seq.start = seq_value(e)?;
                start_set = true;
            }
            ast::SequenceOptions::Cache(_) => {}
            // sqlparser: Cycle(true) means NO CYCLE.
            ast::SequenceOptions::Cycle(no) => seq.cycle = !no,
            ast::SequenceOptions::DataType(_) | ast::SequenceOptions::OwnedBy(_) => {}
        }
    }
    if seq.increment == 0 {
        return Err(Error::new(
            ErrorKind::InvalidParameterValue,
            "INCREMENT must not be zero",
        ));
    }
    if creating && seq.increment < 0 {
        if !opts
            .iter()
            .any(|o| matches!(o, ast::SequenceOptions::MaxValue(Some(_))))
        {
            seq.max = -1;
        }
        if !opts
            .iter()
            .any(|o| matches!(o, ast::SequenceOptions::MinValue(Some(_))))
        {
            seq.min = i64::MIN;
        }
    }
    if !start_set {
        seq.start = if seq.increment > 0 { seq.min } else { seq.max };
    }
    if seq.start < seq.min || seq.start > seq.max {
        return Err(Error::new(
            ErrorKind::InvalidParameterValue,
            format!(
                "START value ({}) cannot be less than MINVALUE ({}) or greater than MAXVALUE ({})",
                seq.start, seq.min, seq.max
            ),
        ));
    }
    Ok(())
}
