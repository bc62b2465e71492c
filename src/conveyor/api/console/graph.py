"""A state machine drawn as a graph in SVG, from its ASL definition: states as
boxes in layers from ``StartAt`` down, transitions (Next, Choices, Default,
Catch, End) as arrows, and an execution's path highlighted, as the Step
Functions console shows it. Only the top-level states are drawn; the states
inside a Parallel or Map are listed with the execution's details."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import quote

BOX_W, BOX_H = 190, 44
GAP_X, GAP_Y = 28, 52
MARGIN = 20
START, END = "__start__", "__end__"


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    kind: str  # next | choice | default | catch | end | start


def edges_of(definition: dict[str, Any]) -> list[Edge]:
    states: dict[str, Any] = definition.get("States") or {}
    edges = [Edge(START, str(definition.get("StartAt")), "start")]
    for name, body in states.items():
        if not isinstance(body, dict):
            continue
        kind = body.get("Type")
        if isinstance(body.get("Next"), str):
            edges.append(Edge(name, body["Next"], "next"))
        for rule in body.get("Choices") or []:
            if isinstance(rule, dict) and isinstance(rule.get("Next"), str):
                edges.append(Edge(name, rule["Next"], "choice"))
        if isinstance(body.get("Default"), str):
            edges.append(Edge(name, body["Default"], "default"))
        for catcher in body.get("Catch") or []:
            if isinstance(catcher, dict) and isinstance(catcher.get("Next"), str):
                edges.append(Edge(name, catcher["Next"], "catch"))
        if body.get("End") is True or kind in ("Succeed", "Fail"):
            edges.append(Edge(name, END, "end"))
    known = set(states) | {START, END}
    unique = dict.fromkeys(e for e in edges if e.target in known)
    return list(unique)


def layers_of(definition: dict[str, Any], edges: Sequence[Edge]) -> list[list[str]]:
    """Breadth-first layers from the start; unreachable states last, End at the bottom."""
    states = list((definition.get("States") or {}).keys())
    following: dict[str, list[str]] = {}
    for e in edges:
        following.setdefault(e.source, []).append(e.target)
    depth = {START: 0}
    queue = deque([START])
    while queue:
        node = queue.popleft()
        for nxt in following.get(node, []):
            if nxt not in depth and nxt != END:
                depth[nxt] = depth[node] + 1
                queue.append(nxt)
    bottom = max(depth.values()) + 1
    for name in states:
        depth.setdefault(name, bottom)
    bottom = max(depth.values()) + 1
    layers: list[list[str]] = [[] for _ in range(bottom + 1)]
    for name in [START, *states]:
        layers[depth[name]].append(name)
    layers[bottom].append(END)
    return [layer for layer in layers if layer]


def _taken(path: Sequence[str], states: set[str], finished: bool) -> set[tuple[str, str]]:
    top = [name for name in path if name in states]
    taken = set(zip([START, *top], top, strict=False))
    if finished and top:
        taken.add((top[-1], END))
    return taken


def state_graph(
    definition: dict[str, Any],
    path: Sequence[str] = (),
    *,
    status: str | None = None,
    failed_state: str | None = None,
) -> str:
    """The SVG of the definition with ``path`` (the states entered, in order) highlighted."""
    states: dict[str, Any] = definition.get("States") or {}
    edges = edges_of(definition)
    layers = layers_of(definition, edges)
    widest = max(len(layer) for layer in layers)
    width = 2 * MARGIN + widest * BOX_W + (widest - 1) * GAP_X
    height = 2 * MARGIN + len(layers) * BOX_H + (len(layers) - 1) * GAP_Y + 10
    where: dict[str, tuple[float, float]] = {}
    for row, layer in enumerate(layers):
        used = len(layer) * BOX_W + (len(layer) - 1) * GAP_X
        left = (width - used) / 2
        for col, name in enumerate(layer):
            where[name] = (left + col * (BOX_W + GAP_X), MARGIN + row * (BOX_H + GAP_Y))
    visited = {name for name in path if name in states}
    finished = status == "SUCCEEDED"
    taken = _taken(path, set(states), finished)
    current = path[-1] if status == "RUNNING" and path else None
    title = f"State machine graph, {len(states)} states; path taken: {' → '.join(path) or 'none yet'}"
    out = [
        f'<svg class="graph" viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" role="img" '
        f'aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class="arrowhead"/></marker>'
        '<marker id="arrow-taken" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class="arrowhead-taken"/></marker></defs>',
    ]
    for e in edges:
        out.append(_edge(e, where, (e.source, e.target) in taken))
    for name, (x, y) in where.items():
        out.append(_node(name, states.get(name), x, y, visited, current, failed_state, finished))
    out.append("</svg>")
    return "".join(out)


def _edge(e: Edge, where: dict[str, tuple[float, float]], taken: bool) -> str:
    sx, sy = where[e.source]
    tx, ty = where[e.target]
    x1, y1 = sx + BOX_W / 2, sy + BOX_H
    x2, y2 = tx + BOX_W / 2, ty
    classes = f"edge edge-{e.kind}" + (" taken" if taken else "")
    marker = "url(#arrow-taken)" if taken else "url(#arrow)"
    label = f"{e.source} to {e.target}".replace(START, "start").replace(END, "end")
    if ty > sy:
        mid = (y1 + y2) / 2
        d = f"M{x1:.1f},{y1:.1f} C{x1:.1f},{mid:.1f} {x2:.1f},{mid:.1f} {x2:.1f},{y2:.1f}"
    else:  # a loop back up (or sideways): round the right side of both boxes
        rx = max(sx, tx) + BOX_W + GAP_X / 2
        d = (
            f"M{sx + BOX_W:.1f},{sy + BOX_H / 2:.1f} C{rx:.1f},{sy + BOX_H / 2:.1f} "
            f"{rx:.1f},{ty + BOX_H / 2:.1f} {tx + BOX_W:.1f},{ty + BOX_H / 2:.1f}"
        )
    data = f'data-from="{escape(e.source)}" data-to="{escape(e.target)}"'
    return (
        f'<path class="{classes}" {data} d="{d}" marker-end="{marker}"><title>{escape(label)}</title></path>'
    )


def _node(
    name: str,
    body: Any,
    x: float,
    y: float,
    visited: set[str],
    current: str | None,
    failed: str | None,
    finished: bool,
) -> str:
    if name in (START, END):
        reached = (name == START and bool(visited)) or (name == END and finished)
        text = "Start" if name == START else "End"
        cls = "terminal" + (" visited" if reached else "")
        return (
            f'<g class="node {cls}"><rect x="{x + BOX_W / 2 - 36:.1f}" y="{y + 8:.1f}" width="72" '
            f'height="28" rx="14"/><text x="{x + BOX_W / 2:.1f}" y="{y + 27:.1f}" '
            f'text-anchor="middle">{text}</text></g>'
        )
    kind = body.get("Type", "?") if isinstance(body, dict) else "?"
    cls = "node"
    state = "not entered"
    if name in visited:
        cls, state = cls + " visited", "entered"
    if name == current:
        cls, state = cls + " current", "running"
    if name == failed:
        cls, state = cls + " failed", "failed"
    shown = name if len(name) <= 24 else name[:23] + "…"
    cx = x + BOX_W / 2
    return (
        f'<a href="#state-{quote(name)}"><g class="{cls}" data-state="{escape(name)}" data-visited="'
        f'{"true" if name in visited else "false"}"><title>{escape(f"{name} ({kind}): {state}")}</title>'
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{BOX_W}" height="{BOX_H}" rx="6"/>'
        f'<text x="{cx:.1f}" y="{y + 19:.1f}" text-anchor="middle" class="name">{escape(shown)}</text>'
        f'<text x="{cx:.1f}" y="{y + 35:.1f}" text-anchor="middle" class="kind">{escape(kind)}</text>'
        "</g></a>"
    )
