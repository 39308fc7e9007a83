//! One client connection: startup, then the simple and extended query protocols and COPY,
//! driven message by message over a [`Session`].

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use futures::{FutureExt, SinkExt, StreamExt};
use pgwire_crate::error::ErrorInfo;
use pgwire_crate::messages::PgWireBackendMessage as B;
use pgwire_crate::messages::PgWireFrontendMessage as F;
use pgwire_crate::messages::copy::{CopyData, CopyDone, CopyInResponse, CopyOutResponse};
use pgwire_crate::messages::data::{
    DataRow, FieldDescription, NoData, ParameterDescription, RowDescription,
};
use pgwire_crate::messages::extendedquery::{
    Bind, BindComplete, Close, CloseComplete, Describe, Execute, Parse, ParseComplete,
    PortalSuspended,
};
use pgwire_crate::messages::response::{
    CommandComplete, EmptyQueryResponse, ReadyForQuery, TransactionStatus,
};
use pgwire_crate::messages::startup::{
    Authentication, BackendKeyData, NegotiateProtocolVersion, ParameterStatus, SecretKey, Startup,
};
use sql::plan::Column;
use sql::session::{Output, Prepared};
use sql::{Error, ErrorKind, Outcome, Row, Session, SqlType, TxnStatus, Value};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

use crate::binary;
use crate::codec::{Backend, Frontend, WireCodec, WireError};
use crate::copy_binary;
use crate::server::Shared;
use crate::sqlstate;

/// How long a client has to finish the startup handshake.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Settings reported to the client with ParameterStatus, at startup and when they change.
const REPORTED: &[(&str, &str)] = &[
    ("application_name", "application_name"),
    ("client_encoding", "client_encoding"),
    ("datestyle", "DateStyle"),
    ("intervalstyle", "IntervalStyle"),
    ("is_superuser", "is_superuser"),
    ("server_encoding", "server_encoding"),
    ("server_version", "server_version"),
    ("session_authorization", "session_authorization"),
    ("standard_conforming_strings", "standard_conforming_strings"),
    ("timezone", "TimeZone"),
    ("integer_datetimes", "integer_datetimes"),
    (
        "default_transaction_read_only",
        "default_transaction_read_only",
    ),
];

type Socket = Framed<TcpStream, WireCodec>;

/// Why a connection ends early.
enum End {
    /// The client went away or the socket failed: nothing to send.
    Gone,
    /// A fatal error to report before closing.
    Fatal(Box<ErrorInfo>),
}

impl End {
    fn fatal(info: ErrorInfo) -> End {
        End::Fatal(Box::new(info))
    }
}

impl From<std::io::Error> for End {
    fn from(_: std::io::Error) -> Self {
        End::Gone
    }
}

impl From<WireError> for End {
    fn from(e: WireError) -> Self {
        match e {
            WireError::Io(_) => End::Gone,
            WireError::Protocol(m) => End::fatal(sqlstate::fatal("08P01", m)),
        }
    }
}

/// A prepared statement of the extended protocol.
struct Statement {
    prepared: Arc<Prepared>,
}

enum PortalState {
    Pending,
    Rows {
        rows: VecDeque<Row>,
        tag: String,
        sent: usize,
    },
    Done,
}

struct Portal {
    statement: Arc<Statement>,
    params: Vec<Value>,
    /// Result format per column (0 text, 1 binary).
    formats: Vec<i16>,
    state: PortalState,
}

struct Conn {
    socket: Socket,
    session: Session,
    shared: Arc<Shared>,
    statements: HashMap<String, Arc<Statement>>,
    portals: HashMap<String, Portal>,
    /// After an error in the extended protocol, messages are skipped until Sync.
    skip_until_sync: bool,
    /// Setting values last reported to the client.
    reported: HashMap<&'static str, String>,
}

