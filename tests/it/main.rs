//! One integration-test binary: every module starts real servers on 127.0.0.1:0.

mod support;

mod proxies;
mod toxics;
