//! memory_host (in progress).
