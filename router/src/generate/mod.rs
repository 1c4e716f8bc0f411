//! Configuration for the systems around roomrouter, generated from the live
//! node registry, so that adding an instance is one reviewed step:
//!
//! - [`alb`]: AWS ALB listener rules, one per instance (`/iN/room/*`).
//! - [`nginx`]: a complete nginx.conf with one location per instance.
//! - [`file_sd`]: Prometheus file-based service discovery of the nodes.

pub mod alb;
pub mod file_sd;
pub mod nginx;
