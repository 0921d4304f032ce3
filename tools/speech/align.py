"""Word timings aligned to the audio itself, for engines that report none (OpenAI's endpoint, and any
whose own counts disagree with the text): ``timing_source = "aligned"``.

1. *Voice activity.* 10 ms frames; a frame is voiced when its level is within 35 dB of the
   speech level (the 95th percentile of frame levels) and clearly above the noise floor. Voiced
   frames separated by less than 80 ms (stop closures) are one *stretch*; stretches under 30 ms
   are dropped (clicks).
2. *Word weights.* Each word's expected length, in letters: its letters plus half a letter per
   syllable (vowel group) for alphabetic scripts (fitted on eSpeak NG's word durations), four
   per digit, two and a half per CJK character or Hangul block (one for small kana), 1.3 per
   letter of other scripts. CJK text is split into characters, so a sentence without spaces
   still gets per-character times.
3. *Alignment.* Stretches and words are cut into the same number of consecutive groups by
   dynamic programming; a group's cost is how far its voiced time is from its words' expected
   time (log ratio, squared, at the narration's mean rate), plus a cost for a group boundary at a
   word that ends without punctuation, for punctuation inside a group (a sentence end more than a
   comma), and for each pause merged into a group (longer pauses cost more). A stretch may also
   be left without words (a breath). So pauses are matched to punctuation wherever the audio
   has them, and a word that follows a pause starts when the voice resumes.
4. *Inside a group* the words share the voiced time (pauses excluded) in proportion to their
   weights; a word boundary that falls near a pause inside the group is moved onto the pause.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lessonforge.tools.base import SpeechError, WordTiming

FRAME_S = 0.01
MIN_PAUSE_S = 0.08
MIN_VOICED_S = 0.03
_RANGE_DB = 35.0  # voiced: within this many dB of the speech level
_FLOOR_MARGIN_DB = 6.0  # ...and this far above the noise floor
_SILENT_DBFS = -60.0  # a file whose speech level is below this is silence
_MAX_STRETCHES_PER_GROUP = 8
_MAX_WORDS_PER_GROUP = 80
_W_DURATION = 4.0
_FINAL_LENGTHENING = 0.4  # a word before a pause is spoken this much longer
_TAU_S = 0.05  # softens the duration ratio for very short groups
_SPLIT_COST = (1.0, 0.2, 0.0)  # group boundary after a word ending with: nothing, a clause mark, a sentence end
_INNER_COST = (0.0, 0.6, 2.0)  # the same marks inside a group (no pause where one was likely)
_MERGE_COST_PER_S = 1.0 / 0.1  # a pause inside a group, per second of pause
_SKIP_COST = 1.0
_SKIP_COST_PER_S = 10.0
_SNAP = 0.35  # move an inner word boundary onto a pause closer than this share of a word

_SENTENCE_MARKS = frozenset(".!?…。！？‼⁇؟።।")
_CLAUSE_MARKS = frozenset(",;:—–，、；：،؛")


# --------------------------------------------------------------------------- voice activity


def voiced_stretches(samples: np.ndarray, rate: int, *, min_pause: float = MIN_PAUSE_S) -> list[tuple[float, float]]:
    """(start, end) seconds of speech between pauses of at least ``min_pause``; [] for silence."""
    x = np.asarray(samples, dtype=np.float64)
    step = max(1, int(round(rate * FRAME_S)))
    n = -(-len(x) // step)
    if n == 0:
        return []
    padded = np.zeros(n * step)
    padded[: len(x)] = x
    rms = np.sqrt((padded.reshape(n, step) ** 2).mean(axis=1))
    db = 20.0 * np.log10(rms / 32768.0 + 1e-10)
    audible = db[db > -100.0]
    if audible.size == 0:
        return []
    level = float(np.percentile(audible, 95))
    if level < _SILENT_DBFS:
        return []
    floor = float(np.percentile(db, 10))
    threshold = min(max(level - _RANGE_DB, floor + _FLOOR_MARGIN_DB), level - 6.0)
    voiced = db > threshold
    edges = np.flatnonzero(np.diff(np.concatenate([[0], voiced.astype(np.int8), [0]])))
    runs = [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]
    min_gap = max(1, int(round(min_pause / FRAME_S)))
    merged: list[list[int]] = []
    for a, b in runs:
        if merged and a - merged[-1][1] < min_gap:
            merged[-1][1] = b
        else:
            merged.append([a, b])
    min_len = max(1, int(round(MIN_VOICED_S / FRAME_S)))
    total = len(x) / rate
    return [(a * FRAME_S, min(b * FRAME_S, total)) for a, b in merged if b - a >= min_len]


# --------------------------------------------------------------------------- words


@dataclass(frozen=True)
class _Token:
    word: str
    weight: float
    mark: int  # after the word: 0 nothing, 1 a clause mark, 2 a sentence end


def bare(token: str) -> str:
    """A token without the punctuation around it ("light." -> "light"), as engines report words."""
    i, j = 0, len(token)
    while i < j and _is_edge(token[i]):
        i += 1
    while j > i and _is_edge(token[j - 1]):
        j -= 1
    return token[i:j]


def _is_edge(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "PSZ"


def _is_cjk(ch: str) -> bool:
    cp = ord(ch)
    return (0x3040 <= cp <= 0x30FF or 0x3400 <= cp <= 0x4DBF or 0x4E00 <= cp <= 0x9FFF or 0xF900 <= cp <= 0xFAFF
            or 0x31F0 <= cp <= 0x31FF or 0xFF66 <= cp <= 0xFF9F or 0x20000 <= cp <= 0x2FA1F)


def _pieces(token: str) -> list[str]:
    """A whitespace token, with CJK characters split apart (punctuation stays with the character before)."""
    if not any(_is_cjk(ch) for ch in token):
        return [token]
    out: list[str] = []
    buf = ""
    for ch in token:
        if _is_cjk(ch):
            if buf and any(c.isalnum() for c in buf):
                out.append(buf)
                buf = ""
            buf += ch
            out.append(buf)
            buf = ""
        elif out and not buf and not ch.isalnum():
            out[-1] += ch  # punctuation right after a CJK character
        else:
            buf += ch
    if buf:
        if out and not any(c.isalnum() for c in buf):
            out[-1] += buf
        else:
            out.append(buf)
    return out


_VOWELS = frozenset("aeiouyæøœåäöüıаеёиоуыэюяєіїαεηιουωάέήίόύώ")
_SMALL_KANA = frozenset("ぁぃぅぇぉっゃゅょゎァィゥェォッャュョヮーヵヶ")
# Weights in letters. Fitted on eSpeak NG word durations in English, French, German and Spanish
# (0.029 s per syllable + 0.056 s per letter explained them best: 22% mean error); a digit is
# read as about four letters ("four", "eighty"); a kana, hanzi or Hangul block as a syllable of
# two or three letters; a letter of an abjad or abugida as a little more than one.
_PER_SYLLABLE = 0.5
_DIGIT = 4.0
_CJK = 2.5
_SMALL_KANA_UNITS = 1.0
_OTHER_LETTER = 1.3


def word_weight(word: str) -> float:
    """Expected spoken length of ``word``, in letter-sized units (see the module docstring)."""
    weight = 0.0
    letters = 0
    groups = 0
    in_vowel = False
    for ch in unicodedata.normalize("NFD", word.casefold()):
        if unicodedata.combining(ch):
            continue
        if ch.isdigit():
            weight += _DIGIT
            in_vowel = False
        elif ch in _SMALL_KANA:
            weight += _SMALL_KANA_UNITS
        elif _is_cjk(ch) or 0xAC00 <= ord(ch) <= 0xD7AF:
            weight += _CJK
        elif ch.isalpha():
            if unicodedata.name(ch, "").startswith(("LATIN", "GREEK", "CYRILLIC")):
                letters += 1
                vowel = ch in _VOWELS
                if vowel and not in_vowel:
                    groups += 1
                in_vowel = vowel
            else:
                weight += _OTHER_LETTER
                in_vowel = False
        else:
            in_vowel = False
    if letters:
        weight += letters + _PER_SYLLABLE * max(1, groups)
    return max(weight, 1.0)


def _mark(piece: str) -> int:
    core = bare(piece)
    tail = piece[piece.rfind(core[-1]) + 1 :] if core else piece
    if any(ch in _SENTENCE_MARKS for ch in tail):
        return 2
    if any(ch in _CLAUSE_MARKS for ch in tail):
        return 1
    return 0


def word_tokens(text: str) -> list[_Token]:
    """The words of ``text`` (punctuation stripped) with weights and the mark after each."""
    out: list[_Token] = []
    for raw in text.split():
        for piece in _pieces(raw):
            core = bare(piece)
            if not any(ch.isalnum() for ch in core):  # a dash or a lone "!": it marks the word before
                if out:
                    mark = max(out[-1].mark, _mark(piece) or (1 if any(_is_edge(c) for c in piece) else 0))
                    out[-1] = _Token(out[-1].word, out[-1].weight, mark)
                continue
            out.append(_Token(core, word_weight(core), _mark(piece)))
    return out


# --------------------------------------------------------------------------- alignment


def align_words(text: str, samples: np.ndarray, rate: int) -> list[WordTiming]:
    """Word timings for ``text`` spoken in ``samples`` (see the module docstring); [] when silent or wordless."""
    tokens = word_tokens(text)
    stretches = voiced_stretches(samples, rate)
    if not tokens or not stretches:
        return []
    groups = _align(stretches, tokens)
    out: list[WordTiming] = []
    for (i0, i1), (j0, j1) in groups:
        out += _spread(stretches[i0:i1], tokens[j0:j1])
    return out


def _align(stretches: Sequence[tuple[float, float]],
           tokens: Sequence[_Token]) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Groups ((first stretch, end), (first word, end)) of least total cost, by dynamic programming.

    The speaking rate (seconds per weight unit) is first taken from the whole narration, then
    once more from the first alignment, whose group-final words are lengthened.
    """
    weights = np.array([t.weight for t in tokens])
    voiced = sum(e - s for s, e in stretches)
    groups = _align_at(stretches, tokens, voiced / weights.sum())
    lengthened = weights.sum() + _FINAL_LENGTHENING * sum(weights[j1 - 1] for _, (_, j1) in groups)
    return _align_at(stretches, tokens, voiced / lengthened)


