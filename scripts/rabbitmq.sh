#!/usr/bin/env bash
# A private RabbitMQ broker (Debian's rabbitmq-server: scripts/install-rabbitmq.sh), for the notification
# transport's tests and `make cluster`:
#
#   scripts/rabbitmq.sh start <dir> <amqp-port>   start it, wait until it accepts AMQP, print its start time
#   scripts/rabbitmq.sh run <dir> <amqp-port>     run it in the foreground (a supervisor's child: `make cluster`,
#                                                 NOTIFICATION_RABBITMQ=1 make start); SIGTERM stops it cleanly
#   scripts/rabbitmq.sh stop <dir>                stop it (and its epmd); nothing to do when it is not running
#   scripts/rabbitmq.sh ctl <dir> <args…>         rabbitmqctl against it (e.g. list_queues name messages)
#
# Everything it writes is under <dir> (data, logs, config, Erlang cookie); it listens on 127.0.0.1 only: AMQP
# on <amqp-port>, Erlang distribution on RABBITMQ_DIST_PORT and its own epmd on ERL_EPMD_PORT (never the
# system's 4369/25672, so several brokers run side by side). Both come from the environment when set, else
# from the previous start in <dir>, else free ports are picked. The node name is chosen at the first start and
# kept (the data dir belongs to it), so a restart on the same <dir> finds its queues and exchanges. No user is
# created beyond RabbitMQ's default `guest`/`guest`, which may connect from loopback only.
set -euo pipefail

usage() {
  echo "usage: $0 start|run <dir> <amqp-port> | stop <dir> | ctl <dir> <rabbitmqctl args…>" >&2
  exit 2
}

server=/usr/lib/rabbitmq/bin/rabbitmq-server
SCRIPTS=$(cd "$(dirname "$0")" && pwd)

# A TCP port free on loopback now, below the kernel's ephemeral range (32768 up): a port from that range
# can be taken by any outgoing connection between the pick and the broker's bind.
free_port() {
  python3 "$SCRIPTS/free-port.py" "$@"
}

# Whether a broker answers the AMQP 0-9-1 protocol header with connection.start (a method frame on channel 0).
accepts_amqp() {
  python3 - "$1" <<'PY' 2>/dev/null
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
    s.sendall(b"AMQP\x00\x00\x09\x01")
    frame = s.recv(11)
    sys.exit(0 if len(frame) >= 11 and frame[0] == 1 and frame[7:11] == b"\x00\x0a\x00\x0a" else 1)
except OSError:
    sys.exit(1)
PY
}

