//! Which responses are failures, per protocol and side, as the OpenTelemetry
//! semantic conventions define them. The integrations ask these rules
//! instead of comparing numbers inline, so the rule for a side is written
//! (and tested) once.

use std::borrow::Cow;
use std::fmt;

/// Which side of a call is being instrumented: the conventions classify
/// the same status differently for each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Incoming calls: SERVER spans, remote parent from the request.
    Server,
    /// Outgoing calls: CLIENT spans, context injected into the request.
    Client,
}

impl Side {
    /// The `otel.kind` value for spans on this side.
    pub fn span_kind(self) -> &'static str {
        match self {
            Side::Server => "server",
            Side::Client => "client",
        }
    }
}

/// HTTP status rules (stable HTTP conventions): for a server only 5xx is
/// an error (a 4xx is the client's mistake, not the server's failure); for
/// a client both 4xx and 5xx are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpClassifier {
    side: Side,
}

impl HttpClassifier {
    /// The rules for `side`.
    pub const fn new(side: Side) -> Self {
        HttpClassifier { side }
    }

    /// `error.type` for `status`, or `None` when it is not an error here.
    pub fn error_type(self, status: u16) -> Option<Cow<'static, str>> {
        match self.side {
            Side::Server => (500..600)
                .contains(&status)
                .then(|| Cow::Borrowed(server_status_str(status))),
            Side::Client => (status >= 400).then(|| Cow::Owned(status.to_string())),
        }
    }
}

/// Server `error.type` values are static: the common 5xx codes by number,
/// any other as `5xx` (a server's own status codes are few, but a proxy may
/// pass on arbitrary ones).
fn server_status_str(status: u16) -> &'static str {
    match status {
        500 => "500",
        501 => "501",
        502 => "502",
        503 => "503",
        504 => "504",
        505 => "505",
        _ => "5xx",
    }
}

/// The 17 gRPC status codes (`grpc/status.proto`), so rules name codes
/// instead of comparing magic numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum GrpcCode {
    /// 0: not an error.
    Ok = 0,
    /// 1: cancelled, typically by the caller.
    Cancelled = 1,
    /// 2: unknown error (also: a response ended without a status).
    Unknown = 2,
    /// 3: the client specified an invalid argument.
    InvalidArgument = 3,
    /// 4: the deadline expired before the operation completed.
    DeadlineExceeded = 4,
    /// 5: some requested entity was not found.
    NotFound = 5,
    /// 6: the entity the client tried to create already exists.
    AlreadyExists = 6,
    /// 7: the caller lacks permission.
    PermissionDenied = 7,
    /// 8: some resource has been exhausted (quota, disk).
    ResourceExhausted = 8,
    /// 9: the system is not in a state required for the operation.
    FailedPrecondition = 9,
    /// 10: the operation was aborted (concurrency conflict).
    Aborted = 10,
    /// 11: the operation was attempted past the valid range.
    OutOfRange = 11,
    /// 12: the operation is not implemented or supported.
    Unimplemented = 12,
    /// 13: internal error.
    Internal = 13,
    /// 14: the service is currently unavailable (also: transport failure).
    Unavailable = 14,
    /// 15: unrecoverable data loss or corruption.
    DataLoss = 15,
    /// 16: the request lacks valid authentication credentials.
    Unauthenticated = 16,
}

impl GrpcCode {
    /// Every code, in numeric order.
    pub const ALL: [GrpcCode; 17] = [
        GrpcCode::Ok,
        GrpcCode::Cancelled,
        GrpcCode::Unknown,
        GrpcCode::InvalidArgument,
        GrpcCode::DeadlineExceeded,
        GrpcCode::NotFound,
        GrpcCode::AlreadyExists,
        GrpcCode::PermissionDenied,
        GrpcCode::ResourceExhausted,
        GrpcCode::FailedPrecondition,
        GrpcCode::Aborted,
        GrpcCode::OutOfRange,
        GrpcCode::Unimplemented,
        GrpcCode::Internal,
        GrpcCode::Unavailable,
        GrpcCode::DataLoss,
        GrpcCode::Unauthenticated,
    ];

    /// The code with number `code`, if it is one of the 17.
    pub fn from_i64(code: i64) -> Option<GrpcCode> {
        usize::try_from(code)
            .ok()
            .and_then(|i| Self::ALL.get(i))
            .copied()
    }

    /// The code's number, as `rpc.grpc.status_code` carries it.
    pub fn as_i64(self) -> i64 {
        i64::from(self as u8)
    }

