"""Which waves go into one model call: length-aware grouping with a padding limit.

A model call runs a batch padded to its longest wave: every GEMM of the encoder computes the
padded frames too (attention masks them out of the result, it does not skip them). A pipeline
batch of four chunks of 15–22 s, or a 3 s clip that shares a call with a 22 s chunk, computes
up to several times the audio it holds. The inference worker therefore plans its calls from the
waves it has taken (one request's batch, or the batches of several requests combined):

* waves are grouped longest first, and a wave joins the open group only while the group's
  padding share (padded samples ÷ samples computed) stays within ``max_padding``, so waves of
  similar length go together and a short one is not padded to a long one;
* groups are returned in the order of their first wave, so the waves taken first (the ticket
  whose turn it is) are settled first.

Splitting a batch never changes a wave's fp32 result: the encoder masks padding, so a wave
gives the same output (within float rounding) alone or in any batch — ``tests/test_batching.py``
checks this on the fixture models. int8 is different: its activations are quantized with one
scale per matrix, so the company a wave keeps (and its padding) moves that scale slightly.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["MAX_PADDING_SHARE", "padding_share", "plan_calls"]

#: Largest share of padded samples a planned call may compute. One in ten keeps a batch of
#: chunks that differ by a couple of seconds together (another call costs more than that on a
#: CPU) and splits off the short tail of a long file or a short clip among long chunks.
MAX_PADDING_SHARE = 0.1


def padding_share(calls: Sequence[Sequence[int]]) -> float:
    """Padded samples ÷ samples computed over ``calls`` (each a list of wave lengths)."""
    computed = sum(len(call) * max(call) for call in calls if call)
    real = sum(sum(call) for call in calls)
    return 0.0 if computed == 0 else (computed - real) / computed


def plan_calls(
    lengths: Sequence[int], *, max_padding: float = MAX_PADDING_SHARE
) -> list[list[int]]:
    """Group wave indices (by ``lengths`` in samples) into model calls.

    Every index appears in exactly one group; each group is in ascending index order and the
    groups are ordered by their first index. ``max_padding`` ≥ 1 puts everything in one call
    (no length awareness). How many waves may be planned together at all is the caller's
    bound (the scheduler takes at most ``combine_samples`` padded samples per turn).
    """
    if max_padding < 0:
        raise ValueError("max_padding must not be negative")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    groups: list[list[int]] = []
    longest = total = 0
    for index in order:
        length = max(int(lengths[index]), 0)
        if groups:
            count = len(groups[-1]) + 1
            computed = count * longest
            padded = computed - (total + length)
            if max_padding >= 1 or padded <= max_padding * computed:
                groups[-1].append(index)
                total += length
                continue
        groups.append([index])
        longest = total = length
    for group in groups:
        group.sort()
    groups.sort(key=lambda group: group[0])
    return groups
