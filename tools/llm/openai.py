"""LLM backend for OpenAI and every server that speaks its chat completions API.

``openai:gpt-6-luna`` (the default, see `lessonforge.tools.defaults`) talks to api.openai.com with
``OPENAI_API_KEY``; with ``OPENAI_BASE_URL`` (or ``base_url``) it talks to a local server instead —
Ollama (http://localhost:11434/v1), vLLM, llama.cpp's server, LM Studio — which usually needs no key.

``structured`` asks for JSON-schema output (strict), validates it with the pydantic model and,
on a validation error, sends the error back and asks again (bounded by ``max_repairs``). Transport
retries (429, 5xx, timeouts; ``Retry-After`` honoured) are the ``openai`` client's own.

The API key never appears in a raised message or a log line: every text that leaves this module
is scrubbed of it.
"""

from __future__ import annotations

import logging
import os
import re
from copy import deepcopy
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import openai
from pydantic import BaseModel, ValidationError

from lessonforge.tools.base import ConfigError, LessonForgeError, LLMBackend, LLMError, Message, ProviderError, T
from lessonforge.tools.cached import PerLoop
from lessonforge.tools.defaults import OPENAI_LLM, OPENAI_LLM_STRONGER, retired_hint
from lessonforge.tools.openai_errors import Advice, auth_message, network_cause, status_detail, translate
from lessonforge.tools.registry import BackendOptions
from lessonforge.tools.secrets import SECRET_VARS, scrub_environment, scrub_secrets  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)

DEFAULT_MODEL = OPENAI_LLM
OPENAI_URL = "https://api.openai.com/v1"
NO_KEY = "not-needed"  # local servers ignore the key, the client insists on one
CHECK_TIMEOUT_S = 5.0
_MAX_ERRORS_SHOWN = 6


@dataclass
class UsageTotals:
    """Running totals over every chat completion this backend received (repairs included)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


# --------------------------------------------------------------------------- strict JSON schema


def strict_json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's full JSON schema in strict form: closed objects, every property required, unions as
    ``anyOf`` of closed objects told apart by a one-value ``enum`` on ``kind`` (no ``oneOf`` or
    ``discriminator``, which not every constrained decoder reads). Lengths (``maxLength``) stay: a local
    decoder enforces them. :func:`openai_json_schema` is the subset OpenAI's strict mode accepts."""
    root = model.model_json_schema()
    return _strictify(root, root)


# OpenAI's strict structured outputs accept these keywords (and reject a schema with any other);
# string lengths are not among them, so a length lives in the field's description and is repaired
# locally (lessonforge.tools.contract) when a reply runs over.
OPENAI_KEYWORDS = frozenset({
    "type", "properties", "required", "additionalProperties", "items", "anyOf", "enum", "const", "description",
    "title", "$ref", "$defs", "minItems", "maxItems", "pattern", "format", "minimum", "maximum",
    "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
})
OPENAI_MAX_DEPTH = 10
OPENAI_MAX_PROPERTIES = 5000
OPENAI_MAX_ENUM_VALUES = 1000


def openai_json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The strict schema with every keyword OpenAI's strict mode does not accept left out."""

    def keep(node: Any) -> Any:
        if isinstance(node, list):
            return [keep(item) for item in node]
        if not isinstance(node, dict):
            return node
        out = {}
        for key, value in node.items():
            if key in ("properties", "$defs"):
                out[key] = {k: keep(v) for k, v in value.items()}
            elif key in OPENAI_KEYWORDS:
                out[key] = keep(value)
        return out

    return keep(strict_json_schema(model))


