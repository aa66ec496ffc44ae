//! One integration-test binary: every module starts real servers on 127.0.0.1:0.

mod support;

mod api;
mod config;
mod connections;
mod dashboard;
mod events;
mod faults;
mod fuzz;
mod hostile;
mod http_proxy;
mod latency_timer;
mod library;
mod logging;
mod metrics;
mod netmodels;
mod process;
mod proxies;
mod schedule;
mod toxics;
mod workers;
