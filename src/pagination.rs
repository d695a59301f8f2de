//! Page-number pagination shared by every list endpoint.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Largest page a client may ask for.
pub const MAX_PER_PAGE: u32 = 100;

/// `?page=1&per_page=20` (1-based; per_page capped at [`MAX_PER_PAGE`]).
#[derive(Debug, Clone, Copy, Deserialize, IntoParams)]
pub struct PageQuery {
    /// 1-based page number (default 1).
    pub page: Option<u32>,
    /// Items per page (default 20, at most 100).
    pub per_page: Option<u32>,
}

impl PageQuery {
    /// The page number, at least 1.
    pub fn page(&self) -> u32 {
        self.page.unwrap_or(1).max(1)
    }

    /// The page size, between 1 and [`MAX_PER_PAGE`].
    pub fn per_page(&self) -> u32 {
        self.per_page.unwrap_or(20).clamp(1, MAX_PER_PAGE)
    }

    /// SQL `LIMIT`.
    pub fn limit(&self) -> i64 {
        i64::from(self.per_page())
    }

    /// SQL `OFFSET`.
    pub fn offset(&self) -> i64 {
        i64::from(self.page() - 1) * self.limit()
    }

    /// Wraps one page of results.
    pub fn wrap<T>(&self, items: Vec<T>, total: i64) -> Page<T> {
        Page { items, page: self.page(), per_page: self.per_page(), total }
    }
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub page: u32,
    pub per_page: u32,
    /// Items across all pages.
    pub total: i64,
}
