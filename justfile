# Every routine task of mtask. `just --list` shows them.

set shell := ["bash", "-euo", "pipefail", "-c"]

wasm := "target/wasm32-wasip2/release"
host := "target/release/mtask-host"

# Guest components: examples, then the ones the tests and benchmarks run.
guests := "printer children sleepers pingpong pipeline echo-server echo-client conformance queueing netting hostile foreign plain early bench"

# Run the demo (the default).
default: demo

# Install what building needs: the wasm32-wasip2 target.
setup:
    rustup target add wasm32-wasip2

# Build every guest component to {{wasm}}/NAME.wasm.
guests: setup
    cargo build --release --target wasm32-wasip2 {{ prepend("-p ", guests) }}

# The Python toolchain (componentize-py, in a venv of its own).
pyvenv := "target/pyvenv"
componentize := pyvenv + "/bin/componentize-py"

# Python examples, built with componentize-py to target/python/NAME.wasm.
python-guests:
    #!/usr/bin/env bash
    set -euo pipefail
    if [ ! -x {{componentize}} ]; then
        python3 -m venv {{pyvenv}}
        {{pyvenv}}/bin/pip install --quiet componentize-py==0.25.1
    fi
    mkdir -p target/python
    for ex in printer children echo_server; do
        out=target/python/$ex.wasm
        # Rebuild only when the app, the SDK or the WIT changed.
        if [ -f "$out" ] && [ -z "$(find examples/python/$ex guest-sdk/python wit -newer "$out" -type f)" ]; then
            continue
        fi
        {{componentize}} -d wit -w task componentize app \
            -p examples/python/$ex -p guest-sdk/python -o "$out"
    done

# Build the host binary and the guests.
build: guests
    cargo build --release -p mtask-host

# Run the bundled examples under `mtask-host run`: the echo server with a
# real client against it, then the seed's other programs.
demo: build
    #!/usr/bin/env bash
    set -euo pipefail
    echo "== the echo server (one task per connection) and a client, over loopback"
    out=target/echo-server.out
    {{host}} run --listen '127.0.0.1:*' {{wasm}}/echo_server.wasm -- 127.0.0.1:0 1 > "$out" &
    server=$!
    for _ in $(seq 100); do grep -q "listening on" "$out" && break; sleep 0.05; done
    addr=$(sed -n 's/^listening on //p' "$out")
    echo "server: listening on $addr"
    {{host}} run --connect "$addr" {{wasm}}/echo_client.wasm -- "$addr" hello from mtask
    wait "$server"
    echo "server: $(tail -n 1 "$out")"
    echo "== printer.wasm: two tasks that yield to each other"
    {{host}} run {{wasm}}/printer.wasm
    echo "== children.wasm: child tasks return values and errors"
    {{host}} run {{wasm}}/children.wasm
    echo "== pipeline.wasm: a producer, three workers, results in input order"
    {{host}} run {{wasm}}/pipeline.wasm

# Run the whole test suite: real guests run by the real host.
test: build python-guests
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
    cargo bench -p mtask-host --bench echo
