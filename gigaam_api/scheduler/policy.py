"""The serving policy: what a lane runs next, as pure functions over plain typed values.

Nothing here holds a lock, a thread or a ticket. The lanes (:mod:`.lanes`) describe the ring
of tickets with pending batches as a sequence of :class:`Waiting` values and ask
:func:`plan_turn` which of them this turn serves and how many waves of each; once the turn's
waves are taken, :func:`plan_turn_calls` splits them into model calls. Both are unit-tested
directly (``tests/test_scheduler_policy.py``).

Round-robin. Tickets wait in a ring in the order their batches arrived; a turn takes the next
batch of the first ticket in ring order, and a ticket with more batches goes back to the end
of the ring. A short request therefore waits behind at most about one batch of a multi-hour
one instead of behind all of it.

Two priority classes. *Interactive* tickets (synchronous and SSE requests) are what a person
waits for; *background* tickets (durable jobs) are served only when no interactive batch is
pending. A background batch is run in slices bounded by a time budget (``background_budget_s``,
estimated from the seconds per wave measured so far; at least one wave), re-checking for
interactive work between slices: a 3 s clip that arrives while a long work runs then waits for
at most about one budget (one ~22 s chunk on a slow CPU) instead of a whole batch of four
(with the second lane it does not wait at all: a short clip runs beside the slice). While
interactive tickets are admitted, slices are at most one wave. With a fast model the budget
holds the whole batch, so nothing is lost.

Combined calls (``combine_samples`` > 0). Every model call has a fixed cost and a 3 s clip
alone is a 75-frame GEMM, so short requests can run faster together (how much depends on the
hardware: little on a 2-core CPU, ``benchmarks/README.md``). When a turn takes an interactive
ticket's batch it also takes the next pending batch of every other interactive ticket, in ring
order, while the waves taken stay within ``combine_samples`` padded samples (the audio of one
full pipeline batch in the server) — a batch that does not fit is left where it is and heads
the next turn. The waves taken are then planned into model calls by length
(:func:`gigaam_api.batching.plan_calls`): similar lengths share a call, so a clip is not padded
to a long chunk, and a single batch of chunks of very different lengths is split the same way.
Round-robin order is kept (a combined turn serves the next tickets of the ring at once), as is
background work's place (never combined, only when no interactive batch waits).
``combine_requests=False`` keeps every call to one request's waves (length-aware splitting
still applies): what an engine needs whose per-wave results depend on the other waves of a
call (int8), so a request's text never depends on the server's load.

Interim work (a live session's re-recognition of the turn being spoken) comes between the two
classes: a lane serves it only when no interactive batch waits, and never combines it with
anything nor runs it on the second lane. Against background work it takes turns: when both
wait, a background slice follows every interim call (``last_was_interim``), so many live
sessions cannot starve a durable job, nor a job hold back the live text by more than a slice.
(Admission makes sure it never waits behind an interactive batch: it is skipped instead,
:mod:`.admission`.)

The second lane (``overlap_samples`` > 0) takes, only while the first lane is busy, the first
interactive ticket in ring order whose next batch, padded, stays within ``overlap_samples``
(combined with others up to the same bound); never background work, never a long call.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from gigaam_api.batching import MAX_PADDING_SHARE, plan_calls

__all__ = [
    "ModelCall",
    "ServingPolicy",
    "Take",
    "TurnPlan",
    "Waiting",
    "WaveRef",
    "background_slice",
    "next_wave_seconds",
    "plan_turn",
    "plan_turn_calls",
]


@dataclass(frozen=True, slots=True)
class ServingPolicy:
    """The knobs of the policy (validated by the scheduler that holds them)."""

    #: Padded samples one turn may take from several interactive tickets (0: no combining,
    #: one batch per turn and one model call per batch).
    combine_samples: int = 0
    #: Whether a turn may take other tickets' batches too (False: every call holds one
    #: request's waves, e.g. for int8, see gigaam_api/service/model_service.py).
    combine_requests: bool = True
    #: Padded samples up to which an interactive turn may run on the second lane.
    overlap_samples: int = 0
    #: Largest padding share of a planned model call (``batching.plan_calls``).
    max_padding: float = MAX_PADDING_SHARE
    #: Seconds of background work one slice may take (at least one wave).
    background_budget_s: float = 1.0


@dataclass(frozen=True, slots=True)
class Waiting:
    """A ticket in the ring as the policy sees it: its class and its next pending batch.

    ``lengths`` are the samples of each wave of that batch not run yet (a background batch
    served in slices has run the others already).
    """

    background: bool
    lengths: tuple[int, ...]
    #: Interim work: after interactive batches, before background ones, never combined.
    interim: bool = False

    @property
    def interactive(self) -> bool:
        return not self.background and not self.interim

    @property
    def padded(self) -> int:
        """Samples the batch computes in one call: its waves padded to the longest."""
        return len(self.lengths) * max(self.lengths, default=0)


@dataclass(frozen=True, slots=True)
class Take:
    """Serve ``waves`` waves of the next batch of the ticket at ``position`` in the ring."""

    position: int
    waves: int


@dataclass(frozen=True, slots=True)
class TurnPlan:
    """One turn of a lane: the batches it takes, the ticket whose turn it is first."""

    takes: tuple[Take, ...]


@dataclass(frozen=True, slots=True)
class WaveRef:
    """A wave of a turn: the ``wave``-th wave taken from the turn's ``part``-th batch."""

    part: int
    wave: int