def openai_schema_problems(schema: dict[str, Any]) -> list[str]:
    """Where ``schema`` breaks the rules of OpenAI's strict subset ([] when it keeps them all)."""
    problems: list[str] = []
    counts = {"properties": 0, "enum": 0}
    if schema.get("type") != "object" or "anyOf" in schema:
        problems.append("the root must be an object, not a union")

    def walk(node: Any, where: str, depth: int) -> None:
        if not isinstance(node, dict):
            return
        for key in node:
            if key not in OPENAI_KEYWORDS:
                problems.append(f"{where}: keyword {key!r} is not supported")
        if "$ref" in node and len(node) > 1:
            problems.append(f"{where}: $ref has sibling keys {sorted(set(node) - {'$ref'})}")
        if node.get("type") == "object" or "properties" in node:
            props = node.get("properties", {})
            counts["properties"] += len(props)
            if node.get("additionalProperties") is not False:
                problems.append(f"{where}: additionalProperties must be false")
            if sorted(node.get("required", [])) != sorted(props):
                problems.append(f"{where}: every property must be required")
            for k, v in props.items():
                walk(v, f"{where}.{k}", depth + 1)
        if depth > OPENAI_MAX_DEPTH:
            problems.append(f"{where}: nested {depth} levels deep (at most {OPENAI_MAX_DEPTH})")
        counts["enum"] += len(node.get("enum", []))
        if "items" in node:
            walk(node["items"], f"{where}[]", depth)
        for k, branch in enumerate(node.get("anyOf", [])):
            walk(branch, f"{where}|{k}", depth)
        for k, v in node.get("$defs", {}).items():
            walk(v, f"$defs.{k}", 1)

    walk(schema, "$", 1)
    if counts["properties"] > OPENAI_MAX_PROPERTIES:
        problems.append(f"{counts['properties']} properties (at most {OPENAI_MAX_PROPERTIES})")
    if counts["enum"] > OPENAI_MAX_ENUM_VALUES:
        problems.append(f"{counts['enum']} enum values (at most {OPENAI_MAX_ENUM_VALUES})")
    return problems


