//! The store's errors. Messages never carry a database URL, a token or a request body.

use crate::types::ApprovalState;

/// Everything a store operation can refuse or fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store URL is neither `sqlite://PATH` nor `postgres://...` (the URL itself is not
    /// repeated: it may carry a password).
    #[error("invalid store url: {0}")]
    InvalidUrl(&'static str),
    /// The database failed (connection, constraint, I/O).
    #[error("store database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed on open.
    #[error("store migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// No approval (or token) with this id.
    #[error("{0} not found")]
    NotFound(String),
    /// The approval is not in a state that allows the operation.
    #[error("approval {id} is {state}, so it cannot be {operation}")]
    WrongState {
        /// The approval.
        id: String,
        /// Its current state.
        state: ApprovalState,
        /// What was attempted (`voted on`, `cancelled`, ...).
        operation: &'static str,
    },
    /// The approval's time to live has passed (it is now `expired`).
    #[error("approval {0} has expired")]
    Expired(String),
    /// A requester tried to approve or deny its own request.
    #[error("the requester cannot approve or deny its own request")]
    SelfApproval,
    /// The voter is not among the approval's reviewers.
    #[error("{user} is not a reviewer of approval {id}")]
    NotAReviewer {
        /// The approval.
        id: String,
        /// Who tried to vote.
        user: String,
    },
    /// A denial (or another operation) needs a reason.
    #[error("a reason is required")]
    ReasonRequired,
    /// Only the requester may cancel its approval.
    #[error("only the requester can cancel approval {0}")]
    NotRequester(String),
    /// The caller passed something the store refuses to keep.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// A row the store wrote cannot be read back (a bug or manual edits).
    #[error("corrupt store row: {0}")]
    Corrupt(String),
    /// Concurrent writers kept conflicting; the operation can be retried.
    #[error("store conflict, retry: {0}")]
    Conflict(&'static str),
}
