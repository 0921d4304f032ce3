"""A pronunciation lexicon: written terms -> how the voice should say them, for speech only.

A lexicon file is one of:

- YAML (``.yaml``/``.yml``): a mapping ``term: spoken form``;
- JSON (``.json``): an object ``{"term": "spoken form"}``;
- anything else: lines ``term = spoken form``; blank lines and lines starting with ``#`` are
  skipped.

Terms match whole words and phrases, case-insensitively, longest first (``New York City``
before ``New York``), with Unicode word boundaries (a term never matches inside a longer word;
a CJK term matches anywhere, as CJK text has no spaces). A bad file raises ConfigError naming
the line.

The lexicon changes only what is spoken. Slides and subtitles keep the written words: the
speech engine reports timings for the *spoken* words, which ``lessonforge.tools.media.subtitles.with_punctuation``
cannot match against the written narration, so ``restore_written`` maps them back (each written
word or phrase takes the time span of the spoken words it became).
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lessonforge.tools.base import ConfigError, WordTiming
from lessonforge.tools.media.subtitles import with_punctuation

log = logging.getLogger(__name__)


def _is_cjk(ch: str) -> bool:
    cp = ord(ch)
    return (0x3040 <= cp <= 0x30FF or 0x3400 <= cp <= 0x4DBF or 0x4E00 <= cp <= 0x9FFF or 0xAC00 <= cp <= 0xD7AF
            or 0xF900 <= cp <= 0xFAFF or 0x20000 <= cp <= 0x2FA1F)


def _wordish(ch: str) -> bool:
    return ch.isalnum() or ch == "_" or unicodedata.category(ch) in ("Mn", "Mc")


def _term_pattern(term: str) -> str:
    """A regex for ``term``: any run of spaces matches any whitespace; word edges are guarded."""
    body = r"\s+".join(re.escape(part) for part in term.split())
    left = r"(?<!\w)" if _wordish(term[0]) and not _is_cjk(term[0]) else ""
    right = r"(?!\w)" if _wordish(term[-1]) and not _is_cjk(term[-1]) else ""
    return f"{left}{body}{right}"


@dataclass(frozen=True)
class Replacement:
    """One substitution made by ``Lexicon.substitute``: character spans in the written and spoken text."""

    written: tuple[int, int]
    spoken: tuple[int, int]


@dataclass
class Lexicon:
    """Terms and their spoken forms; ``apply`` rewrites text for the speech engine."""

    entries: dict[str, str] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        clean: dict[str, str] = {}
        keys: dict[str, str] = {}
        for term, spoken in self.entries.items():
            t, s = " ".join(str(term).split()), " ".join(str(spoken).split())
            if not t or not s:
                raise ConfigError(f"lexicon entry {term!r} = {spoken!r} has an empty side. Give both the term and "
                                  "how to say it.")
            key = t.casefold()
            if key in keys and clean[keys[key]] != s:
                raise ConfigError(
                    f"lexicon term {t!r} is given twice with different spoken forms ({clean[keys[key]]!r} "
                    f"and {s!r}). Keep one."
                )
            keys[key] = t
            clean[t] = s
        self.entries = clean
        self._lookup = {t.casefold(): s for t, s in clean.items()}
        ordered = sorted(clean, key=lambda t: (-len(t), t))
        self._regex = re.compile("|".join(_term_pattern(t) for t in ordered), re.IGNORECASE) if ordered else None

    def __len__(self) -> int:
        return len(self.entries)

    def __bool__(self) -> bool:
        return bool(self.entries)

    # ----------------------------------------------------------------- loading

    @classmethod
    def load(cls, path: Path | str) -> Lexicon:
        """Read a lexicon file (format by extension, see the module docstring)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise ConfigError(f"lexicon file {path} does not exist. Check the --lexicon path.") from None
        except UnicodeDecodeError as err:
            raise ConfigError(f"lexicon file {path} is not UTF-8 text ({err.reason} at byte {err.start}). Save it as "
                              "UTF-8.") from None
        except OSError as err:
            raise ConfigError(
                f"cannot read lexicon file {path}: {err.strerror or err}. Check its permissions."
            ) from None
        suffix = path.suffix.lower()
        if suffix in (".yaml", ".yml"):
            pairs = list(_parse_yaml(text, path))
        elif suffix == ".json":
            pairs = list(_parse_json(text, path))
        else:
            pairs = list(_parse_lines(text, path))
        entries: dict[str, str] = {}
        first: dict[str, tuple[int, str]] = {}  # casefolded term -> (line, term as first written)
        for line, term, spoken in pairs:
            key = term.casefold()
            if key in first:
                prev_line, prev_term = first[key]
                if entries[prev_term] != spoken:
                    raise ConfigError(f"{path}, line {line}: term {term!r} was already given on line {prev_line} with "
                                      f"another spoken form ({entries[prev_term]!r}). Keep one.")
                continue
            first[key] = (line, term)
            entries[term] = spoken
        return cls(entries, source=str(path))

    # ----------------------------------------------------------------- applying

    def substitute(self, text: str) -> tuple[str, list[Replacement]]:
        """The spoken text and where each replacement happened."""
        if self._regex is None:
            return text, []
        out: list[str] = []
        reps: list[Replacement] = []
        pos = 0
        length = 0
        for m in self._regex.finditer(text):
            spoken = self._lookup.get(" ".join(m.group(0).split()).casefold())
            if spoken is None:  # casefold and IGNORECASE disagree (e.g. "ß"): leave it written
                continue
            before = text[pos : m.start()]
            out += [before, spoken]
            start = length + len(before)
            reps.append(Replacement((m.start(), m.end()), (start, start + len(spoken))))
            length = start + len(spoken)
            pos = m.end()
        out.append(text[pos:])
        return "".join(out), reps

    def apply(self, text: str) -> str:
        """``text`` with every term replaced by its spoken form (for the speech engine only)."""
        return self.substitute(text)[0]


