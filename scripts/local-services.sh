#!/usr/bin/env bash
# Start (where installed locally) and check the services the tests and the demo use.
set -u
started() { echo "services: $1"; }
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
wait_port() { for _ in $(seq 1 "${3:-60}"); do port_open "$1" "$2" && return 0; sleep 1; done; return 1; }

if ! port_open 127.0.0.1 5432 && command -v pg_ctlcluster >/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start && started "started PostgreSQL"
fi
if ! port_open 127.0.0.1 3306 && [ -x /usr/sbin/mariadbd ]; then
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd && started "started MariaDB"
fi
if ! port_open 127.0.0.1 5672 && command -v rabbitmq-server >/dev/null; then
  rabbitmq-server -detached && started "started RabbitMQ"
fi
if command -v rabbitmq-plugins >/dev/null; then
  wait_port 127.0.0.1 5672 90 || true
  if ! port_open 127.0.0.1 61613; then
    rabbitmq-plugins enable rabbitmq_stomp >/dev/null && started "enabled rabbitmq_stomp"
  fi
fi
# The headless browser of the admin dashboard test (Debian's chromium + chromedriver). Without
# them that test skips and says why; a failed install never stops the other services.
if { [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; } && command -v apt-get >/dev/null \
  && [ "$(id -u)" = 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  if timeout 600 apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null 2>&1 \
    || { timeout 300 apt-get update -qq >/dev/null 2>&1 \
      && timeout 600 apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null 2>&1; }; then
    started "installed chromium and chromium-driver"
  else
    echo "services: could not install chromium/chromium-driver: the browser test will skip" >&2
  fi
fi
exec python3 -m tests.services check "${MESSAGING_TEST_DB:-postgres}"
