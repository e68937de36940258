//! The API's errors and how they look on the wire: a status and a JSON body
//! `{"error": "…"}`. A store failure is logged and answered without its
//! detail (it may name tables or values); a request for an object of
//! another tenant is 404 like one that does not exist.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::pool::PoolError;
use crate::service::ServiceError;

/// An error's body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: String,
}

/// An API error.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No token, or not a live one.
    #[error("a valid bearer token is required")]
    Unauthorized,
    /// Too many failed authentications from this address.
    #[error("too many failed authentications; retry later")]
    TooMany(Duration),
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// What the service refused.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// The store's threads are busy or gone.
    #[error(transparent)]
    Pool(#[from] PoolError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match &self {
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, self.to_string()),
            Self::TooMany(_) => (StatusCode::TOO_MANY_REQUESTS, self.to_string()),
            Self::BadRequest(m) => (StatusCode::BAD_REQUEST, m.clone()),
            Self::Service(ServiceError::NotFound(_)) => {
                // The same words whether it does not exist or is not yours.
                (StatusCode::NOT_FOUND, "not found".to_owned())
            }
            Self::Service(ServiceError::Forbidden(m)) => (StatusCode::FORBIDDEN, (*m).to_owned()),
            Self::Service(ServiceError::Invalid(m)) => (StatusCode::BAD_REQUEST, m.clone()),
            Self::Service(ServiceError::Conflict(m)) => (StatusCode::CONFLICT, m.clone()),
            Self::Service(ServiceError::Store(e)) => {
                tracing::warn!(error = %e, "API: store call failed");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the store failed; try again".to_owned(),
                )
            }
            Self::Pool(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        };
        let mut response = (status, Json(ErrorBody { error: message })).into_response();
        match self {
            Self::Unauthorized => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"nido\""),
                );
            }
            Self::TooMany(wait) => {
                if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, v);
                }
            }
            _ => {}
        }
        response
    }
}
