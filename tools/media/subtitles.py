"""Subtitle cues from word timings, and SRT / WebVTT writers.

Cues follow common broadcast practice (BBC, Netflix style guides):

- at most ``max_lines`` lines of at most ``max_chars`` characters (East Asian wide characters
  count double); two lines are balanced and broken after punctuation where possible;
- shown 1 to 7 seconds, never overlapping, never after the audio ends;
- a cue ends at a sentence end where it can, else at a comma or similar, else between words;
  the choice is made for the whole narration at once (dynamic programming), not greedily;
- a cue stays up until the next one when the gap between them is too short to notice (< 0.5 s).

Times come from the speech backend's word timings, shifted by ``offset`` (the scene's start in
the lesson).
"""

from __future__ import annotations

import logging
import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from lessonforge.tools.base import WordTiming

log = logging.getLogger(__name__)

_SENTENCE_END = tuple(".!?…。！？‼⁇")
_CLAUSE_END = tuple(",;:—–，、；：")
_TRAILING = "\"'”’»)]」』）"
_CHAIN_GAP = 0.5  # close gaps shorter than this (seconds): a flash of nothing is distracting

# Costs of ending a cue after a word, by what that word ends with.
_COST_SENTENCE = 0.0
_COST_CLAUSE = 2.0
_COST_WORD = 5.0
_COST_PER_CUE = 1.0
_COST_INNER_SENTENCE = 1.5  # a sentence that ends inside a cue (a new one should start a cue)
_COST_SHORT = 12.0  # per second missing below min_duration


@dataclass(frozen=True)
class Cue:
    """One subtitle: seconds from the start of the video; ``text`` lines joined with "\\n"."""

    start: float
    end: float
    text: str


# --------------------------------------------------------------------------- text


def _wide(ch: str) -> bool:
    return unicodedata.east_asian_width(ch) in ("W", "F")


def display_width(text: str) -> int:
    """Columns ``text`` takes: East Asian wide and full-width characters count two."""
    return sum(2 if _wide(ch) else 1 for ch in text)


def _ends(word: str, marks: tuple[str, ...]) -> bool:
    return word.rstrip(_TRAILING).endswith(marks)


def _join(words: Sequence[str]) -> str:
    """Words joined by spaces, except between East Asian wide characters (no spaces there)."""
    out = ""
    for w in words:
        if out and not (_wide(out[-1]) and _wide(w[0])):
            out += " "
        out += w
    return out


def _split_long_word(word: str, max_chars: int) -> list[str]:
    parts, buf = [], ""
    for ch in word:
        if buf and display_width(buf + ch) > max_chars:
            parts.append(buf)
            buf = ch
        else:
            buf += ch
    return parts + ([buf] if buf else [])


def break_lines(words: Sequence[str], max_chars: int = 42, max_lines: int = 2) -> list[str] | None:
    """Lines for one cue, or None when ``words`` cannot fit ``max_lines`` x ``max_chars``.

    Two lines are balanced (a slightly longer bottom line preferred) and broken after
    punctuation when that costs little balance. A single word longer than a line is cut.
    """
    words = [w for w in words if w]
    if not words:
        return []
    text = _join(words)
    if display_width(text) <= max_chars:
        return [text]
    if len(words) == 1:
        parts = _split_long_word(words[0], max_chars)
        return parts if len(parts) <= max_lines else None
    if max_lines < 2:
        return None
    if max_lines == 2:
        best: tuple[float, list[str]] | None = None
        for k in range(1, len(words)):
            top, bottom = _join(words[:k]), _join(words[k:])
            wt, wb = display_width(top), display_width(bottom)
            if wt > max_chars or wb > max_chars:
                continue
            score = abs(wt - wb) + (0.5 if wt > wb else 0.0)
            if _ends(words[k - 1], _SENTENCE_END + _CLAUSE_END):
                score -= 10
            if best is None or score < best[0]:
                best = (score, [top, bottom])
        return best[1] if best else None
    lines: list[str] = []  # more than two lines: greedy
    line: list[str] = []
    for w in words:
        if line and display_width(_join([*line, w])) > max_chars:
            lines.append(_join(line))
            line = [w]
        else:
            line.append(w)
        if display_width(_join(line)) > max_chars:
            return None
    lines.append(_join(line))
    return lines if len(lines) <= max_lines else None


