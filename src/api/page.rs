//! Cursor pagination, the same on every list: `?cursor=` (opaque; the last id of the
//! previous page) and `?limit=` (1–500, default 50); answers carry `next_cursor`,
//! `null` on the last page. A list whose rows have no UUID is ordered by a key of text
//! unique in it, and its cursors are that text in hex ([`text_cursor`]).

use std::fmt::Display;

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

/// Where a page starts (after the row whose key is `after`) and how long it is.
#[derive(Debug, Clone, Copy)]
pub struct Page<K = Uuid> {
    pub after: Option<K>,
    pub limit: u32,
}

impl<K> Page<K> {
    /// Rows to fetch: one more than the page, to know whether another follows.
    pub fn fetch(&self) -> u32 {
        self.limit + 1
    }

    /// Trims the one extra row and says where the next page starts.
    pub fn finish<T, C: Display>(
        &self,
        items: &mut Vec<T>,
        key: impl Fn(&T) -> C,
    ) -> Option<String> {
        if items.len() <= self.limit as usize {
            return None;
        }
        items.truncate(self.limit as usize);
        items.last().map(|last| key(last).to_string())
    }
}

impl PageQuery {
    /// The page of a list ordered by UUID.
    pub fn page(&self) -> Result<Page, ApiError> {
        self.page_by(|c| c.parse::<Uuid>().ok())
    }

    /// The page of a list ordered by text: `parse` reads the key a [`text_cursor`] holds
    /// (`None`: not one of the list's keys).
    pub fn page_by_text<K>(
        &self,
        parse: impl FnOnce(&str) -> Option<K>,
    ) -> Result<Page<K>, ApiError> {
        self.page_by(|c| parse(&String::from_utf8(hex::decode(c).ok()?).ok()?))
    }

    fn page_by<K>(&self, parse: impl FnOnce(&str) -> Option<K>) -> Result<Page<K>, ApiError> {
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
            Some(c) => Some(parse(c).ok_or_else(|| {
                ApiError::invalid_fields([(
                    "cursor",
                    "is not a cursor this list returned".to_owned(),
                )])
            })?),
        };
        Ok(Page { after, limit })
    }
}

/// The cursor after a row keyed by `key`: opaque like a UUID's, and a made-up cursor
/// (`nope`) is refused rather than read as a key.
pub fn text_cursor(key: &str) -> String {
    hex::encode(key)
}

/// The key of a list ordered by time, then id (newest first): `{ms}.{uuid}`, read back
/// by [`PageQuery::page_by_text`] through [`time_id`].
pub fn time_id_cursor(at_ms: i64, id: Uuid) -> String {
    text_cursor(&format!("{at_ms}.{id}"))
}

/// Reads what [`time_id_cursor`] wrote.
pub fn time_id(cursor: &str) -> Option<(i64, Uuid)> {
    let (at, id) = cursor.split_once('.')?;
    Some((at.parse().ok()?, id.parse().ok()?))
}
