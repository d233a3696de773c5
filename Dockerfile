# syntax=docker/dockerfile:1

# --- build stage: release binary -------------------------------------------------
FROM rust:1-bookworm AS builder
WORKDIR /src
# The release profile keeps line tables (debug = 1) for profiling; the image does not
# need them: no debug info and stripped of it, a smaller binary and a shorter build.
ENV CARGO_PROFILE_RELEASE_DEBUG=0 \
    CARGO_PROFILE_RELEASE_STRIP=debuginfo
# Dependencies first, against stub targets, so source edits do not rebuild them.
COPY Cargo.toml Cargo.lock ./
# Every bench and test target Cargo.toml declares gets a stub, so a new one needs no
# edit here.
RUN mkdir -p src benches \
    && touch src/lib.rs \
    && echo 'fn main() {}' > src/main.rs \
    && for bench in $(sed -n '/^\[\[bench\]\]/{n;s/^name = "\(.*\)"/\1/p}' Cargo.toml); do \
         echo 'fn main() {}' > "benches/$bench.rs"; \
       done \
    && for path in $(sed -n 's/^path = "\(tests\/.*\)"/\1/p' Cargo.toml); do \
         mkdir -p "$(dirname "$path")" && echo 'fn main() {}' > "$path"; \
       done \
    && cargo build --release --locked --bin scrubgate \
    && rm -rf src benches tests
COPY src ./src
COPY benches ./benches
COPY tests/it ./tests/it
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin scrubgate

# --- runtime stage: slim, non-root ------------------------------------------------
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
    && groupadd --system --gid 10001 scrubgate \
    && useradd --system --uid 10001 --gid scrubgate --home-dir /var/lib/scrubgate scrubgate \
    && mkdir -p /var/lib/scrubgate /etc/scrubgate \
    && chown scrubgate:scrubgate /var/lib/scrubgate
COPY --from=builder /src/target/release/scrubgate /usr/local/bin/scrubgate
COPY config/ /etc/scrubgate/
# Listen on all interfaces inside the container; keep the outbox in the data volume.
ENV SCRUBGATE_SERVER_LISTEN=0.0.0.0:3000 \
    SCRUBGATE_ADMIN_LISTEN=0.0.0.0:3001 \
    SCRUBGATE_PROJECTS_DIR=/etc/scrubgate/projects
USER scrubgate:scrubgate
WORKDIR /var/lib/scrubgate
VOLUME ["/var/lib/scrubgate"]
EXPOSE 3000 3001
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/scrubgate"]
CMD ["run", "--config", "/etc/scrubgate/scrubgate.toml"]
