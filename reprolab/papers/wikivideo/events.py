"""Synthetic multi-video events with hidden scripts: the offline stand-in for WikiVideo's events and videos.

No video of a real event exists offline, so an event here is a hidden script (spec sheet, "Our reproduction"):
named coloured shapes at a place on a day, with a timeline (entrances, a collision, a split, a late visitor).
Its facts (about 9) each have a canonical sentence, slot values and a level:

- ``low``: what one frame shows (each shape's colour, where the static shape stays);
- ``event``: what needs the timeline or several videos (who collided, the outcome of the collision, how many
  objects took part in total, which entered first, where and when).

Each video is one camera: a time window, a crop (the columns it sees) and an on-screen text, so it holds a
subset of the facts. Its *frame log* (one line per frame: on-screen text, each visible shape with its label,
colour and grid cell, contacts) is the describer's perception: a VideoLLM with perfect perception. The
reference lead is written from the facts by a template, as WikiVideo's leads keep only grounded claims.

Scorers (exact, on the hidden script): a fact is recalled when all its slot values (any listed surface form)
occur in one sentence of the article; a sentence is hallucinated when it names an entity of the event with a
colour or shape no entity named in it has, names a place or day other than the event's, or names a shape
label that is not in the event.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any

from ...errors import ConfigError

NAMES = ("Alpha", "Bravo", "Comet", "Delta", "Ember", "Flint", "Gale", "Juniper", "Kestrel", "Lumen", "Maple", "Nimbus")
COLOURS = ("red", "blue", "green", "yellow", "purple", "orange")
SHAPES = ("circle", "square", "triangle")
PLACES = ("Harbor Square", "North Station", "Elm Park", "River Gate", "Mill Bridge", "Stone Plaza", "Cedar Market", "West Pier")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}
COLUMNS = ("left", "centre", "right")
ROWS = ("top", "middle", "bottom")
CORNERS = (("top", "left"), ("top", "right"), ("bottom", "left"), ("bottom", "right"))
N_FRAMES = 12  # frames of the timeline (one per second)
COLLISION_AT = 6  # the frame where the mover touches the target
LEVELS = ("low", "event")

COLLISION_WORDS = ("collid", "collision", "crash", "hit", "struck", "strike", "bump", "touch", "ran into", "smash")
SPLIT_WORDS = ("split", "broke", "break", "shatter", "piece", "fragment")
OBJECT_WORDS = ("object", "shape", "item", "entit", "figure", "participant")
FIRST_WORDS = ("first", "earliest", "began with", "started with")


@dataclass(frozen=True)
class Fact:
    """One atomic claim of an event's lead: its canonical sentence, the slot values that must co-occur in one
    sentence of an article (each slot: acceptable lower-case surface forms) and its level."""

    key: str
    level: str  # "low" | "event"
    canonical: str
    slots: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Entity:
    name: str
    colour: str
    shape: str
    role: str  # "mover" | "target" | "static" | "visitor"


@dataclass(frozen=True)
class Camera:
    """One video of the event: frames ``start..end`` (inclusive), the grid columns it sees, its on-screen text."""

    start: int
    end: int
    columns: tuple[str, ...]
    overlay: str


@dataclass(frozen=True)
class SyntheticVideo:
    """A video as the describer perceives it: an id and its symbolic frame log."""

    id: str
    frame_log: str
    camera: Camera
    visible: tuple[str, ...]  # keys of the facts this video alone shows


@dataclass(frozen=True)
class SyntheticEvent:
    id: str
    query: str  # what the writer is told the event is (a neutral title: it gives nothing away)
    place: str
    day: str
    entities: tuple[Entity, ...]
    pieces: int  # the target splits into this many pieces
    first: str  # the entity that entered first
    corner: tuple[str, str]  # (row, column) where the static entity stays
    facts: tuple[Fact, ...]
    videos: tuple[SyntheticVideo, ...]
    reference: str = field(default="")  # the template lead, "<lead>...</lead>"

    def entity(self, role: str) -> Entity:
        return next(e for e in self.entities if e.role == role)

    @property
    def levels(self) -> dict[str, list[str]]:
        return {lv: [f.key for f in self.facts if f.level == lv] for lv in LEVELS}


def make_events(n_events: int, n_videos: int = 4, seed: int = 0) -> list[SyntheticEvent]:
    """``n_events`` events of ``n_videos`` cameras each (3-5), reproducible from ``seed``."""
    if not isinstance(n_events, int) or n_events < 1:
        raise ConfigError("n_events", n_events, "an integer >= 1")
    if not isinstance(n_videos, int) or not 3 <= n_videos <= 5:
        raise ConfigError("n_videos", n_videos, "an integer in [3, 5] (cameras per event)")
    return [make_event(i, n_videos, random.Random(f"wikivideo-{seed}-{i}")) for i in range(n_events)]


def make_event(index: int, n_videos: int, rng: random.Random) -> SyntheticEvent:
    n = rng.choice((3, 4))
    names = rng.sample(NAMES, n)
    colours = rng.sample(COLOURS, n)
    roles = ("mover", "target", "static", "visitor")[:n]
    entities = tuple(Entity(nm, c, rng.choice(SHAPES), r) for nm, c, r in zip(names, colours, roles))
    place, day = rng.choice(PLACES), rng.choice(DAYS)
    pieces = rng.choice([k for k in (2, 3, 5) if k != n])  # never the total count: the two facts stay apart
    first = rng.choice(entities[:3]).name
    corner = rng.choice(CORNERS)
    facts = _facts(entities, place, day, pieces, first, corner)
    states = _timeline(entities, first, corner, pieces)
    cams = _cameras(n_videos, place, day, rng)
    videos = []
    for j, cam in enumerate(cams):
        log, seen = _frame_log(cam, states, entities, pieces)
        videos.append(SyntheticVideo(f"e{index}v{j}", log, cam, tuple(_visible(cam, seen, entities, facts, place, day))))
    event = SyntheticEvent(f"e{index}", f"Shapes event {index}", place, day, entities, pieces, first, corner, facts, tuple(videos))
    return SyntheticEvent(**{**event.__dict__, "reference": reference_lead(event)})


def reference_lead(event: SyntheticEvent) -> str:
    """The template lead: the canonical sentences, event-level first (a lead opens with what happened)."""
    ordered = [f for f in event.facts if f.level == "event"] + [f for f in event.facts if f.level == "low"]
    return "<lead>" + " ".join(f.canonical for f in ordered) + "</lead>"


# ----------------------------------------------------------------------------------------------- scorers


def sentences(article: str) -> list[str]:
    """The article's sentences (``<lead>`` tags dropped; split after . ! ? and at line breaks)."""
    text = re.sub(r"</?lead>", " ", article)
    parts = re.split(r"(?<=[.!?])\s+|\n+", text)
    return [p.strip() for p in parts if len(p.strip()) > 1]