alive() { [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null; }

# Writes <dir>'s config and broker.env (node name and ports kept across restarts); sets NODENAME,
# EPMD_PORT, DIST_PORT and dir (absolute).
prepare() {
  local port=$2
  dir=$1
  [[ $port =~ ^[0-9]+$ ]] || usage
  [[ -x $server ]] || {
    echo "rabbitmq: $server missing: run scripts/install-rabbitmq.sh" >&2
    exit 1
  }
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [[ -f $dir/server.pid ]] && alive "$(cat "$dir/server.pid")"; then
    echo "rabbitmq: a broker already runs in $dir (pid $(cat "$dir/server.pid"))" >&2
    exit 1
  fi
  NODENAME='' EPMD_PORT='' DIST_PORT=''
  # shellcheck disable=SC1091
  [[ -f $dir/broker.env ]] && source "$dir/broker.env"
  NODENAME=${NODENAME:-rabbit_$port@localhost}
  EPMD_PORT=${ERL_EPMD_PORT:-${EPMD_PORT:-$(free_port)}}
  DIST_PORT=${RABBITMQ_DIST_PORT:-${DIST_PORT:-$(free_port)}}
  printf 'NODENAME=%s\nEPMD_PORT=%s\nDIST_PORT=%s\nAMQP_PORT=%s\n' "$NODENAME" "$EPMD_PORT" "$DIST_PORT" "$port" \
    >"$dir/broker.env"
  mkdir -p "$dir/mnesia" "$dir/log" "$dir/home"
  cat >"$dir/rabbitmq.conf" <<EOF
# written by scripts/rabbitmq.sh
listeners.tcp.1 = 127.0.0.1:$port
loopback_users.guest = true
# The console (a supervisor's log) gets errors only; everything goes to log/ under <dir>.
log.console.level = error
log.file.level = info
EOF
  echo '[].' >"$dir/enabled_plugins"
}

# The broker's environment (in the subshell that execs the server).
broker_env() {
  local port=$1
  export HOME=$dir/home
  export ERL_EPMD_PORT=$EPMD_PORT ERL_EPMD_ADDRESS=127.0.0.1
  export RABBITMQ_NODENAME=$NODENAME RABBITMQ_USE_LONGNAME=false
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT=$port RABBITMQ_DIST_PORT=$DIST_PORT
  export RABBITMQ_CONF_ENV_FILE=/nonexistent RABBITMQ_CONFIG_FILE=$dir/rabbitmq.conf
  export RABBITMQ_ADVANCED_CONFIG_FILE=$dir/advanced.config
  export RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins
  export RABBITMQ_MNESIA_BASE=$dir/mnesia RABBITMQ_LOG_BASE=$dir/log RABBITMQ_PID_FILE=$dir/beam.pid
  # Its log in a file from the first line (the console keeps the start banner and errors).
  export RABBITMQ_LOGS=$dir/log/rabbit.log
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS='-kernel inet_dist_use_interface {127,0,0,1}'
}

start() {
  local port=$2 dir
  prepare "$1" "$port"
  local began ended
  began=$(date +%s.%N)
  # Our own epmd, on loopback and on our port, started before the VM so the VM uses it.
  ERL_EPMD_ADDRESS=127.0.0.1 epmd -port "$EPMD_PORT" -daemon
  (
    broker_env "$port"
    # The script's own shell stays (it turns SIGTERM into a clean stop of the VM); its own process group.
    exec setsid "$server" </dev/null >>"$dir/log/console.log" 2>&1
  ) &
  local pid=$!
  echo "$pid" >"$dir/server.pid"
  local deadline=$((SECONDS + ${RABBITMQ_START_TIMEOUT:-90}))
  until accepts_amqp "$port"; do
    if ! alive "$pid" || ((SECONDS > deadline)); then
      echo "rabbitmq: the broker in $dir did not accept AMQP on 127.0.0.1:$port; its log:" >&2
      tail -n 40 "$dir/log/console.log" >&2 || true
      stop "$dir" >/dev/null 2>&1 || true
      exit 1
    fi
    sleep 0.2
  done
  ended=$(date +%s.%N)
  printf 'rabbitmq: %s on amqp://127.0.0.1:%s (dist %s, epmd %s) started in %.2f s\n' \
    "$NODENAME" "$port" "$DIST_PORT" "$EPMD_PORT" "$(awk -v a="$began" -v b="$ended" 'BEGIN { print b - a }')"
}

# In the foreground, its own epmd a child too: SIGTERM or SIGINT stops the broker cleanly, then epmd. The
# broker's console goes to <dir>/log/console.log; this prints one line once it accepts AMQP (or its log's
# tail when it exits first).
run() {
  local port=$2 dir
  prepare "$1" "$port"
  ERL_EPMD_ADDRESS=127.0.0.1 epmd -port "$EPMD_PORT" &
  local epmd=$!
  (
    broker_env "$port"
    exec "$server" </dev/null >>"$dir/log/console.log" 2>&1
  ) &
  local srv=$!
  echo "$srv" >"$dir/server.pid"
  # shellcheck disable=SC2064
  trap "kill -TERM $srv 2>/dev/null; wait $srv; kill $epmd 2>/dev/null; rm -f '$dir/server.pid'; exit 0" TERM INT
  local began=$SECONDS
  until accepts_amqp "$port"; do
    if ! alive "$srv"; then
      echo "rabbitmq: the broker in $dir exited before it accepted AMQP; its log:" >&2
      tail -n 40 "$dir/log/console.log" >&2 || true
      break
    fi
    sleep 0.2
  done
  alive "$srv" && echo "rabbitmq: $NODENAME on amqp://127.0.0.1:$port in $((SECONDS - began)) s (logs in $dir/log)"
  local rc=0
  wait "$srv" || rc=$?
  kill "$epmd" 2>/dev/null || true
  rm -f "$dir/server.pid"
  exit "$rc"
}

stop() {
  local dir=$1
  [[ -d $dir ]] || {
    echo "rabbitmq: no broker dir $dir"
    return 0
  }
  local pid='' beam='' EPMD_PORT=''
  [[ -f $dir/server.pid ]] && pid=$(cat "$dir/server.pid")
  [[ -f $dir/beam.pid ]] && beam=$(cat "$dir/beam.pid")
  # shellcheck disable=SC1091
  [[ -f $dir/broker.env ]] && source "$dir/broker.env"
  if alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do
      alive "$pid" || alive "$beam" || break
      sleep 0.2
    done
    if alive "$pid" || alive "$beam"; then
      echo "rabbitmq: the broker in $dir did not stop in 30 s: killed" >&2
      kill -KILL -- "-$pid" 2>/dev/null || true
      [[ -n $beam ]] && kill -KILL "$beam" 2>/dev/null || true
    fi
  fi
  if [[ -n $EPMD_PORT ]]; then
    ERL_EPMD_PORT=$EPMD_PORT epmd -port "$EPMD_PORT" -kill >/dev/null 2>&1 || true
  fi
  rm -f "$dir/server.pid" "$dir/beam.pid"
  echo "rabbitmq: stopped the broker in $dir"
}

ctl() {
  local dir=$1
  shift
  [[ -f $dir/broker.env ]] || {
    echo "rabbitmq: no broker was started in $dir" >&2
    exit 1
  }
  local NODENAME='' EPMD_PORT=''
  # shellcheck disable=SC1091
  source "$dir/broker.env"
  HOME=$dir/home ERL_EPMD_PORT=$EPMD_PORT RABBITMQ_CONF_ENV_FILE=/nonexistent \
    /usr/lib/rabbitmq/bin/rabbitmqctl -q -n "$NODENAME" "$@"
}

case ${1:-} in
  start)
    (($# == 3)) || usage
    start "$2" "$3"
    ;;
  run)
    (($# == 3)) || usage
    run "$2" "$3"
    ;;
  stop)
    (($# == 2)) || usage
    stop "$2"
    ;;
  ctl)
    (($# >= 3)) || usage
    dir=$2
    shift 2
    ctl "$dir" "$@"
    ;;
  *) usage ;;
esac
