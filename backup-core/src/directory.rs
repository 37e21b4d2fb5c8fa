//! directory (in progress).
