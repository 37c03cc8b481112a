//! JSON responses.

use axum::body::Body;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::ApiError;

/// A JSON response body: axum's `Json`, written into a plain buffer that starts at 1 KiB.
/// (axum's grows a `BytesMut` from 128 bytes through a writer, one capacity check per token, and
/// a page of conversations spent as long there as in the database.)
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        let mut body = Vec::with_capacity(1024);
        if let Err(e) = serde_json::to_writer(&mut body, &self.0) {
            return ApiError::internal(&e).into_response();
        }
        let mut response = Response::new(Body::from(body));
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    }
}
