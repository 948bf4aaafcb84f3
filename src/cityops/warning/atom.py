"""The active warnings as an Atom 1.0 feed (RFC 4287), one entry per CAP message.

Alert aggregators and CAP-aware readers poll a feed like this to discover warnings: each
entry links to its CAP 1.2 document with ``rel="alternate" type="application/cap+xml"`` and,
optionally, to the public web page with ``type="text/html"``. Which messages are in force is
the caller's decision; a Cancel message belongs in the feed for a while after it is sent,
since that is how readers learn a warning has been lifted.

Notes on the RFC's rules:

* Every ``atom:id`` must be a permanent, unique IRI. A CAP identifier is unique but not an
  IRI, so an entry's id is a ``tag:`` URI (RFC 4151) built from it, unless the identifier
  already is a ``tag:`` or ``urn:`` IRI.
* Date-times are RFC 3339. Atom would accept ``Z``, but they are written with a numeric
  offset exactly as in the CAP documents (district time for UTC values), so the same
  instant reads the same in both.
* A feed needs an author unless every entry has one; the feed carries one anyway, so an
  empty feed (no warnings in force) is still valid.
* The warning level and area go in ``atom:category`` elements: Atom has no elements of its
  own for them, and extension elements would break readers that validate strictly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from lxml import etree  # type: ignore[import-untyped, unused-ignore]

from cityops.warning.cap import DEFAULT_SENDER_NAME, DISTRICT_TZ, LEVEL_ZH, format_datetime

ATOM_NS = "http://www.w3.org/2005/Atom"
ATOM_MEDIA_TYPE = "application/atom+xml"
CAP_MEDIA_TYPE = "application/cap+xml"
# The tagging entity is the district government's domain; the date is when that name was
# first used for these ids and must never change, or every entry id would change with it.
DEFAULT_TAG_PREFIX = "tag:kaizhou.gov.cn,2026:cityops/cap/"
LEVEL_SCHEME = "urn:cityops:warning:level"
AREA_SCHEME = "urn:cityops:warning:area"


@dataclass(frozen=True)
class FeedEntry:
    """One CAP message in the feed."""

    identifier: str  # the CAP identifier
    title: str  # the CAP headline
    summary: str
    updated: datetime  # timezone-aware; when this message was sent
    cap_url: str  # the CAP 1.2 document
    level: str  # blue | yellow | orange | red
    area_desc: str
    html_url: str | None = None  # the public warning page
    author: str = DEFAULT_SENDER_NAME


def entry_id(identifier: str, tag_prefix: str = DEFAULT_TAG_PREFIX) -> str:
    """The permanent ``atom:id`` of the entry for a CAP identifier."""
    if not identifier:
        raise ValueError("a feed entry needs its CAP identifier")
    if identifier.startswith(("tag:", "urn:")):
        return identifier
    return f"{tag_prefix}{identifier}"


def _sub(parent: Any, tag: str, text: str | None = None, **attributes: str) -> Any:
    element = etree.SubElement(parent, f"{{{ATOM_NS}}}{tag}", attributes)
    if text is not None:
        element.text = text
    return element


def _person(parent: Any, tag: str, name: str) -> None:
    if not name.strip():
        raise ValueError(f"atom:{tag} needs a name")
    _sub(_sub(parent, tag), "name", name)


def feed(
    entries: Sequence[FeedEntry],
    *,
    feed_id: str,
    title: str,
    self_url: str,
    updated: datetime,
    author: str = DEFAULT_SENDER_NAME,
    html_url: str | None = None,
    tag_prefix: str = DEFAULT_TAG_PREFIX,
    utc_to: tzinfo | None = DISTRICT_TZ,
) -> bytes:
    """The Atom feed of ``entries`` (in the order given): UTF-8 XML with a declaration.

    Raises ``ValueError`` for a naive datetime, an unknown level, or a feed id without a scheme.
    """
    if ":" not in feed_id:
        raise ValueError(f"feed_id {feed_id!r} must be an IRI such as tag:… or urn:…")

    root = etree.Element(f"{{{ATOM_NS}}}feed", nsmap={None: ATOM_NS})
    # Titles and summaries are Chinese; xml:lang lets readers pick fonts and voices.
    root.set("{http://www.w3.org/XML/1998/namespace}lang", "zh-CN")
    _sub(root, "id", feed_id)
    _sub(root, "title", title, type="text")
    _sub(root, "updated", format_datetime(updated, utc_to=utc_to, what="feed updated"))
    _person(root, "author", author)
    _sub(root, "link", rel="self", type=ATOM_MEDIA_TYPE, href=self_url)
    if html_url:
        _sub(root, "link", rel="alternate", type="text/html", href=html_url)
    _sub(root, "generator", "CityOps")

    for item in entries:
        if item.level not in LEVEL_ZH:
            raise ValueError(f"unknown warning level {item.level!r} of {item.identifier!r}")
        entry = _sub(root, "entry")
        _sub(entry, "id", entry_id(item.identifier, tag_prefix))
        _sub(entry, "title", item.title, type="text")
        stamp = format_datetime(item.updated, utc_to=utc_to, what=f"of {item.identifier}")
        _sub(entry, "updated", stamp)
        _person(entry, "author", item.author)
        _sub(entry, "summary", item.summary, type="text")
        _sub(
            entry,
            "category",
            scheme=LEVEL_SCHEME,
            term=item.level,
            label=f"{LEVEL_ZH[item.level]}预警",
        )
        _sub(entry, "category", scheme=AREA_SCHEME, term=item.area_desc, label=item.area_desc)
        _sub(entry, "link", rel="alternate", type=CAP_MEDIA_TYPE, href=item.cap_url)
        if item.html_url:
            _sub(entry, "link", rel="alternate", type="text/html", href=item.html_url)

    document: bytes = etree.tostring(
        root, xml_declaration=True, encoding="UTF-8", pretty_print=True
    )
    return document
