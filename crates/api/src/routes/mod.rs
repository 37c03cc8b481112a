//! One module per feature, each exposing `routes() -> OpenApiRouter<AppState>`.

pub mod admin;
pub mod agents;
pub mod attachments;
pub mod catalog;
pub mod chat;
pub mod compat;
pub mod compat_auth;
pub mod connections;
pub mod conversations;
pub mod credentials;
pub mod health;
pub mod jobs;
pub mod me;
pub mod sign_in;
pub mod tasks;

use serde::Deserialize;
use switchboard_domain::{Cursor, PageRequest};
use utoipa::IntoParams;

use crate::error::{ApiError, ApiResult};

/// Pagination accepted by every list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1–100 (larger values are clamped to 100). Default 20.
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Items to skip (ignored when `cursor` is given).
    pub offset: Option<u64>,
}

impl PageQuery {
    pub fn to_request(&self) -> ApiResult<PageRequest> {
        let cursor = match self.cursor.as_deref() {
            None | Some("") => None,
            Some(text) => Some(
                Cursor::decode(text)
                    .ok_or_else(|| ApiError::bad_request("invalid_cursor", "the cursor is not valid"))?,
            ),
        };
        Ok(PageRequest::new(self.limit, cursor, self.offset))
    }
}
