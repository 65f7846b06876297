//! Milvus SDK errors as QuiverDB errors: the server's code and message are kept
//! verbatim in [`Error::Remote`]; an unreachable server or a timeout is
//! [`Error::Connection`]; a request the SDK itself refused is [`Error::InvalidArgument`].

use milvus::v2::error::Error as SdkError;
use quiverdb::Error;

/// Converts an SDK error.
pub(crate) fn from_sdk(e: SdkError) -> Error {
    match e {
        SdkError::Server(s) => Error::Remote {
            code: s.code(),
            message: s.reason().to_owned(),
        },
        SdkError::Grpc(status) => {
            use tonic_code::*;
            let code = status.code() as i32;
            if code == UNAVAILABLE || code == DEADLINE_EXCEEDED {
                Error::Connection(format!("{} ({})", status.message(), status.code()))
            } else {
                Error::Remote {
                    code,
                    message: format!("{} ({})", status.message(), status.code()),
                }
            }
        }
        SdkError::Timeout(m) => Error::Connection(format!("timed out: {m}")),
        SdkError::Validation(v) => Error::InvalidArgument(v.to_string()),
        SdkError::RetryExhausted { source, .. } => from_sdk(*source),
        other => Error::Remote {
            code: -1,
            message: other.to_string(),
        },
    }
}

/// gRPC status codes (the numbers are fixed by the gRPC spec).
mod tonic_code {
    pub const DEADLINE_EXCEEDED: i32 = 4;
    pub const UNAVAILABLE: i32 = 14;
}

/// `?` on SDK results.
pub(crate) trait SdkResultExt<T> {
    /// Converts the error.
    fn remote(self) -> quiverdb::Result<T>;
}

impl<T> SdkResultExt<T> for Result<T, SdkError> {
    fn remote(self) -> quiverdb::Result<T> {
        self.map_err(from_sdk)
    }
}
