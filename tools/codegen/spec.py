"""Read Kafka's JSON message specs into a small typed model the emitter walks.

Knows the spec format only (`//` comments, version ranges, field keys); knows nothing of how the
generated Python looks.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Field", "Message", "Struct", "Versions", "load_api_specs", "load_spec", "to_snake"]

_COMMENT = re.compile(r"^\s*//.*$", re.MULTILINE)
_INF = 1 << 30

PRIMITIVES = frozenset(
    {"bool", "int8", "int16", "uint16", "int32", "uint32", "int64", "float64", "string", "uuid",
     "bytes", "records"}
)


@dataclass(frozen=True, slots=True)
class Versions:
    """An inclusive version range; `hi` is open-ended for "N+", and "none" is empty."""

    lo: int
    hi: int

    @classmethod
    def parse(cls, text: str | None) -> Versions:
        if text is None or text == "none":
            return cls(1, 0)
        text = text.strip()
        if text.endswith("+"):
            return cls(int(text[:-1]), _INF)
        if "-" in text:
            lo, hi = text.split("-")
            return cls(int(lo), int(hi))
        return cls(int(text), int(text))

    def __contains__(self, version: object) -> bool:
        return isinstance(version, int) and self.lo <= version <= self.hi

    def __str__(self) -> str:
        return f"{self.lo}+" if self.hi == _INF else f"{self.lo}-{self.hi}"

    @property
    def empty(self) -> bool:
        return self.lo > self.hi


def to_snake(name: str) -> str:
    """`TopicData` -> `topic_data`, `ThrottleTimeMs` -> `throttle_time_ms`."""
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s)
    return s.lower()


@dataclass(slots=True)
class Struct:
    """A named group of fields: the message body, an inline struct, or a common struct."""

    name: str
    fields: list[Field]
    versions: Versions


@dataclass(slots=True)
class Field:
    name: str
    type: str
    versions: Versions
    nullable: Versions
    tagged: Versions
    tag: int | None
    default: str | None
    ignorable: bool
    flexible_override: Versions | None
    struct: Struct | None = None  # set for struct and []struct fields once resolved

    @property
    def attr(self) -> str:
        return to_snake(self.name)

    @property
    def is_array(self) -> bool:
        return self.type.startswith("[]")

    @property
    def elem(self) -> str:
        return self.type[2:] if self.is_array else self.type

    @property
    def is_struct(self) -> bool:
        return self.elem not in PRIMITIVES

    def present(self, version: int) -> bool:
        return version in self.versions

    def is_tagged(self, version: int) -> bool:
        return self.tag is not None and version in self.tagged

    def positional(self, version: int) -> bool:
        return self.present(version) and not self.is_tagged(version)

    @property
    def ever_nullable(self) -> bool:
        return not self.nullable.empty or self.default == "null"


@dataclass(slots=True)
class Message:
    name: str
    api_key: int | None
    kind: str
    valid: Versions
    flexible: Versions
    body: Struct
    unstable: bool
    listeners: list[str]
    structs: dict[str, Struct] = field(default_factory=dict)


def _field(raw: dict[str, object], structs: dict[str, Struct], pending: list[Field]) -> Field:
    versions = Versions.parse(str(raw["versions"]))
    tag = raw.get("tag")
    f = Field(
        name=str(raw["name"]),
        type=str(raw["type"]),
        versions=versions,
        nullable=Versions.parse(raw.get("nullableVersions")),  # type: ignore[arg-type]
        tagged=Versions.parse(raw.get("taggedVersions")),  # type: ignore[arg-type]
        tag=int(tag) if tag is not None else None,  # type: ignore[call-overload]
        default=str(raw["default"]) if "default" in raw else None,
        ignorable=bool(raw.get("ignorable", False)),
        flexible_override=(
            Versions.parse(str(raw["flexibleVersions"])) if "flexibleVersions" in raw else None
        ),
    )
    sub = raw.get("fields")
    if isinstance(sub, list):
        name = f.elem
        f.struct = Struct(name, [_field(s, structs, pending) for s in sub], versions)
        structs[name] = f.struct
    elif f.is_struct:
        pending.append(f)
    return f


def load_spec(path: Path) -> Message:
    """Parse one spec file (comments stripped) and resolve common-struct references."""
    raw = json.loads(_COMMENT.sub("", path.read_text()))
    structs: dict[str, Struct] = {}
    pending: list[Field] = []
    for common in raw.get("commonStructs", []):
        cs = Struct(common["name"], [], Versions.parse(common.get("versions", "0+")))
        cs.fields = [_field(s, structs, pending) for s in common["fields"]]
        structs[cs.name] = cs
    body = Struct(
        raw["name"], [_field(s, structs, pending) for s in raw["fields"]], Versions(0, _INF)
    )
    for f in pending:
        if f.elem not in structs:
            raise ValueError(f"{path.name}: unknown struct type {f.type}")
        f.struct = structs[f.elem]
    return Message(
        name=raw["name"],
        api_key=raw.get("apiKey"),
        kind=raw["type"],
        valid=Versions.parse(raw["validVersions"]),
        flexible=Versions.parse(raw.get("flexibleVersions", "none")),
        body=body,
        unstable=bool(raw.get("latestVersionUnstable", False)),
        listeners=list(raw.get("listeners", [])),
        structs=structs,
    )


def load_api_specs(spec_dir: Path) -> tuple[list[tuple[Message, Message]], list[Message]]:
    """Every (request, response) pair whose request listens on `broker`, and the two headers."""
    requests: dict[int, Message] = {}
    responses: dict[int, Message] = {}
    headers: list[Message] = []
    for path in sorted(spec_dir.glob("*.json")):
        msg = load_spec(path)
        if msg.kind == "header":
            headers.append(msg)
        elif msg.kind == "request" and "broker" in msg.listeners and msg.api_key is not None:
            requests[msg.api_key] = msg
        elif msg.kind == "response" and msg.api_key is not None:
            responses[msg.api_key] = msg
    pairs = [(requests[k], responses[k]) for k in sorted(requests)]
    headers.sort(key=lambda m: m.name)
    if [h.name for h in headers] != ["RequestHeader", "ResponseHeader"]:
        raise ValueError(f"expected RequestHeader and ResponseHeader in {spec_dir}")
    return pairs, headers