def _align_at(stretches: Sequence[tuple[float, float]], tokens: Sequence[_Token],
              unit: float) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    K, N = len(stretches), len(tokens)
    starts = np.array([s for s, _ in stretches])
    ends = np.array([e for _, e in stretches])
    V = np.concatenate([[0.0], np.cumsum(ends - starts)])
    gaps = starts[1:] - ends[:-1]
    G = np.concatenate([[0.0], np.cumsum(gaps * _MERGE_COST_PER_S)])  # G[k]: merge cost of gaps before stretch k
    weights = np.array([t.weight for t in tokens])
    CW = np.concatenate([[0.0], np.cumsum(weights)])
    marks = np.array([t.mark for t in tokens])
    inner = np.array(_INNER_COST)[marks]
    IC = np.concatenate([[0.0], np.cumsum(inner)])
    split = np.array(_SPLIT_COST)[marks]
    split[-1] = 0.0  # the last word ends the narration
    B = min(N, _MAX_WORDS_PER_GROUP)

    cost = np.full((K + 1, N + 1), np.inf)
    cost[0, 0] = 0.0
    back_i = np.full((K + 1, N + 1), -1, dtype=np.int64)
    back_j = np.full((K + 1, N + 1), -1, dtype=np.int64)
    js = np.arange(N)[:, None]
    bs = np.arange(1, B + 1)[None, :]
    stop = js + bs  # word after the group
    valid = stop <= N
    stop_c = np.minimum(stop, N)
    expected = unit * (CW[stop_c] - CW[js] + _FINAL_LENGTHENING * weights[stop_c - 1])
    inner_cost = IC[np.maximum(stop_c - 1, 0)] - IC[js]
    split_cost = split[stop_c - 1]
    fixed = np.where(valid, inner_cost + split_cost, np.inf)
    for i in range(K):
        row = cost[i]
        if not np.isfinite(row).any():
            continue
        skip = row + _SKIP_COST + _SKIP_COST_PER_S * (ends[i] - starts[i])  # a breath or a click: no words
        better = skip < cost[i + 1]
        cost[i + 1][better] = skip[better]
        back_i[i + 1][better] = i
        back_j[i + 1][better] = np.flatnonzero(better)
        for a in range(1, min(_MAX_STRETCHES_PER_GROUP, K - i) + 1):
            D = V[i + a] - V[i]
            merge = G[i + a - 1] - G[i]
            total = row[:N, None] + _W_DURATION * np.log((D + _TAU_S) / (expected + _TAU_S)) ** 2 + fixed + merge
            target = cost[i + a]
            for b in range(1, B + 1):  # scatter: group j..j+b-1 ends at word j+b
                col = total[: N - b + 1, b - 1]
                cur = target[b:]
                better = col < cur
                if better.any():
                    idx = np.flatnonzero(better)
                    cur[idx] = col[idx]
                    back_i[i + a, idx + b] = i
                    back_j[i + a, idx + b] = idx
    if not np.isfinite(cost[K, N]):
        raise SpeechError("cannot align the narration's words to the audio. Synthesize the scene again.")
    groups: list[tuple[tuple[int, int], tuple[int, int]]] = []
    i, j = K, N
    while i > 0:
        pi, pj = int(back_i[i, j]), int(back_j[i, j])
        if pj != j:  # a group of words (pj == j is a skipped stretch)
            groups.append(((pi, i), (pj, j)))
        i, j = pi, pj
    return groups[::-1]


