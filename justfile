# Every routine task of mtask. `just --list` shows them.

set shell := ["bash", "-euo", "pipefail", "-c"]

wasm := "target/wasm32-wasip2/release"
host := "target/release/mtask-host"

# Guest components: examples, then the ones the tests and benchmarks run.
guests := "printer children sleepers pingpong pipeline echo-server echo-client conformance queueing netting foreign plain early bench"

# Run the demo (the default).
default: demo

# Install what building needs: the wasm32-wasip2 target.
setup:
    rustup target add wasm32-wasip2

# Build every guest component to {{wasm}}/NAME.wasm.
guests: setup
    cargo build --release --target wasm32-wasip2 {{ prepend("-p ", guests) }}

# Build the host binary and the guests.
build: guests
    cargo build --release -p mtask-host

# Run the bundled examples under `mtask-host run`.
demo: build
    @echo "== mtask-host run printer.wasm: two tasks that yield to each other"
    {{host}} run {{wasm}}/printer.wasm
    @echo "== mtask-host run children.wasm: child tasks return values and errors"
    {{host}} run {{wasm}}/children.wasm
    @echo "== mtask-host run sleepers.wasm: sleeping tasks wake in deadline order"
    {{host}} run {{wasm}}/sleepers.wasm

# Run the whole test suite: real guests run by the real host.
test: build
    cargo test --release --workspace 2>&1 | tee target/test-output.log
    @awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' target/test-output.log

# Formatting and lints, as CI checks them.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings

# Everything CI runs.
ci: lint test

# Benchmarks; figures go to BENCHMARKS.md by hand, with this command.
bench: build
    cargo bench -p mtask-host --bench scheduler