_STEMS = frozenset(COLLISION_WORDS + SPLIT_WORDS + OBJECT_WORDS + FIRST_WORDS)  # matched as word beginnings ("collid" -> "collided")


def _has(sentence: str, form: str) -> bool:
    """``form`` occurs in the (lower-case) sentence: a stem as a word beginning, anything else as a whole word
    (an optional plural "s": "red" does not match "reduced", "circle" matches "circles")."""
    end = "" if form in _STEMS else r"s?\b"
    return re.search(r"\b" + re.escape(form) + end, sentence) is not None


def fact_recalled(fact: Fact, article: str) -> bool:
    """All of the fact's slots (any of each slot's forms) occur in one sentence of the article."""
    return any(all(any(_has(s, form) for form in slot) for slot in fact.slots) for s in (x.lower() for x in sentences(article)))


def fact_recall(event: SyntheticEvent, article: str) -> dict[str, Any]:
    """Recall over all facts and per level, and which facts were recalled."""
    hit = {f.key: fact_recalled(f, article) for f in event.facts}
    out: dict[str, Any] = {"recall": sum(hit.values()) / len(hit), "recalled": [k for k, v in hit.items() if v]}
    for lv, keys in event.levels.items():
        out[f"recall_{lv}"] = sum(hit[k] for k in keys) / len(keys)
    return out