# --------------------------------------------------------------------------- parsers


def _entry(path: Path, line: int, term: object, spoken: object) -> tuple[int, str, str]:
    if isinstance(term, bool) or isinstance(spoken, bool) or term is None or spoken is None:
        raise ConfigError(f"{path}, line {line}: entry {term!r}: {spoken!r} is not text. Write both sides as text "
                          '(quote them in YAML: "yes": "yes").')
    if not isinstance(term, str | int | float) or not isinstance(spoken, str | int | float):
        raise ConfigError(f"{path}, line {line}: the spoken form of {term!r} must be text, got "
                          f"{type(spoken).__name__}. Write it as term: spoken form.")
    t, s = " ".join(str(term).split()), " ".join(str(spoken).split())
    if not t:
        raise ConfigError(f"{path}, line {line}: empty term. Write it as term = spoken form.")
    if not s:
        raise ConfigError(f"{path}, line {line}: term {t!r} has no spoken form. Write it as {t} = spoken form.")
    return line, t, s


def _parse_lines(text: str, path: Path) -> Iterator[tuple[int, str, str]]:
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        term, sep, spoken = line.partition("=")
        if not sep:
            raise ConfigError(f"{path}, line {number}: {line[:60]!r} has no '='. Write each entry as "
                              "term = spoken form (or use a .yaml/.json file).")
        yield _entry(path, number, term, spoken)


def _parse_yaml(text: str, path: Path) -> Iterator[tuple[int, str, str]]:
    import yaml

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "somewhere"
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}, {where}: not valid YAML ({problem}). Write one 'term: spoken form' per "
                          "line.") from None
    if root is None:
        return
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError(f"{path}, line {root.start_mark.line + 1}: the lexicon must be a mapping of "
                          "'term: spoken form' lines, not a list or a single value.")
    for key_node, value_node in root.value:
        line = key_node.start_mark.line + 1
        if not isinstance(key_node, yaml.ScalarNode) or not isinstance(value_node, yaml.ScalarNode):
            raise ConfigError(f"{path}, line {line}: expected 'term: spoken form' (text on both sides), found a "
                              "nested list or mapping.")
        loader = yaml.SafeLoader("")
        try:
            term, spoken = loader.construct_object(key_node), loader.construct_object(value_node)
        finally:
            loader.dispose()
        yield _entry(path, line, term, spoken)


def _parse_json(text: str, path: Path) -> Iterator[tuple[int, str, str]]:
    try:
        data = json.loads(text, object_pairs_hook=lambda pairs: pairs)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}, line {err.lineno}: not valid JSON ({err.msg}). Write an object "
                          '{"term": "spoken form", ...}.') from None
    if not isinstance(data, list) or any(not isinstance(p, tuple) for p in data):
        raise ConfigError(f"{path}, line 1: the lexicon must be a JSON object {{\"term\": \"spoken form\"}}.")
    lines = _json_key_lines(text)
    for k, (term, spoken) in enumerate(data):
        line = lines[k] if k < len(lines) else 1
        if not isinstance(spoken, str | int | float) or isinstance(spoken, bool):
            raise ConfigError(f"{path}, line {line}: the spoken form of {term!r} must be text, got "
                              f"{type(spoken).__name__}. Write it as \"{term}\": \"spoken form\".")
        yield _entry(path, line, term, spoken)


