"""Reading Kubernetes objects from what ``kubectl get ... -o json|yaml`` prints.

A file may hold one JSON object, one YAML document or several (``---``), and any of them may be
a ``List`` (``kind: List`` or ``kind: FooList``) whose ``items`` are the objects. Every object
comes out as a :class:`Manifest` that remembers where it was found, so that errors can say::

    kai.yaml: document 2, item 5 (Queue team-a), field spec.resources.gpu.quota: expected a number

Field access goes through :meth:`Manifest.get`, which checks the type and names the field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from simulator.k8s.quantity import Quantity, QuantityError, quantity_from_value

__all__ = ["Manifest", "ManifestError", "read_manifests", "parse_manifests", "count_kinds"]

_MISSING = object()
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ManifestError(ValueError):
    """A manifest is malformed; the message names file, document, object and field."""


@dataclass(frozen=True)
class Manifest:
    """One Kubernetes object and where it came from.

    Attributes:
        obj: the decoded object (a mapping).
        source: file name (or description) for messages.
        document: 1-based document index in the file.
        item: 1-based index in the ``items`` of a List document (None for a plain object).
    """

    obj: Mapping
    source: str
    document: int
    item: int | None = None

    @property
    def kind(self) -> str:
        """``kind`` ('' when absent)."""
        return str(self.obj.get("kind") or "")

    @property
    def api_version(self) -> str:
        """``apiVersion`` ('' when absent)."""
        return str(self.obj.get("apiVersion") or "")

    @property
    def group(self) -> str:
        """API group of ``apiVersion`` ('' for the core group, e.g. ``v1``)."""
        return self.api_version.rpartition("/")[0]

    @property
    def name(self) -> str:
        """``metadata.name`` ('' when absent)."""
        meta = self.obj.get("metadata")
        return str(meta.get("name") or "") if isinstance(meta, Mapping) else ""

    @property
    def namespace(self) -> str:
        """``metadata.namespace``, ``default`` when absent."""
        meta = self.obj.get("metadata")
        ns = meta.get("namespace") if isinstance(meta, Mapping) else None
        return str(ns) if ns else "default"

    def where(self, field: str | None = None) -> str:
        """Location words for messages: file, document, item, object and field."""
        at = f"{self.source}: document {self.document}"
        if self.item is not None:
            at += f", item {self.item}"
        what = " ".join(p for p in (self.kind or "object", self.name or "<no name>") if p)
        at += f" ({what})"
        return f"{at}, field {field}" if field else at

    def error(self, field: str | None, why: str) -> ManifestError:
        """The error to raise for ``field`` of this object."""
        return ManifestError(f"{self.where(field)}: {why}")

    def get(self, path: str, kind: type | tuple[type, ...] | None = None, default=_MISSING):
        """The value at a dotted ``path`` (``spec.template.spec``), type-checked.

        Args:
            path: dot-separated keys; a key may contain dots if written in brackets, e.g.
                ``metadata.labels[nvidia.com/gpu.product]``.
            kind: expected Python type(s) of the value (None = any).
            default: returned when the path is absent (or null); without it the field is required.

        Raises:
            ManifestError: missing required field, or a value of the wrong type.
        """
        node: object = self.obj
        walked: list[str] = []
        for key in _keys(path):
            if node is None:
                break
            if not isinstance(node, Mapping):
                raise self.error(".".join(walked), f"expected a mapping, got {_shown(node)}")
            walked.append(key)
            node = node.get(key)
        if node is None:
            if default is _MISSING:
                raise self.error(path, "required field is missing")
            return default
        if kind is not None and not _is_kind(node, kind):
            raise self.error(path, f"expected {_type_words(kind)}, got {_shown(node)}")
        return node

    def quantity(self, path: str, default: Quantity | None | object = _MISSING) -> Quantity | None:
        """A resource quantity at ``path`` (string or number), parsed exactly."""
        raw = self.get(path, default=None)
        if raw is None:
            if default is _MISSING:
                raise self.error(path, "required quantity is missing")
            return default  # type: ignore[return-value]
        try:
            q = quantity_from_value(raw)
        except QuantityError as exc:
            raise self.error(path, str(exc)) from None
        if q.amount < 0:
            raise self.error(path, f"quantity {raw!r} is negative")
        return q


def _keys(path: str) -> list[str]:
    out: list[str] = []
    buf = ""
    i = 0
    while i < len(path):
        c = path[i]
        if c == "[":
            j = path.index("]", i)
            if buf:
                out.append(buf)
                buf = ""
            out.append(path[i + 1 : j])
            i = j + 1
            if i < len(path) and path[i] == ".":
                i += 1
            continue
        if c == ".":
            out.append(buf)
            buf = ""
        else:
            buf += c
        i += 1
    if buf:
        out.append(buf)
    return out


def _is_kind(value: object, kind) -> bool:
    if isinstance(value, bool) and bool not in _tuple(kind):
        return False  # YAML true/false is never a number here
    if isinstance(value, int) and float in _tuple(kind):
        return True
    return isinstance(value, kind)


def _tuple(kind) -> tuple:
    return kind if isinstance(kind, tuple) else (kind,)


def _type_words(kind) -> str:
    names = {dict: "a mapping", Mapping: "a mapping", list: "a list", str: "a string"}
    names.update({int: "an integer", float: "a number", bool: "true/false"})
    words = [names.get(k, k.__name__) for k in _tuple(kind)]
    return " or ".join(dict.fromkeys(words))


def _shown(value: object) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


def parse_manifests(text: str, source: str) -> list[Manifest]:
    """Split a file's text into objects (JSON, or YAML with any number of documents).

    ``List`` documents are flattened into their items; empty documents are skipped.

    Raises:
        ManifestError: unparseable text, a document that is not a mapping, a List without a
            list of ``items``, an item that is not a mapping.
    """
    docs = _decode(text, source)
    out: list[Manifest] = []
    for d, doc in enumerate(docs, start=1):
        if doc is None:
            continue
        if not isinstance(doc, Mapping):
            raise ManifestError(f"{source}: document {d}: expected an object, got {_shown(doc)}")
        kind = str(doc.get("kind") or "")
        if kind == "List" or (kind.endswith("List") and "items" in doc):
            items = doc.get("items")
            if items is None:
                items = []
            if not isinstance(items, list):
                raise ManifestError(
                    f"{source}: document {d} ({kind}): field items: expected a list"
                )
            for i, item in enumerate(items, start=1):
                if not isinstance(item, Mapping):
                    raise ManifestError(
                        f"{source}: document {d}, item {i}: expected an object, got {_shown(item)}"
                    )
                out.append(Manifest(item, source, d, i))
        else:
            out.append(Manifest(doc, source, d))
    return out


def _decode(text: str, source: str) -> list:
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{source}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
        return data if isinstance(data, list) else [data]
    try:
        return list(yaml.load_all(text, Loader=_Loader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        doc = f" (document {text[: mark.index].count(chr(10) + '---') + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ManifestError(f"{source}: invalid YAML{line}{doc}: {problem}") from None


def read_manifests(path: str | Path) -> list[Manifest]:
    """Read every object of a JSON/YAML file (see :func:`parse_manifests`).

    Raises:
        ManifestError: missing, empty or unreadable file, or malformed content.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise ManifestError(f"{p}: file not found")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{p}: not a UTF-8 text file ({exc.reason})") from None
    if not text.strip():
        raise ManifestError(f"{p}: file is empty")
    return parse_manifests(text, str(p))


def count_kinds(manifests: list[Manifest], used: set[str]) -> dict[str, int]:
    """Objects per kind that a reader does not use: ``{"ignored_kind_Namespace": 2}``."""
    out: dict[str, int] = {}
    for m in manifests:
        if m.kind not in used:
            key = f"ignored_kind_{m.kind or '<none>'}"
            out[key] = out.get(key, 0) + 1
    return out
