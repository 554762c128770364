//! Holdpoint's data path: a layer-7 gateway between callers (AI agents, humans) and the
//! Kubernetes API server.
//!
//! A request flows through the phases in [`phases`]: classify, authenticate, decide, hold,
//! forward, mask, record (into the audit log, [`audit`]). [`server::start`] wires a [`config::Config`] into running listeners.
//! `docs/ARCHITECTURE.md` draws the whole house.

pub mod admin;
pub mod approvals;
pub mod audit;
pub mod body;
pub mod clock;
pub mod config;
pub mod error;
pub mod headers;
pub mod identity;
pub mod metrics;
pub mod phases;
pub mod server;
pub mod tls;
pub mod upstream;

pub use config::Config;
pub use error::GatewayError;
pub use server::{PhaseOverrides, RunningGateway, StartError, start, start_with};