def _strictify(node: Any, root: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_strictify(item, root) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node and len(node) > 1:  # strict mode rejects keys beside $ref: inline the target
        target = _resolve_ref(root, node.pop("$ref"))
        node = {**target, **node}
    if isinstance(node.get("allOf"), list) and len(node["allOf"]) == 1:
        only = node.pop("allOf")[0]
        node = {**(_resolve_ref(root, only["$ref"]) if "$ref" in only else only), **node}
    if "oneOf" in node:  # a discriminated union: its branches exclude each other by their kind
        node["anyOf"] = node.pop("oneOf")
    node.pop("discriminator", None)
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if "default" in node and node["default"] is None:
        del node["default"]
    out = {key: _strictify(value, root) if key not in ("properties", "$defs") else value
           for key, value in node.items()}
    if isinstance(node.get("properties"), dict):
        out["properties"] = {k: _strictify(v, root) for k, v in node["properties"].items()}
        out["required"] = list(node["properties"])
    if isinstance(node.get("$defs"), dict):
        out["$defs"] = {k: _strictify(v, root) for k, v in node["$defs"].items()}
    if out.get("type") == "object":
        out["additionalProperties"] = False
    return out


def _resolve_ref(root: dict[str, Any], ref: str) -> dict[str, Any]:
    if not ref.startswith("#/"):
        raise ValueError(f"cannot resolve non-local $ref {ref!r}")
    node: Any = root
    for part in ref[2:].split("/"):
        node = node[part]
    return deepcopy(node)


def response_format(schema: type[BaseModel], kind: str = "json_schema") -> dict[str, Any]:
    """The ``response_format`` parameter asking for output that follows ``schema``.

    ``json_schema`` is OpenAI's strict structured output; ``json_object`` with a ``schema`` beside it
    is what llama.cpp's server constrains its output with (it refuses ``json_schema`` in some
    versions, see :data:`FORMATS`).
    """
    if kind == "json_object":  # llama.cpp's server turns the whole schema, lengths too, into a grammar
        return {"type": "json_object", "schema": strict_json_schema(schema)}
    name = re.sub(r"[^a-zA-Z0-9_-]", "_", schema.__name__)[:64] or "output"
    return {"type": "json_schema", "json_schema": {"name": name, "schema": openai_json_schema(schema), "strict": True}}


FORMATS = ("auto", "json_schema", "json_object")
# A server that refuses json_schema says so in a 400/422 naming the parameter (llama.cpp:
# '"response_format" must be one of "text" or "json_object", but got: json_schema').
_REFUSES_JSON_SCHEMA = re.compile(r"response_format|json_schema", re.IGNORECASE)


# --------------------------------------------------------------------------- helpers


def display_url(url: str) -> str:
    """The URL without any user:password part."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _strip_fence(text: str) -> str:
    """Unwrap a reply that is one Markdown code block (```json ... ```), as some local models send."""
    stripped = text.strip()
    if stripped.startswith("```") and stripped.endswith("```") and stripped.count("```") == 2:
        body = stripped[3:-3]
        first_line, newline, rest = body.partition("\n")
        tag = first_line.strip()
        if newline and (not tag or tag.isalnum()):  # "```json\n{...}\n```" or "```\n{...}\n```"
            return rest
        return body
    return text


def summarize_validation(err: ValidationError, limit: int = _MAX_ERRORS_SHOWN) -> str:
    """A short, model-readable list of what is wrong with a reply."""
    lines = []
    for item in err.errors(include_url=False)[:limit]:
        where = ".".join(str(p) for p in item.get("loc", ())) or "(root)"
        if item.get("type") == "json_invalid":
            lines.append(f"- not valid JSON: {item.get('msg', '')}")
        else:
            lines.append(f"- {where}: {item.get('msg', '')}")
    more = err.error_count() - limit
    if more > 0:
        lines.append(f"- ... and {more} more error(s)")
    return "\n".join(lines)


# --------------------------------------------------------------------------- the backend


class ServiceOptions(BackendOptions):
    """What every backend of an OpenAI-compatible service takes: the key, the server and the client's limits."""

    api_key: str | None = None
    base_url: str | None = None
    timeout_s: float = 120.0
    max_retries: int = 4


class OpenAILLM(LLMBackend):
    """Structured output from an OpenAI-compatible chat completions endpoint."""

    service = True  # check() reaches the server

    class Options(ServiceOptions):
        """What ``openai:`` takes (see the constructor)."""

        max_repairs: int = 2
        temperature: float | None = None
        response_format: str = "auto"

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout_s: float = 120.0,
        max_repairs: int = 2,
        max_retries: int = 4,
        temperature: float | None = None,
        response_format: str = "auto",
        role: str = "LLM",
        flag: str = "--llm",
        error: type[ProviderError] = LLMError,
    ) -> None:
        """``role``, ``flag`` and ``error`` serve other capabilities built on chat completions (the vision
        critic): its failures raise ``error``, and messages name it (``role``) and the CLI option and
        LESSONFORGE_ variable (``flag``) that choose another one. ``response_format`` is how output is
        constrained: ``json_schema`` (OpenAI, vLLM, Ollama), ``json_object`` with a schema (llama.cpp's
        server), or ``auto``: json_schema, switching to json_object for good if the server refuses it."""
        self.model = (model or "").strip() or DEFAULT_MODEL
        self.name = f"openai:{self.model}"
        self.role, self.flag, self.error = role, flag, error
        _check_number("timeout_s", timeout_s, minimum=0.0, exclusive=True)
        _check_number("max_repairs", max_repairs, minimum=0)
        _check_number("max_retries", max_retries, minimum=0)
        if temperature is not None:
            _check_number("temperature", temperature, minimum=0.0)
        if response_format not in FORMATS:
            raise ConfigError(f"OpenAILLM option response_format must be one of {', '.join(FORMATS)}, "
                              f"got {response_format!r}.")
        self.response_format = response_format
        key = (api_key if api_key is not None else os.environ.get("OPENAI_API_KEY", "")).strip() or None
        url = (base_url if base_url is not None else os.environ.get("OPENAI_BASE_URL", "")).strip() or None
        if key is None and url is None:
            raise ConfigError(
                f"No API key or server for the {role} {self.name}. Set OPENAI_API_KEY, or OPENAI_BASE_URL for a "
                "local server (Ollama http://localhost:11434/v1, vLLM, llama.cpp, LM Studio), or choose "
                f"another backend with {flag} / LESSONFORGE_{flag.lstrip('-').upper()}."
            )
        if url is not None and urlsplit(url).scheme not in ("http", "https"):
            raise ConfigError(
                f"OPENAI_BASE_URL / base_url {display_url(url)!r} is not an http(s) URL. "
                "Write it in full, e.g. http://localhost:11434/v1."
            )
        self._api_key = key
        self.base_url = (url or OPENAI_URL).rstrip("/")
        self.timeout_s = float(timeout_s)
        self.max_repairs = int(max_repairs)
        self.max_retries = int(max_retries)
        self.temperature = temperature
        self.usage = UsageTotals()
        self._clients = PerLoop(self._new_client)  # an httpx pool cannot be shared across loops

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAILLM(model={self.model!r}, base_url={display_url(self.base_url)!r})"

    # ----------------------------------------------------------------- client

    def _new_client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            api_key=self._api_key or NO_KEY,
            base_url=self.base_url,
            timeout=self.timeout_s,
            max_retries=self.max_retries,
        )

    async def _get_client(self) -> openai.AsyncOpenAI:
        return await self._clients.aget()

    async def aclose(self) -> None:
        """Close the HTTP connections of this loop's client (a later call opens new ones)."""
        client = self._clients.pop()
        if client is not None:
            await client.close()

    # ----------------------------------------------------------------- public API

    async def check(self) -> None:
        """Fail fast (ConfigError) when no server answers at the base URL or the key is rejected.

        GET /models with a short timeout and no retries. A 404 (servers without /models) or another
        HTTP error still proves a server is there, so it passes.
        """
        client = (await self._get_client()).with_options(timeout=CHECK_TIMEOUT_S, max_retries=0)
        url = display_url(self.base_url)
        try:
            page = await client.models.list()
        except openai.APITimeoutError:
            raise ConfigError(self._scrub(
                f"The {self.role} server at {url} did not answer within {CHECK_TIMEOUT_S:g} s. Start or restart "
                f"the server, or set OPENAI_BASE_URL/OPENAI_API_KEY/{self.flag} to one that answers."
            )) from None
        except openai.APIConnectionError as err:
            raise ConfigError(self._scrub(
                f"No {self.role} reachable at {url} ({network_cause(err)}). Start the server, or set "
                f"OPENAI_BASE_URL/OPENAI_API_KEY/{self.flag}."
            )) from None
        except openai.AuthenticationError as err:
            raise ConfigError(self._scrub(self._auth_message(err))) from None
        except openai.APIStatusError as err:
            log.info("LLM check: %s answered GET /models with HTTP %s; continuing", url, err.status_code)
            return
        ids = [m.id for m in page.data]
        if ids and self.model not in ids and f"{self.model}:latest" not in ids:
            replaced = retired_hint(self.model, self.flag)
            if replaced:  # not served, and known to be retired: say what replaces it before any work
                raise ConfigError(
                    self._scrub(f"The {self.role} server at {url} does not serve {self.model!r}. {replaced}")
                )
            log.warning("LLM check: model %r is not among the %d models %s lists", self.model, len(ids), url)

    async def structured(self, messages: list[Message], schema: type[T]) -> T:
        """Ask for a reply matching ``schema``; repair invalid replies up to ``max_repairs`` times."""
        base = [m.as_dict() for m in messages]
        convo = list(base)
        repairs = 0
        shortened = False
        while True:
            completion = await self._create(convo, schema)
            choice = self._first_choice(completion, schema)
            content = choice.message.content or ""
            if choice.message.refusal:
                raise self.error(self._scrub(
                    f"{self.name} refused to produce {schema.__name__}: {choice.message.refusal!r}. "
                    f"Rephrase the topic or instruction, or choose another model with {self.flag}."
                ))
            if choice.finish_reason == "content_filter":
                raise self.error(
                    f"{self.name}'s content filter stopped its {schema.__name__} reply. Rephrase the topic or "
                    f"instruction, or choose another model with {self.flag}."
                )
            if choice.finish_reason == "length":
                if shortened:
                    raise self.error(
                        f"{self.name} ran out of output tokens twice while writing {schema.__name__}. Raise the "
                        "server's max output tokens / context size (Ollama num_ctx, vLLM --max-model-len), or "
                        "ask for a shorter lesson (a shorter duration or fewer scenes)."
                    )
                shortened = True
                log.info("%s: %s reply cut off at the token limit; asking for a shorter one", self.name,
                         schema.__name__)
                convo = convo + [{"role": "user", "content": (
                    "Your previous reply was cut off at the output token limit. Answer again with the complete "
                    "JSON object, keeping every text field shorter.")}]
                continue
            result = self._validate(content, schema)
            if not isinstance(result, str):
                return result
            error = result
            if repairs >= self.max_repairs:
                raise self.error(self._scrub(
                    f"{self.name} did not return a valid {schema.__name__} after {repairs + 1} attempt(s); "
                    f"last error:\n{error}\nUse a stronger model (e.g. {self.flag} openai:{OPENAI_LLM_STRONGER}), "
                    "or check that the "
                    f"server at {display_url(self.base_url)} supports json_schema structured output."
                ))
            repairs += 1
            log.info("%s: invalid %s reply, repair %d/%d:\n%s", self.name, schema.__name__, repairs,
                     self.max_repairs, self._scrub(error))
            convo = convo + [
                {"role": "assistant", "content": content},
                {"role": "user", "content": (
                    f"Your reply is not a valid {schema.__name__} JSON object:\n{error}\n"
                    "Reply again with the corrected JSON object only: no prose, no code fences.")},
            ]

    # ----------------------------------------------------------------- internals

    def _validate(self, content: str, schema: type[T]) -> T | str:
        """The parsed object, or a short description of what is wrong with ``content``."""
        if not content.strip():
            return "- the reply was empty; it must be a JSON object"
        try:
            return schema.model_validate_json(_strip_fence(content))
        except ValidationError as err:
            return summarize_validation(err)

    def _first_choice(self, completion: Any, schema: type[BaseModel]) -> Any:
        choices = getattr(completion, "choices", None) or []
        if not choices or getattr(choices[0], "message", None) is None:
            raise self.error(
                f"{self.name} answered with no choices for {schema.__name__}. Check that "
                f"{display_url(self.base_url)} is an OpenAI-compatible chat completions server."
            )
        return choices[0]

    async def _create(self, convo: list[dict[str, str]], schema: type[BaseModel]) -> Any:
        kind = "json_object" if self.response_format == "json_object" else "json_schema"
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": convo,
            "response_format": response_format(schema, kind),
        }
        if self.temperature is not None:
            kwargs["temperature"] = self.temperature
        try:
            completion = await (await self._get_client()).chat.completions.create(**kwargs)
        except openai.APIStatusError as err:
            if not (self.response_format == "auto" and err.status_code in (400, 422)
                    and _REFUSES_JSON_SCHEMA.search(status_detail(err))):
                raise self._translate(err) from None  # the cause may carry the key: not chained
            log.info("%s refuses json_schema output (%s); asking for json_object with the schema from now on",
                     display_url(self.base_url), self._scrub(status_detail(err)))
            self.response_format = "json_object"
            return await self._create(convo, schema)
        except openai.OpenAIError as err:
            raise self._translate(err) from None  # the cause may carry the key: not chained
        self._add_usage(completion)
        return completion

    def _add_usage(self, completion: Any) -> None:
        self.usage.calls += 1
        usage = getattr(completion, "usage", None)
        if usage is not None:
            self.usage.prompt_tokens += int(getattr(usage, "prompt_tokens", 0) or 0)
            self.usage.completion_tokens += int(getattr(usage, "completion_tokens", 0) or 0)

    def _translate(self, err: openai.OpenAIError) -> LessonForgeError:
        url = display_url(self.base_url)
        schema_hint = isinstance(err, openai.APIStatusError) and err.status_code in (400, 422)
        advice = Advice(
            timeout="Raise timeout_s, use a smaller or faster model, or check the server's load.",
            connection=f"Start the {self.role} server, or correct OPENAI_BASE_URL / {self.flag}.",
            missing=f"does not know model {self.model!r}",
            not_found=(f"List the models it serves (GET {url}/models, or `ollama list`) and pass one as "
                       f"{self.flag} openai:MODEL; also check the base URL ends in /v1."),
            rate_limit="Wait and retry, check your quota, or raise max_retries.",
            refused=("The server may not support json_schema response_format; use one that does or another model."
                     if schema_hint else "Retry later, or check the server's logs."))
        return translate(err, name=self.name, url=url, scrub=self._scrub, timeout_s=self.timeout_s,
                         tries=self.max_retries + 1, flag=self.flag, error=self.error, model=self.model, advice=advice)

    def _auth_message(self, err: openai.APIStatusError) -> str:
        return auth_message(display_url(self.base_url), err)

    def _scrub(self, text: str) -> str:
        """``text`` with the API key (and the base URL's password, if any) replaced by ***."""
        return scrub_secrets(text, self._api_key, urlsplit(self.base_url).password)




def _check_number(name: str, value: float, *, minimum: float, exclusive: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"OpenAILLM option {name} must be a number, got {value!r}.")
    if value < minimum or (exclusive and value == minimum):
        bound = f"> {minimum:g}" if exclusive else f">= {minimum:g}"
        raise ConfigError(f"OpenAILLM option {name} must be {bound}, got {value!r}. Pass a value {bound}.")