def hallucinated_sentences(event: SyntheticEvent, article: str) -> list[str]:
    """Sentences that name an entity with a wrong value (see the module doc)."""
    ents = {e.name.lower(): e for e in event.entities}
    others_names = [nm.lower() for nm in NAMES if nm.lower() not in ents]
    other_places = [p.lower() for p in PLACES if p != event.place]
    other_days = [d.lower() for d in DAYS if d != event.day]
    bad = []
    for s in sentences(article):
        low = s.lower().replace(event.place.lower(), " ")  # "Harbor Square" names a place, not a square
        named = [e for nm, e in ents.items() if _has(low, nm)]
        wrong = any(_has(s.lower(), p) for p in other_places) or any(_has(low, d) for d in other_days)
        wrong = wrong or any(_has(low, nm) for nm in others_names)
        if named:
            colours = {e.colour for e in named}
            shapes = {e.shape for e in named}
            wrong = wrong or any(_has(low, c) and c not in colours for c in COLOURS)
            wrong = wrong or any(_has(low, sh) and sh not in shapes for sh in SHAPES)
        if wrong:
            bad.append(s)
    return bad


def hallucination_rate(event: SyntheticEvent, article: str) -> float:
    """Hallucinated sentences / sentences (0 for an empty article: nothing claimed, nothing wrong)."""
    ss = sentences(article)
    return len(hallucinated_sentences(event, article)) / len(ss) if ss else 0.0


# ----------------------------------------------------------------------------------------------- internals


def _facts(entities: tuple[Entity, ...], place: str, day: str, pieces: int, first: str, corner: tuple[str, str]) -> tuple[Fact, ...]:
    by = {e.role: e for e in entities}
    a, b, c = by["mover"], by["target"], by["static"]
    n = len(entities)
    low = lambda s: s.lower()  # noqa: E731
    facts = [
        Fact("where_when", "event", f"The event took place at {place} on {day}.", ((low(place),), (low(day),))),
        Fact("count", "event", f"{NUMBER_WORDS[n].capitalize()} objects took part in total.", ((str(n), NUMBER_WORDS[n]), OBJECT_WORDS)),
        Fact("first", "event", f"{first} entered first.", ((low(first),), FIRST_WORDS)),
        Fact("collision", "event", f"{a.name} collided with {b.name}.", ((low(a.name),), (low(b.name),), COLLISION_WORDS)),
        Fact("outcome", "event", f"After the collision, {b.name} split into {NUMBER_WORDS[pieces]} pieces.",
             ((low(b.name),), SPLIT_WORDS, (str(pieces), NUMBER_WORDS[pieces]))),
    ]
    for e in (a, b, c):
        facts.append(Fact(f"colour_{e.role}", "low", f"{e.name} is a {e.colour} {e.shape}.", ((low(e.name),), (e.colour,))))
    facts.append(Fact("position", "low", f"{c.name} stayed in the {corner[0]} {corner[1]} corner.", ((low(c.name),), (corner[0],), (corner[1],))))
    return tuple(facts)


def _timeline(entities: tuple[Entity, ...], first: str, corner: tuple[str, str], pieces: int) -> list[dict[str, tuple[str, str]]]:
    """Per frame: entity name -> (row, column) of the visible entities; the target's pieces as "<name>*"."""
    by = {e.role: e for e in entities}
    enter = {e.name: (0 if e.name == first else 1 + i % 2) for i, e in enumerate(entities) if e.role != "visitor"}
    states = []
    for t in range(N_FRAMES):
        s: dict[str, tuple[str, str]] = {}
        a, b, c = by["mover"], by["target"], by["static"]
        if t >= enter[a.name]:
            s[a.name] = ("middle", "left") if t < COLLISION_AT else ("middle", "centre")
        if t >= enter[b.name]:
            s[b.name if t <= COLLISION_AT else b.name + "*"] = ("middle", "centre")
        if t >= enter[c.name]:
            s[c.name] = corner
        if "visitor" in by and 8 <= t <= 10:
            s[by["visitor"].name] = ("bottom", "right" if corner[1] == "left" else "left")
        states.append(s)
    return states


