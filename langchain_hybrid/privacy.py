r"""Detectors of data that must not leave the machine, and redaction with placeholders.

A :class:`Detector` finds values of one kind in a text and reports where they are
(:class:`Detection`: the detector's name, the span and its placeholder), never the value
itself. The built-in detectors (:data:`BUILTIN_DETECTORS`) are:

============  ===============================================================================
name          what it finds
============  ===============================================================================
email         e-mail addresses (``name@example.com``)
phone         phone numbers with a ``+`` country code (8-15 digits), and North American
              numbers of 10 digits (``(415) 555-0132``, ``415-555-0132``, ``4155550132``)
credit_card   payment card numbers of 13-19 digits (spaces or dashes allowed) that pass
              the Luhn check; a 16-digit number failing it is not a card
us_ssn        US social security numbers written ``123-45-6789`` or ``123 45 6789``
              (area not 000, 666 or 9xx), or 9 digits right after "SSN" /
              "social security number"
iban          IBANs (``DE89 3704 0044 0532 0130 00``) whose mod-97 checksum holds
ip_address    IPv4 and IPv6 addresses that :mod:`ipaddress` accepts; a dotted quad after
              a version word ("version 1.2.3.4", "v1.2.3.4", "release", "build") is a
              version number, not an address
============  ===============================================================================

Add your own with a regular expression (:class:`RegexDetector`, saved in policy files),
a function (:class:`CallableDetector`, not saved), or Microsoft Presidio
(:class:`PresidioDetector`, ``pip install "langchain-hybrid[presidio]"``).

:func:`scan` runs detectors over a text, :func:`redact` replaces what they find by
placeholders such as ``[EMAIL]``, :func:`redact_message` does it to everything a chat
message sends to a provider (text blocks joined as the message's text joins them,
tool-call arguments), :func:`redact_value` to any runnable input, and
:func:`redact_inputs` / :func:`make_redactor` to LangSmith run inputs and outputs::

    import langsmith
    client = langsmith.Client(hide_inputs=redact_inputs, hide_outputs=redact_inputs)

Example:
    >>> text = "Mail jane.doe@example.com or call +44 20 7946 0958."
    >>> scan(text).detectors
    ('email', 'phone')
    >>> redact(text)
    'Mail [EMAIL] or call [PHONE].'
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import ipaddress
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from langchain_core.documents import Document
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.prompt_values import ChatPromptValue, PromptValue, StringPromptValue

from langchain_hybrid.errors import MissingDependencyError, PolicyError

__all__ = [
    "BUILTIN_DETECTORS",
    "DEFAULT_DETECTOR_NAMES",
    "CallableDetector",
    "Detection",
    "Detector",
    "Findings",
    "PresidioDetector",
    "RegexDetector",
    "builtin_detector",
    "default_detectors",
    "detector_from",
    "make_redactor",
    "message_texts",
    "redact",
    "redact_inputs",
    "redact_message",
    "redact_messages",
    "redact_value",
    "scan",
    "scan_messages",
]

_M = TypeVar("_M", bound=BaseMessage)


@dataclass(frozen=True)
class Detection:
    """Where one detector found one value: never the value itself.

    ``start``/``end`` index the scanned text (``text[start:end]`` is the value), so a
    caller that holds the text can redact it; the detection alone reveals nothing.

    Example:
        >>> Detection("email", 5, 25, "[EMAIL]")
        Detection(detector='email', start=5, end=25, placeholder='[EMAIL]')
    """

    detector: str
    start: int
    end: int
    placeholder: str


@dataclass(frozen=True)
class Findings:
    """What a scan found: the detections, and the names of the detectors that fired.

    Example:
        >>> found = scan("ip 10.0.0.1, ssn 123-45-6789")
        >>> found.detectors, bool(found), len(found.detections)
        (('ip_address', 'us_ssn'), True, 2)
    """

    detections: tuple[Detection, ...] = ()

    @property
    def detectors(self) -> tuple[str, ...]:
        """The names of the detectors that fired, sorted."""
        return tuple(sorted({d.detector for d in self.detections}))

    def __bool__(self) -> bool:
        return bool(self.detections)

    def __add__(self, other: Findings) -> Findings:
        return Findings(self.detections + other.detections)


class Detector(ABC):
    """Finds values of one kind in a text; ``name`` says which kind, in decisions and files.

    Subclasses implement :meth:`detect` and :meth:`to_config` (what a policy file stores).

    Example:
        >>> builtin_detector("email").detect("write to a@b.org")
        [Detection(detector='email', start=9, end=16, placeholder='[EMAIL]')]
    """

    name: str
    placeholder: str

    @abstractmethod
    def detect(self, text: str) -> list[Detection]:
        """Return where this detector finds values in ``text``."""

    @abstractmethod
    def to_config(self) -> str | dict[str, Any]:
        """Return what a policy file stores for this detector."""

    @property
    def serialisable(self) -> bool:
        """Whether a policy file can hold this detector (functions cannot)."""
        return True


# ---------------------------------------------------------------------------- validators


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _iban_ok(compact: str) -> bool:
    if not (15 <= len(compact) <= 34) or not compact[:2].isalpha() or not compact[2:4].isdigit():
        return False
    moved = compact[4:] + compact[:4]
    number = "".join(str(int(ch, 36)) for ch in moved)
    return int(number) % 97 == 1


def _ssn_ok(area: str, group: str, serial: str) -> bool:
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


# ---------------------------------------------------------------------------- built-ins


@dataclass(frozen=True)
class _Builtin(Detector):
    """A built-in detector: candidates by regular expression, then a validity check."""

    name: str
    placeholder: str
    pattern: re.Pattern[str] = field(repr=False)
    check: Callable[[re.Match[str]], tuple[int, int] | None] = field(repr=False)

    def detect(self, text: str) -> list[Detection]:
        """Return the validated matches of the pattern.

        Example:
            >>> builtin_detector("credit_card").detect("card 4111 1111 1111 1112")
            []
        """
        found: list[Detection] = []
        for match in self.pattern.finditer(text):
            span = self.check(match)
            if span is not None:
                found.append(Detection(self.name, span[0], span[1], self.placeholder))
        return found

    def to_config(self) -> str:
        """Return the detector's name (built-ins are stored by name).

        Example:
            >>> builtin_detector("iban").to_config()
            'iban'
        """
        return self.name


def _whole(match: re.Match[str]) -> tuple[int, int]:
    return match.span()


def _card(match: re.Match[str]) -> tuple[int, int] | None:
    digits = _digits(match.group())
    return match.span() if 13 <= len(digits) <= 19 and _luhn(digits) else None


def _phone(match: re.Match[str]) -> tuple[int, int] | None:
    text = match.group()
    digits = _digits(text)
    if text.startswith("+"):
        return match.span() if 8 <= len(digits) <= 15 else None
    return match.span() if len(digits) == 10 or (len(digits) == 11 and digits[0] == "1") else None


def _ssn(match: re.Match[str]) -> tuple[int, int] | None:
    if match.group("area"):
        ok = _ssn_ok(match.group("area"), match.group("group"), match.group("serial"))
        return match.span() if ok else None
    bare = match.group("bare")
    return match.span("bare") if _ssn_ok(bare[:3], bare[3:5], bare[5:]) else None


def _iban(match: re.Match[str]) -> tuple[int, int] | None:
    """Return the longest prefix of the candidate that is a valid IBAN (None: none is)."""
    text = match.group()
    ends = [i + 1 for i, ch in enumerate(text) if ch != " "]
    for end in reversed(ends):
        compact = text[:end].replace(" ", "").upper()
        if len(compact) < 15:
            break
        if _iban_ok(compact):
            return match.start(), match.start() + end
    return None


_VERSION_WORD = re.compile(r"(?i)(?:\b(?:version|ver|release|build|firmware|v)\.?\s*)$")


def _ip(match: re.Match[str]) -> tuple[int, int] | None:
    text = match.group()
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if address.version == 4:
        before = match.string[max(0, match.start() - 12) : match.start()]
        if _VERSION_WORD.search(before):
            return None
    return match.span()


_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9._%+-]+@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,}(?![\w-])"
)
_PHONE = re.compile(
    r"(?<![\w+])(?:"
    r"\+\d{1,3}(?:[ .-]?\(\d{1,4}\))?(?:[ .-]?\d{1,5}){1,5}"  # international, with +
    r"|(?:1[ .-]?)?(?:\(\d{3}\)|\d{3})[ .-]?\d{3}[ .-]?\d{4}"  # North American
    r")(?![\w-]|\.\d)"
)
_CARD = re.compile(r"(?<![\w.-])\d(?:[ -]?\d){12,18}(?![\w-]|\.\d)")
_SSN = re.compile(
    r"(?<![\w-])(?P<area>\d{3})(?P<sep>[- ])(?P<group>\d{2})(?P=sep)(?P<serial>\d{4})(?![\w-])"
    r"|(?i:\b(?:ssn|social security(?: number| no\.?)?)\b)\D{0,20}?(?<!\d)(?P<bare>\d{9})(?!\d)"
)
_IBAN = re.compile(r"(?<![\w])[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]){11,30}")
_IPV4 = r"(?:\d{1,3}\.){3}\d{1,3}"
_IP = re.compile(
    rf"(?<![\w.:])(?:{_IPV4}(?![\w]|\.\d)"
    rf"|(?=[0-9A-Fa-f:]*:[0-9A-Fa-f:]*:)(?:[0-9A-Fa-f]{{0,4}}:){{2,7}}(?:{_IPV4}|[0-9A-Fa-f]{{0,4}})"
    r"(?:%[\w.]+)?(?![\w:]))"
)

#: The built-in detectors, by name.
BUILTIN_DETECTORS: dict[str, Detector] = {
    d.name: d
    for d in (
        _Builtin("email", "[EMAIL]", _EMAIL, _whole),
        _Builtin("phone", "[PHONE]", _PHONE, _phone),
        _Builtin("credit_card", "[CREDIT_CARD]", _CARD, _card),
        _Builtin("us_ssn", "[US_SSN]", _SSN, _ssn),
        _Builtin("iban", "[IBAN]", _IBAN, _iban),
        _Builtin("ip_address", "[IP_ADDRESS]", _IP, _ip),
    )
}

#: The detectors of the default privacy rule: every built-in detector.
DEFAULT_DETECTOR_NAMES: tuple[str, ...] = tuple(BUILTIN_DETECTORS)


def builtin_detector(name: str) -> Detector:
    """Return the built-in detector called ``name``; :class:`PolicyError` names the known ones.

    Example:
        >>> builtin_detector("phone").placeholder
        '[PHONE]'
    """
    try:
        return BUILTIN_DETECTORS[name]
    except KeyError:
        raise PolicyError(
            f"unknown detector {name!r}; built-in detectors: {', '.join(BUILTIN_DETECTORS)} "
            "(or pass a RegexDetector, a function, or 'presidio')"
        ) from None


def default_detectors() -> tuple[Detector, ...]:
    """Return the default privacy rule's detectors (every built-in).

    Example:
        >>> [d.name for d in default_detectors()]
        ['email', 'phone', 'credit_card', 'us_ssn', 'iban', 'ip_address']
    """
    return tuple(BUILTIN_DETECTORS.values())


# ---------------------------------------------------------------------------- custom


@dataclass(frozen=True)
class RegexDetector(Detector):
    r"""A detector of your own: a Python regular expression (saved in policy files).

    Example:
        >>> d = RegexDetector("employee_id", r"\bEMP-\d{6}\b")
        >>> d.detect("ask EMP-123456")[0].end, d.placeholder
        (14, '[EMPLOYEE_ID]')
    """

    name: str
    pattern: str
    placeholder: str = ""
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise PolicyError(f"a detector needs a non-empty name, got {self.name!r}")
        try:
            object.__setattr__(self, "_regex", re.compile(self.pattern))
        except (re.error, TypeError) as e:
            raise PolicyError(
                f"detector {self.name!r}: invalid regular expression {self.pattern!r}: {e}"
            ) from e
        if not self.placeholder:
            object.__setattr__(self, "placeholder", f"[{self.name.upper()}]")

    def detect(self, text: str) -> list[Detection]:
        """Return the non-empty matches of the pattern."""
        return [
            Detection(self.name, m.start(), m.end(), self.placeholder)
            for m in self._regex.finditer(text)
            if m.end() > m.start()
        ]

    def to_config(self) -> dict[str, Any]:
        """Return ``{"type": "regex", "name", "pattern", "placeholder"}``."""
        return {
            "type": "regex",
            "name": self.name,
            "pattern": self.pattern,
            "placeholder": self.placeholder,
        }


@dataclass(frozen=True)
class CallableDetector(Detector):
    """A detector of your own: a function returning ``(start, end)`` spans of a text.

    Functions cannot be written to a policy file: saving a policy that holds one raises
    :class:`PolicyError` (pass the function in code instead).

    Example:
        >>> def badge(text):
        ...     i = text.find("BADGE")
        ...     return [(i, i + 9)] if i >= 0 else []
        >>> CallableDetector("badge", badge).detect("my BADGE1234")[0].end
        12
    """

    name: str
    find: Callable[[str], Iterable[tuple[int, int]]]
    placeholder: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise PolicyError(f"a detector needs a non-empty name, got {self.name!r}")
        if not callable(self.find):
            raise PolicyError(f"detector {self.name!r}: find must be callable")
        if not self.placeholder:
            object.__setattr__(self, "placeholder", f"[{self.name.upper()}]")

    def detect(self, text: str) -> list[Detection]:
        """Return the function's spans (empty or out-of-range spans are dropped)."""
        return [
            Detection(self.name, int(s), int(e), self.placeholder)
            for s, e in self.find(text)
            if 0 <= int(s) < int(e) <= len(text)
        ]

    @property
    def serialisable(self) -> bool:
        """False: functions cannot be saved."""
        return False

    def to_config(self) -> dict[str, Any]:
        """Return ``{"type": "callable", "name": ...}``: a description, not a loadable one."""
        return {"type": "callable", "name": self.name}


