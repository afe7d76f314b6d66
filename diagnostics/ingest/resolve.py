"""Restart resolution while a log is read, so a long or restarted log costs the points that survive.

:func:`.table.assemble` decides what survives of one stream (the later segment wins, a repeated
step keeps its last value, appended runs keep the longest attempt: :mod:`.attempts`).  Done at
the end, that needs every raw point in memory: a 500 MB log of 4,000 appended runs holds 8
million points of which 2,000 survive.  :class:`Resolver` reaches the same result point by point,
holding per tag only

* the points that survive so far: a strictly increasing stack (a new step pops the points at
  steps >= it), kept as ``base`` (survivors of earlier attempts) + ``cur`` (of the current
  attempt: a tag's attempt from scratch starts where its step falls back to or below its first
  step);
* the survivors of each finished attempt, while they are few (:data:`SAVED_POINTS`), in case
  the longest attempt is not the last;
* how many points each attempt had, and every step back (a restart), with its attempt.

:meth:`Resolver.table` gives a :class:`.table.Table` of the survivors, tag by tag, with what
assembly would have said about the stream (``restarts``, ``appended runs``) and the raw point
count, which :func:`.table.assemble` and the run's file list use as they are.  When the longest
attempt is not the last and its survivors were not kept, :meth:`Resolver.needs_attempt` names it:
the reader reads the file again keeping that attempt (:func:`.text.read_text`).
"""

from __future__ import annotations

from array import array
from bisect import bisect_left

import numpy as np

from trainfix.diagnostics.ingest.table import Table

# Survivors of finished attempts kept in case one of them is the longest (about 16 bytes each).
SAVED_POINTS = 1 << 18