/// Serves one client connection until it ends.
pub async fn serve(stream: TcpStream, shared: Arc<Shared>) {
    let mut socket = Framed::new(stream, WireCodec::new());
    let startup =
        match tokio::time::timeout(STARTUP_TIMEOUT, read_startup(&mut socket, &shared)).await {
            Ok(Ok(Some(s))) => s,
            Ok(Ok(None)) => return,
            Ok(Err(End::Fatal(info))) => {
                let _ = socket
                    .send(Backend::Message(B::ErrorResponse((*info).into())))
                    .await;
                return;
            }
            Ok(Err(End::Gone)) | Err(_) => return,
        };
    socket.codec_mut().startup_done();
    let Some(mut conn) = (match start_session(socket, startup, shared.clone()).await {
        Ok(c) => Some(c),
        Err((mut socket, End::Fatal(info))) => {
            let _ = socket
                .send(Backend::Message(B::ErrorResponse((*info).into())))
                .await;
            None
        }
        Err((_, End::Gone)) => None,
    }) else {
        return;
    };
    let pid = conn.session.pid();
    let end = conn.run().await;
    if let End::Fatal(info) = end {
        let _ = conn
            .socket
            .send(Backend::Message(B::ErrorResponse((*info).into())))
            .await;
    }
    conn.session.close().await;
    shared.unregister(pid);
}

/// Reads SSL/GSS requests (refused), then a startup packet or a cancel request.
async fn read_startup(socket: &mut Socket, shared: &Shared) -> Result<Option<Startup>, End> {
    loop {
        match socket.next().await {
            None => return Ok(None),
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(Frontend::SslRequest | Frontend::GssEncRequest)) => {
                socket.send(Backend::Byte(b'N')).await?
            }
            Some(Ok(Frontend::Message(F::CancelRequest(c)))) => {
                if let Some(key) = c.secret_key.as_i32() {
                    shared.cancel(c.pid, key);
                }
                return Ok(None);
            }
            Some(Ok(Frontend::Message(F::Startup(s)))) => return Ok(Some(s)),
            Some(Ok(_)) => {
                return Err(End::fatal(sqlstate::fatal(
                    "08P01",
                    "invalid startup packet",
                )));
            }
        }
    }
}

async fn start_session(
    socket: Socket,
    startup: Startup,
    shared: Arc<Shared>,
) -> Result<Conn, (Socket, End)> {
    let params = &startup.parameters;
    let Some(user) = params.get("user").filter(|u| !u.is_empty()).cloned() else {
        return Err((
            socket,
            End::fatal(sqlstate::fatal(
                "28000",
                "no PostgreSQL user name specified in startup packet",
            )),
        ));
    };
    if shared.connection_count() > shared.max_connections {
        return Err((
            socket,
            End::fatal(sqlstate::fatal("53300", "sorry, too many clients already")),
        ));
    }
    let database = params
        .get("database")
        .filter(|d| !d.is_empty())
        .cloned()
        .unwrap_or_else(|| user.clone());
    let mut session = match shared.engine.session(&user, &database).await {
        Ok(s) => s,
        Err(e) => {
            let mut info = sqlstate::error_info(&e);
            info.severity = "FATAL".into();
            return Err((socket, End::fatal(info)));
        }
    };
    // Startup options a client may pass (application_name, DateStyle, ...).
    for (k, v) in params {
        if k == "user" || k == "database" || k == "options" || k == "replication" {
            continue;
        }
        let _ = session.set_parameter(k, v);
    }
    let secret: i32 = rand_secret();
    let pid = session.pid();
    shared.register(pid, secret, session.cancel_flag());
    let mut conn = Conn {
        socket,
        session,
        shared,
        statements: HashMap::new(),
        portals: HashMap::new(),
        skip_until_sync: false,
        reported: HashMap::new(),
    };
    let r: Result<(), End> = async {
        if startup.protocol_number_minor != 0 {
            conn.feed(B::NegotiateProtocolVersion(NegotiateProtocolVersion::new(
                196_608,
                Vec::new(),
            )))
            .await?;
        }
        conn.feed(B::Authentication(Authentication::Ok)).await?;
        conn.report_parameters().await?;
        conn.feed(B::ParameterStatus(ParameterStatus::new(
            "in_hot_standby".into(),
            "off".into(),
        )))
        .await?;
        conn.feed(B::BackendKeyData(BackendKeyData::new(
            pid,
            SecretKey::I32(secret),
        )))
        .await?;
        conn.ready().await
    }
    .await;
    match r {
        Ok(()) => Ok(conn),
        Err(e) => {
            conn.shared.unregister(pid);
            Err((conn.socket, e))
        }
    }
}

fn rand_secret() -> i32 {
    use std::hash::{BuildHasher, Hasher};
    // A per-process random SipHash key, fed the time: unpredictable enough for a cancel key.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish() as i32
}

