# rouse on Debian 12: builds roused and runs it as an unprivileged user
# with its state (SQLite store, socket, file outboxes) on the var/ volume.
FROM debian:12 AS build
RUN apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
      --no-install-recommends build-essential cmake pkg-config libuv1-dev \
      libjansson-dev libsqlite3-dev libgmime-3.0-dev \
      libcurl4-openssl-dev libmicrohttpd-dev libjwt-dev libssl-dev \
    && rm -rf /var/lib/apt/lists/*
COPY . /src
RUN cmake -S /src -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    && cmake --build /build -j"$(nproc)" --target roused rousectl

FROM debian:12
RUN apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
      --no-install-recommends libuv1 libjansson4 libsqlite3-0 libgmime-3.0-0 \
      libssl3 libcurl4 libjwt0 libmicrohttpd12 tzdata ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home-dir /opt/rouse --shell /usr/sbin/nologin rouse
COPY --from=build /build/roused /build/rousectl /usr/local/bin/
COPY config /opt/rouse/config
COPY templates /opt/rouse/templates
RUN mkdir -p /opt/rouse/var && chown rouse:rouse /opt/rouse/var
USER rouse
WORKDIR /opt/rouse
VOLUME /opt/rouse/var
ENTRYPOINT ["/usr/local/bin/roused", "--config", "/opt/rouse/config/rouse.json"]
