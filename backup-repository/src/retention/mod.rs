//! Retention: which bundles a policy keeps, and why.
//!
//! [`plan`] is a pure function: given the bundles of a repository, a
//! [`RetentionPolicy`] and the current time, it returns one [`RetentionDecision`] per
//! bundle, keep or remove, with every rule that kept it. It never touches storage; the
//! caller (prune, with or without a dry run) acts on [`RetentionPlan::to_remove`].
//!
//! The semantics follow restic's `forget`: bundles are divided into groups (by service
//! set and/or kind), the rules of the group's kind are applied to each group on its own,
//! rules are ORed, each calendar bucket keeps its newest bundle, and a count that cannot
//! be filled keeps the group's oldest bundle.

mod buckets;
mod duration;
mod glob;
mod plan;
mod policy;

pub use duration::RetentionDuration;
pub use plan::{plan, RetentionDecision, RetentionItem, RetentionPlan};
pub use policy::{GroupBy, KindRules, RetentionPolicy, Rules};
