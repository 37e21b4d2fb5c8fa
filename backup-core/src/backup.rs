//! backup (in progress).
