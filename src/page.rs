//! Pagination shared by every list: `?page=1&per_page=20`, capped, with the
//! total count so clients can draw page links.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ApiResult, ErrorCode};

/// Page size when the client gives none.
pub const DEFAULT_PER_PAGE: u32 = 20;
/// Largest page a client may ask for, so one request cannot read a table.
pub const MAX_PER_PAGE: u32 = 100;

/// `page` and `per_page` of a list without other filters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1-based page number (default 1).
    pub page: Option<u32>,
    /// Items per page, 1-100 (default 20).
    pub per_page: Option<u32>,
}

impl PageQuery {
    /// The validated window.
    pub fn paging(&self) -> ApiResult<Paging> {
        Paging::new(self.page, self.per_page)
    }
}

/// A validated page window, ready for `LIMIT`/`OFFSET`.
#[derive(Debug, Clone, Copy)]
pub struct Paging {
    pub page: u32,
    pub per_page: u32,
}

impl Paging {
    /// Checks the bounds: a page below 1 or a size outside 1-100 is a 400
    /// `invalid_query` rather than a silently different page.
    pub fn new(page: Option<u32>, per_page: Option<u32>) -> ApiResult<Self> {
        let page = page.unwrap_or(1);
        let per_page = per_page.unwrap_or(DEFAULT_PER_PAGE);
        if page == 0 {
            return Err(ApiError::new(ErrorCode::InvalidQuery).with_message("page starts at 1"));
        }
        if per_page == 0 || per_page > MAX_PER_PAGE {
            return Err(ApiError::new(ErrorCode::InvalidQuery)
                .with_message(format!("per_page must be between 1 and {MAX_PER_PAGE}")));
        }
        Ok(Self { page, per_page })
    }

    /// `LIMIT` of the page.
    pub fn limit(&self) -> i64 {
        i64::from(self.per_page)
    }

    /// `OFFSET` of the page.
    pub fn offset(&self) -> i64 {
        i64::from(self.page - 1) * i64::from(self.per_page)
    }

    /// Wraps one page of items and the total into the response shape.
    pub fn wrap<T>(self, items: Vec<T>, total: i64) -> Page<T> {
        Page { items, total, page: self.page, per_page: self.per_page }
    }
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Items matching the filters, across all pages.
    pub total: i64,
    pub page: u32,
    pub per_page: u32,
}

impl<T> Page<T> {
    /// The same page with every item converted.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            total: self.total,
            page: self.page,
            per_page: self.per_page,
        }
    }
}
