//! The product lifecycle, in one place:
//!
//! ```text
//! draft --submit--> pending_review --approve--> listed <--list/unlist--> unlisted
//!   ^                 |     ^                     |                        |
//!   '----edit---- rejected  '--edit (stays)       '--edit of customer-facing content:
//!                  (reason)                           held as a pending revision for review;
//!                                                     the live version stays up meanwhile
//! ```
//!
//! A pending revision of a listed (or unlisted) product is `pending_review`
//! until approved (it becomes live) or rejected (it stays, with a reason,
//! until edited or resubmitted). Every edit bumps the product's revision,
//! and a decision names the revision it was made on: an edit that lands
//! while an operator is reviewing is never approved unseen.
//!
//! [`plan`] is pure: it says what a step does to a product, or why the
//! step is refused; the service carries the plan out in one transaction.

use serde_json::Value;

use super::content::ProductContent;
use super::store::{LifecycleChange, ProductRow};
use crate::error::{ApiError, ApiResult, ErrorCode};

/// Where a product stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProductStatus {
    Draft,
    PendingReview,
    Rejected,
    Listed,
    Unlisted,
}

impl ProductStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::PendingReview => "pending_review",
            Self::Rejected => "rejected",
            Self::Listed => "listed",
            Self::Unlisted => "unlisted",
        }
    }

    /// The status stored as `name`.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Draft, Self::PendingReview, Self::Rejected, Self::Listed, Self::Unlisted]
            .into_iter()
            .find(|status| status.as_str() == name)
    }

    /// Whether the product has been approved once: its columns are then
    /// the live version, and edits go through a pending revision.
    pub fn has_live_version(self) -> bool {
        matches!(self, Self::Listed | Self::Unlisted)
    }
}

/// The state of a listed product's pending revision.
pub const REVISION_PENDING: &str = "pending_review";
/// A pending revision the operators refused.
pub const REVISION_REJECTED: &str = "rejected";

/// Something a merchant or an operator does to a product.
pub enum Step<'a> {
    /// New content from the merchant (validated, normalised), with the
    /// current live content to compare against.
    Edit {
        content: &'a ProductContent,
        live: &'a ProductContent,
        content_json: &'a Value,
    },
    Submit,
    Approve {
        revision: i32,
    },
    Reject {
        revision: i32,
        reason: &'a str,
    },
    List,
    Unlist,
}

/// What a step does: content to write as the live version, and the
/// lifecycle columns to set.
pub struct Plan<'a> {
    pub write_live: Option<ProductContent>,
    pub change: LifecycleChange<'a>,
}

fn refused(row: &ProductRow, what: &str) -> ApiError {
    let pending = match row.pending_state.as_deref() {
        Some(state) => format!(" (its revision is {state})"),
        None => String::new(),
    };
    ApiError::new(ErrorCode::InvalidState)
        .with_message(format!("cannot {what} a product that is {}{pending}", row.status))
}

/// What `step` does to `row`, or why it is refused (409 `invalid_state`,
/// 409 `stale_revision`).
pub fn plan<'a>(row: &'a ProductRow, step: Step<'a>) -> ApiResult<Plan<'a>> {
    use ProductStatus::*;
    let status = ProductStatus::parse(&row.status)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("unknown product status {}", row.status)))?;
    let revision_state = row.pending_state.as_deref();
    let mut change = LifecycleChange::default();
    let mut write_live = None;
    match step {
        Step::Edit { content, live, content_json } => {
            change.new_revision = true;
            if !status.has_live_version() {
                write_live = Some(content.clone());
                if status == Rejected {
                    change.status = Some(Draft.as_str());
                    change.review_reason = Some(None);
                }
            } else if content.customer_facing() == live.customer_facing() {
                // Only internal fields changed (or the edit undoes a
                // pending revision): no review needed.
                write_live = Some(content.clone());
                change.pending = Some(None);
                change.pending_reason = Some(None);
            } else {
                change.pending = Some(Some((content_json, REVISION_PENDING)));
                change.pending_reason = Some(None);
            }
        }
        Step::Submit => match (status, revision_state, &row.pending_content) {
            (Draft | Rejected, _, _) => {
                change.status = Some(PendingReview.as_str());
                change.review_reason = Some(None);
            }
            (Listed | Unlisted, Some(REVISION_REJECTED), Some(pending)) => {
                change.pending = Some(Some((pending, REVISION_PENDING)));
                change.pending_reason = Some(None);
            }
            _ => return Err(refused(row, "submit")),
        },
        Step::Approve { revision } | Step::Reject { revision, .. } if revision != row.revision => {
            return Err(ApiError::new(ErrorCode::StaleRevision)
                .with_message(format!("the product is at revision {}", row.revision)));
        }
        Step::Approve { .. } => match (status, revision_state, &row.pending_content) {
            (PendingReview, _, _) => {
                change.status = Some(Listed.as_str());
                change.listed_now = row.listed_at.is_none();
                change.review_reason = Some(None);
            }
            (Listed | Unlisted, Some(REVISION_PENDING), Some(pending)) => {
                let content = serde_json::from_value(pending.clone())
                    .map_err(|e| ApiError::internal(anyhow::anyhow!("stored revision unreadable: {e}")))?;
                write_live = Some(content);
                change.pending = Some(None);
                change.pending_reason = Some(None);
            }
            _ => return Err(refused(row, "approve")),
        },
        Step::Reject { reason, .. } => match (status, revision_state, &row.pending_content) {
            (PendingReview, _, _) => {
                change.status = Some(Rejected.as_str());
                change.review_reason = Some(Some(reason));
            }
            (Listed | Unlisted, Some(REVISION_PENDING), Some(pending)) => {
                change.pending = Some(Some((pending, REVISION_REJECTED)));
                change.pending_reason = Some(Some(reason));
            }
            _ => return Err(refused(row, "reject")),
        },
        Step::List if status == Unlisted => change.status = Some(Listed.as_str()),
        Step::Unlist if status == Listed => change.status = Some(Unlisted.as_str()),
        Step::List => return Err(refused(row, "list")),
        Step::Unlist => return Err(refused(row, "unlist")),
    }
    Ok(Plan { write_live, change })
}
