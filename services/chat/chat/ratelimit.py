"""Token buckets: one per connection, and one per client address shared by its connections.

A connection's bucket allows `rate` frames per second on average, bursts up to `burst`. Without
a bucket per address, one address could send NGINX_WS_CONN_PER_IP times a connection's rate
(100 sockets x 10 frames/s); ADDRESSES holds the address's bucket for as long as one of its
sockets is open in this process. Per process: with N ws replicas an address that spreads its
sockets over all of them gets at most N times the budget.
"""

import time

from django.conf import settings


class TokenBucket:
    def __init__(self, rate, burst, clock=time.monotonic):
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.tokens = float(burst)
        self.stamp = clock()

    def wait(self, now=None):
        """Refill; return 0 if a token is available, else the seconds until one is (no spend).

        `now` is when the frame arrived (the server stamps it), if not this instant."""
        now = max(self.clock() if now is None else now, self.stamp)  # never backwards
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self, now=None):
        """Spend a token; return 0 when allowed, else the seconds until one is available."""
        wait = self.wait(now)
        if not wait:
            self.tokens -= 1
        return wait


def take_all(buckets, now=None):
    """Spend a token of every bucket if each has one; else spend none and return the longest
    wait (a frame refused by the address's budget does not use up the connection's)."""
    wait = max(bucket.wait(now) for bucket in buckets)
    if not wait:
        for bucket in buckets:
            bucket.tokens -= 1
    return wait


class AddressBudgets:
    """One TokenBucket per client address, shared by its open sockets in this process.

    An address without sockets is forgotten once its bucket has refilled (at the next sweep),
    not at once: closing every socket and reconnecting must not buy a fresh burst."""

    SWEEP_EVERY = 1000  # acquisitions between sweeps of forgotten addresses

    def __init__(self):
        self.held = {}  # address -> [bucket, sockets holding it]
        self.since_sweep = 0

    def acquire(self, address):
        self.since_sweep += 1
        if self.since_sweep >= self.SWEEP_EVERY:
            self.sweep()
        entry = self.held.get(address)
        if entry is None:
            chat = settings.CHAT
            bucket = TokenBucket(chat["ADDRESS_RATE_PER_SECOND"], chat["ADDRESS_RATE_BURST"])
            entry = self.held[address] = [bucket, 0]
        entry[1] += 1
        return entry[0]

    def release(self, address):
        entry = self.held.get(address)
        if entry is not None:
            entry[1] -= 1
            if entry[1] <= 0 and entry[0].wait() == 0 and entry[0].tokens >= entry[0].burst:
                del self.held[address]

    def sweep(self):
        """Forget addresses with no socket whose bucket is full again."""
        self.since_sweep = 0
        for address, (bucket, users) in list(self.held.items()):
            if users <= 0:
                bucket.wait()
                if bucket.tokens >= bucket.burst:
                    del self.held[address]


ADDRESSES = AddressBudgets()
