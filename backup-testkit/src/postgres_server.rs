//! A real PostgreSQL server in a temporary directory on a free port, stopped on drop.