# --------------------------------------------------------------------------- cues


@dataclass(frozen=True)
class _W:
    text: str
    start: float
    end: float


def _clean_words(words: Sequence[WordTiming], limit: float) -> list[_W]:
    """Non-empty words with ordered, non-negative times clipped to ``limit`` (audio end)."""
    out: list[_W] = []
    last = 0.0
    for w in words:
        text = " ".join(str(w.word).split())
        if not text:
            continue
        start = min(max(float(w.start), last, 0.0), limit)
        end = min(max(float(w.end), start), limit)
        out.append(_W(text, start, end))
        last = start
    return out


def _segment(words: list[_W], *, limit: float, max_chars: int, max_lines: int, min_duration: float,
             max_duration: float) -> list[tuple[int, int]]:
    """Cue boundaries [(i, j)] minimising the total cost (dynamic programming)."""
    n = len(words)
    best = [math.inf] * (n + 1)
    back = [0] * (n + 1)
    best[0] = 0.0
    for i in range(n):
        if best[i] == math.inf:
            continue
        inner = 0.0
        for j in range(i + 1, n + 1):
            last = words[j - 1]
            if j - i > 1:
                if break_lines([w.text for w in words[i:j]], max_chars, max_lines) is None:
                    break
                if last.end - words[i].start > max_duration:
                    break
            if j == n or _ends(last.text, _SENTENCE_END):
                cost = _COST_SENTENCE
            elif _ends(last.text, _CLAUSE_END):
                cost = _COST_CLAUSE
            else:
                cost = _COST_WORD
            room = (words[j].start if j < n else limit) - words[i].start
            if room < min_duration:
                cost += _COST_SHORT * (min_duration - room)
            total = best[i] + _COST_PER_CUE + cost + inner
            if total < best[j]:
                best[j], back[j] = total, i
            if _ends(last.text, _SENTENCE_END):
                inner += _COST_INNER_SENTENCE
    spans: list[tuple[int, int]] = []
    j = n
    while j > 0:
        spans.append((back[j], j))
        j = back[j]
    return spans[::-1]


def cues_from_words(words: Sequence[WordTiming], *, offset: float = 0.0, audio_end: float | None = None,
                    max_chars: int = 42, max_lines: int = 2, min_duration: float = 1.0,
                    max_duration: float = 7.0) -> list[Cue]:
    """Group timed words into subtitle cues (see the module docstring for the rules).

    ``offset`` shifts every time (the scene's start in the lesson); ``audio_end`` is the end of
    this audio, in the words' own time base: no cue lasts past ``audio_end + offset``.
    """
    limit = math.inf if audio_end is None else float(audio_end)
    ws = _clean_words(words, limit)
    if not ws:
        return []
    spans = _segment(ws, limit=limit, max_chars=max_chars, max_lines=max_lines, min_duration=min_duration,
                     max_duration=max_duration)
    cues: list[Cue] = []
    for k, (i, j) in enumerate(spans):
        start = ws[i].start
        nxt = ws[spans[k + 1][0]].start if k + 1 < len(spans) else limit
        end = max(ws[j - 1].end, start + min_duration)
        if nxt - end < _CHAIN_GAP:  # chain to the next cue (or the audio end)
            end = nxt
        end = min(end, start + max_duration, nxt)
        if end <= start:
            log.warning("dropping subtitle %r: it starts at the end of the audio", _join([w.text for w in ws[i:j]]))
            continue
        lines = break_lines([w.text for w in ws[i:j]], max_chars, max_lines) or [_join([w.text for w in ws[i:j]])]
        last = math.floor((limit + offset) * 1000 + 1e-6) / 1000 if math.isfinite(limit) else math.inf
        cues.append(Cue(round(start + offset, 3), min(round(end + offset, 3), last), "\n".join(lines)))
    return cues


