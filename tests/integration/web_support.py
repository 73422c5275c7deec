"""Helpers for the web tests: a cookie-holding browser over the in-process app, and pages parsed
with the standard library's ``html.parser`` (forms, labelled controls, sections, tables)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import httpx

__all__ = [
    "COOKIE",
    "Browser",
    "Control",
    "Form",
    "Page",
    "parse_page",
    "query_of",
    "set_cookie",
]

COOKIE = "ringfence_session"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


@dataclass
class Control:
    """An ``<input>``, ``<select>``, ``<textarea>`` or ``<button>``."""

    tag: str
    attrs: dict[str, str]
    wrapped_in_label: bool
    value: str = ""
    text: str = ""
    options: list[tuple[str, bool]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.attrs.get("name", "")

    @property
    def type(self) -> str:
        default = "submit" if self.tag == "button" else "text"
        return self.attrs.get("type", default).lower()


@dataclass
class Form:
    method: str
    action: str
    section: str | None
    controls: list[Control] = field(default_factory=list)

    @property
    def buttons(self) -> list[str]:
        return [_squash(c.text) for c in self.controls if c.tag == "button"]

    def control(self, name: str) -> Control:
        [found] = [c for c in self.controls if c.name == name and c.tag != "button"]
        return found

    def values(self) -> dict[str, str]:
        """What a browser would send without the user touching anything."""
        sent: dict[str, str] = {}
        for control in self.controls:
            if not control.name or control.tag == "button":
                continue
            if control.tag == "select":
                chosen = [value for value, selected in control.options if selected]
                first = [value for value, _ in control.options[:1]]
                sent[control.name] = (chosen or first or [""])[0]
            elif control.type in ("checkbox", "radio"):
                if "checked" in control.attrs:
                    sent[control.name] = control.attrs.get("value", "on")
            else:
                sent[control.name] = control.value
        return sent


@dataclass
class Table:
    section: str | None
    rows: list[list[str]] = field(default_factory=list)


@dataclass
class Page:
    """A parsed HTML page."""

    html: str
    text: str = ""
    forms: list[Form] = field(default_factory=list)
    controls: list[Control] = field(default_factory=list)
    label_targets: set[str] = field(default_factory=set)
    sections: dict[str, str] = field(default_factory=dict)
    tables: list[Table] = field(default_factory=list)
    tree_paths: list[str] = field(default_factory=list)
    inline_code: list[str] = field(default_factory=list)

    def form(self, action: str, method: str = "post") -> Form:
        found = [f for f in self.forms if f.action == action and f.method == method]
        assert len(found) == 1, f"{len(found)} {method} forms to {action}"
        return found[0]

    @property
    def post_forms(self) -> list[Form]:
        return [f for f in self.forms if f.method == "post"]

    @property
    def buttons(self) -> list[str]:
        return [_squash(c.text) for c in self.controls if c.tag == "button"]

    def unlabelled(self) -> list[str]:
        """Every visible form control that neither a ``<label for>`` nor a wrapping label names."""
        missing = []
        for control in self.controls:
            if control.tag == "button" or control.type in ("hidden", "submit", "button"):
                continue
            identifier = control.attrs.get("id")
            if control.wrapped_in_label or (identifier and identifier in self.label_targets):
                continue
            missing.append(f"<{control.tag} name={control.name!r} id={identifier!r}>")
        return missing

    def table(self, section: str) -> list[list[str]]:
        [found] = [t.rows for t in self.tables if t.section == section]
        return found


class _Parser(HTMLParser):
    def __init__(self, page: Page) -> None:
        super().__init__(convert_charrefs=True)
        self.page = page
        self.texts: list[str] = []
        self.label_depth = 0
        self.form: Form | None = None
        self.section: str | None = None
        self.section_depth = 0
        self.open: list[str] = []
        self.capture: Control | None = None
        self.option: tuple[Control, dict[str, str]] | None = None
        self.option_text: list[str] = []
        self.table: Table | None = None
        self.row: list[str] | None = None
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attributes: list[tuple[str, str | None]]) -> None:
        attrs = {name: value or "" for name, value in attributes}
        for name in attrs:
            if name == "style" or name.startswith("on"):
                self.page.inline_code.append(f"<{tag} {name}=...>")
        if tag in ("script", "style") and not attrs.get("src"):
            self.page.inline_code.append(f"<{tag}>")
        if tag not in VOID:
            self.open.append(tag)
        if tag == "br":
            self.handle_data(" ")
        if tag == "section":
            self.section_depth += 1
            if self.section_depth == 1:
                self.section = attrs.get("aria-labelledby")
        elif tag == "label":
            self.label_depth += 1
            if attrs.get("for"):
                self.page.label_targets.add(attrs["for"])
        elif tag == "form":
            self.form = Form(
                attrs.get("method", "get").lower(), attrs.get("action", ""), self.section
            )
            self.page.forms.append(self.form)
        elif tag in ("input", "select", "textarea", "button"):
            control = Control(tag, attrs, self.label_depth > 0, value=attrs.get("value", ""))
            self.page.controls.append(control)
            if self.form is not None:
                self.form.controls.append(control)
            if tag != "input":
                self.capture = control
        elif tag == "option" and self.capture is not None and self.capture.tag == "select":
            self.option = (self.capture, attrs)
            self.option_text = []
        elif tag == "details" and "data-path" in attrs:
            self.page.tree_paths.append(attrs["data-path"])
        elif tag == "table":
            self.table = Table(self.section)
            self.page.tables.append(self.table)
        elif tag == "tr":
            self.row = []
        elif tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in self.open:
            while self.open and self.open.pop() != tag:
                pass
        if tag == "section":
            self.section_depth -= 1
            if self.section_depth == 0:
                self.section = None
        elif tag == "label":
            self.label_depth -= 1
        elif tag == "form":
            self.form = None
        elif tag in ("select", "textarea", "button"):
            self.capture = None
        elif tag == "option" and self.option is not None:
            select, attrs = self.option
            value = attrs.get("value", _squash("".join(self.option_text)))
            select.options.append((value, "selected" in attrs))
            self.option = None
        elif tag in ("td", "th") and self.cell is not None and self.row is not None:
            self.row.append(_squash("".join(self.cell)))
            self.cell = None
        elif tag == "tr" and self.row is not None and self.table is not None:
            self.table.rows.append(self.row)
            self.row = None
        elif tag == "table":
            self.table = None

    def handle_data(self, data: str) -> None:
        self.texts.append(data)
        if self.section is not None:
            self.page.sections[self.section] = self.page.sections.get(self.section, "") + data
        if self.capture is not None:
            if self.capture.tag == "textarea":
                self.capture.value += data
            else:
                self.capture.text += data
        if self.option is not None:
            self.option_text.append(data)
        if self.cell is not None:
            self.cell.append(data)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)


def parse_page(html: str) -> Page:
    page = Page(html)
    parser = _Parser(page)
    parser.feed(html)
    parser.close()
    page.text = _squash(" ".join(parser.texts))
    page.sections = {name: _squash(text) for name, text in page.sections.items()}
    for control in page.controls:
        if control.tag == "textarea" and control.value.startswith("\n"):
            control.value = control.value[1:]  # HTML drops a textarea's first newline
    return page


def query_of(location: str) -> dict[str, str]:
    """The query parameters of a URL (the last value of each)."""
    return {name: values[-1] for name, values in parse_qs(urlsplit(location).query).items()}


def set_cookie(response: httpx.Response, name: str = COOKIE) -> dict[str, str] | None:
    """The ``Set-Cookie`` header for ``name``: its value under ``""`` and its attributes (lower
    case names; flags map to ``""``); None if the response sets no such cookie."""
    for header in response.headers.get_list("set-cookie"):
        first, *rest = [part.strip() for part in header.split(";")]
        cookie_name, _, value = first.partition("=")
        if cookie_name == name:
            attributes = {"": value.strip('"')}
            for part in rest:
                key, _, attribute = part.partition("=")
                attributes[key.strip().lower()] = attribute.strip()
            return attributes
    return None


@dataclass
class Browser:
    """One signed-in (or anonymous) browser: sends its own session cookie and no other."""

    client: httpx.AsyncClient
    session: str | None = None

    def _headers(self) -> dict[str, str]:
        return {"Cookie": f"{COOKIE}={self.session}"} if self.session else {}

    async def get(self, url: str, params: Mapping[str, str] | None = None) -> httpx.Response:
        response = await self.client.get(url, params=params, headers=self._headers())
        self.client.cookies.clear()
        return response

    async def post(self, url: str, data: Mapping[str, str]) -> httpx.Response:
        response = await self.client.post(url, data=dict(data), headers=self._headers())
        self.client.cookies.clear()
        return response

    async def page(self, url: str, params: Mapping[str, str] | None = None) -> Page:
        """A page that must answer 200 with HTML."""
        response = await self.get(url, params)
        assert response.status_code == 200, (url, response.status_code, response.text[:2000])
        assert response.headers["content-type"].startswith("text/html"), response.headers
        return parse_page(response.text)

    async def submit(self, form: Form, typed: Mapping[str, str] | None = None) -> httpx.Response:
        """Post a form as shown, with the fields of ``typed`` filled in."""
        return await self.post(form.action, {**form.values(), **(typed or {})})

    async def sign_in(self, token: str, next_url: str | None = None) -> httpx.Response:
        data = {"token": token} if next_url is None else {"token": token, "next": next_url}
        response = await self.post("/signin", data)
        cookie = set_cookie(response)
        if response.status_code == 303 and cookie is not None:
            self.session = cookie[""]
        return response
