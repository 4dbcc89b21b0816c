//! The process runtime both aigov deployables (the gateway and the controller) share, and the
//! `kubectl-aigov` plugin does not: following Kubernetes watches with backoff ([`watch`]), the
//! watched price book ([`prices`]), Events ([`events`]), the `/metrics`, `/healthz` and
//! `/readyz` endpoint with readiness made of named conditions ([`probes`]), supervised tasks
//! ([`supervise`]), stop signals ([`shutdown`]) and the flags every process has ([`cli`]).
#![forbid(unsafe_code)]

pub mod cli;
pub mod events;
pub mod prices;
pub mod probes;
pub mod shutdown;
pub mod supervise;
pub mod watch;
