"""One-shot prompts in plain words: "make a 2-minute video on photosynthesis for 9-year-olds, in French".

A prompt is read into a :class:`Reading` (topic, minutes, audience, language, aspect, voice and tone
hints, style notes for the writer):

- offline, by :func:`read_offline`: patterns for durations (digits or words, minutes or seconds),
  languages, ages and grades, shape words, voices and tones, in English, French, Spanish and German;
- with an LLM, by one structured step (:func:`read_with_llm`) for what the patterns leave unsure:
  a long or unusual phrasing, or no topic found.

:func:`understand` turns the reading and the user's explicit flags into a :class:`LessonRequest`;
flags win, and every disagreement is kept as a conflict to show. :func:`start` is the one call that
takes a prompt to a finished lesson (the CLI's ``make`` and ``chat``, and a web page, use it).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from lessonforge import prompts
from lessonforge.agent.state import MAX_MINUTES, MIN_MINUTES, LessonRequest, make_request
from lessonforge.tools.base import ConfigError, LessonForgeError, Message
from lessonforge.tools.contract import Contract, text

Via = Literal["offline", "llm"]
ParseMode = Literal["auto", "offline", "llm"]
DEFAULTS: dict[str, Any] = {"minutes": 2.0, "audience": "a general audience", "language": "en", "aspect": "16:9"}
MAX_PROMPT = 500  # characters: a prompt is a sentence or two (a topic has the same limit)
FIELDS = ("topic", "minutes", "audience", "language", "aspect", "voice", "tone", "style")


class Reading(Contract):
    """What a prompt asks for, field by field; null (or empty) where the prompt does not say."""

    topic: str = text(
        500, "What the lesson teaches, as a short noun phrase in the prompt's own words (e.g. 'photosynthesis', "
        "'the 1918 flu'), without the request's framing ('make a video on'), its length, audience, language or shape. "
        "Empty when the prompt names no subject."
    )
    minutes: float | None = Field(
        description="The length asked for, in minutes (90 seconds = 1.5); null when the prompt gives none."
    )
    audience: str | None = text(
        120, "Who the lesson is for, in the prompt's words ('9-year-olds', 'first-year undergraduates', "
        "'beginners'); null when not said."
    )
    language: str | None = text(
        20, "BCP-47 code of the language the lesson should be in ('fr', 'de', 'pt-BR'): the one named "
        "('in French', 'auf Deutsch'), else the language the prompt is written in; null for English with no hint."
    )
    aspect: Literal["16:9", "9:16", "1:1"] | None = Field(
        description="Frame shape: '9:16' for vertical, portrait, a short, TikTok or Reels; '1:1' for square; "
        "'16:9' for horizontal or widescreen; null when not said."
    )
    voice: str = text(120, "Hints about the narrator's voice ('female', 'British accent', 'deep'); empty when none.",
                      default="")
    tone: str = text(120, "The tone asked for ('playful', 'serious', 'with humour'); empty when none.", default="")
    style: str = text(
        400, "Other notes for the writer ('lots of real-world examples', 'no jargon', 'focus on the Calvin cycle'); "
        "empty when none.", default=""
    )

    @model_validator(mode="after")
    def _repair(self) -> Reading:
        for name, limit in (("topic", 500), ("voice", 120), ("tone", 120), ("style", 400)):
            self.fit_text(name, limit)
        for name, limit in (("audience", 120), ("language", 20)):
            if getattr(self, name) is not None:
                self.fit_text(name, limit)
                if not getattr(self, name):
                    object.__setattr__(self, name, None)
        if self.minutes is not None and not (math.isfinite(self.minutes) and self.minutes > 0):
            self.note(f"minutes {self.minutes} is no length; taken as not said")
            object.__setattr__(self, "minutes", None)
        if self.language is not None and not _LANGUAGE_CODE.fullmatch(self.language.replace("_", "-")):
            self.note(f"language {self.language!r} is no language code; taken as not said")
            object.__setattr__(self, "language", None)
        return self


_LANGUAGE_CODE = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*")


class Understanding(BaseModel):
    """A prompt, what it was read as, and the request made from it (recorded in lesson.json)."""

    prompt: str = Field(description="The prompt as the user wrote it.")
    reading: Reading = Field(description="What the prompt says, field by field.")
    via: Via = Field("offline", description="Who read the prompt: the offline patterns or the LLM step.")
    unsure: list[str] = Field(default_factory=list, description="Why the offline reading was not sure of itself.")
    flags: dict[str, Any] = Field(default_factory=dict, description="Values given explicitly (flags), which win.")
    conflicts: list[str] = Field(default_factory=list, description="Where a flag overrode what the prompt said.")
    notes: list[str] = Field(default_factory=list, description="What was asked but could not be honoured, and why.")
    request: LessonRequest | None = Field(default=None, description="The request made (None until a topic is known).")

    def summary(self) -> str:
        """One line: 'photosynthesis · 2 min · 9-year-olds · fr · 16:9' (+ voice, tone, style)."""
        r = self.request
        if r is None:
            return describe_reading(self.reading)
        parts = [r.topic, f"{r.minutes:g} min", r.audience, r.language, r.aspect]
        if r.voice:
            parts.append(f"voice {r.voice}" + (f" ({self.reading.voice})" if self.reading.voice != r.voice else ""))
        elif self.reading.voice:
            parts.append(f"voice: {self.reading.voice}")
        parts += [f"tone: {self.reading.tone}"] * bool(self.reading.tone)
        parts += [f"notes: {self.reading.style}"] * bool(self.reading.style)
        return " · ".join(parts)


class MissingTopic(ConfigError):
    """The prompt names no topic; ``understanding`` holds what it did say (for a question back)."""

    def __init__(self, message: str, understanding: Understanding) -> None:
        super().__init__(message)
        self.understanding = understanding
        self.missing = ["topic"]


def describe_reading(reading: Reading) -> str:
    said = [f"{reading.minutes:g} min" if reading.minutes else "", reading.audience or "", reading.language or "",
            reading.aspect or "", reading.voice and f"voice: {reading.voice}", reading.tone and f"tone: {reading.tone}",
            reading.style and f"notes: {reading.style}"]
    return " · ".join(s for s in said if s) or "nothing"


# =========================================================================== offline patterns

_B = "\x00"  # marks where a recognised piece was taken out (a boundary for the topic)

_NUMBERS = {
    # English
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20, "thirty": 30, "forty-five": 45,
    "sixty": 60, "ninety": 90, "a couple of": 2, "a couple": 2,
    # French
    "un": 1, "une": 1, "deux": 2, "trois": 3, "quatre": 4, "cinq": 5, "sept": 7, "huit": 8, "neuf": 9,
    "dix": 10, "onze": 11, "douze": 12, "quinze": 15, "vingt": 20, "trente": 30, "soixante": 60, "quatre-vingt-dix": 90,
    # Spanish
    "uno": 1, "una": 1, "dos": 2, "tres": 3, "cuatro": 4, "cinco": 5, "seis": 6, "siete": 7, "ocho": 8,
    "nueve": 9, "diez": 10, "once": 11, "doce": 12, "quince": 15, "veinte": 20, "treinta": 30, "sesenta": 60,
    "noventa": 90,
    # German
    "ein": 1, "eine": 1, "einer": 1, "einem": 1, "einen": 1, "zwei": 2, "drei": 3, "vier": 4, "fünf": 5,
    "sechs": 6, "sieben": 7, "acht": 8, "neun": 9, "zehn": 10, "elf": 11, "zwölf": 12, "fünfzehn": 15,
    "zwanzig": 20, "dreißig": 30, "sechzig": 60, "neunzig": 90,
    # one and a half
    "anderthalb": 1.5, "eineinhalb": 1.5, "½": 0.5,
}
_NUMWORD = "|".join(sorted((re.escape(w) for w in _NUMBERS), key=len, reverse=True))
_NUM = rf"(?:\d+(?:[.,]\d+)?\s*½?|{_NUMWORD})"
_HALF_AFTER = r"(?:\s*(?:and\s+a\s+half|et\s+demie?|y\s+medio|y\s+media|und\s+ein\s+halb))"
_MIN_UNIT = r"(?:minutes?|mins?|mn|minutos?|minuten|minute|minütige[nmrs]?|minütig)"
_SEC_UNIT = r"(?:seconds?|secs?|secondes?|segundos?|sekunden|sekunde|sekündige[nmrs]?)"
_HOUR_UNIT = r"(?:hours?|heures?|horas?|stunden?)"
_APPROX = (r"(?:under|less\s+than|about|around|roughly|approximately|approx\.?|max(?:imum)?|at\s+most|no\s+more\s+than|"
           r"just|only|moins\s+de|environ|à\s+peu\s+près|maximum|unos|unas|alrededor\s+de|menos\s+de|como\s+máximo|"
           r"etwa|ungefähr|ca\.|circa|höchstens|unter|knapp|max\.)")
_RANGE_SEP = r"\s*(?:-|–|to|or|à|ou|a|o|bis|oder)\s*"
_DURATION = re.compile(
    rf"(?<![\w-])(?:(?:in|within|of|de|en|von|à|a|for|pendant|durant|durante|über)\s+|d['’]\s*)?(?:{_APPROX}\s+)?"
    rf"(?P<n1>{_NUM})(?:{_RANGE_SEP}(?P<n2>{_NUM}))?(?P<half1>{_HALF_AFTER})?[\s-]*"
    rf"(?P<unit>{_MIN_UNIT}|{_SEC_UNIT}|{_HOUR_UNIT})(?P<half2>{_HALF_AFTER})?(?![\w])"
    rf"(?P<tail>[\s-]+(?:long|read|de\s+durée|de\s+duración|lang|langes?|langen?))?",
    re.IGNORECASE,
)
_DURATION_IDIOMS = [  # (pattern, minutes)
    (r"(?:in\s+|of\s+)?half\s+a\s+minute|(?:a\s+)?half[\s-]minute", 0.5),
    (r"(?:in\s+|of\s+)?a\s+minute\s+and\s+a\s+half", 1.5),
    (
        r"(?:in\s+|of\s+)?a\s+quarter\s+of\s+an\s+hour|(?:en\s+|d'\s*)?un\s+quart\s+d['’]\s*heure|"
        r"(?:en\s+|de\s+)?un\s+cuarto\s+de\s+hora|(?:in\s+)?einer?\s+viertel\s*stunde",
        15.0,
    ),
    (
        r"(?:en\s+|d['’]\s*)?une\s+demi[\s-]minute|(?:en\s+|de\s+)?medio\s+minuto|(?:in\s+)?einer?\s+halben?\s+minute",
        0.5,
    ),
    (r"(?:en\s+|de\s+)?(?:un\s+)?minuto\s+y\s+medio", 1.5),
    (r"(?:in\s+|of\s+)?an?\s+hour|(?:en\s+|d['’]\s*)?une\s+heure|(?:in\s+)?einer?\s+stunde", 60.0),
]
_NOT_A_LENGTH_BEFORE = re.compile(r"(?:first|last|final|next|premières?|derniers?|primeros?|últimos?|ersten|letzten)"
                                  r"\s*$", re.IGNORECASE)
_NOT_A_LENGTH_AFTER = re.compile(r"^\s+(?:of|after|before|later|ago|de\s+la|del|nach|vor)\b(?!\s+(?:video|footage|"
                                 r"content|narration|vidéo|vídeo))", re.IGNORECASE)
_SHORT_WORDS = re.compile(
    r"(?:\b(?:make|keep)\s+it\s+)?\b(?:quick|short|brief|bite-sized|snappy|courte?|brève|rapide|corto|corta|breve|"
    r"rápid[oa]|kurze[snmr]?|kurz)\b,?",
    re.IGNORECASE,
)

_LANGUAGES: dict[str, str] = {
    # English names
    "english": "en", "british english": "en-GB", "american english": "en-US", "australian english": "en-AU",
    "french": "fr", "canadian french": "fr-CA", "quebec french": "fr-CA", "spanish": "es", "mexican spanish": "es-MX",
    "castilian": "es", "german": "de", "swiss german": "de-CH", "austrian german": "de-AT", "italian": "it",
    "portuguese": "pt", "brazilian portuguese": "pt-BR", "european portuguese": "pt-PT", "dutch": "nl",
    "japanese": "ja", "chinese": "zh", "mandarin": "zh", "mandarin chinese": "zh", "cantonese": "zh-HK",
    "korean": "ko", "arabic": "ar", "russian": "ru", "hindi": "hi", "polish": "pl", "turkish": "tr",
    "swedish": "sv", "norwegian": "nb", "danish": "da", "finnish": "fi", "greek": "el", "hebrew": "he",
    "ukrainian": "uk", "czech": "cs", "vietnamese": "vi", "indonesian": "id", "thai": "th", "romanian": "ro",
    "hungarian": "hu", "catalan": "ca", "welsh": "cy", "irish": "ga", "swahili": "sw", "bengali": "bn",
    # French names
    "anglais": "en", "français": "fr", "francais": "fr", "espagnol": "es", "allemand": "de", "italien": "it",
    "portugais": "pt", "portugais brésilien": "pt-BR", "néerlandais": "nl", "japonais": "ja", "chinois": "zh",
    "coréen": "ko", "arabe": "ar", "russe": "ru", "polonais": "pl", "turc": "tr", "grec": "el",
    # Spanish names
    "inglés": "en", "ingles": "en", "francés": "fr", "frances": "fr", "español": "es", "espanol": "es",
    "castellano": "es", "alemán": "de", "aleman": "de", "italiano": "it", "portugués": "pt", "japonés": "ja",
    "chino": "zh", "coreano": "ko", "árabe": "ar", "ruso": "ru", "catalán": "ca",
    # German names
    "englisch": "en", "französisch": "fr", "spanisch": "es", "deutsch": "de", "italienisch": "it",
    "portugiesisch": "pt", "niederländisch": "nl", "japanisch": "ja", "chinesisch": "zh", "koreanisch": "ko",
    "arabisch": "ar", "russisch": "ru", "polnisch": "pl", "türkisch": "tr", "griechisch": "el",
}
_LANGNAME = "|".join(sorted((re.escape(n) for n in _LANGUAGES), key=len, reverse=True))
_CUE = (r"for|with|and|please|about|on|pour|para|für|und|et|y|avec|con|mit|sur|sobre|über|zu|s'il|por|bitte|"
        r"narrated|narration|voice|subtitles|in|en|auf|as|that|which|using")
_END = rf"(?=\s*(?:$|[,.;:!?{_B}()]|\s(?:{_CUE})\b))"
_LANGUAGE = re.compile(
    rf"(?<!\w)(?:(?:narrated|spoken|written|taught|explained|told|told)\s+)?"
    rf"(?:in|en|auf|em|im|in\s+the)\s+(?:(?:la\s+)?(?:langue\s+)?)?(?P<name>{_LANGNAME})(?:\s+(?:language|langue|sprache))?{_END}"
    rf"|(?<!\w)(?:with|avec|con|mit)\s+(?:(?:an?|une?|una?|einer?)\s+)?(?P<name2>{_LANGNAME})\s+"
    rf"(?:narration|voice-?over|narrator|voix|narración|voz|erzählstimme|stimme){_END}"
    rf"|(?<!\w)(?P<name3>{_LANGNAME})[\s-]language{_END}"
    rf"|(?<!\w)in\s+deutscher\s+sprache{_END}",
    re.IGNORECASE,
)

_ACCENTS = {
    "british": "en-GB", "english": "en-GB", "scottish": "en-GB", "american": "en-US", "australian": "en-AU",
    "irish": "en-IE", "indian": "en-IN", "canadian": "en-CA", "québécois": "fr-CA", "quebecois": "fr-CA",
    "canadien": "fr-CA", "belge": "fr-BE", "suisse": "fr-CH", "mexican": "es-MX", "mexicain": "es-MX",
    "mexicano": "es-MX", "mexicana": "es-MX", "argentine": "es-AR", "argentino": "es-AR", "argentina": "es-AR",
    "colombian": "es-CO", "colombiano": "es-CO", "brazilian": "pt-BR", "brésilien": "pt-BR", "brasileño": "pt-BR",
    "austrian": "de-AT", "österreichisch": "de-AT", "österreichischen": "de-AT", "swiss": "de-CH",
    "schweizer": "de-CH",
}
_VOICE_MOD = (r"(?:female|male|woman'?s|man'?s|women'?s|men'?s|girl'?s|boy'?s|child'?s|kid'?s|young|old|older|deep|"
              r"low|high|soft|warm|calm|soothing|clear|friendly|cheerful|energetic|gentle|slow|natural|"
              r"féminine|feminine|masculine|femenina|masculina|weibliche[nr]?|männliche[nr]?|tiefe[nr]?|ruhige[nr]?|"
              r"douce|grave|chaleureuse|suave|cálida|grave|warme[nr]?|"
              + "|".join(sorted(map(re.escape, _ACCENTS), key=len, reverse=True)) + ")")
_VOICE = re.compile(
    rf"(?<!\w)(?:(?:with|using|in|avec|con|mit|read\s+by|narrated\s+by|voiced\s+by|lu\s+par|narrada\s+por|"
    rf"gesprochen\s+von)\s+)(?:(?:an?|the|une?|la|el|una?|einer?|einem|der)\s+)?"
    rf"(?P<mods>(?:{_VOICE_MOD}[\s,]+(?:and\s+|et\s+|y\s+|und\s+)?){{1,3}})"
    rf"(?P<noun>voice|narrator|narration|accent|speaker|voix|voz|narrador|narradora|acento|stimme|sprecher|"
    rf"sprecherin|akzent|woman|man|femme|homme|mujer|hombre|frau|mann)\b"
    rf"|(?<!\w)(?:with|avec|con|mit)\s+(?:(?:an?|the|une?|la|el|una?)\s+)?(?P<noun2>voix|voz|voice|narrator|"
    rf"narrateur|narratrice|narrador|narradora|accent|acento)\s+(?P<mods2>{_VOICE_MOD}(?:\s+(?:et|y|and)?\s*{_VOICE_MOD})?)\b"
    rf"|(?<!\w)(?:narrated|read|voiced)\s+by\s+(?:an?\s+)?(?P<who>woman|man|female|male)\b"
    rf"|(?<!\w)(?:with|using)\s+(?:the\s+)?voice\s+(?P<name>[a-z]{{2,3}}-[A-Z]{{2}}-\w+|[\w-]+:[\w-]+)",
    re.IGNORECASE,
)

_TONES = (r"fun|funny|playful|humorous|humourous|light-hearted|lighthearted|serious|formal|informal|casual|friendly|"
          r"warm|enthusiastic|energetic|calm|gentle|upbeat|engaging|dramatic|conversational|academic|inspiring|"
          r"exciting|lively|relaxed|witty|silly|cheerful|spooky|"
          r"drôle|ludique|amusante?|sérieux|sérieuse|formelle?|décontractée?|humoristique|léger|légère|dynamique|"
          r"divertid[oa]|graciosa?|gracioso|seri[oa]|ameno|amena|humorístic[oa]|dinámic[oa]|"
          r"lustige[snmr]?|lustig|witzige[snmr]?|witzig|humorvolle[snmr]?|humorvoll|ernste[snmr]?|ernst|"
          r"lockere[snmr]?|locker|spannende[snmr]?|spannend|unterhaltsame[snmr]?|unterhaltsam")
_TONE = re.compile(
    rf"(?<!\w)(?:in|with|on|avec|con|mit|sur|en|im|d['’]un|de)\s+(?:(?:an?|un|une|una?|einem|einen|einer)\s+)?"
    rf"(?P<t1>(?:(?:{_TONES})(?:[\s,]+(?:and|or|but|et|y|und)?\s*)?){{1,3}})\s*"
    rf"(?:tone|way|style|manner|register|ton|façon|manière|tono|estilo|ton|stil|art|weise)\b"
    rf"|(?<!\w)(?:with|avec|con|mit)\s+(?:(?:some|a\s+bit\s+of|a\s+touch\s+of|lots\s+of|plenty\s+of|"
    rf"un\s+peu\s+d['’]|beaucoup\s+d['’]|un\s+poco\s+de|mucho|viel|etwas)\s*)?(?P<t2>humou?r|jokes|humor|humour)\b"
    rf"|(?<!\w)(?:make|keep)\s+it\s+(?P<t3>(?:{_TONES}|simple|light)(?:\s+(?:and|but)\s+(?:{_TONES}|simple|light))?)\b"
    rf"|(?<!\w)(?:like|as\s+if|comme|como|wie)\s+(?:an?|une?|una?|ein|eine)?\s*(?P<t4>(?:pirate|"
    rf"sports\s+commentator|nature\s+documentary|(?:game\s+)?show\s+host|storyteller|detective|news\s+anchor|"
    rf"conteur|présentateur|narrador|erzähler)(?:\s+\w+)?)\b",
    re.IGNORECASE,
)

_KIND = (r"videos?|vidéos?|vídeos?|lessons?|leçons?|lección|lecciones|lektion(?:en)?|explainers?|explainer\s+video|"
         r"clips?|presentations?|présentations?|presentación|präsentation|tutorials?|tutoriels?|tutorial|courses?|"
         r"cours|curso|kurs|slideshows?|diaporama|lectures?|overviews?|introductions?|introducción|einführung|"
         r"intros?|primers?|crash\s+course|animations?|shorts?|reels?|tiktoks?|walkthroughs?|breakdowns?|"
         r"summar(?:y|ies)|résumé|resumen|zusammenfassung|recaps?|explanations?|explications?|explicación|"
         r"erklärung|erklärvideos?|lernvideos?|capsules?|cápsula|clase|unterrichtseinheit|guide|class|exposé|"
         r"mini-lessons?|mini-lectures?")
_TONE_ADJ = re.compile(rf"(?<![\w-])(?P<t>{_TONES}),?(?=[\s{_B}]+(?:(?:\w+|{_B})\s+){{0,2}}?(?:{_KIND}))",
                       re.IGNORECASE)  # "a fun video on ...", "ein lustiges Video über ..."

_AGE = r"(?:\d+|" + _NUMWORD + r")"
_AGES = (
    rf"(?:{_AGE}(?:\s*(?:-|–|to|and|à|a|bis|or)\s*{_AGE})?[\s-]*(?:years?|yrs?|yo)[\s-]*olds?|"
    rf"{_AGE}(?:\s*(?:-|–|to|and|à|a|bis|or)\s*{_AGE})?[\s-]*y/?o\b|"
    rf"(?:\d+(?:\s*(?:-|–|bis)\s*\d+)?[\s-]*|\w+)[jJ]ährige[nr]?|"
    rf"(?:ages?|aged)\s+{_AGE}(?:\s*(?:-|–|to|and|à|a|bis)\s*{_AGE})?(?:\s*(?:and\s+(?:up|over|older)|\+))?|"
    rf"(?:les\s+|des\s+)?{_AGE}(?:\s*(?:-|–|à|a)\s*{_AGE})?\s*(?:ans|años)\b)"
)
_GRADES = (
    r"(?:grades?\s+\d+(?:\s*(?:-|–|to|and)\s*\d+)?(?:\s+students|\s+pupils|\s+kids|\s+class)?|"
    r"\d+(?:st|nd|rd|th)[\s-]+grade(?:rs|\s+students|\s+pupils|\s+class(?:es|room)?)?|"
    r"(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth)[\s-]+grade"
    r"(?:rs|\s+students|\s+pupils|\s+class(?:es|room)?)?|"
    r"year\s+\d+(?:\s+(?:students|pupils|kids|class))?|key\s+stage\s+\d|ks\d|k-?12|"
    r"\d+\.?\s*klasse|klasse\s+\d+|(?:cp|ce1|ce2|cm1|cm2|6e|5e|4e|3e|sixième|cinquième|quatrième|troisième|seconde|première|terminale)\b|"
    r"\d+(?:º|°|o)?\s*(?:de\s+)?(?:primaria|secundaria|eso|bachillerato))"
)
_HEADS = (
    r"(?:kids|children|child|students|pupils|learners|beginners|novices|newcomers|teens|teenagers|adolescents|adults|"
    r"grown-ups|undergraduates|undergrads|graduates|grad\s+students|postgraduates|engineers|nurses|doctors|"
    r"clinicians|teachers|developers|programmers|coders|professionals|managers|experts|specialists|seniors|"
    r"retirees|parents|families|toddlers|preschoolers|schoolchildren|high\s+schoolers|middle\s+schoolers|"
    r"freshmen|sophomores|people|anyone|everyone|non-experts|non-specialists|laypeople|the\s+general\s+public|"
    r"general\s+audiences?|a\s+general\s+audience|public|class|classroom|audience|employees|staff|team|"
    r"enfants|élèves|étudiants|étudiantes|débutants|lycéens|collégiens|adultes|ados|adolescents|grand\s+public|"
    r"professionnels|infirmiers|infirmières|enseignants|"
    r"niños|niñas|alumnos|alumnas|estudiantes|principiantes|adolescentes|adultos|público\s+general|profesionales|"
    r"kinder|schüler|schülerinnen|studierende|studenten|anfänger|anfängerinnen|jugendliche|erwachsene|"
    r"laien|fachleute|lehrkräfte|grundschüler|grundschulkinder)"
)
_SCHOOLS = (r"(?:primary|elementary|middle|secondary|high)\s+school(?:\s+(?:students|pupils|kids|children|level))?|"
            r"university(?:\s+students)?|college(?:\s+students)?|med(?:ical)?\s+students|law\s+students|"
            r"l['’]école\s+primaire|le\s+primaire|le\s+collège|le\s+lycée|l['’]université|"
            r"(?:la\s+)?primaria|(?:la\s+)?secundaria|(?:la\s+)?universidad|"
            r"(?:die\s+)?grundschule|(?:die\s+)?oberstufe|(?:die\s+)?uni(?:versität)?")
_AUD_TAIL = (rf"(?:\s+(?:aged?|de|von|im\s+alter\s+von|in)\s+{_AGE}(?:\s*(?:-|–|to|and|à|a|bis)\s*{_AGE})?"
             rf"(?:\s*(?:ans|años|jahren?|years?(?:\s+old)?))?|\s+(?:(?:of|de|von)\s+)?(?:{_AGES}|{_GRADES})|"
             r"\s+(?:in|at|en|de|à|an\s+der|in\s+der|der)\s+(?:their\s+first\s+year|(?:the\s+)?first\s+year|"
             + _SCHOOLS + r"|" + _GRADES + r")"
             r"|\s+(?:who|with\s+no|with\s+little|without|new\s+to|sans|sin|ohne|qui|que|die)\b[^,;.!?\x00]*)?")
_AUDIENCE = re.compile(
    rf"(?<!\w)(?:aimed\s+at|targeted\s+at|geared\s+(?:towards?|to)|suitable\s+for|for|to|pour|para|für|destiné\s+aux?|"
    rf"destinada?\s+a)\s+"
    rf"(?P<aud>(?:(?:my|a|an|the|our|des|les|de|mes|nos|un|une|unos|unas|los|las|mis|nuestros|die|meine|unsere|"
    rf"eine|einer)\s+)?(?:(?!(?:{_CUE})\b)[^\W\d_][\w'’-]*\s+){{0,3}}?"
    rf"(?:{_AGES}|{_GRADES}|{_SCHOOLS}|{_HEADS})(?![\w-]){_AUD_TAIL})",
    re.IGNORECASE,
)
_AUDIENCE_ADJ = re.compile(
    r"(?<!\w)(?P<aud>beginner|kid|child|children|student|teen|family|novice)(?:['’]?s)?"
    r"(?=[\s\x00-]+(?:friendly\s+)?(?:guide|" + _KIND + r")\b)|(?<!\w)(?P<aud2>beginner)-friendly",
    re.IGNORECASE,
)

_SHAPES = [
    ("9:16", r"vertical|verticale|vertikale[snmr]?|vertikal|portrait|hochformat|hochkant|9\s*:\s*16|9x16"),
    ("1:1", r"square|carrée?|cuadrad[oa]|quadratische[snmr]?|quadratisch|1\s*:\s*1"),
    ("16:9", r"horizontal|horizontale[snmr]?|landscape|paysage|apaisad[oa]|querformat|widescreen|wide|16\s*:\s*9|16x9"),
]
_SHAPE_NOUN = r"(?:format|mode|orientation|aspect(?:\s+ratio)?|frame|formato|orientación|ratio)"
_PLATFORMS = [
    ("9:16", r"(?:(?:for|on|as|pour|para|für|als)\s+(?:an?\s+|une?\s+)?)?(?:youtube\s+shorts?|tiktoks?|tik\s+tok|"
             r"instagram\s+(?:reels?|stor(?:y|ies))|reels?|stories|phones?|mobile|smartphones?|le\s+mobile|"
             r"el\s+móvil|handys?)(?![\w-])"),
    ("16:9", r"(?:for|on|pour|para|für)\s+youtube(?!\s+shorts?)(?![\w-])|(?:for|on|pour|para|für)\s+(?:a\s+)?(?:tv|"
             r"projector|whiteboard|smartboard|beamer|vidéoprojecteur)(?![\w-])"),
    ("1:1", r"(?:for|on|pour|para|für)\s+(?:the\s+)?instagram(?:\s+feed)?(?![\w-])"),
]
_SHORT_NOUN = re.compile(
    r"(?<![\w-])(?:(?:an?|une?|un)\s+(?:youtube\s+)?|youtube\s+)shorts?(?=\s*(?:$|[.;!?\x00]|\s(?:on|"
    r"about|sur|sobre|über|zu|of|explaining|for)\b))",
    re.IGNORECASE,
)

_STYLE_START = (
    r"(?:with|avec|con|mit)\s+(?:(?:lots|plenty|loads)\s+of|many|some|a\s+few|a\s+couple\s+of|real[\s-]world|"
    r"everyday|concrete|simple|no|minimal|more|less|fewer|an?\s+(?:focus|emphasis|quiz|story|analogy|example|"
    r"recap|summary|question|twist|diagram|timeline|map)|emphasis|focus|examples?|analogies|analogy|diagrams?|"
    r"pictures|images|visuals|stories|questions|quizzes|exercises|des|de|beaucoup|ejemplos|ejemplo|"
    r"analogías|beispielen?|vielen|bildern|analogien|einem|einer)\b"
    r"|(?:using|use|include|including|avoid|avoiding|without|focus(?:ing)?\s+on|emphasi[sz]e|emphasi[sz]ing|"
    r"mention|mentioning|end\s+with|ending\s+with|start\s+with|starting\s+with|don['’]t|do\s+not|no\s+jargon|"
    r"no\s+maths?|step\s+by\s+step|keep\s+it|make\s+sure|explain\s+like|"
    r"sans|en\s+insistant\s+sur|insiste\s+sur|utilise|évite|inclus|"
    r"sin|usa|evita|incluye|centrándote\s+en|"
    r"ohne|verwende|vermeide|mit\s+fokus\s+auf|schwerpunkt)\b"
)
_STYLE = re.compile(
    rf"(?:^|(?<=[,;.:\x00])|(?<=\s))\s*(?:and\s+|et\s+|y\s+|und\s+)?(?P<s>(?:{_STYLE_START})[^,;.!?\x00]*)",
    re.IGNORECASE,
)

_VERBS = (
    r"(?:please\s+|pls\s+|kindly\s+)?(?:(?:can|could|would|will)\s+you\s+(?:please\s+)?|i\s+(?:want|need|would\s+like|'d\s+like)"
    r"\s+(?:you\s+to\s+)?|let['’]s\s+|help\s+me\s+)?(?:make|create|generate|produce|build|do|give|write|prepare|"
    r"record|render|put\s+together|whip\s+up|get|have)(?:\s+(?:me|us|my\s+class|my\s+students))?"
    r"|i\s+(?:want|need|would\s+like|'d\s+like)"
    r"|(?:s['’]il\s+te\s+plaît\s+)?(?:fais|fait|faites|crée|créez|créer|génère|générez|prépare|préparez|réalise|"
    r"réalisez|produis)(?:[\s-]*(?:moi|nous))?|je\s+(?:veux|voudrais)|j['’]aimerais|(?:peux|pourrais)[\s-]*tu\s+"
    r"(?:me\s+)?(?:faire|créer|préparer)|(?:pouvez|pourriez)[\s-]*vous\s+(?:me\s+)?(?:faire|créer|préparer)"
    r"|(?:por\s+favor\s+)?(?:haz|hazme|haga|crea|créame|crear|genera|genérame|prepara|prepárame|produce)|quiero|"
    r"necesito|me\s+gustaría|(?:puedes|podrías)\s+(?:hacer|crear|preparar)(?:me)?"
    r"|(?:bitte\s+)?(?:mach|mache|erstelle|erstell|erzeuge|generiere|produziere|bereite)(?:\s+(?:mir|uns))?"
    r"|ich\s+(?:möchte|will|hätte\s+gern(?:e)?|brauche)|(?:kannst|könntest)\s+du\s+(?:mir\s+)?"
)
_ARTICLE = r"(?:an?|the|one|some|une?|la|le|el|una?|ein|eine|einen|einer|ein|my|our)"
_CONNECT = (r"(?:on|about|explaining|covering|introducing|regarding|of|to|that\s+explains|explaining|for\s+learning|"
            r"on\s+the\s+topic\s+of|on\s+the\s+subject\s+of|:|-|–|—|"
            r"sur|à\s+propos\s+de|au\s+sujet\s+de|concernant|de|d['’]|du|des|qui\s+explique|expliquant|pour\s+expliquer|"
            r"sobre|acerca\s+de|del|que\s+explique|explicando|para\s+explicar|"
            r"über|zu|zum|zur|von|vom|zu\s+dem\s+thema|zum\s+thema)")
_ADJS = rf"(?:(?:[\w'’-]+|{_B})[\s{_B},]+){{0,3}}?"  # "a short, fun ... video": only after an article or a verb
_FRAME = re.compile(
    rf"^[\s{_B},;]*(?:(?:(?:{_VERBS})[\s{_B}]+)?{_ARTICLE}[\s{_B},]+{_ADJS}|(?:{_VERBS})[\s{_B}]+{_ADJS})?"
    rf"(?:{_KIND})(?:(?:[\s{_B}]+(?:[\w'’-]+|{_B})){{0,2}}?[\s{_B}]+{_CONNECT}(?=[\s{_B}])|[\s{_B}]*:|[\s{_B}]*$)",
    re.IGNORECASE,
)
_EXPLAIN = re.compile(
    rf"^[\s{_B},;]*(?:please\s+|can\s+you\s+|could\s+you\s+|bitte\s+)?(?:explain|teach(?:\s+(?:me|us))?(?:\s+about)?|tell\s+"
    rf"(?:me|us)\s+about|show\s+(?:me|us)|help\s+me\s+understand|walk\s+me\s+through|break\s+down|describe|"
    rf"introduce|i\s+(?:want|would\s+like|'d\s+like)\s+to\s+(?:learn|know|understand)(?:\s+(?:more\s+)?about)?|"
    rf"i\s+(?:'d|would)\s+love\s+to\s+learn(?:\s+about)?|"
    rf"explique(?:z)?(?:[\s-]*(?:moi|nous))?|présente(?:[\s-]*moi)?|raconte(?:[\s-]*moi)?|"
    rf"explica(?:me)?|explícame|explícanos|enséñame|cuéntame|"
    rf"erkläre?(?:\s+(?:mir|uns))?|erklär(?:\s+(?:mir|uns))?|zeige?(?:\s+(?:mir|uns))?)"
    rf"(?:[\s{_B}]+(?:about|ce\s+qu['’]est|lo\s+que\s+es))?(?=[\s{_B}])",
    re.IGNORECASE,
)
_TRAILING_VERB = re.compile(r"[\s\x00]+(?:machen|erstellen|erklären|erzeugen|generieren|bitte|please|thanks|"
                            r"(?:simply\s+|clearly\s+)?explained|(?:einfach\s+)?erklärt|expliquée?s?|"
                            r"explicad[oa]s?|"
                            r"thank\s+you|merci|gracias|danke|s['’]il\s+te\s+pla[iî]t|s['’]il\s+vous\s+pla[iî]t|"
                            r"por\s+favor)[\s\x00?!.]*$", re.IGNORECASE)
_EDGE_WORDS = re.compile(
    r"^(?:and|et|y|und|or|ou|o|oder|with|avec|con|mit|please|bitte|on|about|sur|sobre|über|zu|of|de|for|pour|para|"
    r"für|in|en|auf|that|which|so|-|–|—|:)$",
    re.IGNORECASE,
)

_PROMPT_LANGS = {
    "fr": {"une", "un", "sur", "vidéo", "leçon", "pour", "les", "des", "la", "le", "du", "explique", "fais", "crée",
           "secondes", "enfants", "élèves", "ans", "et", "avec", "sans", "est", "qu'est-ce", "comment", "pourquoi",
           "au", "aux", "sujet", "cours", "moi", "fonctionne"},
    "es": {"un", "una", "sobre", "vídeo", "lección", "para", "los", "las", "el", "niños", "años", "explica", "haz",
           "hazme", "crea", "minutos", "segundos", "con", "sin", "qué", "cómo", "del", "por", "clase", "funciona",
           "explícame", "y"},
    "de": {"ein", "eine", "einen", "über", "lektion", "für", "die", "der", "das", "kinder", "jahre", "erkläre",
           "mach", "erstelle", "minuten", "sekunden", "mit", "ohne", "und", "wie", "was", "ist", "zum", "zur",
           "funktioniert", "bitte", "mir", "im", "jährige", "schüler", "warum"},
    "en": {"a", "an", "the", "on", "about", "for", "lesson", "make", "create", "explain", "minutes", "seconds",
           "kids", "with", "and", "how", "what", "is", "of", "why", "does", "work", "works", "me", "please", "video",
           "year", "old", "olds", "in", "to"},
}
_ACCENT_HINT = {"fr": "éèêçàùœ", "es": "ñ¿¡áíóú", "de": "äöüß"}


def _number(text: str) -> float:
    t = " ".join(text.lower().split())
    half = t.endswith("½")
    t = t.rstrip("½ ").strip()
    if not t:
        return 0.5 if half else math.nan
    value = float(t.replace(",", ".")) if t[0].isdigit() else float(_NUMBERS.get(t, math.nan))
    return value + (0.5 if half else 0.0)


def _take(text: str, match: re.Match[str]) -> str:
    return text[: match.start()] + f" {_B} " + text[match.end():]


def _duration(text: str) -> tuple[str, float | None, str]:
    """(text without it, minutes, the words that said it)."""
    for pattern, minutes in _DURATION_IDIOMS:
        m = re.search(rf"(?<![\w-])(?:{pattern})(?![\w-])", text, re.IGNORECASE)
        if m:
            return _take(text, m), minutes, m.group(0).strip()
    for m in _DURATION.finditer(text):
        if _NOT_A_LENGTH_BEFORE.search(text[: m.start()]) or _NOT_A_LENGTH_AFTER.match(text[m.end():]):
            continue
        n1 = _number(m.group("n1"))
        n2 = _number(m.group("n2")) if m.group("n2") else None
        if math.isnan(n1) or (n2 is not None and math.isnan(n2)):
            continue
        value = (n1 + n2) / 2 if n2 is not None and n2 > n1 else n1
        if m.group("half1") or m.group("half2"):
            value += 0.5
        unit = m.group("unit").lower()
        if re.fullmatch(_SEC_UNIT, unit, re.IGNORECASE):
            value /= 60
        elif re.fullmatch(_HOUR_UNIT, unit, re.IGNORECASE):
            value *= 60
        return _take(text, m), round(value, 2), m.group(0).strip()
    return text, None, ""


def _language(text: str) -> tuple[str, str | None]:
    m = _LANGUAGE.search(text)
    if not m:
        return text, None
    name = (m.group("name") or m.group("name2") or m.group("name3") or "deutsch").lower()
    return _take(text, m), _LANGUAGES[name]


def _voice(text: str) -> tuple[str, str, str]:
    """(text without it, the voice hint, a voice name given outright)."""
    hints: list[str] = []
    name = ""
    while m := _VOICE.search(text):
        if m.group("name"):
            name = m.group("name")
        elif m.group("who"):
            hints.append("female" if m.group("who").lower() in ("woman", "female") else "male")
        else:
            noun = (m.group("noun") or m.group("noun2")).lower()
            mods = " ".join(re.sub(r"\b(?:and|et|y|und)\b|,", " ", m.group("mods") or m.group("mods2")).split())
            gender = {"woman": "female", "femme": "female", "mujer": "female", "frau": "female",
                      "man": "male", "homme": "male", "hombre": "male", "mann": "male"}.get(noun)
            accent = "accent" if noun in ("accent", "acento", "akzent") else ""
            hints.append(" ".join(filter(None, [mods, gender or accent])))
        text = _take(text, m)
    return text, ", ".join(hints), name


def _accent_language(voice_hint: str, language: str | None) -> str | None:
    """A regional code from an accent hint ('British voice' -> en-GB), when it fits the language."""
    for word in voice_hint.lower().replace(",", " ").split():
        code = _ACCENTS.get(word)
        if code and (language is None or code.split("-")[0] == language.split("-")[0]):
            return code
    return None


def _tone(text: str) -> tuple[str, str]:
    tones: list[str] = []
    while m := _TONE.search(text):
        found = next(g for g in (m.group("t1"), m.group("t2"), m.group("t3"), m.group("t4")) if g)
        found = " ".join(re.sub(r",", " ", found).split())
        tones.append("with humour" if found.lower() in ("humour", "humor", "jokes") else
                     f"like a {found}" if m.group("t4") else found)
        text = _take(text, m)
    while m := _TONE_ADJ.search(text):  # "a fun video on ...", "ein lustiges Video über ..."
        tones.append(m.group("t"))
        text = text[: m.start()] + text[m.end():]
    return text, ", ".join(dict.fromkeys(tones))


def _audience(text: str) -> tuple[str, str | None]:
    m = _AUDIENCE.search(text)
    if m:
        aud = " ".join(m.group("aud").split())
        aud = re.sub(r"^(?:my|our|a|an|the|des|les|mes|nos|unos|unas|los|las|mis|die|meine|unsere|eine|einer)\s+",
                     "", aud, flags=re.IGNORECASE)
        aud = re.sub(r"^de\s+(?=\d)", "", aud)
        return _take(text, m), aud.rstrip(" -")
    m = _AUDIENCE_ADJ.search(text)
    if m:
        word = (m.group("aud") or m.group("aud2")).lower()
        plural = {"child": "children", "children": "children", "family": "families", "kid": "kids"}.get(
            word, word + "s"
        )
        return text[: m.start()] + text[m.end():], plural
    return text, None


def _aspect(text: str) -> tuple[str, str | None, bool]:
    """(text without it, aspect, whether the prompt asked for a 'short')."""
    for aspect, platform in _PLATFORMS:
        m = re.search(platform, text, re.IGNORECASE)
        if m:
            short = bool(re.search(r"short|tiktok|reel", m.group(0), re.IGNORECASE))
            if short and not re.match(r"(?:for|on|as|pour|para|für|als)\s", m.group(0), re.IGNORECASE):
                return text[: m.start()] + " video " + text[m.end():], aspect, short  # "a TikTok about X"
            return _take(text, m), aspect, short
    m = _SHORT_NOUN.search(text)
    if m:
        return text[: m.start()] + " a video " + text[m.end():], "9:16", True  # "make a short on X"
    for aspect, words in _SHAPES:
        shape = rf"(?<![\w-])(?:{words})(?![\w-])"
        patterns = [
            rf"(?:in|en|im|au|as\s+a|as|format|make\s+it|en\s+formato|im\s+format)\s+(?:a\s+|le\s+|el\s+)?"
            rf"(?:{shape})(?:\s+{_SHAPE_NOUN})?",
            rf"{shape}(?:\s+{_SHAPE_NOUN})?(?=(?:[\s{_B}-]+(?:[\w-]+|{_B})){{0,2}}?[\s{_B}-]+(?:{_KIND})\b)",
            rf"(?<=\s)(?:{shape})(?=\s*(?:$|[,.;!?{_B}]|\s(?:on|about|sur|sobre|über|please|for|pour|para|für)\b))",
            rf"(?:{shape})(?:\s+{_SHAPE_NOUN})",
            rf"{_SHAPE_NOUN}\s+(?:{shape})",
        ]
        for p in patterns:
            m = re.search(p, text, re.IGNORECASE)
            if m:
                return _take(text, m), aspect, False
        m = re.search(rf"(?<![\w-])(?:{_KIND})\s+(?P<shape>{shape})", text, re.IGNORECASE)  # "une vidéo verticale"
        if m:
            return text[: m.start("shape")] + f" {_B} " + text[m.end("shape"):], aspect, False
    return text, None, False


def _style(text: str) -> tuple[str, str]:
    notes: list[str] = []
    while m := _STYLE.search(text):
        notes.append(" ".join(m.group("s").split()).strip(" -"))
        text = text[: m.start("s")] + f" {_B} " + text[m.end("s"):]
    return text, "; ".join(n for n in notes if n)


def prompt_language(prompt: str) -> str | None:
    """The language a prompt is written in (fr, es, de), when its words say so clearly; None for English."""
    words = re.findall(r"[\w'’]+", prompt.lower())
    scores = {lang: len(set(words) & vocab) for lang, vocab in _PROMPT_LANGS.items()}
    for lang, chars in _ACCENT_HINT.items():
        scores[lang] += 2 * any(c in prompt.lower() for c in chars)
    best = max(("fr", "es", "de"), key=lambda k: scores[k])
    if scores[best] >= 2 and scores[best] > scores["en"] and sorted(scores.values())[-2] < scores[best]:
        return best
    return None


def _clean_topic(text: str) -> tuple[str, list[str]]:
    """(the topic, the other pieces left over) from what the patterns did not take."""
    text = _TRAILING_VERB.sub("", text)
    framed = False
    for frame in (_FRAME, _EXPLAIN):  # "make a video: explain X"
        m = frame.match(text)
        if m and m.end():
            text, framed = text[m.end():], True
    segments = [s.strip() for s in re.split(rf"[{_B},;]|\.(?:\s|$)|!|(?<=\?)\s", text)]
    segments = [s for s in (_strip_edges(_TRAILING_VERB.sub("", s)) for s in segments) if s]
    segments = [s for s in segments if not ((m := _FRAME.match(s)) and m.end() == len(s))]  # "Un video"
    topic = segments[0] if segments else ""
    topic = topic.rstrip("?").rstrip() if framed else topic  # "Can you make a video on X?" asks; X does not
    return topic, segments[1:]


def _strip_edges(segment: str) -> str:
    words = segment.split()
    while words and (_EDGE_WORDS.match(words[0]) or re.fullmatch(r"[\W_]+", words[0])):
        words.pop(0)
    while words and (_EDGE_WORDS.match(words[-1].rstrip("?")) or re.fullmatch(r"[\W_]+", words[-1])):
        if words[-1].endswith("?") and len(words) > 1:
            words[-2] += "?"
        words.pop()
    text = " ".join(words).strip(" \"'“”«»")
    return (
        "" if re.fullmatch(r"(?:a|an|the|un|une|una|el|la|le|les|los|las|ein|eine|der|die|das)?", text, re.I) else text
    )


def _unsure(topic: str, leftovers: list[str]) -> list[str]:
    reasons = []
    n = len(topic.split())
    if not topic:
        reasons.append("no topic found")
    elif n > 10:
        reasons.append(f"the topic left after the patterns is long ({n} words)")
    if topic and re.search(r"\b(?:videos?|vidéo|vídeo|lessons?|leçon|lección|lektion|explainer|minutes?|seconds?|"
                           r"minutos?|minuten|please|bitte)\b", topic, re.IGNORECASE):
        reasons.append(f"the topic still holds request words ({topic!r})")
    if topic and re.search(r"\b(?:for|with|pour|para|für|avec|con|mit)\b", topic, re.IGNORECASE):
        reasons.append(f"the topic may hold an audience or a note ({topic!r})")
    if leftovers:
        reasons.append("words not understood: " + "; ".join(repr(x) for x in leftovers[:3]))
    return reasons


def read_offline(prompt: str) -> tuple[Reading, list[str]]:
    """Read a prompt with patterns only; returns the reading and why it may be unsure (empty: sure)."""
    text = unicodedata.normalize("NFC", " ".join(prompt.split()))
    if len(text) > MAX_PROMPT:
        raise ConfigError(f"the prompt is {len(text)} characters long; keep it under {MAX_PROMPT} (a sentence or two, "
                          "not a text)")
    text, minutes, _ = _duration(text)
    text, voice_hint, voice_name = _voice(text)
    text, language = _language(text)
    text, tone = _tone(text)
    text, audience = _audience(text)
    text, aspect, short = _aspect(text)
    text, style = _style(text)
    if minutes is None and (short or _SHORT_WORDS.search(text)):
        minutes = 1.0
        text = _SHORT_WORDS.sub(" ", text)
    if language is None:
        language = prompt_language(prompt)
    accent = _accent_language(voice_hint, language)
    if accent and (language is None or "-" not in language):
        language = accent
    topic_text, leftovers = _clean_topic(text)
    reading = Reading(topic=topic_text, minutes=minutes, audience=audience, language=language, aspect=aspect,
                      voice=voice_name or voice_hint, tone=tone, style=style)
    return reading, _unsure(topic_text, leftovers)


# =========================================================================== the LLM step


async def read_with_llm(llm: Any, prompt: str, offline: Reading | None = None) -> Reading:
    """One structured LLM call reading the prompt (what the offline patterns found is shown as a hint)."""

    hint = offline.model_dump_json(exclude_defaults=False) if offline is not None else "(none)"
    system, user = prompts.messages("understand", prompt=prompt, offline=hint)
    return await llm.structured([Message("system", system), Message("user", user)], Reading)


def merge(offline: Reading, llm: Reading) -> Reading:
    """The LLM's reading where the patterns found nothing; the patterns' where they did (they are exact)."""
    out = {}
    for name in FIELDS:
        mine, theirs = getattr(offline, name), getattr(llm, name)
        if name == "topic":
            out[name] = " ".join((theirs or "").split()) or mine
        elif name in ("style", "tone", "voice"):
            out[name] = mine or theirs or ""
        else:
            out[name] = mine if mine not in (None, "") else theirs
    return Reading(**out)


# =========================================================================== reading -> request


def _flag_text(name: str, value: Any) -> str:
    return f"--{name} {value:g}" if isinstance(value, float) else f"--{name} {value}"


def _check_minutes(reading: Reading, prompt: str) -> None:
    m = reading.minutes
    if m is not None and not (MIN_MINUTES <= m <= MAX_MINUTES):
        said = f"{m * 60:g} seconds" if m < 1 else f"{m:g} minutes"
        raise ConfigError(
            f"the prompt {prompt!r} asks for {said}; a lesson is {MIN_MINUTES:g} to {MAX_MINUTES:g} minutes long: "
            "change the prompt or pass --minutes"
        )


def resolve(prompt: str, reading: Reading, flags: dict[str, Any] | None = None, *, via: Via = "offline",
            unsure: list[str] | None = None) -> Understanding:
    """The request from a reading and explicit flags (which win; each disagreement becomes a conflict).

    Raises MissingTopic when neither the prompt nor the flags give a topic.
    """
    flags = {k: v for k, v in (flags or {}).items() if v not in (None, "")}
    conflicts = []
    for name in ("minutes", "audience", "language", "aspect", "voice"):
        said = getattr(reading, name)
        if name in flags and said not in (None, "") and str(flags[name]).lower() != str(said).lower():
            if name == "voice" and not re.fullmatch(r"[a-z]{2,3}-[A-Z]{2}-\w+|[\w-]+:[\w-]+", said):
                continue  # a hint ("female") does not conflict with a voice chosen by name
            conflicts.append(f"{_flag_text(name, flags[name])} wins over the prompt's {said!r}"
                             if name != "minutes" else f"{_flag_text(name, flags[name])} wins over the prompt's "
                             f"{said:g} min")
    if "topic" in flags and reading.topic and flags["topic"] != reading.topic:
        conflicts.append(f"the topic {flags['topic']!r} wins over the prompt's {reading.topic!r}")
    understanding = Understanding(prompt=prompt, reading=reading, via=via, unsure=list(unsure or []), flags=flags,
                                  conflicts=conflicts)
    topic = flags.get("topic") or reading.topic
    if not topic:
        if not prompt.strip():
            raise MissingTopic('the topic is empty; give one, e.g. lessonforge make "photosynthesis"', understanding)
        raise MissingTopic(
            f"the prompt {prompt!r} does not say what the lesson should teach (it says: {describe_reading(reading)}); "
            'name the topic, e.g. "a 2-minute video on photosynthesis"', understanding)
    if "minutes" not in flags:
        _check_minutes(reading, prompt)
    fields: dict[str, Any] = {name: getattr(reading, name) for name in ("minutes", "audience", "language", "aspect")}
    fields = {k: (v if v not in (None, "") else DEFAULTS[k]) for k, v in fields.items()}
    voice_name = reading.voice if re.fullmatch(r"[a-z]{2,3}-[A-Z]{2}-\w+", reading.voice) else ""
    fields["voice"] = voice_name
    fields["style"] = style_notes(reading)
    fields.update({k: v for k, v in flags.items() if k != "topic"})
    understanding.request = make_request(topic=topic, **fields)
    return understanding


def style_notes(reading: Reading) -> str:
    """What the writer is told about tone and style ('' when the prompt said nothing about them)."""
    parts = [f"tone: {reading.tone}"] * bool(reading.tone) + [reading.style] * bool(reading.style)
    return "; ".join(parts)


def _wants_llm(mode: ParseMode, unsure: list[str], llm: Any) -> bool:
    return mode == "llm" or (mode == "auto" and bool(unsure) and llm is not None)


async def understand(prompt: str, flags: dict[str, Any] | None = None, *, llm: Any = None,
                     mode: ParseMode = "auto") -> Understanding:
    """Read ``prompt`` (offline; with ``llm`` when the patterns are unsure, or always with mode 'llm').

    In 'auto' mode an LLM that fails leaves the offline reading standing (noted in ``unsure``); in
    'llm' mode its error is raised.
    """
    if mode not in ("auto", "offline", "llm"):
        raise ConfigError(f"--parse must be auto, offline or llm, got {mode!r}")
    reading, unsure = read_offline(prompt)
    via: Via = "offline"
    repairs: list[str] = []
    if _wants_llm(mode, unsure, llm) and prompt.strip():
        if llm is None:
            raise ConfigError(
                "--parse llm needs an LLM; pass --llm BACKEND:MODEL or set OPENAI_API_KEY / OPENAI_BASE_URL"
            )
        try:
            answer = await read_with_llm(llm, prompt, reading)
            reading, via, repairs = merge(reading, answer), "llm", [f"the LLM's reading: {r}" for r in answer.repairs]
        except LessonForgeError as err:
            if mode == "llm":
                raise
            unsure = [*unsure, f"the LLM could not read the prompt ({err}); the offline reading stands"]
    understanding = resolve(prompt, reading, flags, via=via, unsure=unsure)
    return understanding.model_copy(update={"notes": repairs}) if repairs else understanding


def correct(understanding: Understanding, text: str) -> Understanding:
    """Apply a user's correction: 'field: value' pairs ('topic: tides; minutes: 3') or a phrase read like a
    prompt ('in Spanish, 3 minutes'), whose recognised parts replace the old ones."""
    reading = understanding.reading.model_copy()
    pairs = re.findall(r"(topic|minutes|audience|language|aspect|voice|tone|style)\s*[:=]\s*([^;\n]+)", text, re.I)
    if pairs:
        values: dict[str, Any] = {}
        for key, value in pairs:
            value = value.strip()
            if key.lower() == "minutes":
                try:
                    values["minutes"] = float(value.replace(",", "."))
                except ValueError:
                    raise ConfigError(f"minutes: {value!r} is not a number; write e.g. 'minutes: 3'") from None
            else:
                values[key.lower()] = value
        reading = reading.model_copy(update=values)
    else:
        found, _ = read_offline(text)
        update = {k: v for k, v in found.model_dump().items() if v not in (None, "")}
        if "language" in update and prompt_language(text) == update["language"] and not re.search(
                _LANGUAGE.pattern, text, re.IGNORECASE):
            update.pop("language")  # a correction written in French is not a request for French
        reading = reading.model_copy(update=update)
    flags = {k: v for k, v in understanding.flags.items() if k not in {k.lower() for k, _ in pairs}}
    if any(k.lower() == "topic" for k, _ in pairs) or (not pairs and read_offline(text)[0].topic):
        flags.pop("topic", None)
    return resolve(understanding.prompt, reading, flags, via=understanding.via, unsure=understanding.unsure)


# =========================================================================== voice hints

_GENDER = {"female": "female", "woman": "female", "féminine": "female", "feminine": "female", "femenina": "female",
           "weibliche": "female", "weiblichen": "female", "weiblicher": "female", "femme": "female", "mujer": "female",
           "male": "male", "man": "male", "masculine": "male", "masculina": "male", "männliche": "male",
           "masculin": "male", "masculino": "male", "homme": "male", "hombre": "male",
           "männlichen": "male", "männlicher": "male"}


def hinted_gender(hint: str) -> str:
    """'female', 'male' or '' from a voice hint ('a calm female voice' -> 'female')."""
    return next((_GENDER[w] for w in re.findall(r"[\w'’]+", hint.lower()) if w in _GENDER), "")


def pick_voice(voices: list[Any], language: str, gender: str) -> str:
    """The first voice of ``gender`` for ``language`` (its exact region first: en-GB before en-US); '' if none."""
    lang = language.lower()
    fits = [v for v in voices if (v.gender or "").lower() == gender and v.language.lower().replace("_", "-")
            .startswith(lang.split("-")[0])]
    fits.sort(key=lambda v: v.language.lower().replace("_", "-") != lang)
    return fits[0].name if fits else ""


# =========================================================================== prompt -> lesson

OnUnderstood = Callable[[Understanding], Understanding | Awaitable[Understanding]]
OnMissing = Callable[[MissingTopic], str | Awaitable[str]]


def understood_event(understanding: Understanding) -> dict[str, Any]:
    """The progress event that says how a prompt was read."""
    return {"stage": "understood", "message": understanding.summary(),
            "data": understanding.model_dump(mode="json", exclude={"request"})}


