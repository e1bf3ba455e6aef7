"""Tags from the user's own words, learnt further from the marks they already give.

The user names tags ("beach, snow, dog, receipt, screenshot"). A CLIP-family engine embeds
each name once as a sentence and scores every indexed photo against it: one matrix product,
so 20 tags over 10,000 photos cost about the 20 sentences (benchmarks/tags.py). A photo
carries a tag when its score passes the tag's threshold:

* at first, the gallery's own spread: the median score plus ``SPREAD`` robust standard
  deviations (1.4826 × the median absolute deviation), i.e. photos that match the words far
  better than a typical photo of this gallery does;
* once the user has marked results of a search as relevant or not relevant, the threshold
  that separates the marked photos best (the fewest marks on the wrong side; among equals,
  the one nearest the previous threshold). Marks accumulate over searches and are kept with
  the tag, so each round of feedback teaches the tag a little more.

Rules (names, thresholds, marks) are kept per model (vector identity) in ``tags.json`` in the
cache folder; which photos pass is recomputed from the vectors, never stored stale.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import InvalidQueryError
from ..galleries.images import open_regular
from ..storage.cache import atomic_write_bytes
from ..storage.sweep import sweep
from ..workspace import Workspace

log = logging.getLogger(__name__)

#: Robust standard deviations above the median a photo must score to carry a tag untaught.
SPREAD = 3.0
#: At most this many tags, each at most this many characters (they are sentences to embed).
MAX_TAGS, MAX_TAG_LENGTH = 50, 100


def tag_names(words: str | Sequence[str]) -> tuple[str, ...]:
    """The tags a user typed ("beach, snow; dog") or listed, cleaned: trimmed, one per
    spelling regardless of case, in the order given."""
    parts = re.split(r"[,;\n]", words) if isinstance(words, str) else [str(word) for word in words]
    names: dict[str, str] = {}
    for part in parts:
        name = " ".join(part.split())
        if not name:
            continue
        if len(name) > MAX_TAG_LENGTH:
            raise InvalidQueryError(f"Expected tags of at most {MAX_TAG_LENGTH} characters, got {name[:40]!r}…")
        names.setdefault(name.casefold(), name)
    if len(names) > MAX_TAGS:
        raise InvalidQueryError(f"Expected at most {MAX_TAGS} tags, got {len(names)}")
    return tuple(names.values())


def spread_threshold(scores: np.ndarray) -> float:
    """The untaught threshold of one tag: median + ``SPREAD`` robust standard deviations."""
    median = float(np.median(scores))
    deviation = 1.4826 * float(np.median(np.abs(scores - median)))
    return median + SPREAD * max(deviation, 1e-6)


def taught_threshold(relevant: np.ndarray, irrelevant: np.ndarray, current: float) -> float:
    """The threshold that puts the fewest marked photos on the wrong side (relevant ones
    below it, not-relevant ones at or above it); among equals, the one nearest ``current``."""
    values = np.unique(np.concatenate([relevant, irrelevant]))
    if not len(values):
        return current
    candidates = np.concatenate([[values[0] - 1e-4], (values[:-1] + values[1:]) / 2, [values[-1] + 1e-4]])
    errors = (relevant[None, :] < candidates[:, None]).sum(1) + (irrelevant[None, :] >= candidates[:, None]).sum(1)
    best = candidates[errors == errors.min()]
    return float(best[np.argmin(np.abs(best - current))])


@dataclass(frozen=True)
class TagRule:
    """One tag: its words, and what taught it (marked photos, by record)."""

    name: str
    relevant: tuple[str, ...] = ()
    irrelevant: tuple[str, ...] = ()

    @property
    def taught(self) -> bool:
        return bool(self.relevant or self.irrelevant)

    def learn(self, relevant: Sequence[str], irrelevant: Sequence[str]) -> TagRule:
        """The rule with these marks added (a later mark of a photo wins over an earlier one)."""
        now_relevant, now_irrelevant = set(relevant), set(irrelevant)
        return replace(
            self,
            relevant=tuple(dict.fromkeys([r for r in self.relevant if r not in now_irrelevant] + list(relevant))),
            irrelevant=tuple(dict.fromkeys([r for r in self.irrelevant if r not in now_relevant] + list(irrelevant))),
        )


@dataclass(frozen=True)
class TagTable:
    """Every indexed photo's score against every tag, and the thresholds: which photo carries which tag."""

    rules: tuple[TagRule, ...]
    records: tuple[str, ...]
    #: (photos, tags) scores: the engine's cosine of each photo to each tag's words.
    scores: np.ndarray
    thresholds: np.ndarray
    _rows: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(rule.name for rule in self.rules)

    @property
    def passed(self) -> np.ndarray:
        return self.scores >= self.thresholds[None, :]

    def counts(self) -> dict[str, int]:
        return dict(zip(self.names, (int(n) for n in self.passed.sum(0)), strict=True))

    def row(self, record: str) -> int | None:
        if not self._rows:
            self._rows.update((key, row) for row, key in enumerate(self.records))
        return self._rows.get(record)

    def tags_of(self, record: str) -> list[str]:
        row = self.row(record)
        return [] if row is None else [name for name, on in zip(self.names, self.passed[row], strict=True) if on]

    def mask(self, names: Sequence[str], records: Sequence[str]) -> np.ndarray:
        """For each of ``records``, whether it carries every tag of ``names``."""
        columns = []
        for name in names:
            found = [i for i, known in enumerate(self.names) if known.casefold() == name.casefold()]
            if not found:
                raise InvalidQueryError(f"Expected tags among {', '.join(self.names) or 'none yet'}, got {name!r}")
            columns.append(found[0])
        passed: np.ndarray = np.asarray(self.passed[:, columns].all(1))
        return np.array([(row := self.row(r)) is not None and bool(passed[row]) for r in records], dtype=bool)


