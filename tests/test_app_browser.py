"""A real browser (Debian's Chromium driven by Playwright) uses the AU editor page: all sliders at zero show the
source crop pixel for pixel, dragging a slider changes the preview, a preset and a Japanese phrase load their
recipe (its top three shown as buttons that load theirs), a photo with two faces lets the second be picked, PNG
and recipe JSON exports, and the JSON loads back into the same sliders. Runs whenever Chromium is there; with CI set it must run (never skips).

APP_SHOTS=/tmp/app_shots also saves screenshots of the page with anger_masking_smile loaded (en and ja) and of the
face picker there."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import app as app_script
from complexface import api
from complexface.app.server import running_app
from complexface.faces import demo_faceset
from tests.browser import chromium
from tests.conftest import compose_config, make_bad_inputs

SHOTS = os.environ.get("APP_SHOTS")
ANGER_MASKING_SMILE = "AU4=2,AU12=3,AU17=1"
PIXELS = """img => { const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
  const g = c.getContext('2d'); g.drawImage(img, 0, 0); const d = g.getImageData(0, 0, c.width, c.height).data;
  let s = ''; for (let i = 0; i < d.length; i += 4) { s += String.fromCharCode(d[i], d[i + 1], d[i + 2]); }
  return [c.width, c.height, btoa(s)]; }"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    cfg = compose_config("app", [f"server.temp_dir={tmp_path_factory.mktemp('app_browser')}"])
    app, _ = app_script.build(cfg)
    with running_app(app) as url:
        yield url
    app.state.editor_app.close()


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


def open_page(browser, server, language="en"):
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, accept_downloads=True,
                                  locale="ja-JP" if language == "ja" else "en-US")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(f"{server}/?lang={language}")
    page.wait_for_selector("main[data-state=ready]")
    wait_preview(page, "neutral")
    return context, page, errors


def wait_preview(page, label: str) -> None:
    page.wait_for_function("label => document.querySelector('#after').getAttribute('data-edit') === label", arg=label)


def pixels(page, selector: str) -> np.ndarray:
    width, height, data = page.locator(selector).evaluate(PIXELS)
    return np.frombuffer(base64.b64decode(data), np.uint8).reshape(height, width, 3)


