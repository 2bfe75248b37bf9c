"""What the Python drivers (scripts/demo.py, tests/bench/replay.py, tests/bench/idle_cost.py)
share for running oasisd next to fake-ollama on this machine: HTTP over oasisd's Unix socket, a
free loopback port for the emulator, and vm_stat text for the `file` memory source."""
import http.client
import socket


class UnixHTTP(http.client.HTTPConnection):
    """http.client over a Unix stream socket (oasisd's control socket)."""

    def __init__(self, path, timeout=30):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def vm_stat(free_pages, swapouts, inactive=300000):
    """macOS `vm_stat` output (16 KiB pages) with the figures the memory policy reads."""
    rows = [("Pages free:", free_pages), ("Pages active:", 400000), ("Pages inactive:", inactive),
            ("Pages speculative:", 1000), ("Pages throttled:", 0), ("Pages wired down:", 100000),
            ("Pages purgeable:", 1000), ('"Translation faults":', 1000000), ("Pages copy-on-write:", 1000),
            ("Pages zero filled:", 1000), ("Pages reactivated:", 0), ("Pages purged:", 0),
            ("File-backed pages:", 300000), ("Anonymous pages:", 400000), ("Pages stored in compressor:", 0),
            ("Pages occupied by compressor:", 0), ("Decompressions:", 0), ("Compressions:", 0),
            ("Pageins:", 1000), ("Pageouts:", 0), ("Swapins:", 0), ("Swapouts:", swapouts)]
    out = "Mach Virtual Memory Statistics: (page size of 16384 bytes)\n"
    for label, v in rows:
        out += f"{label:<30} {v:>16}.\n"
    return out