class Resolver:
    """The points of one stream, resolved as they arrive (see the module docstring)."""

    def __init__(self, keep_attempt: int | None = None) -> None:
        self.tag_index: dict[str, int] = {}
        self.tags: list[str] = []
        self.units: dict[str, str] = {}
        self._first: list[int] = []
        self._att: list[int] = []
        self._n: list[int] = []  # raw points per tag
        self._bounds: list[list[int]] = []  # per tag: raw index where each attempt after the first begins
        self._cur_s: list[array] = []
        self._cur_v: list[array] = []
        self._base_s: list[array] = []
        self._base_v: list[array] = []
        self._saved: list[dict[int, tuple[array, array]]] = []
        self._saved_points = 0
        self._lost = False  # some finished attempt's survivors were not kept
        self._keep_attempt = keep_attempt
        # every step back: tag, step, the step before it, attempt of the new point, starts an attempt
        self._ev_tag = array("i")
        self._ev_step = array("q")
        self._ev_from = array("q")
        self._ev_att = array("q")
        self._ev_fresh = array("b")

    def _new_tag(self, key: str) -> int:
        code = self.tag_index[key] = len(self.tags)
        self.tags.append(key)
        self._first.append(0)
        self._att.append(0)
        self._n.append(0)
        self._bounds.append([])
        self._cur_s.append(array("q"))
        self._cur_v.append(array("d"))
        self._base_s.append(array("q"))
        self._base_v.append(array("d"))
        self._saved.append({})
        return code

    def add_line(self, pairs: list[tuple[str, str, bool]], step: int) -> None:
        """The points of one text line, all at ``step`` (the text reader's sink interface)."""
        tag_index = self.tag_index
        for key, val, pct in pairs:
            try:
                value = float(val)
            except ValueError:
                continue
            if pct:
                value /= 100.0
                self.units[key] = "%"
            code = tag_index.get(key)
            if code is None:
                code = self._new_tag(key)
                self._first[code] = step
            cur = self._cur_s[code]
            if cur and step <= cur[-1]:
                self._step_back(code, step, value)
            else:
                cur.append(step)
                self._cur_v[code].append(value)
            self._n[code] += 1

    def _step_back(self, code: int, step: int, value: float) -> None:
        """A step at or below the tag's last one: a repeated step, a restart, or a fresh attempt."""
        cs, cv = self._cur_s[code], self._cur_v[code]
        top = cs[-1]
        fresh = step < top and step <= self._first[code]
        if step < top:
            self._ev_tag.append(code)
            self._ev_step.append(step)
            self._ev_from.append(top)
            self._ev_att.append(self._att[code] + fresh)
            self._ev_fresh.append(fresh)
        if fresh:
            self._start_attempt(code, step, value)
            return
        while cs and cs[-1] >= step:  # never empties the attempt but on its first step repeated
            cs.pop()
            cv.pop()
        cs.append(step)
        cv.append(value)

    def _start_attempt(self, code: int, step: int, value: float) -> None:
        cs, cv = self._cur_s[code], self._cur_v[code]
        bs, bv = self._base_s[code], self._base_v[code]
        while bs and bs[-1] >= step:  # the run-wide stack pops what the new first step covers
            bs.pop()
            bv.pop()
        cut = bisect_left(cs, step)
        if cut:
            bs.extend(cs[:cut])
            bv.extend(cv[:cut])
        k = self._att[code]
        keep = self._keep_attempt == k if self._keep_attempt is not None else not self._lost
        if keep and self._keep_attempt is None and self._saved_points + len(cs) > SAVED_POINTS:
            self._lost, keep = True, False
            for saved in self._saved:
                saved.clear()
            self._saved_points = 0
        if keep:
            self._saved[code][k] = (cs, cv)
            self._saved_points += len(cs)
        self._cur_s[code] = array("q", [step])
        self._cur_v[code] = array("d", [value])
        self._att[code] = k + 1
        self._bounds[code].append(self._n[code])

    # --- the result ---------------------------------------------------------------------------

    def _attempts(self) -> tuple[list[int], int] | None:
        """(points per attempt, the attempt kept) when the stream is a clean series of runs
        appended from scratch (every tag starts over as often), as :mod:`.attempts` decides."""
        if not self.tags or not any(self._att) or len(set(self._att)) != 1:
            return None
        n = self._att[0] + 1
        points = [0] * n
        for code in range(len(self.tags)):
            edges = [0, *self._bounds[code], self._n[code]]
            for k in range(n):
                points[k] += edges[k + 1] - edges[k]
        chosen = n - 1 - int(np.argmax(np.asarray(points[::-1])))
        return points, chosen

    def needs_attempt(self) -> int | None:
        """The attempt to read again for: the longest one, not the last, whose survivors were
        not kept; None when the result is complete."""
        got = self._attempts()
        if got is None:
            return None
        points, chosen = got
        if chosen == len(points) - 1 or not self._lost or self._keep_attempt == chosen:
            return None
        return chosen

    def table(self, source: str, notes: list[str]) -> Table:
        """The survivors as a Table (tag by tag), with the stream's restarts and appended runs."""
        got = self._attempts()
        picked = got is not None and got[1] != len(got[0]) - 1
        chosen = got[1] if picked else -1
        steps, values, lens = [], [], []
        for code in range(len(self.tags)):
            if picked:
                s, v = (self._cur_s[code], self._cur_v[code]) if self._att[code] == chosen else self._saved[code][chosen]
                parts = [(s, v)]
            else:
                parts = [(self._base_s[code], self._base_v[code]), (self._cur_s[code], self._cur_v[code])]
            lens.append(sum(len(s) for s, _ in parts))
            steps += [np.frombuffer(s, dtype=np.int64) for s, _ in parts if len(s)]
            values += [np.frombuffer(v, dtype=np.float64) for _, v in parts if len(v)]
        n = sum(lens)
        t = Table(source, "text", source, self.tags, np.repeat(np.arange(len(self.tags), dtype=np.int32), lens),
                  np.concatenate(steps) if steps else np.zeros(0, np.int64),
                  np.concatenate(values) if values else np.zeros(0), np.full(n, np.nan), notes=notes)
        t.units.update(self.units)
        t.raw_points = sum(self._n)
        t.resolved = {"restarts": self._restarts(chosen if picked else None),
                      "attempts": None if got is None else {"source": source, "attempts": len(got[0]),
                                                            "kept": got[1] + 1, "points": got[0]}}
        self._drop()
        return t

    def _restarts(self, chosen: int | None) -> list[tuple[str, int, int]]:
        """(tag, step, from step) of every step back assembly would report: all of them, or
        with an earlier attempt kept, those inside it."""
        out = []
        for code, step, frm, att, fresh in zip(self._ev_tag, self._ev_step, self._ev_from, self._ev_att, self._ev_fresh):
            if chosen is None or (att == chosen and not fresh):
                out.append((self.tags[code], step, frm))
        return out

    def _drop(self) -> None:
        self._cur_s = self._cur_v = self._base_s = self._base_v = []
        self._saved = []
