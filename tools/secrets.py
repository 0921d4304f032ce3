"""Keeping secrets out of what users see: API keys are replaced by *** in messages, logs and files.

Light on purpose (no client libraries): the CLI scrubs every message it prints, errors included, and
an argument error must not wait for an HTTP client to import.
"""

from __future__ import annotations

import os
import re

# Environment variables that hold secrets (their values never reach a log, a manifest or an error).
SECRET_VARS = ("OPENAI_API_KEY",)


def scrub_environment(text: str) -> str:
    """``text`` with the API keys set in the environment replaced by *** (for anything shown to a user)."""
    return scrub_secrets(text, *(os.environ.get(v) for v in SECRET_VARS))


def scrub_secrets(text: str, *secrets: str | None) -> str:
    """``text`` with every whole occurrence of each secret replaced by ***.

    Only whole occurrences (not inside a longer word) are replaced, so a short key such as "local"
    does not garble the rest of a message.
    """
    for secret in secrets:
        if secret:
            text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", "***", text)
    return text