def sliders(page) -> dict[str, float]:
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('#sliders input[type=range]')]
        .filter(s => Number(s.value) !== 0).map(s => [s.name, Number(s.value)]))""")


def shot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def test_the_editor_page_in_a_browser(browser, server, tmp_path):
    context, page, errors = open_page(browser, server)
    source = api.load_face(demo_faceset()[0].path).aligned.image
    assert np.array_equal(pixels(page, "#after"), source)  # all sliders at zero: the source crop, pixel for pixel
    assert page.locator("input[name=AU12]").count() == 1 and page.locator("input[name=AU12L]").count() == 1
    assert page.locator("input[name=AU26L]").count() == 0  # a midline AU has no sides

    box = page.locator("input[name=AU12]").bounding_box()  # drag the AU12 slider from 0 to the right
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    for step in range(1, 9):
        page.mouse.move(box["x"] + box["width"] * (0.5 + 0.05 * step), box["y"] + box["height"] / 2)
    page.mouse.up()
    dragged = sliders(page)
    assert list(dragged) == ["AU12"] and dragged["AU12"] >= 3
    wait_preview(page, f"AU12={dragged['AU12']:g}")
    assert np.abs(pixels(page, "#after").astype(int) - source).max() > 30
    page.wait_for_selector("#measure tbody tr")
    page.wait_for_function("() => document.querySelector('main').getAttribute('data-measured') === "
                           f"'AU12={dragged['AU12']:g}'")
    assert "AU12" in page.locator("#measure").inner_text()

    page.select_option("select[name=preset]", "anger_masking_smile")
    assert sliders(page) == {"AU4": 2, "AU12": 3, "AU17": 1}
    wait_preview(page, ANGER_MASKING_SMILE)
    page.locator("#undo").click()  # back to the dragged state
    assert sliders(page) == dragged
    page.locator("#reset").click()
    wait_preview(page, "neutral")

    sent: list[str] = []  # a burst of slider states: one request in flight, then only the newest state
    page.on("request", lambda r: sent.append(r.url) if r.url.endswith("/api/edit") else None)
    page.locator("#s-AU4").evaluate("s => { for (let v = 1; v <= 5; v += 0.5) { s.value = String(v); "
                                    "s.dispatchEvent(new Event('input', {bubbles: true})); } }")
    wait_preview(page, "AU4=5")
    assert len(sent) == 2

    page.fill("#prompt", "顔は笑っているけど心の中では怒っている")
    page.locator("#prompt-form button").click()  # the first text query makes the retriever (~20 s on 2 cores)
    page.wait_for_selector("main[data-recipe=anger_masking_smile]", timeout=120_000)
    choices = page.locator("#prompt-result button.choice")  # the top three, each loading its preset on a click
    assert choices.count() == 3 and choices.first.get_attribute("aria-pressed") == "true"
    second = choices.nth(1).get_attribute("data-choice")
    assert second != "anger_masking_smile" and all(":" in choices.nth(i).inner_text() for i in range(3))
    choices.nth(1).click()
    page.wait_for_selector(f"main[data-recipe={second}]")
    choices.first.click()
    page.wait_for_selector("main[data-recipe=anger_masking_smile]")
    assert sliders(page) == {"AU4": 2, "AU12": 3, "AU17": 1}
    wait_preview(page, ANGER_MASKING_SMILE)
    page.locator("#s-AU12L").evaluate("s => { s.value = '1'; s.dispatchEvent(new Event('input', {bubbles: true})); "
                                      "s.dispatchEvent(new Event('change', {bubbles: true})); }")
    wait_preview(page, "AU4=2,AU12L=4,AU12R=3,AU17=1")  # a side slider adds to its AU's both-sides value

    with page.expect_download() as download:
        page.locator("button[data-export=photo]").click()
    photo = Image.open(download.value.path())
    assert photo.format == "PNG" and photo.size == (500, 500)
    with page.expect_download() as download:
        page.locator("button[data-export=recipe]").click()
    recipe_path = tmp_path / "recipe.json"
    download.value.save_as(recipe_path)
    recipe = json.loads(recipe_path.read_text())
    assert recipe["aus"] == {"AU4": 2, "AU12L": 4, "AU12R": 3, "AU17": 1} and recipe["preset"] == "anger_masking_smile"
    page.locator("#reset").click()
    wait_preview(page, "neutral")
    page.set_input_files("input[name=recipe]", str(recipe_path))
    page.wait_for_selector("main[data-loaded]")
    wait_preview(page, "AU4=2,AU12L=4,AU12R=3,AU17=1")  # the same edit, from the per-side sliders
    assert sliders(page) == {"AU4": 2, "AU12L": 4, "AU12R": 3, "AU17": 1}
    assert errors == []
    context.close()


def test_upload_a_photo_with_two_faces_and_pick_the_second(browser, server, tmp_path):
    make_bad_inputs(tmp_path)
    context, page, errors = open_page(browser, server)
    page.set_input_files("input[name=photo]", str(tmp_path / "two_faces.jpg"))
    page.wait_for_selector("main[data-state=pick]")
    assert page.locator("button.face-pick").count() == 2
    page.wait_for_function("() => document.querySelector('#photo').complete")
    shot(page, "pick_two_faces")
    page.locator("button.face-pick[data-index='1']").click()
    page.wait_for_selector("main[data-state=ready]")
    face = page.locator("main").get_attribute("data-face")
    assert face.endswith("-1")
    wait_preview(page, "neutral")
    second = api.load_face(tmp_path / "two_faces.jpg", index=1).aligned.image
    page.wait_for_function("() => document.querySelector('#before').complete")
    assert np.array_equal(pixels(page, "#after"), second)
    page.set_input_files("input[name=photo]", str(tmp_path / "not_an_image.jpg"))
    page.wait_for_selector("#message:not([hidden])")
    assert "not an image" in page.locator("#message").inner_text()
    assert [e for e in errors if "415" not in e] == []
    context.close()


@pytest.mark.parametrize("language", ["en", "ja"])
def test_screenshot_with_a_preset(browser, server, language):
    context, page, errors = open_page(browser, server, language)
    page.select_option("select[name=preset]", "anger_masking_smile")
    wait_preview(page, ANGER_MASKING_SMILE)
    page.wait_for_function(f"() => document.querySelector('main').getAttribute('data-measured') === '{ANGER_MASKING_SMILE}'")
    page.wait_for_function("() => !document.querySelector('#render').disabled")
    assert page.locator("html").get_attribute("lang") == language
    if language == "ja":
        assert "笑顔の裏の怒り" in page.locator("#preset-info").inner_text()
    shot(page, f"anger_masking_smile_{language}")
    assert errors == []
    context.close()
