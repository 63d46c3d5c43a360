//! Embedded Lease API server (placeholder).
