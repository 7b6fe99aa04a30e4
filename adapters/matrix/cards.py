"""How GroomGuard looks on Matrix: alert cards, case lists and help as HTML + plain text message content."""

from __future__ import annotations

from html import escape
from typing import Any

from groomguard.actions import ModAlert
from groomguard.cases import ACTIVE, detector_title, risk_band
from groomguard.workspace import evidence_line

REACTION_HELP = "✅ confirm · ❌ dismiss · ⬆️ escalate · 🔇 mute · 🔨 ban (asks you to confirm)"
MAX_EVIDENCE_SHOWN = 8


def risk_words(risk: float) -> str:
    return risk_band(risk)


def user_link(user_id: str) -> str:
    """A Matrix user pill: clients show the person and open their profile on a click."""
    return f'<a href="https://matrix.to/#/{escape(user_id, quote=True)}">{escape(user_id)}</a>'


def message(plain: str, html: str, msgtype: str = "m.notice") -> dict[str, Any]:
    """Matrix message content with both a plain body and formatted HTML."""
    return {"msgtype": msgtype, "body": plain, "format": "org.matrix.custom.html", "formatted_body": html}


def replacement(original_event_id: str, content: dict[str, Any]) -> dict[str, Any]:
    """An `m.replace` edit of `original_event_id` carrying `content` as the new version."""
    return {
        **content,
        "body": "* " + content["body"],
        "formatted_body": "* " + content["formatted_body"],
        "m.new_content": dict(content),
        "m.relates_to": {"rel_type": "m.replace", "event_id": original_event_id},
    }


def alert_card(alert: ModAlert) -> dict[str, Any]:
    """The alert card: who, risk now and peak (and what they mean), reasons in plain words, evidence with
    times and children, the children involved, the case id, and how to act (reactions; a reply is a note)."""
    status = alert.status
    head = f"GroomGuard case #{alert.case_id}: {alert.suspect}"
    risk = f"Risk now {alert.risk:.2f} ({risk_words(alert.risk)}) · peak {alert.peak:.2f} · status: {status}"
    if alert.version > 1:
        risk += f" · update {alert.version}"
    plain = [f"🚨 {head}", risk]
    html = [f"<h4>🚨 {escape(head)}</h4>", f"<p><b>{escape(risk)}</b></p>"]
    if alert.risk_note:
        plain.append(alert.risk_note)
        html.append(f"<p><i>{escape(alert.risk_note)}</i></p>")
    if alert.recommended:
        plain.append(f"Recommended: {alert.recommended}")
        html.append(f"<p>Recommended: {escape(alert.recommended)}</p>")
    if alert.changes:
        plain.append("What changed:")
        plain.extend(f" • {c}" for c in alert.changes)
        html.append("<p>What changed:</p><ul>" + "".join(f"<li>{escape(c)}</li>" for c in alert.changes) + "</ul>")
    plain.append("Why:")
    html.append("<p>Why:</p><ul>")
    for reason in alert.reasons:
        title = reason.title or detector_title(reason.detector)
        plain.append(f" • {title}: {reason.text} ({reason.score:.2f})")
        html.append(f"<li><b>{escape(title)}</b>: {escape(reason.text)} <i>({reason.score:.2f})</i></li>")
    html.append("</ul>")
    if alert.children:
        # Every child counted, each a pill a moderator can open.
        plain.append(f"Children involved ({len(alert.children)}): {', '.join(alert.children)}")
        html.append(
            f"<p>Children involved ({len(alert.children)}): {', '.join(user_link(c) for c in alert.children)}</p>"
        )
    if alert.evidence:
        plain.append("Evidence:")
        html.append("<p>Evidence:</p><ul>")
        for item in alert.evidence[:MAX_EVIDENCE_SHOWN]:
            plain.append(f" - {evidence_line(item)}")
            html.append(f"<li>{escape(evidence_line(item))}</li>")
        if len(alert.evidence) > MAX_EVIDENCE_SHOWN:
            more = f"+{len(alert.evidence) - MAX_EVIDENCE_SHOWN} more: !gg case {alert.case_id}"
            plain.append(f" - {more}")
            html.append(f"<li>{escape(more)}</li>")
        html.append("</ul>")
    if status in ACTIVE:
        plain.append(f"Act by reacting: {REACTION_HELP}. Reply to this card to add a note to the case.")
        html.append(f"<p>Act by reacting: {escape(REACTION_HELP)}. Reply to this card to add a note to the case.</p>")
    else:
        plain.append(f"Closed: {status}.")
        html.append(f"<p><i>Closed: {escape(status)}.</i></p>")
    return message("\n".join(plain), "".join(html))