def _presidio_analyzer(language: str) -> Any:
    module = importlib.import_module("presidio_analyzer")
    return module.AnalyzerEngine(supported_languages=[language])


_cached_analyzer = functools.lru_cache(maxsize=4)(_presidio_analyzer)


@dataclass(frozen=True)
class PresidioDetector(Detector):
    """Microsoft Presidio's analyzer as a detector (optional: ``langchain-hybrid[presidio]``).

    ``entities`` limits the entity types (None: all that Presidio knows); results scoring
    below ``score_threshold`` are ignored. Each value is replaced by ``[ENTITY_TYPE]``.
    Presidio is imported when the first text is scanned; building the detector without
    it installed raises :class:`~langchain_hybrid.errors.MissingDependencyError`.

    Example:
        >>> PresidioDetector(entities=("PERSON",)).to_config()  # doctest: +SKIP
        {'type': 'presidio', 'name': 'presidio', 'entities': ['PERSON'], ...}
    """

    entities: tuple[str, ...] | None = None
    language: str = "en"
    score_threshold: float = 0.5
    name: str = "presidio"
    placeholder: str = "[PII]"

    def __post_init__(self) -> None:
        if importlib.util.find_spec("presidio_analyzer") is None:
            raise MissingDependencyError(
                "PresidioDetector needs Microsoft Presidio: pip install "
                "'langchain-hybrid[presidio]' (and a spaCy model, e.g. python -m spacy "
                "download en_core_web_lg), or use the built-in detectors."
            )
        if self.entities is not None:
            object.__setattr__(self, "entities", tuple(self.entities))

    def detect(self, text: str) -> list[Detection]:
        """Return Presidio's results above the score threshold."""
        analyzer = _cached_analyzer(self.language)
        entities = list(self.entities) if self.entities is not None else None
        results = analyzer.analyze(text=text, language=self.language, entities=entities)
        return [
            Detection(self.name, r.start, r.end, f"[{r.entity_type}]")
            for r in results
            if r.score >= self.score_threshold and r.end > r.start
        ]

    def to_config(self) -> dict[str, Any]:
        """Return ``{"type": "presidio", "name", "entities", "language", "score_threshold"}``."""
        return {
            "type": "presidio",
            "name": self.name,
            "entities": list(self.entities) if self.entities is not None else None,
            "language": self.language,
            "score_threshold": self.score_threshold,
        }


