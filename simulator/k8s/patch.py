"""What-if edits of Kubernetes objects: one field of one object, from the command line.

A platform team asks "what if this quota were 32, or we had 8 more H200 nodes?". Rather than
editing the exported YAML for each case, a run takes **patches** (``policy.patches``,
``cluster.patches``) and **node clones** (``cluster.add_nodes``), so that a what-if sweep is an
ordinary Hydra multirun over them.

A patch is the text ``KIND/NAME:PATH=VALUE``:

* ``KIND`` is the object's ``kind`` as ``kubectl`` prints it (``Queue``, ``ClusterQueue``,
  ``Node``...); ``NAME`` its ``metadata.name``, or ``NAMESPACE/NAME`` when several objects of
  that kind share the name;
* ``PATH`` is a dotted field path. ``[3]`` picks a list item by position, ``[name=h100]`` the
  list item whose ``name`` is ``h100``, and ``[nvidia.com/gpu]`` a key containing dots;
* ``VALUE`` is read as YAML (``16``, ``-1``, ``"100Gi"``, ``{quota: 8, limit: -1}``); ``null``
  removes the field.

Every part of the path must exist except the last key of a mapping, which a patch may add
(e.g. a ``borrowingLimit`` the object did not have). An error names the patch and what it did
not find, with the names that are there. Patches apply in order, to copies: the file is not
changed.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, MutableMapping, Sequence

import yaml

from simulator.k8s.manifests import Manifest, ManifestError

__all__ = ["Patch", "parse_patch", "apply_patches", "clone_nodes"]

_SEGMENT = re.compile(r"\[([^\]]*)\]|([^.\[\]]+)")


class Patch:
    """One parsed patch (see the module doc).

    Attributes:
        text: the patch as given.
        kind: object kind.
        name: object name.
        namespace: object namespace, or None when not given.
        path: path segments: ``str`` keys, ``int`` positions, ``(key, value)`` selectors.
        value: the new value (None removes the field).
    """

    def __init__(self, text: str) -> None:
        self.text = text
        target, path, value = _split(text)
        kind, _, name = target.partition("/")
        namespace = None
        if "/" in name:
            namespace, _, name = name.partition("/")
        if not kind or not name:
            raise ManifestError(f"patch {text!r}: expected KIND/NAME:PATH=VALUE")
        self.kind, self.name, self.namespace = kind, name, namespace
        self.path = _segments(path, text)
        try:
            self.value = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError as exc:
            raise ManifestError(f"patch {text!r}: value is not valid YAML ({exc})") from None

    def matches(self, m: Manifest) -> bool:
        """Whether ``m`` is the object this patch edits."""
        if m.kind != self.kind or m.name != self.name:
            return False
        return self.namespace is None or m.namespace == self.namespace


def parse_patch(text: object) -> Patch:
    """A :class:`Patch` from its text; a non-text value is an error naming it."""
    if not isinstance(text, str):
        raise ManifestError(f"patch {text!r}: expected a text KIND/NAME:PATH=VALUE")
    return Patch(text)


def _split(text: str) -> tuple[str, str, str]:
    target, colon, rest = text.partition(":")
    if not colon:
        raise ManifestError(f"patch {text!r}: expected KIND/NAME:PATH=VALUE (no ':')")
    depth = 0
    for i, ch in enumerate(rest):  # the first '=' outside brackets ends the path
        depth = max(depth + (ch == "[") - (ch == "]"), 0)
        if ch == "=" and depth == 0:
            path, value = rest[:i].strip(), rest[i + 1 :]
            if not path:
                raise ManifestError(f"patch {text!r}: empty field path")
            return target.strip(), path, value
    raise ManifestError(f"patch {text!r}: expected PATH=VALUE after ':' (no '=')")


def _segments(path: str, text: str) -> list:
    out: list = []
    pos = 0
    for m in _SEGMENT.finditer(path):
        gap = path[pos : m.start()].strip(".")
        if gap:
            raise ManifestError(f"patch {text!r}: cannot read the field path {path!r}")
        pos = m.end()
        bracket, key = m.group(1), m.group(2)
        if key is not None:
            out.append(key)
        elif re.fullmatch(r"-?\d+", bracket.strip()):
            out.append(int(bracket))
        elif "=" in bracket:
            k, _, v = bracket.partition("=")
            out.append((k.strip(), v.strip()))
        else:
            out.append(bracket)
    if path[pos:].strip(".") or not out:
        raise ManifestError(f"patch {text!r}: cannot read the field path {path!r}")
    return out


def _shown(seg: object) -> str:
    if isinstance(seg, tuple):
        return f"[{seg[0]}={seg[1]}]"
    return f"[{seg}]" if isinstance(seg, int) else str(seg)


def _step(node: object, seg: object, where: str, patch: Patch) -> object:
    """The child of ``node`` at ``seg`` (it must exist)."""
    if isinstance(seg, str):
        if not isinstance(node, Mapping) or seg not in node:
            have = ", ".join(map(str, node)) if isinstance(node, Mapping) else type(node).__name__
            raise ManifestError(f"patch {patch.text!r}: {where} has no field {seg!r} ({have})")
        return node[seg]
    if not isinstance(node, list):
        raise ManifestError(f"patch {patch.text!r}: {where} is not a list")
    if isinstance(seg, int):
        if not -len(node) <= seg < len(node):
            raise ManifestError(
                f"patch {patch.text!r}: {where} has {len(node)} items, no item {seg}"
            )
        return node[seg]
    key, value = seg
    for item in node:
        if isinstance(item, Mapping) and str(item.get(key)) == value:
            return item
    have = ", ".join(str(i.get(key)) for i in node if isinstance(i, Mapping))
    raise ManifestError(
        f"patch {patch.text!r}: {where} has no item with {key}={value} ({key}s: {have})"
    )


def _apply(obj: MutableMapping, patch: Patch) -> None:
    node: object = obj
    where = "the object"
    for k, seg in enumerate(patch.path[:-1]):
        node = _step(node, seg, where, patch)
        where = f"field {'.'.join(_shown(s) for s in patch.path[: k + 1])}"
    last = patch.path[-1]
    if isinstance(last, str):
        if not isinstance(node, MutableMapping):
            raise ManifestError(f"patch {patch.text!r}: {where} is not a mapping")
        if patch.value is None:
            node.pop(last, None)
        else:
            node[last] = patch.value
        return
    if not isinstance(node, list):
        raise ManifestError(f"patch {patch.text!r}: {where} is not a list")
    target = _step(node, last, where, patch)
    i = next(k for k, item in enumerate(node) if item is target)
    if patch.value is None:
        del node[i]
    else:
        node[i] = patch.value


def apply_patches(manifests: list[Manifest], patches: Sequence[object]) -> list[Manifest]:
    """``manifests`` with ``patches`` applied in order (edited objects are copies).

    Raises:
        ManifestError: a malformed patch, no object or several objects it could mean, or a
            path that does not exist; the message names the patch.
    """
    if not patches:
        return manifests
    out = list(manifests)
    for text in patches:
        patch = parse_patch(text)
        hits = [k for k, m in enumerate(out) if patch.matches(m)]
        if not hits:
            names = sorted({m.name for m in out if m.kind == patch.kind})
            have = f"{patch.kind} objects: {', '.join(names)}" if names else f"no {patch.kind}"
            raise ManifestError(f"patch {text!r}: no {patch.kind} named {patch.name!r} ({have})")
        if len(hits) > 1:
            spaces = ", ".join(out[k].namespace for k in hits)
            raise ManifestError(
                f"patch {text!r}: {len(hits)} {patch.kind} objects are named {patch.name!r} "
                f"(namespaces {spaces}): write {patch.kind}/NAMESPACE/{patch.name}"
            )
        m = out[hits[0]]
        obj = copy.deepcopy(dict(m.obj))
        _apply(obj, patch)
        out[hits[0]] = Manifest(obj, m.source, m.document, m.item)
    return out


def clone_nodes(manifests: list[Manifest], add: Sequence[Mapping]) -> list[Manifest]:
    """``manifests`` with copies of Node objects appended (``cluster.add_nodes``).

    Each entry: ``like`` (the name of a Node to copy), ``count`` (copies, >= 1), ``name``
    (optional: a pattern with ``{k}``, 1-based; default ``<like>-whatif-{k}``) and ``labels``
    (optional: labels to set on the copies, e.g. another rack). A copy's
    ``kubernetes.io/hostname`` label is its name.

    Raises:
        ManifestError: an entry without ``like``/``count``, an unknown node, a duplicate name.
    """
    out = list(manifests)
    names = {m.name for m in out if m.kind == "Node"}
    for n, entry in enumerate(add, start=1):
        what = f"cluster.add_nodes[{n - 1}]"
        if not isinstance(entry, Mapping) or "like" not in entry or "count" not in entry:
            raise ManifestError(f"{what}: expected {{like: NODE, count: N}}, got {entry!r}")
        like, count = str(entry["like"]), entry["count"]
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ManifestError(f"{what}: count must be an integer >= 1, got {count!r}")
        model = next((m for m in out if m.kind == "Node" and m.name == like), None)
        if model is None:
            raise ManifestError(f"{what}: no Node named {like!r} ({len(names)} nodes)")
        pattern = str(entry.get("name") or f"{like}-whatif-{{k}}")
        labels = dict(entry.get("labels") or {})
        for k in range(1, count + 1):
            name = pattern.format(k=k)
            if name in names:
                raise ManifestError(f"{what}: a node named {name!r} exists already")
            names.add(name)
            obj = copy.deepcopy(dict(model.obj))
            meta = obj.setdefault("metadata", {})
            meta["name"] = name
            meta["labels"] = {**dict(meta.get("labels") or {}), **labels}
            meta["labels"]["kubernetes.io/hostname"] = name
            out.append(Manifest(obj, f"{what} (copy of {like})", model.document, model.item))
    return out
