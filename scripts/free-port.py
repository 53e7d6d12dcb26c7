"""A TCP port free on 127.0.0.1 now, below the kernel's ephemeral range (32768 up), not one of argv: a
port from that range can be taken by any outgoing connection between the pick and the server's bind.
Used by scripts/run-tempest.sh and scripts/rabbitmq.sh."""
import random
import socket
import sys

taken = set(sys.argv[1:])
while True:
    port = random.randrange(20000, 32000)
    if str(port) in taken:
        continue
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    break