def detector_from(spec: Any) -> Detector:
    """Build a detector from a name, a policy-file dict, a function or a detector.

    ``"email"`` (any built-in name), ``"presidio"``, ``{"type": "regex", "name": ...,
    "pattern": ...}``, ``{"type": "presidio", ...}``, a function ``text -> spans`` (its
    ``__name__`` names it) or a :class:`Detector` as it is. Raises :class:`PolicyError`.

    Example:
        >>> detector_from({"type": "regex", "name": "ticket", "pattern": "T-[0-9]+"}).name
        'ticket'
    """
    if isinstance(spec, Detector):
        return spec
    if isinstance(spec, str):
        return PresidioDetector() if spec == "presidio" else builtin_detector(spec)
    if isinstance(spec, Mapping):
        kind = spec.get("type")
        params = {k: v for k, v in spec.items() if k != "type"}
        if kind == "regex":
            try:
                return RegexDetector(**params)
            except TypeError as e:
                raise PolicyError(f"bad regex detector {dict(spec)!r}: {e}") from e
        if kind == "presidio":
            try:
                return PresidioDetector(**params)
            except TypeError as e:
                raise PolicyError(f"bad presidio detector {dict(spec)!r}: {e}") from e
        if kind == "callable":
            raise PolicyError(
                f"detector {spec.get('name')!r} is a function, which a policy file cannot "
                "hold: pass it in code, e.g. PrivacyRule(detectors=[..., my_function])"
            )
        raise PolicyError(
            f"unknown detector type {kind!r}; use a built-in name, 'regex' or 'presidio'"
        )
    if callable(spec):
        return CallableDetector(getattr(spec, "__name__", "custom"), spec)
    raise PolicyError(f"a detector must be a name, a dict, a function or a Detector, got {spec!r}")


