//! A real redis-server in a temporary directory on a free port, killed on drop.
