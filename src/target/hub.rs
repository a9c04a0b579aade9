//! The embedded hub.