def with_picture(content: dict[str, Any], mxc_uri: str, alt: str, width: int, height: int) -> dict[str, Any]:
    """The card with the case picture (uploaded as `mxc_uri`) inline at the end; clients without HTML get the alt."""
    html = (
        f'<p><img src="{escape(mxc_uri, quote=True)}" alt="{escape(alt, quote=True)}" '
        f'width="{width}" height="{height}"></p>'
    )
    return {**content, "body": f"{content['body']}\nPicture: {alt}", "formatted_body": content["formatted_body"] + html}


def with_case_link(content: dict[str, Any], url: str | None) -> dict[str, Any]:
    """The card with a link to the case in the web view (when [web] has a public URL)."""
    if not url:
        return content
    return {
        **content,
        "body": f"{content['body']}\nOpen the case: {url}",
        "formatted_body": content["formatted_body"] + f'<p><a href="{escape(url, quote=True)}">Open the case</a></p>',
    }


def case_list(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """`!gg cases`: summaries from groomguard.workspace.case_queue (risk now and peak, as on the cards)."""
    if not rows:
        return message("No cases.", "<p>No cases.</p>")
    plain = ["Cases (highest risk now first):"]
    html = ["<p>Cases (highest risk now first):</p><ul>"]
    for r in rows:
        line = (
            f"#{r['id']} {r['suspect']} · {r['status']} · risk now {float(r['risk_now']):.2f} ({r['band']}) · "
            f"peak {float(r['peak']):.2f}"
        )
        plain.append(f" • {line}")
        html.append(f"<li>{escape(line)}</li>")
    html.append("</ul>")
    return message("\n".join(plain), "".join(html))


def case_detail(view: dict[str, Any]) -> dict[str, Any]:
    """`!gg case ID`: groomguard.workspace.detail of one case, with its evidence and history (notes too)."""
    head = (
        f"Case #{view['id']}: {view['suspect']} · {view['status']} · risk now {view['risk_now']:.2f} "
        f"({view['band']}) · peak {view['peak']:.2f}"
    )
    opened = f"Opened {view['opened_at'][:16].replace('T', ' ')} UTC, updated {view['updated_at'][:16].replace('T', ' ')} UTC"
    plain = [head, opened, view["risk_note"]]
    html = [f"<p><b>{escape(head)}</b><br>{escape(opened)}<br><i>{escape(view['risk_note'])}</i></p><ul>"]
    for r in view["reasons"]:
        line = f"{r['signal']}: {r['text']} ({r['score']:.2f})"
        plain.append(f" • {line}")
        html.append(f"<li>{escape(line)}</li>")
    html.append("</ul>")
    if view["children"]:
        plain.append(f"Children involved ({len(view['children'])}): " + ", ".join(view["children"]))
        html.append(
            f"<p>Children involved ({len(view['children'])}): {', '.join(user_link(c) for c in view['children'])}</p>"
        )
    if view["evidence"]:
        plain.append("Evidence:")
        html.append("<p>Evidence:</p><ul>")
        for e in view["evidence"][: MAX_EVIDENCE_SHOWN * 2]:
            when = f"{e['at'][:16].replace('T', ' ')} UTC · " if e.get("at") else ""
            line = f"{when}{e['child'] + ' · ' if e.get('child') else ''}{e['what']}"
            plain.append(f" - {line}")
            html.append(f"<li>{escape(line)}</li>")
        html.append("</ul>")
    plain.append(f"Recommended: {view['recommended']}")
    html.append(f"<p>Recommended: {escape(view['recommended'])}</p>")
    plain.append(f"{view['findings']} findings.")
    html.append(f"<p>{view['findings']} findings.</p>")
    if view["history"]:
        plain.append("History:")
        html.append("<p>History:</p><ul>")
        for a in view["history"][-10:]:
            line = f"{a['at'][:16]} {a['by']} {a['action']}" + (f" — {a['note']}" if a.get("note") else "")
            plain.append(f" - {line}")
            html.append(f"<li>{escape(line)}</li>")
        html.append("</ul>")
    return message("\n".join(plain), "".join(html))


HELP_TEXT = (
    "GroomGuard commands (moderators, in this room):\n"
    " !gg cases — open and recent cases\n"
    " !gg case ID — one case with its reasons and history\n"
    " !gg age @user minor|adult — set someone's age band\n"
    " !gg forget @user — erase what GroomGuard stores about someone\n"
    " !gg help — this text\n"
    f"On an alert card react: {REACTION_HELP}; reply to the card to add a note to the case.\n"
    "Only members with enough power in this room can act; others are ignored and logged."
)

DM_HELP_TEXT = (
    "Hi! I'm the community's safety helper. You can tell me your age so I can look out for you: "
    "send  !gg age 13  (with your age). Nobody else sees this message."
)


def text(plain: str) -> dict[str, Any]:
    return message(plain, "<br>".join(escape(line) for line in plain.splitlines()))
