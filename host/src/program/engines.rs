//! The engines of a host, each with the host's imports linked for it:
//! Cranelift's, whose code the cache keeps and most tasks run, and Winch's,
//! made on the first component a run has to compile (docs/design.md §11).
//!
//! A store, a linker and an epoch belong to one engine, so each engine has
//! its own linker and epoch ticker. Both take memories and stacks from one
//! arena: the task limits hold across them.

use std::sync::OnceLock;

use wasmtime::Engine;
use wasmtime::component::{HasSelf, Linker};

use super::task::TaskState;
use crate::arena::PoolUsage;
use crate::engine::{Arena, Compiler, Config, Ticker, Tiering, new_engine};
use crate::error::{Error, one_line};
use crate::say::say;
use crate::tier::Background;

/// An engine, the host's imports linked for it, and its epoch ticker.
pub(crate) struct Tier {
    /// Compiles components and makes stores.
    pub(crate) engine: Engine,
    /// WASI and `mtask:task`, for this engine.
    pub(crate) linker: Linker<TaskState>,
    /// Advances this engine's epoch (none without preemption).
    _ticker: Option<Ticker>,
}

impl Tier {
    fn new(config: &Config, arena: &Arena, compiler: Compiler) -> Result<Self, Error> {
        let host = |e: wasmtime::Error| Error::Host(one_line(&e));
        let engine = new_engine(config, arena, compiler).map_err(host)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .and_then(|()| crate::iface::wasi_sockets::add_to_linker(&mut linker))
            .map_err(host)?;
        crate::bindings::UntypedTask::add_to_linker::<TaskState, HasSelf<TaskState>>(
            &mut linker,
            |state| state,
        )
        .map_err(host)?;
        let ticker = config.preempt.then(|| Ticker::start(&engine));
        Ok(Tier {
            engine,
            linker,
            _ticker: ticker,
        })
    }
}

/// Cranelift's tier, Winch's when a first run needs it, and what compiles
/// in the background.
pub(crate) struct Engines {
    /// Cranelift: the cache's code.
    pub(crate) optimized: Tier,
    /// Winch, made on first need; `None` inside when it could not be.
    baseline: OnceLock<Option<Tier>>,
    /// The settings both engines are made with.
    config: Config,
    /// The memories and stacks both share.
    arena: Arena,
    /// Compiles with Cranelift behind a first run ([`Tiering::Background`]).
    pub(crate) background: Background,
}

impl Engines {
    pub(crate) fn new(config: &Config) -> Result<Self, Error> {
        let arena = Arena::new(config).map_err(|e| Error::Host(one_line(&e)))?;
        let optimized = Tier::new(config, &arena, Compiler::Cranelift)?;
        Ok(Engines {
            optimized,
            baseline: OnceLock::new(),
            config: config.clone(),
            arena,
            background: Background::default(),
        })
    }

    /// How much of the task pool is taken now.
    pub(crate) fn pool(&self) -> PoolUsage {
        self.arena.usage()
    }

    /// How a component missing from the cache is compiled.
    pub(crate) fn tiering(&self) -> &Tiering {
        &self.config.tiering
    }

    /// The settings the engines were made with.
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// Winch's tier, made the first time; `None` if it cannot be made
    /// (said once on stderr: components then compile with Cranelift).
    pub(crate) fn baseline(&self) -> Option<&Tier> {
        self.baseline
            .get_or_init(
                || match Tier::new(&self.config, &self.arena, Compiler::Winch) {
                    Ok(tier) => Some(tier),
                    Err(e) => {
                        say!(
                            warn,
                            {},
                            "no baseline compiler ({e}): compiling with Cranelift"
                        );
                        None
                    }
                },
            )
            .as_ref()
    }
}
