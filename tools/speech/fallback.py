"""A speech backend that falls back to another when the first cannot speak.

Typical use: edge-tts first, eSpeak NG when the service is unreachable. Once the primary has
failed (after its own retries), the rest of the run uses the fallback: an unreachable service is
not asked again for every scene. Each scene spoken by the fallback is recorded in ``fallbacks``
(for the manifest), and ``on_fallback`` is called once with a warning for the user.

Before the run, only the primary is made ready (its downloads, ``load``, ``prepare``, ``check``,
``check_language``): the fallback voice is loaded when it is needed, not before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from lessonforge.tools.base import ConfigError, Speech, SpeechError, SpeechSynth, SpeechWrapper
from lessonforge.tools.cache import content_key

log = logging.getLogger(__name__)


class FallbackSpeech(SpeechWrapper):
    """``primary`` until it fails with a SpeechError, then ``fallback`` in ``language`` for good."""

    def __init__(
        self,
        primary: SpeechSynth,
        fallback: SpeechSynth,
        *,
        language: str,
        on_fallback: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(primary)  # the voice interface, made ready before the run, is the primary's
        self.primary = primary
        self.fallback = fallback
        self.language = language
        self.on_fallback = on_fallback
        self.fallbacks: list[dict[str, str]] = []
        self._reason: str | None = None  # set once the primary has failed

    @property
    def using_fallback(self) -> bool:
        """True once the primary has failed and the fallback speaks for the rest of the run."""
        return self._reason is not None

    async def speak(self, text: str, voice: str, out: Path) -> Speech:
        """Speak with the primary; after its first failure, with the fallback's voice for ``language``."""
        if self._reason is None:
            try:
                return await self.primary.speak(text, voice, out)
            except SpeechError as err:  # SpeechUnavailable included; ConfigError is the caller's to fix
                try:  # a fallback that would garble the language is no fallback
                    self.fallback.check_language(self.language)
                except ConfigError as refused:
                    raise SpeechError(f"{err} (no fallback: {refused})") from err
                self._switch(err)
        fallback_voice = self.fallback.default_voice(self.language)
        speech = await self.fallback.speak(text, fallback_voice, out)
        self.fallbacks.append(
            {
                "text_hash": content_key(text),
                "primary": self.primary.name,
                "fallback": speech.backend,
                "voice": speech.voice,
                "reason": self._reason or "",
            }
        )
        return speech

    async def aclose(self) -> None:
        """Close both voices (each lets its narrations in flight land first)."""
        for voice in (self.primary, self.fallback):
            await voice.aclose()

    def _switch(self, err: SpeechError) -> None:
        if self._reason is not None:  # a concurrent scene switched first
            return
        self._reason = f"{type(err).__name__}: {err}"
        message = (
            f"Speech backend {self.primary.name} failed ({err}); narrating the rest of this run with "
            f"{self.fallback.name} in {self.language!r} instead. The lesson manifest records which scenes."
        )
        if self.on_fallback is not None:  # the caller shows it (once); the log keeps it quietly
            log.info(message)
            self.on_fallback(message)
        else:
            log.warning(message)