# ---------------------------------------------------------------------------- scanning


def _resolve(detectors: Iterable[Detector] | None) -> tuple[Detector, ...]:
    return default_detectors() if detectors is None else tuple(detectors)


def scan(text: str, detectors: Iterable[Detector] | None = None) -> Findings:
    """Run ``detectors`` (default: the built-ins) over ``text``; overlaps keep the longest.

    Example:
        >>> scan("version 1.2.3.4 of the tool").detectors
        ()
        >>> scan("server 1.2.3.4 is down").detectors
        ('ip_address',)
    """
    found = [d for det in _resolve(detectors) for d in det.detect(text)]
    found.sort(key=lambda d: (d.start, -(d.end - d.start)))
    kept: list[Detection] = []
    for detection in found:
        if kept and detection.start < kept[-1].end:
            continue
        kept.append(detection)
    return Findings(tuple(kept))


def redact(text: str, detectors: Iterable[Detector] | None = None) -> str:
    """Replace each detected value of ``text`` by its detector's placeholder.

    Example:
        >>> redact("IBAN DE89 3704 0044 0532 0130 00, thanks")
        'IBAN [IBAN], thanks'
    """
    return _apply(text, scan(text, detectors).detections)


def _apply(text: str, detections: Sequence[Detection]) -> str:
    for d in sorted(detections, key=lambda d: d.start, reverse=True):
        text = text[: d.start] + d.placeholder + text[d.end :]
    return text