fn status_byte(s: TxnStatus) -> TransactionStatus {
    match s {
        TxnStatus::Idle => TransactionStatus::Idle,
        TxnStatus::InTransaction => TransactionStatus::Transaction,
        TxnStatus::Failed => TransactionStatus::Error,
    }
}

/// Appends the row count to tags that carry one.
fn complete_tag(tag: &str, rows: usize) -> String {
    match tag {
        "SELECT" | "INSERT 0" | "UPDATE" | "DELETE" | "FETCH" | "MOVE" | "COPY" | "MERGE" => {
            format!("{tag} {rows}")
        }
        _ => tag.to_string(),
    }
}

fn protocol_error(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::ProtocolViolation, message)
}

impl Conn {
    async fn feed(&mut self, m: B) -> Result<(), End> {
        self.socket.feed(Backend::Message(m)).await?;
        Ok(())
    }

    async fn ready(&mut self) -> Result<(), End> {
        let status = status_byte(self.session.status());
        self.socket
            .send(Backend::Message(B::ReadyForQuery(ReadyForQuery::new(
                status,
            ))))
            .await?;
        Ok(())
    }

    async fn send_error(&mut self, e: &Error) -> Result<(), End> {
        self.feed(B::ErrorResponse(sqlstate::error_info(e).into()))
            .await
    }

    /// Sends ParameterStatus for reported settings that changed.
    async fn report_parameters(&mut self) -> Result<(), End> {
        for (setting, name) in REPORTED {
            let value = self
                .session
                .setting(setting)
                .unwrap_or_default()
                .to_string();
            if self.reported.get(name) != Some(&value) {
                self.reported.insert(name, value.clone());
                self.feed(B::ParameterStatus(ParameterStatus::new(
                    (*name).to_string(),
                    value,
                )))
                .await?;
            }
        }
        Ok(())
    }

    async fn run(&mut self) -> End {
        let mut shutdown = self.shared.shutdown.clone();
        loop {
            let msg = tokio::select! {
                m = self.socket.next() => m,
                _ = crate::server::stopped(&mut shutdown) => {
                    return End::fatal(sqlstate::fatal("57P01", "terminating connection due to administrator command"));
                }
            };
            let msg = match msg {
                None => return End::Gone,
                Some(Err(e)) => return e.into(),
                Some(Ok(m)) => m,
            };
            // A panic while handling a message is a bug: report it and close only this
            // connection.
            let handled = std::panic::AssertUnwindSafe(self.handle(msg))
                .catch_unwind()
                .await;
            match handled {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => return End::Gone,
                Ok(Err(end)) => return end,
                Err(_) => {
                    tracing::error!(
                        pid = self.session.pid(),
                        "panic while handling a message; closing the connection"
                    );
                    return End::fatal(sqlstate::fatal(
                        "XX000",
                        "internal error while processing the message",
                    ));
                }
            }
        }
    }

    /// Handles one message; returns false when the client terminates.
    async fn handle(&mut self, msg: Frontend) -> Result<bool, End> {
        let msg = match msg {
            Frontend::Message(m) => m,
            Frontend::InvalidUtf8 { kind } => {
                let e = Error::new(
                    ErrorKind::CharacterNotInRepertoire,
                    "invalid byte sequence for encoding \"UTF8\"",
                );
                if kind == b'Q' {
                    self.send_error(&e).await?;
                    self.ready().await?;
                } else if !self.skip_until_sync {
                    self.send_error(&e).await?;
                    self.skip_until_sync = true;
                }
                return Ok(true);
            }
            Frontend::SslRequest | Frontend::GssEncRequest => {
                return Err(End::fatal(sqlstate::fatal(
                    "08P01",
                    "unexpected SSL or GSSAPI request after startup",
                )));
            }
        };
        if self.skip_until_sync
            && msg.is_extended_query()
            && !matches!(msg, F::Sync(_) | F::Flush(_))
        {
            return Ok(true);
        }
        match msg {
            F::Query(q) => self.simple_query(&q.query).await?,
            F::Parse(p) => match self.parse(p).await {
                Ok(()) => self.feed(B::ParseComplete(ParseComplete::new())).await?,
                Err(e) => self.extended_result(Err(e)).await?,
            },
            F::Bind(b) => match self.bind(b) {
                Ok(()) => self.feed(B::BindComplete(BindComplete::new())).await?,
                Err(e) => self.extended_result(Err(e)).await?,
            },
            F::Describe(d) => {
                let r = self.describe(d).await?;
                self.extended_result(r).await?;
            }
            F::Execute(e) => {
                let r = self.execute(e).await?;
                self.extended_result(r).await?;
            }
            F::Close(c) => self.close(c).await?,
            F::Sync(_) => {
                self.skip_until_sync = false;
                self.portals.remove("");
                self.ready().await?;
            }
            F::Flush(_) => self.socket.flush().await?,
            F::Terminate(_) => return Ok(false),
            // Stray COPY messages outside COPY are ignored, as PostgreSQL does.
            F::CopyData(_) | F::CopyDone(_) | F::CopyFail(_) => {}
            other => {
                return Err(End::fatal(sqlstate::fatal(
                    "08P01",
                    format!("unexpected message {other:?}"),
                )));
            }
        }
        Ok(true)
    }

