"""Announcements' light markup, rendered safely: the text is escaped first, then a few marks become tags.

What staff may write: blank lines between paragraphs, **bold**, *emphasis* (or _emphasis_),
[words](https://address) and bare https:// addresses as links. Nothing else: no raw HTML (it shows as
text), no link to anything but http(s). Clients get ``plain()``: the same text without the marks.
"""

from __future__ import annotations

import html
import re

from django.utils.safestring import SafeString, mark_safe

MAX_CHARS = 20_000  # an announcement's body is a few paragraphs: anything longer is cut, bounding the work

_LINK = re.compile(r"\[([^\]\n]{1,200})\]\((https?://[^\s()<>\"']{1,500})\)")
_BARE = re.compile(r"(?<![\"=>])\b(https?://[^\s<>\"']{1,500}[^\s<>\"'.,;:!?)])")
_BOLD = re.compile(r"\*\*(?=\S)([^*\n]{1,500}?)(?<=\S)\*\*")
_EM = re.compile(r"(?<![\w*])([*_])(?=\S)([^*_\n]{1,500}?)(?<=\S)\1(?![\w*])")


def _inline(escaped: str) -> str:
    links: list[str] = []

    def keep(tag: str) -> str:  # links are set aside so that emphasis marks inside addresses stay put
        links.append(tag)
        return f"\x00{len(links) - 1}\x00"

    text = _LINK.sub(
        lambda m: keep(f'<a href="{m.group(2)}" rel="nofollow noopener">{m.group(1)}</a>'), escaped
    )
    text = _BARE.sub(lambda m: keep(f'<a href="{m.group(1)}" rel="nofollow noopener">{m.group(1)}</a>'), text)
    text = _BOLD.sub(r"<strong>\1</strong>", text)
    text = _EM.sub(r"<em>\2</em>", text)
    return re.sub(r"\x00(\d+)\x00", lambda m: links[int(m.group(1))], text)


def render(text: str) -> SafeString:
    """The body as HTML paragraphs: escaped, then links and emphasis; safe to put in a page."""
    text = (text or "")[:MAX_CHARS].replace("\x00", "").replace("\r\n", "\n")
    escaped = html.escape(text, quote=True)
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", escaped) if p.strip()]
    return mark_safe("".join(f"<p>{_inline(p).replace(chr(10), '<br>')}</p>" for p in paragraphs))  # noqa: S308


def plain(text: str) -> str:
    """The body without its marks ('[words](address)' becomes 'words (address)'), for the client."""
    text = (text or "")[:MAX_CHARS]
    text = re.sub(r"\[([^\]\n]{1,200})\]\((https?://[^\s()]{1,500})\)", r"\1 (\2)", text)
    text = _BOLD.sub(r"\1", text)
    return _EM.sub(r"\2", text)
