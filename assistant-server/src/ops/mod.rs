//! Running the server as an operator sees it: the shutdown sequence and
//! the signals that start it, the logs, and the metrics.

pub(crate) mod logging;
pub(crate) mod metrics;
pub(crate) mod shutdown;