    /// Reports an extended-protocol error; later messages are skipped until Sync.
    async fn extended_result(&mut self, r: Result<(), Error>) -> Result<(), End> {
        if let Err(e) = r {
            self.send_error(&e).await?;
            // Sent now: a client that pipelines with Flush instead of Sync waits for it.
            self.socket.flush().await?;
            self.skip_until_sync = true;
        }
        Ok(())
    }
}

fn format_for(formats: &[i16], i: usize) -> i16 {
    match formats {
        [] => 0,
        [f] => *f,
        fs => fs.get(i).copied().unwrap_or(0),
    }
}

fn row_description(columns: &[Column], formats: &[i16]) -> RowDescription {
    let fields = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            FieldDescription::new(
                c.name.clone(),
                c.table_oid as i32,
                c.column_attnum,
                c.ty.oid(),
                c.ty.type_len(),
                c.ty.type_modifier(),
                format_for(formats, i),
            )
        })
        .collect();
    RowDescription::new(fields)
}

fn data_row(row: &Row, columns: &[Column], formats: &[i16]) -> Result<DataRow, Error> {
    let mut buf = BytesMut::with_capacity(row.len() * 8);
    for (i, (v, c)) in row.iter().zip(columns).enumerate() {
        if format_for(formats, i) == 1 {
            binary::put_value(v, &c.ty, &mut buf)?;
        } else {
            match sql::textio::to_text(v, &c.ty) {
                None => buf.put_i32(-1),
                Some(s) => {
                    let len = i32::try_from(s.len()).map_err(|_| {
                        Error::new(ErrorKind::ProgramLimitExceeded, "value too large to send")
                    })?;
                    buf.put_i32(len);
                    buf.put_slice(s.as_bytes());
                }
            }
        }
    }
    Ok(DataRow::new(buf, columns.len() as i16))
}

fn decode_param(raw: Option<&[u8]>, format: i16, ty: &SqlType, n: usize) -> Result<Value, Error> {
    let Some(raw) = raw else {
        return Ok(Value::Null);
    };
    let ty = if *ty == SqlType::Unknown {
        &SqlType::Text
    } else {
        ty
    };
    let r = if format == 1 {
        binary::decode(raw, ty)
    } else {
        let s = std::str::from_utf8(raw).map_err(|_| {
            Error::new(
                ErrorKind::CharacterNotInRepertoire,
                "invalid byte sequence for encoding \"UTF8\"",
            )
        })?;
        sql::textio::from_text(s, ty)
    };
    r.map_err(|e| {
        let detail = format!("unnamed portal parameter ${}", n + 1);
        if e.detail.is_none() {
            e.with_detail(detail)
        } else {
            e
        }
    })
}

fn check_formats(codes: &[i16], n: usize, what: &str, of: &str) -> Result<(), Error> {
    if codes.len() > 1 && codes.len() != n {
        return Err(protocol_error(format!(
            "bind message has {} {what} formats but {n} {of}",
            codes.len()
        )));
    }
    if let Some(c) = codes.iter().find(|c| **c != 0 && **c != 1) {
        return Err(Error::new(
            ErrorKind::InvalidParameterValue,
            format!("unsupported format code: {c}"),
        ));
    }
    Ok(())
}

impl Conn {
    async fn send_notices(&mut self, notices: Vec<String>) -> Result<(), End> {
        for n in notices {
            self.feed(B::NoticeResponse(sqlstate::notice(n).into()))
                .await?;
        }
        Ok(())
    }

