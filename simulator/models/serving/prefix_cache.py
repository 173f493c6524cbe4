"""Prefix (KV) caching on one replica: a block cache keyed by block hash, LRU eviction.

A prompt is a sequence of blocks of ``block_tokens`` tokens, each named by a hash of the block
and everything before it (Mooncake's ``hash_ids``; vLLM and SGLang hash their KV blocks the
same way), so equal hashes are equal prefixes. The cache keeps, per block hash, how many
running requests hold the block (its *pins*). A block with no pins stays cached until its
memory is needed and is then evicted, least recently released first; a request's blocks are
released tail first, so the tail of a prefix goes before its head (vLLM frees a request's
blocks in reverse order for the same reason: a prefix without its head is useless).

Admission of a request (``acquire``): its *hit* is the leading run of its blocks already in
the cache (only the leading run counts: attention of a block needs every block before it);
all its blocks are then pinned, the missing ones inserted (they are computed by the request's
prefill), evicting unpinned blocks as needed. A block counts as cached from the admission of
the request that computes it, so a request admitted while another one is still prefilling
the same prefix reuses it (the simulator does not make it wait for that chunk). Completion
(``release``) unpins the blocks; they stay cached.

The cache holds no times and no request state: the replica decides when to call it.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["PrefixCache"]


class PrefixCache:
    """The cached KV blocks of one replica.

    Memory is counted in blocks: the replica gives the blocks it may hold at most when it
    acquires (``room``), after its other KV needs.

    Args:
        block_tokens: tokens per block.

    Attributes:
        pins: running requests holding each cached block (0 = evictable), by block hash.
        evictable: unpinned blocks, least recently released first (dict insertion order).
        evicted: blocks evicted so far.
    """

    def __init__(self, block_tokens: int) -> None:
        if block_tokens < 1:
            raise ValueError(f"prefix cache: block_tokens must be >= 1, got {block_tokens}")
        self.block_tokens = int(block_tokens)
        self.pins: dict[int, int] = {}
        self.evictable: dict[int, None] = {}
        self.evicted = 0

    def __len__(self) -> int:
        """Blocks held (pinned or not)."""
        return len(self.pins)

    def hits(self, blocks: Sequence[int]) -> int:
        """Length of the leading run of ``blocks`` that is cached."""
        pins = self.pins
        k = 0
        for h in blocks:
            if h not in pins:
                break
            k += 1
        return k

    def cost(self, blocks: Sequence[int]) -> int:
        """Blocks of free memory that acquiring ``blocks`` takes (new ones + evictable ones)."""
        pins = self.pins
        return sum(1 for h in set(blocks) if not pins.get(h))

    def free(self, room: int) -> int:
        """Blocks that can be given out when at most ``room`` may be held (evictable count)."""
        return room - len(self.pins) + len(self.evictable)

    def acquire(self, blocks: Sequence[int], room: int) -> int:
        """Pin ``blocks`` (inserting the missing ones); return the leading cached run.

        Args:
            blocks: the request's block hashes, in prompt order.
            room: blocks the cache may hold afterwards; unpinned blocks are evicted (least
                recently released first) to stay within it. The caller checks first that
                ``cost(blocks) <= free(room)``.
        """
        hit = self.hits(blocks)
        pins, evictable = self.pins, self.evictable
        for h in blocks:
            n = pins.get(h)
            if n is None:
                pins[h] = 1
            else:
                if n == 0:
                    del evictable[h]
                pins[h] = n + 1
        over = len(pins) - room
        if over > 0:
            self._evict(over)
        return hit

    def _evict(self, n: int) -> None:
        evictable, pins = self.evictable, self.pins
        if n > len(evictable):
            raise RuntimeError("prefix cache: pinned blocks exceed the room given")
        it = iter(evictable)
        for h in [next(it) for _ in range(n)]:
            del evictable[h]
            del pins[h]
        self.evicted += n

    def release(self, blocks: Sequence[int]) -> None:
        """Unpin ``blocks`` (a finished request's); blocks left unpinned become evictable."""
        pins, evictable = self.pins, self.evictable
        for h in reversed(blocks):  # tail first: evicted before the head
            n = pins[h] - 1
            pins[h] = n
            if n == 0:
                evictable[h] = None