def _spread(stretches: Sequence[tuple[float, float]], tokens: Sequence[_Token]) -> list[WordTiming]:
    """The words of one group over its stretches' voiced time, in proportion to their weights."""
    durs = [e - s for s, e in stretches]
    cum = np.concatenate([[0.0], np.cumsum(durs)])
    total_v = float(cum[-1])
    weights = np.array([t.weight for t in tokens])
    weights[-1] *= 1.0 + _FINAL_LENGTHENING
    bounds = list(np.concatenate([[0.0], np.cumsum(weights)]) / weights.sum() * total_v)  # voiced-time positions
    # Move an inner word boundary onto a pause inside the group when it is close to one.
    taken: set[int] = set()
    for g in range(1, len(stretches)):
        pos = float(cum[g])
        k = min(range(1, len(tokens)), key=lambda k: abs(bounds[k] - pos), default=None)
        if k is None or k in taken:
            continue
        shorter = min(bounds[k] - bounds[k - 1], bounds[k + 1] - bounds[k])
        if abs(bounds[k] - pos) <= _SNAP * max(shorter, 1e-9) + 1e-9:
            bounds[k] = pos
            taken.add(k)
    for k in range(1, len(bounds)):
        bounds[k] = min(max(bounds[k], bounds[k - 1]), total_v)

    def at(p: float, prefer_next: bool) -> float:
        """Clock time of voiced-time position ``p``; at a pause, its end if ``prefer_next`` else its start."""
        for s in range(len(stretches)):
            hi = cum[s + 1]
            if p < hi - 1e-9 or (p <= hi + 1e-9 and not prefer_next) or s == len(stretches) - 1:
                return stretches[s][0] + min(max(p - float(cum[s]), 0.0), durs[s])
        return stretches[-1][1]

    out = []
    for k, tok in enumerate(tokens):
        start = at(bounds[k], prefer_next=True)
        end = at(bounds[k + 1], prefer_next=False)
        out.append(WordTiming(tok.word, float(start), float(max(end, start))))
    return out
