//! Pure classification of Kubernetes API requests. No I/O.
//!
//! * [`classify`] turns method + raw path + raw query into the apiserver's
//!   [`RequestInfo`] after strict path-safety checks ([`PathError`]);
//! * [`RequestInfo`] methods add Holdpoint semantics: [`RequestInfo::is_mutating`],
//!   [`RequestInfo::connect_kind`], [`RequestInfo::is_read_only_review`],
//!   [`RequestInfo::non_resource_kind`];
//! * [`DryRun`] and [`query_values`] read the query exactly like Go's
//!   `url.ParseQuery`;
//! * [`BodyFormat`] classifies the `Content-Type`.
//!
//! Modules: `path` (validation and decoding), `classify` (RequestInfo),
//! `selector` (the ListOptions details that affect RequestInfo), `query`
//! (Go query parsing, dry run), `body` (content types), `error`.

mod body;
mod classify;
mod error;
mod path;
mod query;
mod selector;

pub use body::{BodyFormat, PatchType};
pub use classify::{ConnectKind, NonResourceKind, RequestInfo, classify};
pub use error::PathError;
pub use query::{DryRun, GoQueryPairs, MAX_QUERY_PARAMS, query_first, query_values};
