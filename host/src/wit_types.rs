//! The types every mtask interface shares (`mtask:task/types`), generated
//! apart from the interfaces that use them so that the modules below the
//! interfaces (queues, waits) can name them without reaching up.

wasmtime::component::bindgen!({
    path: "../wit",
    inline: "package mtask:host-types; world types { import mtask:task/types@0.1.3; }",
});

pub(crate) use mtask::task::types::Error;
