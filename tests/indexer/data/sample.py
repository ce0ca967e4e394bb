"""sample.py — fixture for the indexer's symbol tests (not run)."""
import functools

MAX_ITEMS = 100


class Inventory:
    """Holds items."""

    def __init__(self):
        self.items = []

    def add(self, item):
        if len(self.items) >= MAX_ITEMS:
            raise ValueError("full")
        self.items.append(item)

    @property
    def count(self):
        return len(self.items)

    class Entry:
        def describe(self):
            return "entry"


def load_inventory(path):
    inv = Inventory()
    with open(path) as f:
        for line in f:
            inv.add(line.strip())
    return inv


@functools.lru_cache(maxsize=None)
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


async def fetch_all(urls):
    def helper(u):
        return u.upper()

    return [helper(u) for u in urls]
