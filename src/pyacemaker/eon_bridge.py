"""eOn's external potential program (``potential = ext_pot``), a thin client of the standard
library only, so that each of eOn's force calls costs a process start and no imports.

eOn runs it in a fresh exchange folder for every force call, with ``from_eon_to_extpot``
(three cell rows, then ``Z x y z`` per atom, Angstrom) written there. It sends that text over
the Unix socket given as its argument to the process that runs the search (``pyacemaker.eon``),
and writes the answer to ``from_extpot_to_eon`` (the energy in eV, then the forces in
eV/Angstrom). When the answer is ``HALT`` (the potential extrapolates there) it exits with status
3, which makes eOn stop the search with "potential evaluation failed".

    python -S eon_bridge.py SOCKET
"""

import socket
import struct
import sys

HALT = b"HALT"
HALT_STATUS = 3


def send(connection: socket.socket, payload: bytes) -> None:
    """One length-prefixed message."""
    connection.sendall(struct.pack("!Q", len(payload)) + payload)


def receive(connection: socket.socket) -> bytes:
    """One length-prefixed message (see ``send``)."""
    header = _exactly(connection, 8)
    return _exactly(connection, struct.unpack("!Q", header)[0])


def _exactly(connection: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = connection.recv(min(left, 1 << 20))
        if not chunk:
            raise ConnectionError("the search process closed the connection")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def main(path: str) -> int:
    with open("from_eon_to_extpot", "rb") as handle:
        request = handle.read()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.connect(path)
        send(connection, request)
        answer = receive(connection)
    if answer == HALT:
        return HALT_STATUS
    with open("from_extpot_to_eon", "wb") as handle:
        handle.write(answer)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
