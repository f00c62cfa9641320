//! Cursor pagination, the same on every list: `?cursor=` (opaque; the last id of the
//! previous page) and `?limit=` (1–500, default 50); answers carry `next_cursor`,
//! `null` on the last page.

use serde::Deserialize;
use uuid::Uuid;

use crate::http::ApiError;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 500;

/// The query's paging half. Taken as text so that a bad value is a 400 naming the
/// field rather than a deserializer's message.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// `next_cursor` of the previous page.
    #[param(value_type = Option<String>)]
    cursor: Option<String>,
    /// At most this many (1–500, default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<String>,
}

/// Where a page starts and how long it is.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub after: Option<Uuid>,
    pub limit: u32,
}

impl Page {
    /// Rows to fetch: one more than the page, to know whether another follows.
    pub fn fetch(&self) -> u32 {
        self.limit + 1
    }

    /// Trims the one extra row and says where the next page starts.
    pub fn finish<T>(&self, items: &mut Vec<T>, id: impl Fn(&T) -> Uuid) -> Option<String> {
        if items.len() <= self.limit as usize {
            return None;
        }
        items.truncate(self.limit as usize);
        items.last().map(|last| id(last).to_string())
    }
}

impl PageQuery {
    pub fn page(&self) -> Result<Page, ApiError> {
        let limit = match self.limit.as_deref() {
            None => DEFAULT_LIMIT,
            Some(text) => text
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    ApiError::invalid_fields([(
                        "limit",
                        format!("must be a whole number from 1 to {MAX_LIMIT}"),
                    )])
                })?,
        };
        let after = match self.cursor.as_deref().filter(|c| !c.is_empty()) {
            None => None,
            Some(c) => Some(c.parse::<Uuid>().map_err(|_| {
                ApiError::invalid_fields([(
                    "cursor",
                    "is not a cursor this list returned".to_owned(),
                )])
            })?),
        };
        Ok(Page { after, limit })
    }
}
