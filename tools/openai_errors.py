"""How the OpenAI client's errors read to the user, for every backend that speaks the OpenAI API.

One translation for the LLM, speech, pictures, clips and the vision critic: what the user must fix
(a rejected key, a model the server does not have, a refused model) is a ConfigError; a server that
is slow, out of reach, rate-limiting or failing is the backend's own error, or its ``unavailable``
error where a fallback can step in (a voice). Each backend adds only its advice. Every message is
scrubbed of the key and the URL's password; the client error is never chained (it may carry them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import openai

from lessonforge.tools.base import ConfigError, LessonForgeError
from lessonforge.tools.defaults import retired_hint


def status_detail(err: openai.APIStatusError) -> str:
    """The server's own words for an HTTP error, on one line, at most 300 characters."""
    body = err.body
    if isinstance(body, dict) and body.get("message"):
        text = str(body["message"])
    elif body:
        text = str(body)
    else:
        text = err.message
    text = " ".join(text.split())
    return text if len(text) <= 300 else text[:297] + "..."


def network_cause(err: BaseException) -> str:
    """The underlying network error's text (``Connection refused``...), or the error's own."""
    inner = err.__cause__ or err.__context__
    text = str(inner) if inner is not None and str(inner) else str(err)
    return " ".join(text.split())[:200] or type(err).__name__


def auth_message(url: str, err: openai.APIStatusError) -> str:
    """What a rejected API key reads as (unscrubbed: the caller scrubs it)."""
    return (f"{url} rejected the API key (HTTP {err.status_code}: {status_detail(err)}). "
            "Check OPENAI_API_KEY (or the api_key option): it must be a valid key for this server.")


@dataclass(frozen=True)
class Advice:
    """A backend's own words in its error messages: what to do about each kind of failure (None: the
    general advice, naming the backend's command-line flag)."""

    timeout: str = "Raise timeout_s, or retry."
    connection: str = "Check the network or OPENAI_BASE_URL."
    forbidden: str | None = None  # HTTP 403
    missing: str | None = None  # what an HTTP 404 means, after the URL ("does not serve openai:MODEL")
    not_found: str | None = None  # what to do about it
    rate_limit: str = "Wait and retry, or check your quota."
    server: str = "Retry later, or check the server's logs."  # HTTP 5xx
    refused: str | None = None  # any other HTTP error


def translate(err: openai.OpenAIError, *, name: str, url: str, scrub: Callable[[str], str], timeout_s: float,
              tries: int, flag: str, error: type[LessonForgeError], unavailable: type[LessonForgeError] | None = None,
              model: str | None = None, advice: Advice = Advice()) -> LessonForgeError:
    """``err`` from backend ``name`` (at ``url``, shown without secrets; ``tries`` attempts of ``timeout_s``
    each) as a ConfigError, ``unavailable`` (a server that is slow, unreachable, rate-limiting or failing;
    default ``error``) or ``error``. ``model`` names the model a 404 may be about (its replacement is named
    when it is retired)."""
    busy = unavailable or error
    if isinstance(err, openai.APITimeoutError):
        return busy(scrub(f"{name} at {url} gave no reply within {timeout_s:g} s (after {tries} attempt(s)). "
                          f"{advice.timeout}"))
    if isinstance(err, openai.APIConnectionError):
        return busy(scrub(f"Cannot reach {url} for {name}, or it dropped the connection ({network_cause(err)}). "
                          f"{advice.connection}"))
    if not isinstance(err, openai.APIStatusError):
        return error(scrub(f"{name} failed: {type(err).__name__}: {err}. Check that {url} is an OpenAI-compatible "
                           "server."))
    code, detail = err.status_code, status_detail(err)
    if isinstance(err, openai.AuthenticationError):
        return ConfigError(scrub(auth_message(url, err)))
    if isinstance(err, openai.PermissionDeniedError):
        fix = advice.forbidden or (f"Check that OPENAI_API_KEY may use this model, or choose another backend "
                                   f"with {flag}.")
        return ConfigError(scrub(f"{url} refused {name} (HTTP {code}: {detail}). {fix}"))
    if isinstance(err, openai.NotFoundError):
        replaced = retired_hint(model, flag) if model else ""
        fix = advice.not_found or (f"Check the model's name and that the base URL ends in /v1, or choose another "
                                   f"backend with {flag}.")
        return ConfigError(scrub(f"{url} {advice.missing or f'does not serve {name}'} (HTTP {code}: {detail}). "
                                 + (f"{replaced} " if replaced else "") + fix))
    if isinstance(err, openai.RateLimitError):
        return busy(scrub(f"{url} kept rate-limiting {name} (after {tries} attempt(s); HTTP {code}: {detail}). "
                          f"{advice.rate_limit}"))
    if code >= 500:
        return busy(scrub(f"{url} failed to answer {name} (after {tries} attempt(s); HTTP {code}: {detail}). "
                          f"{advice.server}"))
    fix = advice.refused or f"Check the options given to {name}, or choose another backend with {flag}."
    return error(scrub(f"{url} refused {name}'s request (HTTP {code}: {detail}). {fix}"))


__all__ = ["Advice", "auth_message", "network_cause", "status_detail", "translate"]
