"""The result of reading one event file, and the growable columns it is built in."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np



@dataclass
class EventScalars:
    """Scalars of one event file in file order: ``codes`` index ``tags``."""

    tags: list[str]
    codes: np.ndarray  # int32
    steps: np.ndarray  # int64
    values: np.ndarray  # float64
    wall_times: np.ndarray  # float64
    records: int = 0
    corrupt_records: int = 0
    truncated: bool = False
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.steps.shape[0])


class _Out:
    """Growable column store (amortised doubling, one copy per growth)."""

    def __init__(self, capacity: int):
        capacity = max(1024, capacity)
        self.n = 0
        self.codes = np.empty(capacity, dtype=np.int32)
        self.steps = np.empty(capacity, dtype=np.int64)
        self.values = np.empty(capacity, dtype=np.float64)
        self.walls = np.empty(capacity, dtype=np.float64)
        self.tag_index: dict[str, int] = {}
        self.tags: list[str] = []
        self.corrupt = 0

    def code(self, tag: str) -> int:
        c = self.tag_index.get(tag)
        if c is None:
            c = self.tag_index[tag] = len(self.tags)
            self.tags.append(tag)
        return c

    def reserve(self, extra: int) -> None:
        need = self.n + extra
        cap = self.steps.shape[0]
        if need <= cap:
            return
        cap = max(need, int(cap * 1.25))
        for name in ("codes", "steps", "values", "walls"):
            old = getattr(self, name)
            new = np.empty(cap, dtype=old.dtype)
            new[: self.n] = old[: self.n]
            setattr(self, name, new)

    def extend(self, codes, steps, values, walls) -> None:
        k = len(steps)
        if not k:
            return
        self.reserve(k)
        s = slice(self.n, self.n + k)
        self.codes[s] = codes
        self.steps[s] = steps
        self.values[s] = values
        self.walls[s] = walls
        self.n += k

    def finish(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        n = self.n
        # Shrink without keeping both: copy only when the slack is large.
        out = []
        for arr in (self.codes, self.steps, self.values, self.walls):
            out.append(arr[:n].copy() if arr.shape[0] > n * 1.25 + 1024 else arr[:n])
        self.codes = self.steps = self.values = self.walls = None  # type: ignore[assignment]
        return tuple(out)  # type: ignore[return-value]