def build_table(rules: Sequence[TagRule], records: Sequence[str], vectors: np.ndarray,
                words: np.ndarray) -> TagTable:
    """The table for unit ``vectors`` (one per record) and the unit vectors of each rule's words."""
    scores = np.ascontiguousarray(vectors @ words.T, dtype=np.float32) if len(rules) else np.zeros((len(records), 0))
    table = TagTable(tuple(rules), tuple(records), scores, np.zeros(len(rules), dtype=np.float32))
    thresholds = []
    for column, rule in enumerate(rules):
        threshold = spread_threshold(scores[:, column]) if len(records) else 1.0
        if rule.taught:
            marked = [(table.row(r), True) for r in rule.relevant] + [(table.row(r), False) for r in rule.irrelevant]
            good = np.array([scores[row, column] for row, ok in marked if row is not None and ok])
            bad = np.array([scores[row, column] for row, ok in marked if row is not None and not ok])
            threshold = taught_threshold(good, bad, threshold)
        thresholds.append(threshold)
    return replace(table, thresholds=np.array(thresholds, dtype=np.float32))


#: A scratch file older than this is from a write that was killed: removed by the next save.
SCRATCH_MAX_AGE_S = 600
#: The largest tags file read (rules are a few hundred bytes each).
MAX_TAGS_FILE_BYTES = 8 * 1024 * 1024


class TagStore:
    """The rules per model and gallery, in ``tags.json`` of the cache folder (``None``: in
    memory only). A key is the model's vector identity and the gallery's folder (``scope``),
    so one visitor naming tags for one gallery never erases another gallery's. The file is
    written whole or not at all and read as untrusted: a FIFO in its place, a huge file or a
    wrong shape is a warning and no tags, never an error or a hang."""

    def __init__(self, folder: Path | None) -> None:
        self.path = Workspace(folder).tags if folder is not None else None
        self._memory: dict[str, object] = {}
        self._lock = threading.Lock()

    @staticmethod
    def key(identity: str, scope: str) -> str:
        return f"{identity}\n{scope}" if scope else identity

    def _read(self) -> dict[str, object]:
        if self.path is None:
            return self._memory
        try:
            with open_regular(self.path) as handle:
                payload = handle.read(MAX_TAGS_FILE_BYTES + 1)
            if len(payload) > MAX_TAGS_FILE_BYTES:
                raise ValueError(f"over {MAX_TAGS_FILE_BYTES:,} bytes")
            found = json.loads(payload)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("ignoring the unreadable tags file %s (%s)", self.path, exc)
            return {}
        return found if isinstance(found, dict) else {}

    def load(self, identity: str, scope: str = "") -> list[TagRule]:
        rules = []
        rows = self._read().get(self.key(identity, scope), [])
        for row in rows if isinstance(rows, list) else []:
            name = row.get("name") if isinstance(row, dict) else None
            if isinstance(name, str) and name.strip() and len(name) <= 200:
                marks = [row.get(side) for side in ("relevant", "irrelevant")]
                relevant, irrelevant = (tuple(r for r in m if isinstance(r, str)) if isinstance(m, list) else ()
                                        for m in marks)
                rules.append(TagRule(name, relevant, irrelevant))
        return rules

    def save(self, identity: str, rules: Sequence[TagRule], scope: str = "") -> None:
        with self._lock:
            found = self._read()
            found[self.key(identity, scope)] = [
                {"name": r.name, "relevant": list(r.relevant), "irrelevant": list(r.irrelevant)} for r in rules]
            if self.path is None:
                self._memory = found
                return
            for pattern in (".tmp-*.json", ".tags-*"):  # scratch files of killed writes (atomic_write's, older ones)
                sweep(self.path.parent, SCRATCH_MAX_AGE_S, pattern)
            atomic_write_bytes(self.path, json.dumps(found).encode())
