"""An unmodified oslo.messaging notification listener, as Nova's consumers run one (Nova's docs,
"Notifications in Nova": versioned notifications on the topic `versioned_notifications`, exchange `nova`).

    .tools/oslo/bin/python test/notifications/oslo_listener.py <transport-url> [<pool>]

It prints each notification it receives as one JSON line on stdout, flushed:
{"priority", "event_type", "publisher_id", "payload", "metadata", "ctxt"}, and acknowledges it (the endpoint
returns HANDLED). It handles one notification at a time (executor_thread_pool_size 1), so the lines keep
the order of each queue. Without a pool it consumes the queue the notifier declares, `versioned_notifications.<priority>`.
It prints "listening" on stderr once started, and stops cleanly on SIGTERM or SIGINT. With
OSLO_AMQP_DURABLE_QUEUES=1 in its environment it runs with `[oslo_messaging_rabbit] amqp_durable_queues =
True` (configuration, as a consumer of a broker whose notifier declares durable queues sets it).
"""

import json
import os
import signal
import sys
import threading

from oslo_config import cfg
import oslo_messaging


class Endpoint:
    """One method per priority, as oslo's dispatcher calls them (the priority lowercased)."""

    def _print(self, priority, ctxt, publisher_id, event_type, payload, metadata):
        line = json.dumps({
            'priority': priority,
            'event_type': event_type,
            'publisher_id': publisher_id,
            'payload': payload,
            'metadata': metadata,
            'ctxt': ctxt,
        })
        sys.stdout.write(line + '\n')
        sys.stdout.flush()
        return oslo_messaging.NotificationResult.HANDLED


def _method(priority):
    def handle(self, ctxt, publisher_id, event_type, payload, metadata):
        return self._print(priority, ctxt, publisher_id, event_type, payload, metadata)
    return handle


for _priority in ('audit', 'debug', 'info', 'warn', 'error', 'critical', 'sample'):
    setattr(Endpoint, _priority, _method(_priority))


def main():
    if len(sys.argv) not in (2, 3):
        sys.stderr.write(__doc__)
        return 2
    url = sys.argv[1]
    pool = sys.argv[2] if len(sys.argv) == 3 else None
    conf = cfg.ConfigOpts()
    conf(args=[], project='oslo-listener', default_config_files=[])
    transport = oslo_messaging.get_notification_transport(conf, url=url)
    if os.environ.get('OSLO_AMQP_DURABLE_QUEUES') == '1':
        conf.set_override('amqp_durable_queues', True, group='oslo_messaging_rabbit')
    targets = [oslo_messaging.Target(topic='versioned_notifications', exchange='nova')]
    listener = oslo_messaging.get_notification_listener(
        transport, targets, [Endpoint()], executor='threading', pool=pool)
    # One worker thread: notifications are handled (and printed) in the order they arrive on each queue;
    # with oslo's default pool (executor_thread_pool_size, 64 threads) they are handled concurrently.
    conf.set_override('executor_thread_pool_size', 1)
    done = threading.Event()

    def on_signal(signum, frame):
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    listener.start()
    sys.stderr.write('listening\n')
    sys.stderr.flush()
    done.wait()
    listener.stop()
    listener.wait()
    transport.cleanup()
    return 0


if __name__ == '__main__':
    sys.exit(main())
