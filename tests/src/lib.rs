//! End-to-end tests for busd.
