"""How GroomGuard looks on Matrix: alert cards, case lists and help as HTML + plain text message content."""

from __future__ import annotations

from html import escape
from typing import Any

from groomguard.actions import ModAlert
from groomguard.cases import ACTIVE, Case, recommended_action, risk_band

#: Plain-words titles for detectors; unknown detectors fall back to their name.
DETECTOR_TITLES = {
    "fan_out": "Contacting many children",
    "rejections": "Many refused requests from children",
    "view_spike": "Unusual viewing of children's posts",
    "grooming_language": "Grooming language towards a child",
}
REACTION_HELP = "✅ confirm · ❌ dismiss · ⬆️ escalate · 🔇 mute · 🔨 ban (asks you to confirm)"
MAX_EVIDENCE_SHOWN = 8


def risk_words(risk: float) -> str:
    return risk_band(risk)


def user_link(user_id: str) -> str:
    """A Matrix user pill: clients show the person and open their profile on a click."""
    return f'<a href="https://matrix.to/#/{escape(user_id, quote=True)}">{escape(user_id)}</a>'


def detector_title(name: str) -> str:
    return DETECTOR_TITLES.get(name, name.replace("_", " ").capitalize())


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
    """The alert card: who, risk, reasons in plain words, evidence, children, case id, how to act."""
    status = alert.status
    head = f"GroomGuard case #{alert.case_id}: {alert.suspect}"
    risk = f"Risk {alert.risk:.2f} ({risk_words(alert.risk)}) · status: {status}"
    if alert.version > 1:
        risk += f" · update {alert.version}"
    plain = [f"🚨 {head}", risk]
    html = [f"<h4>🚨 {escape(head)}</h4>", f"<p><b>{escape(risk)}</b></p>"]
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
        title = detector_title(reason.detector)
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
            line = f"{item.kind} {item.ref}" + (f" — {item.label}" if item.label else "")
            plain.append(f" - {line}")
            html.append(
                f"<li><code>{escape(item.kind)}</code> {escape(item.ref)}{escape(' — ' + item.label) if item.label else ''}</li>"
            )
        if len(alert.evidence) > MAX_EVIDENCE_SHOWN:
            more = f"+{len(alert.evidence) - MAX_EVIDENCE_SHOWN} more: !gg case {alert.case_id}"
            plain.append(f" - {more}")
            html.append(f"<li>{escape(more)}</li>")
        html.append("</ul>")
    if status in ACTIVE:
        plain.append(f"Act by reacting: {REACTION_HELP}")
        html.append(f"<p>Act by reacting: {escape(REACTION_HELP)}</p>")
    else:
        plain.append(f"Closed: {status}.")
        html.append(f"<p><i>Closed: {escape(status)}.</i></p>")
    return message("\n".join(plain), "".join(html))


def case_list(rows: list[dict[str, Any]]) -> dict[str, Any]:
    if not rows:
        return message("No cases.", "<p>No cases.</p>")
    plain = ["Cases (highest risk first):"]
    html = ["<p>Cases (highest risk first):</p><ul>"]
    for r in rows:
        line = f"#{r['id']} {r['suspect']} · {r['status']} · risk {float(r['risk']):.2f}"
        plain.append(f" • {line}")
        html.append(f"<li>{escape(line)}</li>")
    html.append("</ul>")
    return message("\n".join(plain), "".join(html))


def case_detail(case: Case, findings: list[dict[str, Any]], audit: list[dict[str, Any]], risk: float) -> dict[str, Any]:
    head = f"Case #{case.id}: {case.suspect} · {case.status} · risk {risk:.2f} ({risk_words(risk)})"
    plain = [head, f"Opened {case.opened_at:%Y-%m-%d %H:%M} UTC, updated {case.updated_at:%Y-%m-%d %H:%M} UTC"]
    html = [f"<p><b>{escape(head)}</b><br>{escape(plain[1])}</p><ul>"]
    for name, r in sorted(case.reasons.items(), key=lambda kv: -kv[1]["score"]):
        line = f"{detector_title(name)}: {r['text']} ({r['score']:.2f})"
        plain.append(f" • {line}")
        html.append(f"<li>{escape(line)}</li>")
    html.append("</ul>")
    if case.children:
        plain.append(f"Children involved ({len(case.children)}): " + ", ".join(case.children))
        html.append(
            f"<p>Children involved ({len(case.children)}): {', '.join(user_link(c) for c in case.children)}</p>"
        )
    plain.append(f"Recommended: {recommended_action(risk, case.status, case.reasons)}")
    html.append(f"<p>Recommended: {escape(recommended_action(risk, case.status, case.reasons))}</p>")
    plain.append(f"{len(findings)} findings.")
    html.append(f"<p>{len(findings)} findings.</p>")
    if audit:
        plain.append("History:")
        html.append("<p>History:</p><ul>")
        for a in audit[-10:]:
            line = f"{a['at'][:16]} {a['actor']} {a['action']}"
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
    f"On an alert card react: {REACTION_HELP}.\n"
    "Only members with enough power in this room can act; others are ignored and logged."
)

DM_HELP_TEXT = (
    "Hi! I'm the community's safety helper. You can tell me your age so I can look out for you: "
    "send  !gg age 13  (with your age). Nobody else sees this message."
)


def text(plain: str) -> dict[str, Any]:
    return message(plain, "<br>".join(escape(line) for line in plain.splitlines()))