def _is_text_block(block: Any) -> bool:
    return isinstance(block, str) or (
        isinstance(block, Mapping)
        and block.get("type") == "text"
        and isinstance(block.get("text"), str)
    )


def _block_text(block: Any) -> str:
    return block if isinstance(block, str) else str(block["text"])


def _content_text(content: Any) -> str:
    """Return the content's text, text blocks joined as ``BaseMessage.text`` joins them."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(_block_text(b) for b in content if _is_text_block(b))
    return ""


def _redact_blocks(blocks: list[Any], detectors: tuple[Detector, ...]) -> list[Any]:
    """Redact a content list on its joined text: a value split over blocks is found whole.

    A value's placeholder goes into the block where it starts; its other parts are cut
    from the blocks they were in. Blocks that are not text are walked as values.
    """
    texts = [(i, _block_text(b)) for i, b in enumerate(blocks) if _is_text_block(b)]
    joined = "".join(t for _, t in texts)
    detections = scan(joined, detectors).detections
    out = [b if _is_text_block(b) else _walk(b, detectors) for b in blocks]
    if not detections:
        return out
    offset = 0
    for index, text in texts:
        start, end = offset, offset + len(text)
        pieces: list[str] = []
        cursor = start
        for d in detections:
            if d.end <= start or d.start >= end:
                continue
            pieces.append(joined[cursor : max(cursor, d.start)])
            if start <= d.start:
                pieces.append(d.placeholder)
            cursor = max(cursor, min(d.end, end))
        pieces.append(joined[cursor:end])
        new_text = "".join(pieces)
        block = blocks[index]
        out[index] = new_text if isinstance(block, str) else {**block, "text": new_text}
        offset = end
    return out


def _walk(value: Any, detectors: tuple[Detector, ...]) -> Any:
    """Redact every string (and integer) inside JSON-like data; content lists joined."""
    if isinstance(value, str):
        return redact(value, detectors)
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return value
    if isinstance(value, int):
        text = str(value)
        return redact(text, detectors) if scan(text, detectors) else value
    if isinstance(value, Mapping):
        return {k: _walk(v, detectors) for k, v in value.items()}
    if isinstance(value, list):
        if any(isinstance(b, Mapping) and _is_text_block(b) for b in value):
            return _redact_blocks(value, detectors)
        return [_walk(v, detectors) for v in value]
    if isinstance(value, tuple):
        return tuple(_walk(v, detectors) for v in value)
    return value


def _leaves(value: Any) -> Iterator[str]:
    """Every string (and integer, as text) inside JSON-like data."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, int) and not isinstance(value, bool):
        yield str(value)
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _leaves(v)