@dataclass(frozen=True, slots=True)
class ModelCall:
    """The waves one model call computes, in the order they are passed to the model."""

    waves: tuple[WaveRef, ...]

    @property
    def owners(self) -> tuple[int, ...]:
        """The parts (batches) with waves in this call, in turn order."""
        return tuple(sorted({ref.part for ref in self.waves}))

    def of(self, part: int) -> tuple[int, ...]:
        """The positions of ``part``'s waves in this call."""
        return tuple(ref.wave for ref in self.waves if ref.part == part)

    def only(self, parts: Collection[int]) -> ModelCall:
        """This call without the waves of the parts not in ``parts``."""
        return ModelCall(tuple(ref for ref in self.waves if ref.part in parts))


def background_slice(
    policy: ServingPolicy, *, interactive_admitted: int, wave_seconds: float | None
) -> int:
    """Waves of background work one turn runs: what fits the time budget, one while any
    interactive ticket is admitted or before the first wave has been timed."""
    if interactive_admitted > 0 or wave_seconds is None:
        return 1
    return max(1, int(policy.background_budget_s / max(wave_seconds, 1e-6)))


def next_wave_seconds(previous: float | None, per_wave: float) -> float:
    """The moving average of seconds per background wave after one more measurement."""
    if previous is None:
        return per_wave
    return 0.7 * previous + 0.3 * per_wave  # the newest measurement weighs 0.3


def _overlap_pick(ring: Sequence[Waiting], overlap_samples: int) -> int | None:
    """The first interactive ticket in ring order whose next batch, padded, is short."""
    for position, waiting in enumerate(ring):
        if waiting.interactive and waiting.padded <= overlap_samples:
            return position
    return None


def _combinable(ring: Sequence[Waiting], first: int, limit: int) -> list[int]:
    """Other interactive tickets whose next batch joins ``first``'s turn, in ring order.

    The turn's waves, padded to the longest, stay within ``limit`` samples (or within the
    first batch alone, if that is larger); a batch that would not fit is skipped and keeps its
    place at the head of the ring.
    """
    lengths = ring[first].lengths
    count, longest = len(lengths), max(lengths, default=0)
    limit = max(limit, count * longest)
    joined: list[int] = []
    for position, waiting in enumerate(ring):
        if position == first or not waiting.interactive:
            continue
        new_count = count + len(waiting.lengths)
        new_longest = max(longest, *waiting.lengths) if waiting.lengths else longest
        if new_count * new_longest <= limit:
            joined.append(position)
            count, longest = new_count, new_longest
    return joined


def plan_turn(
    ring: Sequence[Waiting],
    policy: ServingPolicy,
    *,
    lane: int,
    first_lane_busy: bool,
    interactive_admitted: int,
    wave_seconds: float | None,
    last_was_interim: bool = False,
) -> TurnPlan | None:
    """What ``lane`` serves now from ``ring`` (tickets with pending batches, in ring order).

    ``None``: nothing for this lane now (it waits). Lane 0 serves the first interactive
    ticket, else the first interim one, else the ring's head (background work); lane 1 (the
    second lane) only while lane 0 is busy, and only a short interactive turn. An interactive
    turn may take other interactive tickets' batches too (combining); a background turn takes
    one slice of one batch. ``interactive_admitted`` (tickets admitted, waiting or not) and
    ``wave_seconds`` (measured seconds per background wave) size a background slice.
    ``last_was_interim``: lane 0's last non-interactive turn was interim work, so background
    work waiting goes first now.
    """
    if lane == 0:
        if not ring:
            return None
        first = next((p for p, w in enumerate(ring) if w.interactive), None)
        if first is None:
            interim = next((p for p, w in enumerate(ring) if w.interim), None)
            background = next((p for p, w in enumerate(ring) if w.background), None)
            if interim is not None and (background is None or not last_was_interim):
                first = interim
            else:
                first = background if background is not None else 0
        limit = policy.combine_samples
    else:
        if not first_lane_busy:
            return None
        found = _overlap_pick(ring, policy.overlap_samples)
        if found is None:
            return None
        first = found
        limit = min(policy.combine_samples, policy.overlap_samples)
    positions = [first]
    if ring[first].interactive and limit > 0 and policy.combine_requests:
        positions.extend(_combinable(ring, first, limit))
    per_slice = background_slice(
        policy, interactive_admitted=interactive_admitted, wave_seconds=wave_seconds
    )
    takes = []
    for position in positions:
        waiting = ring[position]
        count = len(waiting.lengths)
        takes.append(Take(position, min(count, per_slice) if waiting.background else count))
    return TurnPlan(tuple(takes))


def plan_turn_calls(
    lengths: Sequence[Sequence[int]], policy: ServingPolicy
) -> tuple[ModelCall, ...]:
    """The model calls of a turn whose ``part``-th batch gave waves of ``lengths[part]``.

    Without combining (``combine_samples`` 0) each batch is one call, as before combining
    existed; otherwise all the turn's waves are grouped by length
    (:func:`gigaam_api.batching.plan_calls`), the calls ordered by their first wave so the
    ticket whose turn it is is settled first.
    """
    flat = [WaveRef(p, w) for p, part in enumerate(lengths) for w in range(len(part))]
    if policy.combine_samples <= 0:
        return tuple(
            ModelCall(tuple(ref for ref in flat if ref.part == p)) for p in range(len(lengths))
        )
    groups = plan_calls(
        [lengths[ref.part][ref.wave] for ref in flat], max_padding=policy.max_padding
    )
    return tuple(ModelCall(tuple(flat[i] for i in group)) for group in groups)
