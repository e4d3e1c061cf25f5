"""A real browser (Debian's Chromium driven by Playwright) takes the study in English and in Japanese: consent,
instructions, practice, trials with attention checks (one trial by keyboard only), the back button and a double
click, and the completion code. Runs whenever Chromium is there; with CI set it must run (never skips).

STUDY_SHOTS=/tmp/study_shots also saves screenshots of the consent, a trial and the completion pages there."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from complexface.study.design import Design
from complexface.study.folder import StudyFolder
from complexface.study.server import ServerSettings, running_server
from complexface.study.store import Store
from complexface.study.text import Texts
from complexface.study.tokens import Keys, add_raters
from tests.browser import chromium
from tests.study_helpers import make_study

SHOTS = os.environ.get("STUDY_SHOTS")


@pytest.fixture(scope="module")
def folder(study_run_dir, tmp_path_factory) -> StudyFolder:
    path = tmp_path_factory.mktemp("browser") / "study"
    make_study(study_run_dir, path, "study.questions.free_text=true")
    return StudyFolder(path)


@pytest.fixture(scope="module")
def server(folder):
    with running_server(folder.path, ServerSettings(port=0)) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


def shot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def answer_by_mouse(page, texts: Texts) -> None:
    """Click an answer to every question on the page (the instructed one on an attention check)."""
    legend = page.locator("fieldset.q legend").first.inner_text()
    if page.locator("fieldset.q").count() == 1 and "“" in legend:  # an attention check names its answer
        wanted = legend.split("“")[1].split("”")[0]
        page.locator("fieldset.q label", has_text=wanted).first.click()
        return
    for question in ("displayed", "felt"):
        if page.locator(f"fieldset[data-question={question}]").count():
            page.locator(f"fieldset[data-question={question}] label").nth(0 if question == "displayed" else 5).click()
    if page.locator("fieldset[data-question=genuineness]").count():
        page.locator("fieldset[data-question=genuineness] label", has_text="+3").click()
    if page.locator("fieldset[data-question=confidence]").count():
        page.locator("fieldset[data-question=confidence] label").nth(3).click()


def answer_by_keyboard(page) -> None:
    """Tab reaches the first option of the first question (nothing is focused or chosen beforehand), Space checks
    it, an arrow key moves the choice, Tab goes to the next question (then the comment box and the button), Enter
    submits."""
    assert page.evaluate("document.activeElement === document.body")
    groups = page.locator("fieldset.q-choice, fieldset.q-scale").count()
    page.keyboard.press("Tab")
    for _ in range(groups):
        page.keyboard.press("Space")
        page.keyboard.press("ArrowRight")
        page.keyboard.press("Tab")
    if page.locator("textarea").count():
        page.keyboard.type("typed")
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className").startswith("primary next")
    page.keyboard.press("Enter")


@pytest.mark.parametrize("language", ["en", "ja"])
def test_a_rater_takes_the_study_in_the_browser(browser, server, folder, language):
    design = Design.load(folder)
    texts = Texts(language, design.texts)
    link = add_raters(folder, 1, language=language)[0]
    context = browser.new_context(viewport={"width": 1100, "height": 900}, locale="ja-JP" if language == "ja" else "en-US")
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.goto(f"{server}/r/{link.token}?PROLIFIC_PID=5f00{language}0000000000000000&STUDY_ID=s&SESSION_ID=x")
    assert page.url == f"{server}/r/{link.token}"  # the platform ids left the address bar
    assert page.locator("h1").inner_text() == texts["consent_title"]
    shot(page, f"consent_{language}")
    page.get_by_label(texts["consent_check"]).check()
    page.get_by_role("button", name=texts["consent_agree"]).click()
    assert page.locator("h1").inner_text() == texts["instructions_title"]
    page.get_by_role("button", name=texts["instructions_start"]).click()

    n = len(design.sequence(link.list, link.rater))
    n_practice = len(design.practice)
    keyboard_done = double_clicked = False
    for position in range(n):
        main = page.locator("main")
        assert main.get_attribute("data-state") == ("practice" if position < n_practice else "trial")
        assert page.locator("form.answers").get_attribute("data-trial") == str(position)
        image = page.locator("figure.stimulus img")
        assert image.evaluate("img => img.complete && img.naturalWidth") == 512
        if position == n_practice:
            assert texts["practice_over"] in page.content()
            shot(page, f"trial_{language}")
        attention = page.locator("fieldset.q").count() == 1
        with page.expect_navigation():
            if not attention and position > n_practice and not keyboard_done:
                answer_by_keyboard(page)
                keyboard_done = position
            else:
                answer_by_mouse(page, texts)
                if not attention and keyboard_done and not double_clicked:
                    page.locator("button.next").dblclick()
                    double_clicked = True
                else:
                    page.locator("button.next").click()
        if position == n_practice + 2:  # the back button cannot take the rater to an answered trial
            page.go_back(wait_until="load")
            assert page.locator("main").get_attribute("data-state") in ("trial", "practice")
            assert page.locator("form.answers").get_attribute("data-trial") == str(position + 1)
    code = Keys(folder.secret()).completion_code(link.rater)
    assert page.locator("#completion-code").inner_text() == code
    shot(page, f"done_{language}")
    answers = [a for a in Store(folder).answers() if a["rater"] == link.rater]
    assert [a["trial"] for a in answers] == list(range(n))  # each trial once: the double click added nothing
    assert all(a["rt_ms"] and 0 < a["rt_ms"] < 600_000 for a in answers)  # measured in the page
    assert keyboard_done and double_clicked and errors == []
    typed = answers[keyboard_done]  # Space on the first option, then one arrow to the right, in every question
    assert (typed["displayed"], typed["felt"], typed["genuineness"], typed["confidence"], typed["free_text"]) == (
        design.options[1], design.options[1], -6, 2, "typed")
    context.close()