    async fn simple_query(&mut self, sql: &str) -> Result<(), End> {
        if sql.chars().all(|c| c == ';' || c.is_whitespace()) {
            self.feed(B::EmptyQueryResponse(EmptyQueryResponse::new()))
                .await?;
            return self.ready().await;
        }
        let results = self.session.simple_query(sql).await;
        for r in results {
            match r {
                Err(e) => self.send_error(&e).await?,
                Ok(out) => {
                    if let Err(e) = self.send_simple_output(out).await? {
                        self.send_error(&e).await?;
                        break;
                    }
                }
            }
        }
        self.report_parameters().await?;
        self.ready().await
    }

    /// Sends one statement's output in the simple protocol.
    async fn send_simple_output(&mut self, out: Output) -> Result<Result<(), Error>, End> {
        self.send_notices(out.notices).await?;
        match out.outcome {
            Outcome::Rows { columns, rows, tag } => {
                self.feed(B::RowDescription(row_description(&columns, &[])))
                    .await?;
                for row in &rows {
                    match data_row(row, &columns, &[]) {
                        Ok(r) => self.feed(B::DataRow(r)).await?,
                        Err(e) => return Ok(Err(e)),
                    }
                }
                self.feed(B::CommandComplete(CommandComplete::new(complete_tag(
                    &tag,
                    rows.len(),
                ))))
                .await?;
            }
            Outcome::Command(tag) => {
                self.feed(B::CommandComplete(CommandComplete::new(tag)))
                    .await?
            }
            Outcome::Empty => {
                self.feed(B::EmptyQueryResponse(EmptyQueryResponse::new()))
                    .await?
            }
            Outcome::CopyIn { columns, binary } => return self.copy_in(columns, binary).await,
            Outcome::CopyOut { columns, lines } => self.copy_out(columns, lines).await?,
            Outcome::CopyOutBinary { types, rows } => {
                if let Err(e) = self.copy_out_binary(&types, &rows).await? {
                    return Ok(Err(e));
                }
            }
        }
        Ok(Ok(()))
    }

    /// COPY FROM STDIN: reads CopyData until CopyDone or CopyFail.
    async fn copy_in(&mut self, columns: usize, binary: bool) -> Result<Result<(), Error>, End> {
        let format = i16::from(binary);
        self.feed(B::CopyInResponse(CopyInResponse::new(
            format as i8,
            columns as i16,
            vec![format; columns],
        )))
        .await?;
        let mut reader =
            binary.then(|| (copy_binary::Reader::default(), self.session.copy_types()));
        self.socket.flush().await?;
        loop {
            let msg = match self.socket.next().await {
                None => {
                    self.session.copy_fail().await;
                    return Err(End::Gone);
                }
                Some(Err(e)) => {
                    self.session.copy_fail().await;
                    return Err(e.into());
                }
                Some(Ok(m)) => m,
            };
            match msg {
                Frontend::Message(F::CopyData(d)) => {
                    let r = match &mut reader {
                        None => self.session.copy_data(&d.data).await,
                        Some((reader, types)) => match reader.feed(&d.data, types) {
                            Ok(rows) => self.session.copy_rows(rows).await,
                            Err(e) => {
                                self.session.copy_fail().await;
                                Err(e)
                            }
                        },
                    };
                    if let Err(e) = r {
                        // Later CopyData, CopyDone and CopyFail are dropped by the main loop.
                        return Ok(Err(e));
                    }
                }
                Frontend::Message(F::CopyDone(_)) => {
                    if let Some((reader, _)) = &reader
                        && let Err(e) = reader.finish()
                    {
                        self.session.copy_fail().await;
                        return Ok(Err(e));
                    }
                    return Ok(match self.session.copy_done().await {
                        Ok(n) => {
                            self.feed(B::CommandComplete(CommandComplete::new(format!(
                                "COPY {n}"
                            ))))
                            .await?;
                            Ok(())
                        }
                        Err(e) => Err(e),
                    });
                }
                Frontend::Message(F::CopyFail(f)) => {
                    self.session.copy_fail().await;
                    return Ok(Err(Error::new(
                        ErrorKind::QueryCanceled,
                        format!("COPY from stdin failed: {}", f.message),
                    )));
                }
                Frontend::Message(F::Flush(_) | F::Sync(_)) => {}
                _ => {
                    self.session.copy_fail().await;
                    return Ok(Err(protocol_error(
                        "unexpected message type during COPY from stdin",
                    )));
                }
            }
        }
    }

