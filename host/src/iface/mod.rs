//! The host side of each WIT interface, one module per interface.

pub(crate) mod monitors;
pub mod net;
pub mod queues;
pub mod tasks;
pub(crate) mod wasi_sockets;