_SENT_KWARGS = ("tool_calls", "function_call")


def message_texts(message: BaseMessage) -> list[str]:
    """Return every text of ``message`` that a chat provider receives, for scanning.

    The content's text (text blocks joined, as ``message.text`` joins them), and for an
    assistant message the arguments of its tool calls (valid and invalid ones, and the
    raw ``tool_calls`` / ``function_call`` of ``additional_kwargs``). Non-text content
    blocks (images, files, audio) and the ``name`` field are not scanned.

    Example:
        >>> from langchain_core.messages import HumanMessage
        >>> message_texts(HumanMessage(content=[{"type": "text", "text": "jane@"},
        ...                                     {"type": "text", "text": "example.com"}]))
        ['jane@example.com']
    """
    texts = [_content_text(message.content)]
    if isinstance(message, AIMessage):
        for call in message.tool_calls:
            texts.extend(_leaves(call["args"]))
        for bad in message.invalid_tool_calls:
            texts.extend(_leaves(bad.get("args")))
        for key in _SENT_KWARGS:
            texts.extend(_leaves(message.additional_kwargs.get(key)))
    return [t for t in texts if t]


def scan_messages(
    messages: Iterable[BaseMessage], detectors: Iterable[Detector] | None = None
) -> Findings:
    """Scan everything the messages would send to a provider (see :func:`message_texts`).

    Example:
        >>> from langchain_core.messages import ToolMessage
        >>> scan_messages([ToolMessage("card 4111-1111-1111-1111", tool_call_id="1")]).detectors
        ('credit_card',)
    """
    dets = _resolve(detectors)
    found = Findings()
    for message in messages:
        for text in message_texts(message):
            found = found + scan(text, dets)
    return found


