//! The library half of the `holdpoint` binary: what the commands do, so the end-to-end tests
//! can run the same code in-process.

pub mod approvals_cmd;
pub mod audit_cmd;
pub mod env;
pub mod kubeconfig;
pub mod policy_cmd;
pub mod tokens;
