//! The conformance suite every adapter runs against a real server.
