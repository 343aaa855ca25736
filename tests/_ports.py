"""Free TCP ports on loopback, for tests that start real servers or cluster peers."""
import socket


def free_ports(n):
    """``n`` distinct ports free on 127.0.0.1 at the moment of asking."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()
