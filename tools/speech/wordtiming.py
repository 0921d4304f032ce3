"""Word timings from a synthesizer's own durations.

Neural voices (piper, kokoro) predict how long each phoneme lasts; summed over a word's phonemes
those durations are the word's exact place in the audio. What they cannot say directly is which
*text* word a run of phonemes belongs to, since the phonemizer may turn one written token into
several spoken words ("1990" -> "nineteen ninety") or into none (a lone dash).

:func:`timings_from_spans` settles that the same way for every such backend: the caller passes
the spoken-word spans in order and, for each whitespace-separated token of the text, how many
spoken words the phonemizer makes of that token on its own. When the counts add up to the spans,
each token gets the span of its spoken words (``"engine"`` timings). When they do not (the
phonemizer read a token differently in context), the words are aligned to the audio itself
(:func:`lessonforge.tools.speech.openai.align_words`, ``"aligned"``), so a caption never drifts by a word.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from lessonforge.tools.base import WordTiming
from lessonforge.tools.speech.align import align_words, bare

TimingSource = Literal["engine", "aligned"]


def text_tokens(text: str) -> list[str]:
    """The text split at whitespace: the tokens a phonemizer is asked about one by one."""
    return text.split()


def timings_from_spans(
    text: str,
    counts: Sequence[int],
    spans: Sequence[tuple[float, float]],
    samples: np.ndarray,
    rate: int,
) -> tuple[list[WordTiming], TimingSource]:
    """Timings for the words of ``text`` from spoken-word ``spans`` (seconds, in order).

    ``counts[i]`` is how many spoken words ``text_tokens(text)[i]`` makes. Words are reported bare,
    as every engine reports them (:func:`lessonforge.tools.media.subtitles.with_punctuation` restores the marks); a
    token without letters or digits (a dash) is not a word. A word-like token that makes no
    spoken word gets a zero-length timing where the speech around it pauses. ``samples`` and
    ``rate`` are the audio, used when the counts and the spans disagree.
    """
    tokens = text_tokens(text)
    if len(counts) != len(tokens) or sum(counts) != len(spans) or not spans:
        return align_words(text, samples, rate), "aligned"
    duration = len(samples) / rate if rate > 0 else 0.0
    words: list[WordTiming] = []
    k = 0
    previous_end = 0.0
    for token, count in zip(tokens, counts, strict=True):
        word = bare(token)
        if count == 0 and not any(ch.isalnum() for ch in token):
            continue
        word = word or token
        if count == 0:
            if k == 0:
                at = spans[0][0]
            elif k < len(spans):
                at = (previous_end + max(spans[k][0], previous_end)) / 2
            else:
                at = previous_end
            words.append(WordTiming(word, round(float(at), 3), round(float(at), 3)))
            continue
        start = min(max(spans[k][0], previous_end), duration)
        end = min(max(spans[k + count - 1][1], start), duration)
        words.append(WordTiming(word, round(float(start), 3), round(float(end), 3)))
        previous_end = end
        k += count
    return words, "engine"
