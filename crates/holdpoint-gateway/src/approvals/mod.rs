//! Approvals: what a held request becomes, what reviewers see of it, and how it is executed.

pub mod review;