def _json_key_lines(text: str) -> list[int]:
    """Line numbers of the top-level object's keys, in order (for messages)."""
    lines: list[int] = []
    depth = 0
    i = 0
    expect_key = False
    line = 1
    while i < len(text):
        ch = text[i]
        if ch == "\n":
            line += 1
        elif ch == '"':
            j = i + 1
            while j < len(text) and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            if depth == 1 and expect_key:
                lines.append(line)
                expect_key = False
            line += text.count("\n", i, j)
            i = j
        elif ch in "{[":
            depth += 1
            expect_key = depth == 1 and ch == "{"
        elif ch in "}]":
            depth -= 1
        elif ch == "," and depth == 1:
            expect_key = True
        i += 1
    return lines


# --------------------------------------------------------------------------- timings back to written words


def _spans(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]


def _core(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKC", text).casefold() if ch.isalnum())


def restore_written(original: str, words: Sequence[WordTiming], lexicon: Lexicon) -> list[WordTiming]:
    """Timings of the engine's spoken words mapped back onto the written words of ``original``.

    ``words`` are the timings the speech engine reported for ``lexicon.apply(original)``. The
    result has one timing per written whitespace token, spelled as written (with punctuation, as
    ``subtitles.with_punctuation`` spells them). A token outside any replacement keeps its spoken
    word's time. A replaced term takes the span from its first spoken word's start to its last
    one's end: word for word when it has as many written as spoken words, else shared among its
    written words in proportion to their length. When the engine's words do not spell the spoken
    text, they are returned unchanged (timings are never invented).
    """
    spoken, reps = lexicon.substitute(original)
    timed = with_punctuation(spoken, words)
    spoken_tokens = [(a, b) for a, b in _spans(spoken) if _core(spoken[a:b])]
    if len(timed) != len(spoken_tokens) or any(
        _core(t.word) != _core(spoken[a:b]) for t, (a, b) in zip(timed, spoken_tokens, strict=False)
    ):
        log.warning("speech timings do not spell the spoken narration; subtitles keep the engine's words")
        return list(words)

    def to_written(p: int, *, end: bool) -> int:
        """The written offset of spoken offset ``p``; inside a replacement, the replaced term's edge."""
        shift = 0
        for r in reps:
            if p < r.spoken[0] or (end and p == r.spoken[0]):
                break
            if p < r.spoken[1] or (end and p == r.spoken[1]):
                return r.written[1] if end else r.written[0]
            shift = r.written[1] - r.spoken[1]
        return p + shift

    # Written spans, each with the timings of the spoken words that map into it (in order).
    spans: list[tuple[int, int, list[WordTiming]]] = []
    for t, (a, b) in zip(timed, spoken_tokens, strict=True):
        wa, wb = to_written(a, end=False), to_written(b, end=True)
        if spans and wa < spans[-1][1]:  # the same replaced term (or a token holding one): widen the span
            pa, pb, ts = spans[-1]
            spans[-1] = (pa, max(pb, wb), [*ts, t])
        else:
            spans.append((wa, wb, [t]))
    tokens = [(a, b) for a, b in _spans(original) if _core(original[a:b])]
    out: list[WordTiming] = []
    k = 0
    for pa, pb, ts in spans:
        inside: list[tuple[int, int]] = []
        while k < len(tokens) and tokens[k][0] < pb:
            if tokens[k][1] > pa or not inside:
                inside.append(tokens[k])
            k += 1
        if not inside:
            continue
        if len(inside) == len(ts):  # word for word
            out += [WordTiming(original[a:b], t.start, t.end) for (a, b), t in zip(inside, ts, strict=True)]
            continue
        start, end = ts[0].start, max(t.end for t in ts)
        total = sum(len(_core(original[a:b])) for a, b in inside)
        acc = 0
        for a, b in inside:
            t0 = start + (end - start) * acc / total
            acc += len(_core(original[a:b]))
            out.append(WordTiming(original[a:b], round(t0, 3), round(start + (end - start) * acc / total, 3)))
    last = out[-1].end if out else 0.0
    out += [WordTiming(original[a:b], last, last) for a, b in tokens[k:]]  # spoken as nothing: no time of their own
    if any(not _core(original[a:b]) for a, b in _spans(original)):  # lone punctuation joins its neighbour
        out = with_punctuation(original, out)
    return out
