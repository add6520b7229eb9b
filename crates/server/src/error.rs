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
    /// Well formed, but the fields contradict each other or name what does not fit.
    #[error("{0}")]
    Unprocessable(String),
    /// Not possible in the thing's current state.
    #[error("{0}")]
    Conflict(String),
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    #[error("the warehouse has no data yet: run `c360 etl` first")]
    NoData,
    /// The view needs a source entity the chain's contract does not provide.
    #[error("{0}")]
    NotInSources(String),
    /// A key's rate limit: try again after the given whole seconds (the `Retry-After` header).
    #[error("too many requests for this key ({what}): retry after {retry_after_secs} s")]
    TooManyRequests {
        what: &'static str,
        retry_after_secs: u64,
    },
    /// The request did not finish (or find a free slot) within the server's time limit.
    #[error("the request took longer than the server's limit of {0} s; try again")]
    Timeout(u64),
    #[error("internal error")]
    Internal(String),
}

/// The JSON body of every error.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code: unauthorized, forbidden, not_found, bad_request (a
    /// parameter or field does not parse or is out of its documented bounds), unprocessable
    /// (well formed, but fields contradict each other or name what does not fit), conflict (not
    /// in the current state), not_in_sources (the view needs a source entity the chain's source
    /// contract does not provide; the message names it), method_not_allowed, no_data, too_many_requests (a key's rate
    /// limit; the `Retry-After` header says when to retry), timeout (over the server's time
    /// limit), internal.
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
            ApiError::Unprocessable(_) => ("unprocessable", StatusCode::UNPROCESSABLE_ENTITY),
            ApiError::Conflict(_) => ("conflict", StatusCode::CONFLICT),
            ApiError::MethodNotAllowed => ("method_not_allowed", StatusCode::METHOD_NOT_ALLOWED),
            ApiError::NoData => ("no_data", StatusCode::SERVICE_UNAVAILABLE),
            ApiError::NotInSources(_) => ("not_in_sources", StatusCode::CONFLICT),
            ApiError::TooManyRequests { .. } => {
                ("too_many_requests", StatusCode::TOO_MANY_REQUESTS)
            }
            ApiError::Timeout(_) => ("timeout", StatusCode::SERVICE_UNAVAILABLE),
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
        let mut r = (
            status,
            Json(ErrorBody {
                code,
                message: self.to_string(),
            }),
        )
            .into_response();
        if let ApiError::TooManyRequests {
            retry_after_secs, ..
        } = self
        {
            r.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(retry_after_secs),
            );
        }
        r
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
            C::Invalid(m) => ApiError::Unprocessable(m),
            C::Conflict(m) => ApiError::Conflict(m),
            C::Forbidden(m) => ApiError::Forbidden(m),
            C::NotFound(m) => ApiError::NotFound(m),
            C::NoData => ApiError::NoData,
            C::NotInSources(m) => ApiError::NotInSources(m),
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
        let axum::Json(mut v) = axum::Json::<serde_json::Value>::from_request(req, state)
            .await
            .map_err(|e| ApiError::BadRequest(body_error(&e.body_text())))?;
        integral_floats(&mut v);
        serde_path_to_error::deserialize(v).map(J).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            ApiError::BadRequest(if path == "." {
                format!("body: {inner}")
            } else {
                format!("{path}: {inner}")
            })
        })
    }
}

/// JSON has one number type: `6353.0` is the integer 6353 to JSON Schema and to most clients.
/// Such numbers become integers before the body meets the typed fields (a float field takes an
/// integer as well).
fn integral_floats(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Number(n) if !n.is_i64() && !n.is_u64() => {
            if let Some(f) = n.as_f64() {
                // 2^63 is exact in f64; anything in [-2^63, 2^63) with no fraction fits an i64.
                if f.fract() == 0.0
                    && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f)
                {
                    *v = Value::from(f as i64);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(integral_floats),
        Value::Object(o) => o.values_mut().for_each(integral_floats),
        _ => {}
    }
}
