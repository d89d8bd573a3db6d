"""A token bucket per connection: `rate` frames per second on average, bursts up to `burst`."""

import time


class TokenBucket:
    def __init__(self, rate, burst, clock=time.monotonic):
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.tokens = float(burst)
        self.stamp = clock()

    def take(self, now=None):
        """Spend a token; return 0 when allowed, else the seconds until one is available.

        `now` is when the frame arrived (the server stamps it), if not this instant."""
        now = max(self.clock() if now is None else now, self.stamp)  # never backwards
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate
