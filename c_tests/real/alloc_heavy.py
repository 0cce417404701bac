"""Allocation-heavy, threaded, deterministic: a real-program load for mirs.

Eight threads each build dicts, lists, strings, tuples and sets from their own
seeded RNG, drop and rebuild them (so the allocator frees and reuses a lot, and
objects made by one thread are freed by another through shared queues), and
summarise what they built. The output depends only on the seeds, so it must be
identical under glibc and under mirs.
"""
import hashlib
import queue
import random
import threading

THREADS = 8
ROUNDS = 12


def build(rng, n):
    """A mixed structure: a dict of lists of strings, tuples and small dicts."""
    d = {}
    for i in range(n):
        key = "k%d-%s" % (i, "x" * rng.randrange(0, 40))
        kind = rng.randrange(4)
        if kind == 0:
            d[key] = [str(rng.random()) * rng.randrange(1, 8) for _ in range(rng.randrange(1, 20))]
        elif kind == 1:
            d[key] = tuple(rng.randrange(1 << 40) for _ in range(rng.randrange(1, 30)))
        elif kind == 2:
            d[key] = {"a": rng.random(), "b": bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300)))}
        else:
            d[key] = "".join(chr(97 + rng.randrange(26)) for _ in range(rng.randrange(0, 5000)))
    return d


def digest(d):
    h = hashlib.sha256()
    for k in sorted(d):
        h.update(k.encode())
        h.update(repr(d[k]).encode())
    return h.hexdigest()[:16]


def worker(index, inbox, outbox, results):
    rng = random.Random(1000 + index)
    total = hashlib.sha256()
    for r in range(ROUNDS):
        d = build(rng, 150 + rng.randrange(150))
        total.update(digest(d).encode())
        # Pass a structure to the next thread, which frees it; take one from the previous.
        outbox.put(d)
        got = inbox.get()
        total.update(str(len(got)).encode())
        del got, d
        # Plenty of short-lived garbage: big lists, string joins, set churn.
        big = [rng.random() for _ in range(20000)]
        total.update(("%.6f" % sum(big)).encode())
        s = set(str(x) for x in range(rng.randrange(1000, 5000)))
        total.update(str(len(s)).encode())
    results[index] = total.hexdigest()[:16]


def main():
    queues = [queue.Queue() for _ in range(THREADS)]
    results = [None] * THREADS
    threads = [
        threading.Thread(target=worker, args=(i, queues[i], queues[(i + 1) % THREADS], results))
        for i in range(THREADS)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, r in enumerate(results):
        print("thread %d: %s" % (i, r))
    print("all: %s" % hashlib.sha256("".join(results).encode()).hexdigest()[:16])


if __name__ == "__main__":
    main()
