"""The web case view in a real headless Chromium: sign-in, expiry, CSRF, a decision, keyboard use, screenshots."""

from __future__ import annotations

import io
import itertools
import json
import sqlite3
from datetime import timedelta
from typing import Any

import numpy as np
from groomguard.app.web import auth
from PIL import Image
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.web_live import ALICE, LiveSite
from tests.web_scenario import KIDS


def sign_in(driver: Any, site: LiveSite, token: str = ALICE, path: str = "/") -> None:
    driver.get(site.url + path)
    field = driver.find_element(By.ID, "token")
    field.send_keys(token)
    press(driver, field, Keys.ENTER)


def press(driver: Any, element: Any, key: str | None = None) -> None:
    """Click (or send `key` to) an element that submits a form, and wait until the next page has loaded."""
    page = driver.find_element(By.TAG_NAME, "html")
    if key is None:
        element.click()
    else:
        element.send_keys(key)
    WebDriverWait(driver, 15).until(lambda _: _gone(page))
    WebDriverWait(driver, 15).until(lambda d: d.execute_script("return document.readyState") == "complete")


def _gone(element: Any) -> bool:
    """Whether `element`'s page was replaced. Chromium sometimes answers a check on a node of the page being
    torn down with "Node with given id does not belong to the document" instead of a stale reference."""
    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as error:
        if "does not belong to the document" in str(error):
            return True
        raise
    return False


def audit(site: LiveSite) -> list[tuple[str, str, int | None, dict[str, Any]]]:
    with sqlite3.connect(site.db) as conn:
        rows = conn.execute("SELECT actor, action, case_id, detail FROM audit ORDER BY id").fetchall()
    return [(a, b, c, json.loads(d)) for a, b, c, d in rows]


