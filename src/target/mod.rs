//! Targets: the servers under test.

pub mod hub;
