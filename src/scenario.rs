//! Scenario files (TOML) → validated `Plan`.
