//! Where bundles live over time: a repository on local disk or object storage, and
//! [`retention`] rules that decide which bundles to keep.

pub mod retention;