def _core(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKC", text).casefold() if ch.isalnum())


def with_punctuation(text: str, words: Sequence[WordTiming]) -> list[WordTiming]:
    """The engine's timed words, spelled as in ``text`` (with its punctuation and capitals).

    Engines report bare words ("hard" for "hard,"); cues need the sentence and clause marks to
    read well and to split in the right places. Each whitespace token of ``text`` is matched, in
    order, to the timed word(s) it spells; a token that spans several timed words (an engine that
    splits "well-known") takes the first one's start and the last one's end, and a lone punctuation
    token joins its neighbour. Where the two cannot be aligned the engine's words are returned
    unchanged, so timings are never invented.
    """
    tokens = text.split()
    if not tokens or not words:
        return list(words)
    out: list[WordTiming] = []
    j = 0
    pending = ""  # punctuation-only tokens waiting for the next word
    for tok in tokens:
        core = _core(tok)
        if not core:
            if out:
                last = out[-1]
                out[-1] = WordTiming(f"{last.word} {tok}", last.start, last.end)
            else:
                pending += tok + " "
            continue
        if j >= len(words):
            return list(words)
        spelled, k = _core(words[j].word), j
        while spelled != core and len(spelled) < len(core) and k + 1 < len(words):
            k += 1
            spelled += _core(words[k].word)
        if spelled != core:
            return list(words)
        if k > j and any(_wide(ch) for ch in tok):
            # text written without spaces (Japanese, Chinese): keep the engine's words so cues can
            # split between them, spelled with the text's own characters and punctuation
            out += _spell_pieces(pending + tok, words[j : k + 1])
            pending = ""
            j = k + 1
            continue
        out.append(WordTiming(pending + tok, words[j].start, words[k].end))
        pending = ""
        j = k + 1
    return out if j == len(words) else list(words)


def _spell_pieces(token: str, words: Sequence[WordTiming]) -> list[WordTiming]:
    """Cut ``token`` into one piece per timed word; punctuation goes with the piece before it."""
    pieces: list[WordTiming] = []
    pos = 0
    for n, w in enumerate(words):
        want, got, end = _core(w.word), "", pos
        while end < len(token) and len(got) < len(want):
            got += _core(token[end])
            end += 1
        if n == len(words) - 1:
            end = len(token)
        else:  # trailing punctuation belongs to this piece
            while end < len(token) and not _core(token[end]):
                end += 1
        pieces.append(WordTiming(token[pos:end], w.start, w.end))
        pos = end
    return pieces


# --------------------------------------------------------------------------- writers


def _timestamp(seconds: float, sep: str) -> str:
    ms = max(0, int(round(seconds * 1000)))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _lines(text: str) -> list[str]:
    """Cue text as non-empty lines (a blank line would end the cue in SRT and WebVTT)."""
    return [" ".join(line.split()) for line in text.splitlines() if line.strip()]


def to_srt(cues: Sequence[Cue]) -> str:
    """SubRip text: numbered cues, ``HH:MM:SS,mmm`` times."""
    blocks = []
    for n, cue in enumerate(cues, 1):
        body = "\n".join(_lines(cue.text))
        blocks.append(f"{n}\n{_timestamp(cue.start, ',')} --> {_timestamp(cue.end, ',')}\n{body}\n")
    return "\n".join(blocks)


def _vtt_escape(line: str) -> str:
    return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_vtt(cues: Sequence[Cue]) -> str:
    """WebVTT text: ``HH:MM:SS.mmm`` times; ``&``, ``<`` and ``>`` escaped."""
    parts = ["WEBVTT\n"]
    for cue in cues:
        body = "\n".join(_vtt_escape(line) for line in _lines(cue.text))
        parts.append(f"{_timestamp(cue.start, '.')} --> {_timestamp(cue.end, '.')}\n{body}\n")
    return "\n".join(parts)
