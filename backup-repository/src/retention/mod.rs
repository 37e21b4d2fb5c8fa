//! Retention: which bundles a policy keeps, and why.