    async fn copy_out_binary(
        &mut self,
        types: &[SqlType],
        rows: &[Row],
    ) -> Result<Result<(), Error>, End> {
        let pieces = match copy_binary::write(types, rows) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        self.feed(B::CopyOutResponse(CopyOutResponse::new(
            1,
            types.len() as i16,
            vec![1; types.len()],
        )))
        .await?;
        for p in pieces {
            self.feed(B::CopyData(CopyData::new(p))).await?;
        }
        self.feed(B::CopyDone(CopyDone::new())).await?;
        self.feed(B::CommandComplete(CommandComplete::new(format!(
            "COPY {}",
            rows.len()
        ))))
        .await?;
        Ok(Ok(()))
    }

    async fn copy_out(&mut self, columns: usize, lines: Vec<String>) -> Result<(), End> {
        self.feed(B::CopyOutResponse(CopyOutResponse::new(
            0,
            columns as i16,
            vec![0; columns],
        )))
        .await?;
        let n = lines.len();
        for line in lines {
            self.feed(B::CopyData(CopyData::new(line.into_bytes().into())))
                .await?;
        }
        self.feed(B::CopyDone(CopyDone::new())).await?;
        self.feed(B::CommandComplete(CommandComplete::new(format!(
            "COPY {n}"
        ))))
        .await
    }

    async fn parse(&mut self, p: Parse) -> Result<(), Error> {
        let name = p.name.unwrap_or_default();
        if !name.is_empty() && self.statements.contains_key(&name) {
            return Err(Error::new(
                ErrorKind::DuplicatePreparedStatement,
                format!("prepared statement \"{name}\" already exists"),
            ));
        }
        let mut declared = Vec::with_capacity(p.type_oids.len());
        for oid in &p.type_oids {
            declared.push(match oid {
                0 => None,
                oid => Some(SqlType::from_oid(*oid).ok_or_else(|| {
                    Error::unsupported(format!("parameters of the type with OID {oid}"))
                })?),
            });
        }
        let prepared = self.session.prepare(&p.query, &declared).await?;
        self.statements.insert(
            name,
            Arc::new(Statement {
                prepared: Arc::new(prepared),
            }),
        );
        Ok(())
    }