def redact_message(message: _M, detectors: Iterable[Detector] | None = None) -> _M:
    """Return a copy of ``message`` with every detected value replaced by a placeholder.

    Covers what :func:`message_texts` scans: the content (text blocks redacted on their
    joined text) and an assistant message's tool-call arguments.

    Example:
        >>> from langchain_core.messages import HumanMessage
        >>> redact_message(HumanMessage("call 415-555-0132")).content
        'call [PHONE]'
    """
    dets = _resolve(detectors)
    content = message.content
    update: dict[str, Any] = {
        "content": redact(content, dets)
        if isinstance(content, str)
        else _redact_blocks(list(content), dets)
    }
    if isinstance(message, AIMessage):
        update["tool_calls"] = [
            {**call, "args": _walk(call["args"], dets)} for call in message.tool_calls
        ]
        update["invalid_tool_calls"] = [
            {**bad, "args": _walk(bad.get("args"), dets)} for bad in message.invalid_tool_calls
        ]
        kwargs = dict(message.additional_kwargs)
        for key in _SENT_KWARGS:
            if key in kwargs:
                kwargs[key] = _walk(kwargs[key], dets)
        update["additional_kwargs"] = kwargs
    return message.model_copy(update=update)


def redact_messages(
    messages: Iterable[BaseMessage], detectors: Iterable[Detector] | None = None
) -> list[BaseMessage]:
    """Redact each message (see :func:`redact_message`).

    Example:
        >>> from langchain_core.messages import SystemMessage
        >>> redact_messages([SystemMessage("admin: ops@corp.example")])[0].content
        'admin: [EMAIL]'
    """
    dets = _resolve(detectors)
    return [redact_message(m, dets) for m in messages]


def redact_value(value: Any, detectors: Iterable[Detector] | None = None) -> Any:
    """Redact a runnable input: strings, messages, prompt values, documents, dicts and lists.

    Anything else (objects of your own classes, bytes) is returned as it is.

    Example:
        >>> redact_value({"question": "Who is 10.1.2.3?", "k": 3})
        {'question': 'Who is [IP_ADDRESS]?', 'k': 3}
    """
    dets = _resolve(detectors)
    if isinstance(value, BaseMessage):
        return redact_message(value, dets)
    if isinstance(value, StringPromptValue):
        return StringPromptValue(text=redact(value.text, dets))
    if isinstance(value, PromptValue):
        return ChatPromptValue(messages=redact_messages(value.to_messages(), dets))
    if isinstance(value, Document):
        return value.model_copy(update={"page_content": redact(value.page_content, dets)})
    if isinstance(value, Mapping):
        return {k: redact_value(v, dets) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_value(v, dets) for v in value]
    if isinstance(value, tuple):
        return tuple(redact_value(v, dets) for v in value)
    return _walk(value, dets)


# ---------------------------------------------------------------------------- LangSmith


def make_redactor(
    detectors: Iterable[Any] | None = None,
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Return a LangSmith ``hide_inputs`` / ``hide_outputs`` function with these detectors.

    ``detectors`` takes what :func:`detector_from` takes (names, dicts, functions,
    detectors; default: the built-ins).

    Example:
        >>> hide = make_redactor(["email"])
        >>> hide({"messages": [[{"content": "a@b.org, 10.0.0.1"}]]})
        {'messages': [[{'content': '[EMAIL], 10.0.0.1'}]]}
    """
    dets = default_detectors() if detectors is None else tuple(map(detector_from, detectors))

    def hide(data: dict[str, Any]) -> dict[str, Any]:
        redacted = _walk(data, dets)
        return redacted if isinstance(redacted, dict) else data

    return hide


def redact_inputs(data: dict[str, Any]) -> dict[str, Any]:
    """Redact run inputs or outputs for LangSmith with the built-in detectors.

    Use it as ``langsmith.Client(hide_inputs=redact_inputs, hide_outputs=redact_inputs)``
    (and pass that client to ``LangChainTracer(client=...)`` or set it as the default with
    ``langsmith.run_trees`` / ``tracing_context(client=...)``). Every string inside the
    run's data is redacted; message content lists on their joined text. Streamed token
    events and metadata are not passed through it.

    Example:
        >>> redact_inputs({"input": "my card is 4111 1111 1111 1111"})
        {'input': 'my card is [CREDIT_CARD]'}
    """
    return make_redactor()(data)
