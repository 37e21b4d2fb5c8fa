//! host (in progress).
