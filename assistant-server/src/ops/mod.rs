//! Running the server as an operator sees it: the shutdown sequence and
//! the signals that start it, and the logs.

pub(crate) mod logging;
pub(crate) mod shutdown;