    /// The code's name as in `grpc/status.proto` (`DEADLINE_EXCEEDED`).
    pub fn name(self) -> &'static str {
        match self {
            GrpcCode::Ok => "OK",
            GrpcCode::Cancelled => "CANCELLED",
            GrpcCode::Unknown => "UNKNOWN",
            GrpcCode::InvalidArgument => "INVALID_ARGUMENT",
            GrpcCode::DeadlineExceeded => "DEADLINE_EXCEEDED",
            GrpcCode::NotFound => "NOT_FOUND",
            GrpcCode::AlreadyExists => "ALREADY_EXISTS",
            GrpcCode::PermissionDenied => "PERMISSION_DENIED",
            GrpcCode::ResourceExhausted => "RESOURCE_EXHAUSTED",
            GrpcCode::FailedPrecondition => "FAILED_PRECONDITION",
            GrpcCode::Aborted => "ABORTED",
            GrpcCode::OutOfRange => "OUT_OF_RANGE",
            GrpcCode::Unimplemented => "UNIMPLEMENTED",
            GrpcCode::Internal => "INTERNAL",
            GrpcCode::Unavailable => "UNAVAILABLE",
            GrpcCode::DataLoss => "DATA_LOSS",
            GrpcCode::Unauthenticated => "UNAUTHENTICATED",
        }
    }

    /// Whether a server reports this code as its own failure (the RPC
    /// conventions): only the codes that say the server could not do the
    /// work. INVALID_ARGUMENT, NOT_FOUND and the like are the caller's.
    pub fn is_server_error(self) -> bool {
        matches!(
            self,
            GrpcCode::Unknown
                | GrpcCode::DeadlineExceeded
                | GrpcCode::Unimplemented
                | GrpcCode::Internal
                | GrpcCode::Unavailable
                | GrpcCode::DataLoss
        )
    }
}

impl fmt::Display for GrpcCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// gRPC status rules (RPC conventions): on a client every non-OK status is
/// an error; on a server only [`GrpcCode::is_server_error`] codes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrpcClassifier {
    side: Side,
}

impl GrpcClassifier {
    /// The rules for `side`.
    pub const fn new(side: Side) -> Self {
        GrpcClassifier { side }
    }

    /// Whether the raw status `code` is an error on this side. Numbers
    /// outside the 17 codes are errors on a client (they are not OK) and
    /// not on a server (no rule names them).
    pub fn is_error(self, code: i64) -> bool {
        match (self.side, GrpcCode::from_i64(code)) {
            (Side::Client, c) => c != Some(GrpcCode::Ok),
            (Side::Server, Some(c)) => c.is_server_error(),
            (Side::Server, None) => false,
        }
    }

    /// `error.type` for `code` (its number, as recorded today), or `None`.
    pub fn error_type(self, code: i64) -> Option<Cow<'static, str>> {
        self.is_error(code).then(|| Cow::Owned(code.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_server_errors_are_5xx_only() {
        let s = HttpClassifier::new(Side::Server);
        assert_eq!(s.error_type(500).as_deref(), Some("500"));
        assert_eq!(s.error_type(503).as_deref(), Some("503"));
        assert_eq!(s.error_type(599).as_deref(), Some("5xx"));
        assert_eq!(s.error_type(404), None);
        assert_eq!(s.error_type(200), None);
    }

    #[test]
    fn http_client_errors_are_4xx_and_5xx() {
        let c = HttpClassifier::new(Side::Client);
        assert_eq!(c.error_type(404).as_deref(), Some("404"));
        assert_eq!(c.error_type(599).as_deref(), Some("599"));
        assert_eq!(c.error_type(399), None);
    }

    #[test]
    fn grpc_codes_round_trip_with_names() {
        for (i, code) in GrpcCode::ALL.iter().enumerate() {
            assert_eq!(code.as_i64(), i as i64);
            assert_eq!(GrpcCode::from_i64(i as i64), Some(*code));
        }
        assert_eq!(GrpcCode::from_i64(17), None);
        assert_eq!(GrpcCode::from_i64(-1), None);
        assert_eq!(GrpcCode::DeadlineExceeded.name(), "DEADLINE_EXCEEDED");
        assert_eq!(GrpcCode::Unauthenticated.to_string(), "UNAUTHENTICATED");
    }

    #[test]
    fn grpc_server_errors_are_the_six_conventional_codes() {
        let server = GrpcClassifier::new(Side::Server);
        let errors: Vec<i64> = (0..=17).filter(|c| server.is_error(*c)).collect();
        assert_eq!(errors, [2, 4, 12, 13, 14, 15]);
        let client = GrpcClassifier::new(Side::Client);
        let errors: Vec<i64> = (0..=17).filter(|c| client.is_error(*c)).collect();
        assert_eq!(errors, (1..=17).collect::<Vec<_>>());
        assert_eq!(client.error_type(5).as_deref(), Some("5"));
    }
}
