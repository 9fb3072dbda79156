"""Small XML helpers: build S3 response documents, parse request bodies safely.

Parsing uses defusedxml with DTDs forbidden, so entity expansion ("billion
laughs") and external entities are refused; bodies are read with a size cap first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

import defusedxml.ElementTree as DET
from aiohttp import web
from defusedxml import DefusedXmlException

if TYPE_CHECKING:
    from lampi.s3.request import S3Request  # the request runs lampi.s3.acl, which answers with XML

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"


class XMLError(ValueError):
    """The body is not well-formed XML (or uses DTDs / entities)."""


def element(name: str, value: str | int | bool | Iterable[str] | None) -> str:
    """``<name>value</name>``; ``value`` is text (escaped) or an iterable of children."""
    if value is None:
        return f"<{name}/>"
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (str, int)):
        text = escape(_unicode(str(value)))
    else:
        text = "".join(value)
    return f"<{name}>{text}</{name}>"


_SURROGATE = re.compile("[\ud800-\udfff]")


def _unicode(text: str) -> str:
    """``text`` as UTF-8 can carry it. Header values arrive from aiohttp with bytes that
    are not UTF-8 as surrogate escapes; an error echoing one (``ArgumentValue``) would
    not encode. Each such byte becomes U+FFFD."""
    return _SURROGATE.sub("\ufffd", text)


def xml_doc(root: str, children: Iterable[str], namespace: bool = True) -> bytes:
    ns = f' xmlns="{S3_NS}"' if namespace else ""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<{root}{ns}>' + "".join(children) + f"</{root}>"
    ).encode("utf-8")


def parse(body: bytes, root_tag: str | None = None) -> Element:
    """Parse ``body``; namespaces are stripped from tags so callers match local names.
    With ``root_tag``, a document with another root element is an ``XMLError`` too."""
    try:
        root = DET.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (DefusedXmlException, SyntaxError, ValueError) as exc:
        raise XMLError(str(exc)) from None
    for el in root.iter():
        if isinstance(el.tag, str) and "}" in el.tag:
            el.tag = el.tag.split("}", 1)[1]
    if root_tag is not None and root.tag != root_tag:
        raise XMLError(f"root element is <{root.tag}>, not <{root_tag}>")
    return root


def child_text(el: Element, name: str) -> str | None:
    c = el.find(name)
    return None if c is None else (c.text or "")


def xml_response(ctx: S3Request, body: bytes, status: int = 200) -> web.Response:
    return web.Response(status=status, body=body, content_type="application/xml")