def drawn(png: bytes) -> tuple[tuple[int, int], float, int]:
    """(size, share of pixels that are not background white, distinct colours) of a screenshot."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    pixels = np.asarray(image).reshape(-1, 3).astype(int)
    inked = float((pixels.sum(axis=1) < 720).mean())
    return image.size, inked, len(np.unique(pixels, axis=0))


def focused(driver: Any) -> Any:
    return driver.switch_to.active_element


def test_token_sign_in_lands_on_the_queue_sorted_by_risk(fresh: Any, site: LiveSite) -> None:
    sign_in(fresh, site)
    assert fresh.title == "Case queue · GroomGuard"
    rows = fresh.find_elements(By.CSS_SELECTOR, "#queue tbody tr")
    risks = [float(r.find_element(By.CSS_SELECTOR, "td.risk").text) for r in rows]
    assert len(rows) == 3 and risks == sorted(risks, reverse=True)
    cookie = fresh.get_cookie("gg_session")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert fresh.execute_script("return document.cookie") == "", "no script can read the session"
    size, inked, colours = drawn(fresh.get_screenshot_as_png())
    assert size[0] >= 1000 and inked > 0.02 and colours > 20


def test_one_time_link_works_once(fresh: Any, site: LiveSite) -> None:
    token = auth.new_token()
    site.call(
        site.engine.store_write(
            lambda s: s.put_web_link(auth.digest(token), "alice", site.clock.now + timedelta(minutes=15))
        )
    )
    link = auth.link_url(site.view.web, token)
    fresh.get(link)
    press(fresh, fresh.find_element(By.CSS_SELECTOR, "form[action='/signin/link'] button"))
    assert fresh.find_element(By.TAG_NAME, "h1").text == "Case queue"
    fresh.execute_cdp_cmd("Network.clearBrowserCookies", {})
    fresh.get(link)
    press(fresh, fresh.find_element(By.CSS_SELECTOR, "form[action='/signin/link'] button"))
    alert = fresh.find_element(By.CSS_SELECTOR, "[role=alert]").text
    assert "already been used or has expired" in alert
    assert fresh.find_element(By.TAG_NAME, "h1").text == "Sign in"


def test_session_expires_back_to_sign_in(fresh: Any, site: LiveSite) -> None:
    sign_in(fresh, site)
    assert fresh.find_element(By.TAG_NAME, "h1").text == "Case queue"
    site.clock.now += timedelta(minutes=31)
    fresh.get(site.url + "/cases/1")
    assert fresh.find_element(By.TAG_NAME, "h1").text == "Sign in"
    assert "groomer" not in fresh.page_source


def test_someone_without_a_token_sees_nothing(fresh: Any, site: LiveSite) -> None:
    for path in ("/", "/cases/1", "/cases/2", "/cases/1/graph.png"):
        fresh.get(site.url + path)
        assert fresh.find_element(By.TAG_NAME, "h1").text == "Sign in"
        assert not any(name in fresh.page_source for name in ("groomer", "watcher", *KIDS))
    sign_in(fresh, site, token="guessing-a-token-123456")
    assert "not valid" in fresh.find_element(By.CSS_SELECTOR, "[role=alert]").text
    assert fresh.get_cookie("gg_session") is None


def test_tampered_csrf_token_is_refused(fresh: Any, site: LiveSite) -> None:
    sign_in(fresh, site, path="/cases/1")
    # A forged form is what CSRF looks like from the server: the token in it is not this session's.
    fresh.execute_script("document.querySelector('#decision-form input[name=csrf]').value = 'forged'")
    press(fresh, fresh.find_element(By.ID, "decide-dismiss"))
    assert fresh.find_element(By.TAG_NAME, "h1").text == "Request refused"
    assert site.call(_status(site, 1)) == "open"


async def _status(site: LiveSite, case_id: int) -> str:
    found = await site.engine.store.get_case(case_id)
    assert found is not None
    return found[0].status


def test_moderator_confirms_with_a_note_and_the_audit_shows_it(fresh: Any, site: LiveSite) -> None:
    sign_in(fresh, site, path="/cases/1")
    assert fresh.title == "Case #1 · GroomGuard"
    fresh.find_element(By.ID, "note").send_keys("Eight cold friend requests to children; three refused.")
    press(fresh, fresh.find_element(By.ID, "decide-confirm"))
    assert "Confirmed." in fresh.find_element(By.CSS_SELECTOR, "[role=status]").text
    history = fresh.find_element(By.ID, "audit").text
    assert "web:alice confirm Eight cold friend requests to children; three refused." in history
    assert site.call(_status(site, 1)) == "confirmed"
    notes = [d.get("note") for actor, action, case, d in audit(site) if action == "confirm" and case == 1]
    assert notes == ["Eight cold friend requests to children; three refused."]


def test_keyboard_alone_reaches_and_sends_the_decision_form(fresh: Any, site: LiveSite) -> None:
    sign_in(fresh, site, path="/cases/3")
    body = fresh.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    assert focused(fresh).text == "Skip to content"
    path = []
    for _ in range(15):
        fresh.switch_to.active_element.send_keys(Keys.TAB)
        element = focused(fresh)
        path.append(element.get_attribute("id") or element.tag_name)
        if element.get_attribute("id") == "note":
            break
    assert path[-1] == "note", f"Tab never reached the note field: {path}"
    focused(fresh).send_keys("Escalating to the safeguarding lead.")
    focused(fresh).send_keys(Keys.TAB)
    assert focused(fresh).get_attribute("id") == "decide-confirm"
    focused(fresh).send_keys(Keys.TAB)
    focused(fresh).send_keys(Keys.TAB)
    assert focused(fresh).get_attribute("id") == "decide-escalate"
    press(fresh, focused(fresh), Keys.ENTER)
    assert "Escalated." in fresh.find_element(By.CSS_SELECTOR, "[role=status]").text
    assert site.call(_status(site, 3)) == "escalated"


def test_every_control_has_a_label_and_headings_are_in_order(fresh: Any, site: LiveSite) -> None:
    sign_in(fresh, site, path="/cases/2")
    unlabelled = fresh.execute_script(
        """
        return [...document.querySelectorAll('input:not([type=hidden]), textarea, select, button')]
          .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.textContent.trim())
          .map(el => el.outerHTML);
        """
    )
    assert unlabelled == []
    levels = fresh.execute_script("return [...document.querySelectorAll('h1,h2,h3')].map(h => +h.tagName[1])")
    assert levels[0] == 1 and levels.count(1) == 1
    assert all(b - a <= 1 for a, b in itertools.pairwise(levels))


def test_case_page_pictures_are_drawn_and_children_unnamed_until_revealed(fresh: Any, site: LiveSite) -> None:
    sign_in(fresh, site, path="/cases/1")
    assert fresh.find_element(By.TAG_NAME, "h1").text == "Case #1"
    assert not any(kid in fresh.page_source for kid in KIDS)
    graph = fresh.find_element(By.ID, "contact-graph")
    assert len(graph.find_elements(By.CSS_SELECTOR, "circle[data-role=child]")) == 8
    size, inked, colours = drawn(graph.screenshot_as_png)
    assert size[0] >= 600 and inked > 0.03 and colours > 10, (size, inked, colours)
    press(fresh, fresh.find_element(By.CSS_SELECTOR, "button[aria-label='Reveal who child B is']"))
    assert "Revealed" in fresh.find_element(By.CSS_SELECTOR, "[role=status]").text
    assert KIDS[1] in fresh.find_element(By.ID, "children").text
    assert KIDS[1] in fresh.find_element(By.ID, "contact-graph").text
    assert not any(kid in fresh.page_source for kid in KIDS if kid != KIDS[1])
    assert ("web:alice", "web_child_revealed", 1, {"child": "child B", "account": KIDS[1]}) in audit(site)
    # The view-spike case draws its view timeline, with the flagged hour outlined.
    fresh.get(site.url + "/cases/2")
    timeline = fresh.find_element(By.ID, "view-timeline")
    bars = timeline.find_elements(By.CSS_SELECTOR, "rect[data-role=bar]")
    assert len(bars) >= 10
    size, inked, colours = drawn(timeline.screenshot_as_png)
    assert inked > 0.03 and colours > 5
    assert fresh.title == "Case #2 · GroomGuard"
    size, inked, colours = drawn(fresh.get_screenshot_as_png())
    assert size[0] >= 1000
    assert inked > 0.02 and colours > 50, "the page is drawn, not a blank or error page"
