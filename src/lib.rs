//! toxi: a TCP fault-injection proxy, a drop-in replacement for Toxiproxy.
#![deny(unsafe_code)]

pub mod client;
pub mod model;
pub mod registry;
pub mod toxics;
