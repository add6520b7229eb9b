//! The API's one error table: every error has a stable code, an HTTP status and a message that
//! is safe to show. 5xx bodies never carry internals; those go to the log.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or unknown API key")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    #[error("the warehouse has no data yet: run `c360 etl` first")]
    NoData,
    #[error("internal error")]
    Internal(String),
}

/// The JSON body of every error.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code: unauthorized, forbidden, not_found, bad_request,
    /// method_not_allowed, no_data, internal.
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    /// The error table: code and HTTP status.
    pub fn code_status(&self) -> (&'static str, StatusCode) {
        match self {
            ApiError::Unauthorized => ("unauthorized", StatusCode::UNAUTHORIZED),
            ApiError::Forbidden(_) => ("forbidden", StatusCode::FORBIDDEN),
            ApiError::NotFound(_) => ("not_found", StatusCode::NOT_FOUND),
            ApiError::BadRequest(_) => ("bad_request", StatusCode::BAD_REQUEST),
            ApiError::MethodNotAllowed => ("method_not_allowed", StatusCode::METHOD_NOT_ALLOWED),
            ApiError::NoData => ("no_data", StatusCode::SERVICE_UNAVAILABLE),
            ApiError::Internal(_) => ("internal", StatusCode::INTERNAL_SERVER_ERROR),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, status) = self.code_status();
        if let ApiError::Internal(detail) = &self {
            tracing::error!(%detail, "internal error");
        }
        (
            status,
            Json(ErrorBody {
                code,
                message: self.to_string(),
            }),
        )
            .into_response()
    }
}

macro_rules! internal_from {
    ($($t:ty),*) => {$(
        impl From<$t> for ApiError {
            fn from(e: $t) -> Self {
                ApiError::Internal(e.to_string())
            }
        }
    )*};
}
internal_from!(
    c360_warehouse::WhError,
    c360_db::DbError,
    serde_json::Error,
    datafusion::arrow::error::ArrowError
);

pub type ApiResult<T> = std::result::Result<T, ApiError>;

/// The domain's errors, one to one: the request's fault keeps its message, an internal fault
/// keeps its detail for the log only.
impl From<c360_core::CoreError> for ApiError {
    fn from(e: c360_core::CoreError) -> Self {
        use c360_core::CoreError as C;
        match e {
            C::BadRequest(m) => ApiError::BadRequest(m),
            C::Forbidden(m) => ApiError::Forbidden(m),
            C::NotFound(m) => ApiError::NotFound(m),
            C::NoData => ApiError::NoData,
            C::Internal(d) => ApiError::Internal(d),
        }
    }
}

/// A body rejection as `field.path: reason` when serde names the field (so an unknown enum value
/// reads `channel: unknown variant …`), else `body: reason`.
fn body_error(text: &str) -> String {
    const PREFIX: &str = "Failed to deserialize the JSON body into the target type: ";
    match text.strip_prefix(PREFIX) {
        Some(rest)
            if rest
                .split_once(": ")
                .is_some_and(|(path, _)| !path.contains(' ')) =>
        {
            rest.to_string()
        }
        Some(rest) => format!("body: {rest}"),
        None => format!("body: {text}"),
    }
}

/// `Path` whose rejection is an API error naming the segment.
pub struct P<T>(pub T);
/// `Query` whose rejection is an API error naming the parameter.
pub struct Q<T>(pub T);
/// `Json` whose rejection is an API error naming the field.
pub struct J<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for P<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned + Send,
{
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| P(v))
            .map_err(|e| ApiError::BadRequest(format!("path: {}", e.body_text())))
    }
}

impl<S, T> axum::extract::FromRequestParts<S> for Q<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned,
{
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Q(v))
            .map_err(|e| ApiError::BadRequest(format!("query: {}", e.body_text())))
    }
}

impl<S, T> axum::extract::FromRequest<S> for J<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned,
{
    type Rejection = ApiError;
    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        axum::Json::<T>::from_request(req, state)
            .await
            .map(|axum::Json(v)| J(v))
            .map_err(|e| ApiError::BadRequest(body_error(&e.body_text())))
    }
}