    fn bind(&mut self, b: Bind) -> Result<(), Error> {
        let sname = b.statement_name.unwrap_or_default();
        let statement = self.statements.get(&sname).cloned().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidStatementName,
                format!("prepared statement \"{sname}\" does not exist"),
            )
        })?;
        let types = &statement.prepared.param_types;
        if b.parameters.len() != types.len() {
            return Err(protocol_error(format!(
                "bind message supplies {} parameters, but prepared statement \"{sname}\" requires {}",
                b.parameters.len(),
                types.len()
            )));
        }
        check_formats(
            &b.parameter_format_codes,
            b.parameters.len(),
            "parameter",
            "parameters",
        )?;
        let ncols = statement.prepared.columns.len();
        check_formats(&b.result_column_format_codes, ncols, "result", "columns")?;
        let mut params = Vec::with_capacity(types.len());
        for (i, (raw, ty)) in b.parameters.iter().zip(types).enumerate() {
            params.push(decode_param(
                raw.as_deref(),
                format_for(&b.parameter_format_codes, i),
                ty,
                i,
            )?);
        }
        let pname = b.portal_name.unwrap_or_default();
        if !pname.is_empty() && self.portals.contains_key(&pname) {
            return Err(Error::new(
                ErrorKind::DuplicateCursor,
                format!("portal \"{pname}\" already exists"),
            ));
        }
        self.portals.insert(
            pname,
            Portal {
                statement,
                params,
                formats: b.result_column_format_codes,
                state: PortalState::Pending,
            },
        );
        Ok(())
    }

    async fn describe(&mut self, d: Describe) -> Result<Result<(), Error>, End> {
        let name = d.name.unwrap_or_default();
        match d.target_type {
            b'S' => {
                let Some(s) = self.statements.get(&name).cloned() else {
                    return Ok(Err(Error::new(
                        ErrorKind::InvalidStatementName,
                        format!("prepared statement \"{name}\" does not exist"),
                    )));
                };
                let oids = s
                    .prepared
                    .param_types
                    .iter()
                    .map(|t| {
                        if *t == SqlType::Unknown {
                            SqlType::Text.oid()
                        } else {
                            t.oid()
                        }
                    })
                    .collect();
                self.feed(B::ParameterDescription(ParameterDescription::new(oids)))
                    .await?;
                self.describe_rows(&s.prepared.columns, &[]).await?;
            }
            b'P' => {
                let Some(p) = self.portals.get(&name) else {
                    return Ok(Err(Error::new(
                        ErrorKind::InvalidCursorName,
                        format!("portal \"{name}\" does not exist"),
                    )));
                };
                let (statement, formats) = (p.statement.clone(), p.formats.clone());
                self.describe_rows(&statement.prepared.columns, &formats)
                    .await?;
            }
            t => {
                return Ok(Err(protocol_error(format!(
                    "invalid DESCRIBE message subtype {t}"
                ))));
            }
        }
        Ok(Ok(()))
    }

    async fn describe_rows(&mut self, columns: &[Column], formats: &[i16]) -> Result<(), End> {
        if columns.is_empty() {
            self.feed(B::NoData(NoData::new())).await
        } else {
            self.feed(B::RowDescription(row_description(columns, formats)))
                .await
        }
    }

    async fn execute(&mut self, e: Execute) -> Result<Result<(), Error>, End> {
        let name = e.name.unwrap_or_default();
        let Some(mut portal) = self.portals.remove(&name) else {
            return Ok(Err(Error::new(
                ErrorKind::InvalidCursorName,
                format!("portal \"{name}\" does not exist"),
            )));
        };
        let r = self.execute_portal(&mut portal, e.max_rows).await;
        self.portals.insert(name, portal);
        let r = r?;
        if r.is_ok() {
            self.report_parameters().await?;
        }
        Ok(r)
    }

    async fn execute_portal(
        &mut self,
        portal: &mut Portal,
        max_rows: i32,
    ) -> Result<Result<(), Error>, End> {
        if let PortalState::Pending = portal.state {
            portal.state = PortalState::Done;
            let out = match self
                .session
                .execute(&portal.statement.prepared, &portal.params)
                .await
            {
                Ok(o) => o,
                Err(e) => return Ok(Err(e)),
            };
            self.send_notices(out.notices).await?;
            match out.outcome {
                Outcome::Rows { rows, tag, .. } => {
                    portal.state = PortalState::Rows {
                        rows: rows.into(),
                        tag,
                        sent: 0,
                    }
                }
                Outcome::Command(tag) => {
                    self.feed(B::CommandComplete(CommandComplete::new(tag)))
                        .await?
                }
                Outcome::Empty => {
                    self.feed(B::EmptyQueryResponse(EmptyQueryResponse::new()))
                        .await?
                }
                Outcome::CopyIn { columns, binary } => return self.copy_in(columns, binary).await,
                Outcome::CopyOut { columns, lines } => self.copy_out(columns, lines).await?,
                Outcome::CopyOutBinary { types, rows } => {
                    if let Err(e) = self.copy_out_binary(&types, &rows).await? {
                        return Ok(Err(e));
                    }
                }
            }
        }
        match &mut portal.state {
            PortalState::Rows { rows, tag, sent } => {
                let limit = if max_rows <= 0 {
                    usize::MAX
                } else {
                    max_rows as usize
                };
                let mut n = 0;
                while n < limit {
                    let Some(row) = rows.pop_front() else { break };
                    match data_row(&row, &portal.statement.prepared.columns, &portal.formats) {
                        Ok(r) => self.socket.feed(Backend::Message(B::DataRow(r))).await?,
                        Err(e) => return Ok(Err(e)),
                    }
                    n += 1;
                }
                *sent += n;
                if rows.is_empty() {
                    let tag = complete_tag(tag, *sent);
                    portal.state = PortalState::Done;
                    self.feed(B::CommandComplete(CommandComplete::new(tag)))
                        .await?;
                } else {
                    self.feed(B::PortalSuspended(PortalSuspended::new()))
                        .await?;
                }
            }
            PortalState::Done | PortalState::Pending => {}
        }
        Ok(Ok(()))
    }

    async fn close(&mut self, c: Close) -> Result<(), End> {
        let name = c.name.unwrap_or_default();
        match c.target_type {
            b'S' => {
                self.statements.remove(&name);
            }
            b'P' => {
                self.portals.remove(&name);
            }
            t => {
                let e = protocol_error(format!("invalid CLOSE message subtype {t}"));
                return self.extended_result(Err(e)).await;
            }
        }
        self.feed(B::CloseComplete(CloseComplete::new())).await
    }
}