def _cameras(n_videos: int, place: str, day: str, rng: random.Random) -> list[Camera]:
    """Five camera templates (windows, crops, overlays): the opening wide shot and the late centre shot (which sees
    the collision and holds the place and day) always, then ``n_videos - 2`` of the other three in a random order;
    windows jitter by one frame."""
    j = lambda: rng.choice((-1, 0, 1))  # noqa: E731
    up = place.upper()
    templates = [
        Camera(0, 4 + j(), COLUMNS, f"LIVE {up}"),
        Camera(3 + j(), 9, ("centre", "right"), day.upper()),
        Camera(6, 11, ("left", "centre"), f"{up} - {day.upper()}"),
        Camera(0, 11, ("left",), "CAM 4"),
        Camera(7 + j(), 11, COLUMNS, day.upper()),
    ]
    rest = [templates[1], templates[3], templates[4]]
    rng.shuffle(rest)
    return [templates[0], templates[2], *rest][:n_videos]


def _frame_log(cam: Camera, states: list[dict[str, tuple[str, str]]], entities: tuple[Entity, ...], pieces: int) -> tuple[str, set[str]]:
    by = {e.name: e for e in entities}
    target = next(e for e in entities if e.role == "target")
    mover = next(e for e in entities if e.role == "mover")
    lines, seen = [], set()
    for t in range(cam.start, cam.end + 1):
        vis = [(k, cell) for k, cell in states[t].items() if cell[1] in cam.columns]
        items = []
        for k, (row, col) in vis:
            if k.endswith("*"):
                e = by[k[:-1]]
                items.append(f"{NUMBER_WORDS[pieces]} small {e.colour} pieces labelled {e.name} at {row} {col}")
                seen.add("pieces")
            else:
                e = by[k]
                items.append(f"a {e.colour} {e.shape} labelled {e.name} at {row} {col}")
                seen.add(e.name)
        names = {k for k, _ in vis}
        if t == COLLISION_AT and mover.name in names and target.name in names:
            items.append(f"{mover.name} touches {target.name}")
            seen.add("contact")
        if t == 0 and vis:
            seen.add("opening")
        body = "; ".join(items) if items else "nothing visible"
        lines.append(f"frame {t:02d} | on-screen text: \"{cam.overlay}\" | {body}")
    return "\n".join(lines), seen


def _visible(cam: Camera, seen: set[str], entities: tuple[Entity, ...], facts: tuple[Fact, ...], place: str, day: str) -> list[str]:
    by = {e.role: e for e in entities}
    out = []
    for f in facts:
        if f.key == "where_when":
            ok = place.upper() in cam.overlay and day.upper() in cam.overlay
        elif f.key == "count":
            ok = all(e.name in seen for e in entities)
        elif f.key == "first":
            ok = "opening" in seen and cam.start == 0
        elif f.key == "collision":
            ok = "contact" in seen
        elif f.key == "outcome":
            ok = "pieces" in seen
        elif f.key.startswith("colour_"):
            ok = by[f.key.split("_", 1)[1]].name in seen
        else:  # position of the static entity
            ok = by["static"].name in seen
        if ok:
            out.append(f.key)
    return out


def union_visible(event: SyntheticEvent) -> set[str]:
    """Facts that some video shows on its own (the others, e.g. the total count, need several videos)."""
    return {k for v in event.videos for k in v.visible}


__all__ = ["COLOURS", "DAYS", "Entity", "Fact", "LEVELS", "NAMES", "PLACES", "SHAPES", "SyntheticEvent", "SyntheticVideo", "Camera",
           "fact_recall", "fact_recalled", "hallucinated_sentences", "hallucination_rate", "make_event", "make_events",
           "reference_lead", "sentences", "union_visible"]
