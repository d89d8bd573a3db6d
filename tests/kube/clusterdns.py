"""The smoke boot's cluster DNS: a tiny DNS server answering what CoreDNS answers in a cluster.

Runs in its own container on the boot's network (python3, standard library only):

    python3 clusterdns.py RECORDS_JSON

RECORDS_JSON holds {"names": {"web.chat-staging.svc.cluster.local": ["10.0.0.5", ...]}}: the
harness rewrites it (write, then rename) whenever a pod gets an address or its readiness
changes, and this server reads it again when its modification time changes. A name found there
gets its A records, shuffled (TTL 5 s, CoreDNS's kubernetes default); any other name is NXDOMAIN
at once, as in a cluster, never the 10 s timeout of Docker's embedded DNS, which forwards unknown
names to an upstream that does not answer here. AAAA and other types of a known name: no records.
Search domains and ndots are the client's business (each pod's resolv.conf).
"""

import json
import os
import random
import socket
import struct
import sys

TTL = 5
A, CLASS_IN = 1, 1
NOERROR, FORMERR, NXDOMAIN, NOTIMP = 0, 1, 3, 4


def read_name(packet, offset):
    """The question's name (lower case, no trailing dot) and the offset after it."""
    labels = []
    while True:
        length = packet[offset]
        offset += 1
        if length == 0:
            return ".".join(labels).lower(), offset
        if length & 0xC0:  # a compression pointer cannot occur in a question we accept
            raise ValueError("compressed name in the question")
        labels.append(packet[offset : offset + length].decode("ascii", "replace"))
        offset += length


def answer(packet, names):
    """The response to one query packet, or None for something that is not a query."""
    if len(packet) < 12:
        return None
    ident, flags, qdcount = struct.unpack("!HHH", packet[:6])
    if flags & 0x8000:  # a response, not a query
        return None
    opcode = (flags >> 11) & 0xF
    rd = flags & 0x0100

    def header(rcode, ancount, question):
        # QR, the query's opcode and RD, AA (we are the authority), RA, the rcode.
        reply = 0x8000 | (opcode << 11) | 0x0400 | rd | 0x0080 | rcode
        return struct.pack("!HHHHHH", ident, reply, 1 if question else 0, ancount, 0, 0)

    if opcode != 0 or qdcount != 1:
        return header(NOTIMP if opcode else FORMERR, 0, b"")
    try:
        name, end = read_name(packet, 12)
        qtype, qclass = struct.unpack("!HH", packet[end : end + 4])
    except (IndexError, ValueError, struct.error):
        return header(FORMERR, 0, b"")
    question = packet[12 : end + 4]
    addresses = names.get(name.rstrip("."))
    if addresses is None:
        return header(NXDOMAIN, 0, question) + question
    records = b""
    count = 0
    if qtype in (A, 255) and qclass == CLASS_IN:
        # Shuffled, as CoreDNS's loadbalance plugin (in Kubernetes' default Corefile) does.
        for address in random.sample(addresses, len(addresses)):
            records += struct.pack("!HHHIH", 0xC00C, A, CLASS_IN, TTL, 4)
            records += socket.inet_aton(address)
            count += 1
    return header(NOERROR, count, question) + question + records


def main(path):
    names, stamp = {}, None
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", 53))
    print(f"clusterdns: serving {path} on :53/udp", flush=True)
    while True:
        packet, peer = sock.recvfrom(4096)
        try:
            current = os.stat(path).st_mtime_ns
            if current != stamp:
                with open(path) as f:
                    names = {k.lower(): v for k, v in json.load(f)["names"].items()}
                stamp = current
        except (OSError, ValueError, KeyError) as exc:
            print(f"clusterdns: keeping the previous records ({exc})", flush=True)
        response = answer(packet, names)
        if response is not None:
            sock.sendto(response, peer)


if __name__ == "__main__":
    main(sys.argv[1])
