"""HTML of the web case view: server-rendered, no script, one stylesheet; every control labelled."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from typing import Any
from urllib.parse import quote

from groomguard.cases import ACTIVE, detector_title

DECISIONS = (
    ("confirm", "Confirm", "The evidence shows grooming risk: keep the case open as confirmed."),
    ("dismiss", "Dismiss", "Not a concern: close the case (future alerts on this account need more evidence)."),
    ("escalate", "Escalate", "Needs a senior moderator or safeguarding lead."),
)
DONE = {"confirm": "Confirmed", "dismiss": "Dismissed", "escalate": "Escalated"}

STYLE = """
:root { color-scheme: light; --ink: #1f2933; --muted: #52606d; --line: #cbd2d9; --accent: #0b5cad; --bad: #b42318; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, sans-serif; color: var(--ink); background: #f5f7fa; }
a { color: var(--accent); }
a:focus, button:focus, input:focus, textarea:focus, select:focus, main:focus {
  outline: 3px solid #f0b429; outline-offset: 2px; }
.skip { position: absolute; left: -999px; top: 0; background: #fff; padding: .5rem; }
.skip:focus { left: .5rem; }
header { display: flex; gap: 1rem; align-items: center; justify-content: space-between; flex-wrap: wrap;
  padding: .6rem 1.2rem; background: #102a43; color: #fff; }
header a { color: #fff; font-weight: bold; text-decoration: none; }
header form { margin: 0; }
main { max-width: 70rem; margin: 0 auto; padding: 1rem 1.2rem 3rem; }
section { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: .8rem 1.2rem; margin: 1rem 0; }
table { border-collapse: collapse; width: 100%; }
caption { text-align: left; color: var(--muted); padding: .3rem 0; }
th, td { text-align: left; padding: .4rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #f0f4f8; }
button { font: inherit; padding: .45rem 1rem; border-radius: 4px; border: 1px solid var(--ink); background: #fff;
  cursor: pointer; }
button.primary { background: var(--accent); color: #fff; border-color: var(--accent); }
button.danger { background: var(--bad); color: #fff; border-color: var(--bad); }
label { display: block; font-weight: 600; margin: .4rem 0 .2rem; }
input[type=password], input[type=text], textarea, select { font: inherit; padding: .4rem; width: 100%;
  max-width: 36rem; border: 1px solid var(--muted); border-radius: 4px; }
textarea { min-height: 5rem; }
fieldset { border: 1px solid var(--line); border-radius: 6px; margin: .6rem 0; }
.decisions { display: flex; gap: .8rem; flex-wrap: wrap; }
.decisions div { max-width: 18rem; }
.hint { color: var(--muted); font-size: .9rem; margin: .2rem 0; }
.notice { padding: .6rem 1rem; border-radius: 4px; background: #e3f8ff; border: 1px solid #81defd; }
.error { padding: .6rem 1rem; border-radius: 4px; background: #ffe3e3; border: 1px solid var(--bad); }
.risk { font-weight: bold; font-size: 1.1rem; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
dl.facts dt { font-weight: 600; }
dl.facts dd { margin: 0; }
.picture { max-width: 100%; height: auto; border: 1px solid var(--line); }
form.inline { display: inline; margin: 0; }
"""


def page(title: str, body: str, moderator: str | None = None, csrf: str | None = None, status: int = 200) -> str:
    """The document around a page body: skip link, header with sign-out, one <main>."""
    account = ""
    if moderator is not None and csrf is not None:
        account = (
            f"<span>Signed in as <strong>{escape(moderator)}</strong></span>"
            f'<form method="post" action="/signout">{csrf_field(csrf)}<button type="submit">Sign out</button></form>'
        )
    home = '<a href="/">GroomGuard cases</a>' if moderator else "<span>GroomGuard</span>"
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="referrer" content="same-origin"><title>{escape(title)} · GroomGuard</title>'
        '<link rel="stylesheet" href="/static/web.css"></head><body>'
        '<a class="skip" href="#main">Skip to content</a>'
        f"<header>{home}{account}</header>"
        f'<main id="main" tabindex="-1">{body}</main></body></html>'
    )


def csrf_field(token: str) -> str:
    return f'<input type="hidden" name="csrf" value="{escape(token, quote=True)}">'


def fmt_time(value: str | datetime | None) -> str:
    if value is None:
        return "-"
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    return f"{at:%Y-%m-%d %H:%M} UTC"


def time_tag(value: str | datetime | None) -> str:
    if value is None:
        return "-"
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    return f'<time datetime="{at.isoformat()}">{fmt_time(at)}</time>'


def signal(detector: str) -> str:
    """A signal in moderators' words (the same titles as the cards and `cases show`)."""
    return detector_title(detector)


class Masker:
    """Replaces children's ids in any text with their labels ("child A"), or "child A (id)" once revealed."""

    def __init__(self, labels: Mapping[str, str], revealed: Iterable[str] = ()) -> None:
        self.labels = dict(labels)
        self.revealed = set(revealed)
        ids = sorted(self.labels, key=len, reverse=True)
        self._pattern = re.compile(r"(?<![\w@])(" + "|".join(re.escape(i) for i in ids) + r")(?![\w])") if ids else None

    def name(self, account: str) -> str:
        label = self.labels.get(account)
        if label is None:
            return account
        return f"{label} ({account})" if account in self.revealed else label

    def __call__(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(lambda m: self.name(m.group(1)), text)


# -- sign-in ---------------------------------------------------------------------------


def signin(presign: str, next_path: str = "/", error: str = "", notice: str = "") -> str:
    message = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    if notice:
        message += f'<p class="notice" role="status">{escape(notice)}</p>'
    body = (
        "<h1>Sign in</h1>"
        "<p>Only GroomGuard's moderators can use this page. Sign in with the token your admin gave you, "
        "or open a one-time sign-in link from <code>groomguard web-link</code>.</p>"
        f"{message}"
        '<form method="post" action="/signin">'
        f"{csrf_field(presign)}"
        f'<input type="hidden" name="next" value="{escape(next_path, quote=True)}">'
        '<label for="token">Moderator token</label>'
        '<input type="password" id="token" name="token" autocomplete="current-password" required autofocus>'
        '<p><button type="submit" class="primary">Sign in</button></p>'
        "</form>"
    )
    return page("Sign in", body)


def link_confirm(presign: str, token: str) -> str:
    """A one-time link opens this page first: a link preview or prefetch must not use the link up."""
    body = (
        "<h1>Sign in with a one-time link</h1>"
        "<p>This link works once and expires soon. Press the button to sign in.</p>"
        '<form method="post" action="/signin/link">'
        f"{csrf_field(presign)}"
        f'<input type="hidden" name="token" value="{escape(token, quote=True)}">'
        '<p><button type="submit" class="primary" autofocus>Sign in</button></p>'
        "</form>"
    )
    return page("Sign in", body)


def message_page(title: str, text: str, moderator: str | None = None, csrf: str | None = None) -> str:
    body = f'<h1>{escape(title)}</h1><p role="alert">{escape(text)}</p>'
    if moderator is None:
        body += '<p><a href="/signin">Go to sign-in</a></p>'
    else:
        body += '<p><a href="/">Back to the case queue</a></p>'
    return page(title, body, moderator, csrf)


# -- the queue -------------------------------------------------------------------------


@dataclass
class QueueRow:
    """One case in the queue, with its risk now and its peak."""

    id: int
    community: str
    suspect: str
    status: str
    risk: float
    peak: float
    signals: list[str]
    children: int
    updated_at: datetime


def queue(rows: Sequence[QueueRow], status: str, moderator: str, csrf: str) -> str:
    options = "".join(
        f'<option value="{v}"{" selected" if v == status else ""}>{label}</option>'
        for v, label in (
            ("active", "Open, escalated and confirmed"),
            ("open", "Open"),
            ("escalated", "Escalated"),
            ("confirmed", "Confirmed"),
            ("dismissed", "Dismissed"),
            ("banned", "Banned"),
            ("all", "All cases"),
        )
    )
    filter_form = (
        '<form method="get" action="/" class="filter">'
        f'<label for="status">Show</label><select id="status" name="status">{options}</select> '
        '<button type="submit">Show cases</button></form>'
    )
    if rows:
        body_rows = "".join(
            "<tr>"
            f'<th scope="row"><a href="/cases/{r.id}">Case #{r.id}</a></th>'
            f'<td class="risk">{r.risk:.2f}</td><td>{r.peak:.2f}</td>'
            f"<td>{escape(r.status)}</td>"
            f"<td>{escape(r.suspect)}<br><span class='hint'>{escape(r.community)}</span></td>"
            f"<td>{escape('; '.join(r.signals)) or '-'}</td><td>{r.children}</td><td>{time_tag(r.updated_at)}</td>"
            "</tr>"
            for r in rows
        )
        table = (
            '<table id="queue"><caption>Highest risk first. Risk now is today\'s weight of the evidence '
            "(it fades when nothing new happens); peak is the highest it has been.</caption>"
            '<thead><tr><th scope="col">Case</th><th scope="col">Risk now</th><th scope="col">Peak</th>'
            '<th scope="col">Status</th><th scope="col">Suspect</th><th scope="col">Signals</th>'
            '<th scope="col">Children</th><th scope="col">Updated</th></tr></thead>'
            f"<tbody>{body_rows}</tbody></table>"
        )
    else:
        table = '<p role="status">No cases to show.</p>'
    body = f"<h1>Case queue</h1><section aria-labelledby='q-h'><h2 id='q-h'>Cases</h2>{filter_form}{table}</section>"
    return page("Case queue", body, moderator, csrf)


# -- one case --------------------------------------------------------------------------


@dataclass
class ChildRow:
    label: str
    account: str
    how: str
    answer: str
    revealed: bool


@dataclass
class CasePage:
    """Everything the case page shows, already gathered (and masked where it names children)."""

    id: int
    community: str
    platform: str
    suspect: str
    status: str
    risk: float
    peak: float
    band: str
    recommended: str
    opened_at: datetime
    updated_at: datetime
    reasons: list[tuple[str, str, float]]
    findings: list[dict[str, Any]]
    children: list[ChildRow]
    audit: list[dict[str, Any]]
    graph_svg: str
    timeline_svg: str = ""
    done: str = ""
    error: str = ""
    masker: Masker = field(default_factory=lambda: Masker({}))


ANSWER_WORDS = {"accepted": "accepted", "rejected": "refused", "expired": "no answer", "pending": "no answer yet"}


def case_page(c: CasePage, moderator: str, csrf: str) -> str:
    mask = c.masker
    parts = [f"<h1>Case #{c.id}</h1>"]
    if c.done:
        parts.append(f'<p class="notice" role="status">{escape(c.done)}</p>')
    if c.error:
        parts.append(f'<p class="error" role="alert">{escape(c.error)}</p>')
    parts.append(
        '<section aria-labelledby="summary-h"><h2 id="summary-h">Summary</h2><dl class="facts">'
        f"<dt>Suspect</dt><dd>{escape(c.suspect)}</dd>"
        f"<dt>Community</dt><dd>{escape(c.community)} ({escape(c.platform)})</dd>"
        f"<dt>Status</dt><dd>{escape(c.status)}</dd>"
        f'<dt>Risk now</dt><dd><span class="risk">{c.risk:.2f}</span> ({escape(c.band)}) · peak {c.peak:.2f}</dd>'
        f"<dt>Recommended</dt><dd>{escape(c.recommended)}</dd>"
        f"<dt>Opened</dt><dd>{time_tag(c.opened_at)}</dd><dt>Updated</dt><dd>{time_tag(c.updated_at)}</dd>"
        "</dl></section>"
    )
    why = "".join(
        f"<li><strong>{escape(signal(d))}</strong> ({score:.2f}): {escape(mask(text))}</li>"
        for d, text, score in c.reasons
    )
    parts.append(f'<section aria-labelledby="why-h"><h2 id="why-h">Why</h2><ul>{why or "<li>-</li>"}</ul></section>')
    parts.append(_decision_form(c, csrf))
    parts.append(_graph_section(c, csrf))
    if c.timeline_svg:
        parts.append(
            '<section aria-labelledby="views-h"><h2 id="views-h">View timeline</h2>'
            "<p class='hint'>The suspect's views per hour; red is views of children's posts, the outlined bar the "
            f"hour that was flagged.</p>{c.timeline_svg}</section>"
        )
    parts.append(_findings_section(c))
    parts.append(_audit_section(c))
    return page(f"Case #{c.id}", "".join(parts), moderator, csrf)


def _decision_form(c: CasePage, csrf: str) -> str:
    if c.status not in ACTIVE:
        return (
            '<section aria-labelledby="decide-h"><h2 id="decide-h">Decision</h2>'
            f"<p>This case is closed ({escape(c.status)}); no decision can be taken.</p></section>"
        )
    choices = "".join(
        f'<div><button type="submit" name="decision" value="{value}" id="decide-{value}" '
        f'class="{"danger" if value == "confirm" else "primary" if value == "escalate" else ""}" '
        f'aria-describedby="decide-{value}-hint">{label}</button>'
        f'<p class="hint" id="decide-{value}-hint">{escape(hint)}</p></div>'
        for value, label, hint in DECISIONS
    )
    return (
        '<section aria-labelledby="decide-h"><h2 id="decide-h">Decision</h2>'
        f'<form method="post" action="/cases/{c.id}/decide" id="decision-form">{csrf_field(csrf)}'
        '<label for="note">Note for the case record</label>'
        '<p class="hint" id="note-hint">Why you decided this; it is kept in the audit trail with your name. '
        "Never paste a child's messages here.</p>"
        '<textarea id="note" name="note" maxlength="1000" aria-describedby="note-hint"></textarea>'
        f'<fieldset><legend>Decide</legend><div class="decisions">{choices}</div></fieldset>'
        "</form></section>"
    )


def _graph_section(c: CasePage, csrf: str) -> str:
    rows = []
    for child in c.children:
        if child.revealed:
            who = f"{escape(child.label)} · <strong>{escape(child.account)}</strong>"
            action = "<span class='hint'>revealed to you</span>"
        else:
            who = escape(child.label)
            action = (
                f'<form method="post" action="/cases/{c.id}/reveal" class="inline">{csrf_field(csrf)}'
                f'<input type="hidden" name="child" value="{escape(child.label, quote=True)}">'
                f'<button type="submit" aria-label="Reveal who {escape(child.label, quote=True)} is">Reveal</button>'
                "</form>"
            )
        rows.append(
            f"<tr><th scope='row'>{who}</th><td>{escape(child.how or '-')}</td>"
            f"<td>{escape(ANSWER_WORDS.get(child.answer, '-'))}</td><td>{action}</td></tr>"
        )
    table = (
        "<table id='children'><caption>Children are shown as labels; revealing one is recorded in the audit trail."
        "</caption><thead><tr><th scope='col'>Child</th><th scope='col'>First contact</th>"
        "<th scope='col'>Answer</th><th scope='col'>Identity</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
        if rows
        else "<p>No children on this case, and no contacts recorded for this account.</p>"
    )
    figure = f'<figure id="graph">{c.graph_svg}</figure>' if c.graph_svg else ""
    return f'<section aria-labelledby="graph-h"><h2 id="graph-h">Contact graph</h2>{figure}{table}</section>'


def _findings_section(c: CasePage) -> str:
    mask = c.masker
    rows = []
    for f in c.findings:
        child = mask.name(f["child"]) if f.get("child") else "-"
        rows.append(
            f"<tr><td>{time_tag(f['at'])}</td><td>{escape(signal(f['detector']))}</td><td>{float(f['score']):.2f}</td>"
            f"<td>{escape(child)}</td><td>{escape(mask(f['reason']))}{_evidence(f.get('evidence'), mask)}</td></tr>"
        )
    body = (
        "<table id='findings'><caption>Oldest first.</caption><thead><tr><th scope='col'>When</th>"
        "<th scope='col'>Signal</th><th scope='col'>Score</th><th scope='col'>Child</th><th scope='col'>What was seen</th>"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        if rows
        else "<p>No findings recorded.</p>"
    )
    return f'<section aria-labelledby="timeline-h"><h2 id="timeline-h">Timeline of findings</h2>{body}</section>'


def _evidence(raw: Any, mask: Masker) -> str:
    try:
        items = json.loads(raw) if isinstance(raw, str) else (raw or [])
    except ValueError:
        return ""
    shown = []
    for item in items[:8]:
        if not isinstance(item, dict):
            continue
        ref = mask(str(item.get("ref", "")))
        label = mask(str(item.get("label", "")))
        if item.get("kind") == "message":
            ref = "message"
        shown.append(f"<li>{escape(ref)}{': ' + escape(label) if label else ''}</li>")
    if not shown:
        return ""
    return f"<details><summary>Evidence ({len(items)})</summary><ul>{''.join(shown)}</ul></details>"


def _audit_section(c: CasePage) -> str:
    mask = c.masker
    rows = []
    for a in c.audit:
        try:
            detail = json.loads(a["detail"]) if isinstance(a.get("detail"), str) else (a.get("detail") or {})
        except ValueError:
            detail = {}
        note = str(detail.get("note") or "") if isinstance(detail, dict) else ""
        extra = str(detail.get("child") or "") if isinstance(detail, dict) else ""
        rows.append(
            f"<tr><td>{time_tag(a['at'])}</td><td>{escape(a['actor'])}</td><td>{escape(a['action'])}</td>"
            f"<td>{escape(mask(note or extra))}</td></tr>"
        )
    body = (
        "<table id='audit'><caption>Every decision, reveal and sign-in on this case, oldest first.</caption>"
        "<thead><tr><th scope='col'>When</th><th scope='col'>Who</th><th scope='col'>What</th>"
        f"<th scope='col'>Note</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        if rows
        else "<p>Nothing recorded yet.</p>"
    )
    return f'<section aria-labelledby="audit-h"><h2 id="audit-h">History</h2>{body}</section>'


def signin_redirect(path: str) -> str:
    return "/signin?next=" + quote(path, safe="/")
