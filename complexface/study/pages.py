"""The rater-facing HTML pages, rendered on the server with every value escaped.

Pages link their stylesheet, script, images and forms by relative URLs, so the study works unchanged behind
a reverse proxy that mounts it under a path prefix. No inline script or style: the Content-Security-Policy
allows only the server's own files.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from complexface.study.design import CONFIDENCE, GENUINENESS, Design
from complexface.study.text import Texts

ASSET_VERSION = "1"


def e(value: object) -> str:
    return escape(str(value), quote=True)


def document(texts: Texts, root: str, title: str, body: str, state: str, extra_head: str = "") -> str:
    """A whole page; ``root`` is the relative path from this page's URL to the server root (``../``)."""
    return (f"<!doctype html>\n<html lang='{e(texts['html_lang'])}'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<meta name='robots' content='noindex, nofollow'>{extra_head}"
            f"<title>{e(title)} · {e(texts['title'])}</title>"
            f"<link rel='icon' href='{root}static/icon.svg' type='image/svg+xml'>"
            f"<link rel='stylesheet' href='{root}static/study.css?v={ASSET_VERSION}'>"
            f"<script src='{root}static/study.js?v={ASSET_VERSION}' defer></script></head>"
            f"<body><main data-state='{e(state)}'>{body}</main></body></html>\n")


def hidden(name: str, value: object) -> str:
    return f"<input type='hidden' name='{e(name)}' value='{e(value)}'>"


def consent(texts: Texts, root: str, token: str, csrf: str, minutes: int) -> str:
    paragraphs = "".join(f"<p>{e(p)}</p>" for p in texts.paragraphs("consent_body", minutes=minutes))
    body = (f"<section class='card'><h1>{e(texts['consent_title'])}</h1>{paragraphs}"
            f"<form method='post' action='{e(token)}/consent' class='once'>{hidden('csrf', csrf)}"
            f"<p class='check'><input type='checkbox' id='agree' name='agree' value='yes' required autofocus>"
            f"<label for='agree'>{e(texts['consent_check'])}</label></p>"
            f"<button type='submit' name='choice' value='agree' class='primary'>{e(texts['consent_agree'])}</button>"
            f"</form><form method='post' action='{e(token)}/consent' class='once decline'>{hidden('csrf', csrf)}"
            f"<button type='submit' name='choice' value='decline' class='link'>{e(texts['consent_decline'])}</button>"
            f"</form></section>")
    return document(texts, root, texts["consent_title"], body, "consent")


def instructions(texts: Texts, root: str, token: str, csrf: str, n: int, practice: int) -> str:
    paragraphs = texts.paragraphs("instructions_body", n=n)
    if practice:
        paragraphs.insert(1, texts.format("instructions_practice", practice=practice))
    items = "".join(f"<li>{e(p)}</li>" for p in paragraphs)
    body = (f"<section class='card'><h1>{e(texts['instructions_title'])}</h1><ul class='steps'>{items}</ul>"
            f"<form method='post' action='{e(token)}/start' class='once'>{hidden('csrf', csrf)}"
            f"<button type='submit' class='primary' autofocus>{e(texts['instructions_start'])}</button></form>"
            f"</section>")
    return document(texts, root, texts["instructions_title"], body, "instructions")


def _choice(texts: Texts, name: str, legend: str, options: Sequence[str]) -> str:
    """Forced choice as large radio buttons, in the design's order for every rater (no option pre-selected or
    focused: a highlighted first option would bias the answer; Tab reaches it)."""
    inputs = []
    for i, key in enumerate(options):
        ident = f"{name}-{key}"
        attrs = " required" if i == 0 else ""
        inputs.append(f"<span class='opt'><input type='radio' id='{e(ident)}' name='{e(name)}' value='{e(key)}'{attrs}>"
                      f"<label for='{e(ident)}'>{e(texts.option(key))}</label></span>")
    return (f"<fieldset class='q q-choice' data-question='{e(name)}'><legend>{e(legend)}</legend>"
            f"<div class='choices'>{''.join(inputs)}</div></fieldset>")


def _scale(name: str, legend: str, low: int, high: int, ends: Sequence[str], signed: bool) -> str:
    inputs = []
    for i, value in enumerate(range(low, high + 1)):
        ident = f"{name}-{value}"
        shown = f"{value:+d}" if signed and value else str(value)
        inputs.append(f"<span class='opt'><input type='radio' id='{e(ident)}' name='{e(name)}' value='{value}'"
                      f"{' required' if i == 0 else ''}><label for='{e(ident)}'>{e(shown)}</label></span>")
    labels = "".join(f"<span>{e(t)}</span>" for t in ends)
    return (f"<fieldset class='q q-scale' data-question='{e(name)}'><legend>{e(legend)}</legend>"
            f"<div class='scale n{high - low + 1}'>{''.join(inputs)}</div><div class='ends n{len(ends)}'>{labels}</div>"
            f"</fieldset>")


def trial(texts: Texts, root: str, token: str, csrf: str, design: Design, position: int, entry: dict,
          n_trials: int, n_practice: int, free_text_max: int) -> str:
    """One trial: the image (by position only) and the questions this kind of trial asks."""
    kind = entry["kind"]
    if kind == "practice":
        label = texts.format("practice_label", i=position + 1, n=n_practice)
    else:
        label = texts.format("trial_label", i=position - n_practice + 1, n=n_trials - n_practice)
    notice = (f"<p class='notice'>{e(texts['practice_over'])}</p>"
              if n_practice and position == n_practice else "")
    questions = []
    for question in design.asked(kind):
        if kind == "attention":
            legend = texts.format("attention", option=texts.option(entry["expected"]))
            questions.append(_choice(texts, question, legend, design.options))
        elif question in ("displayed", "felt"):
            questions.append(_choice(texts, question, texts[f"q_{question}"], design.options))
        elif question == "genuineness":
            questions.append(_scale(question, texts["q_genuineness"], *GENUINENESS,
                                    [texts["genuineness_low"], texts["genuineness_mid"], texts["genuineness_high"]],
                                    signed=True))
        elif question == "confidence":
            questions.append(_scale(question, texts["q_confidence"], *CONFIDENCE,
                                    [texts["confidence_low"], texts["confidence_high"]], signed=False))
        elif question == "free_text":
            questions.append(f"<fieldset class='q q-text'><legend><label for='free_text'>{e(texts['q_free_text'])}"
                             f"</label></legend><textarea id='free_text' name='free_text' rows='3' "
                             f"maxlength='{int(free_text_max)}'></textarea></fieldset>")
    body = (f"<div class='progress'><span>{e(label)}</span>"
            f"<progress value='{position}' max='{n_trials}'></progress></div>{notice}"
            f"<figure class='stimulus'><img src='{e(token)}/img/{position}' alt='{e(texts['image_alt'])}' "
            f"width='512' height='512'></figure>"
            f"<form method='post' action='{e(token)}/answer' class='answers once' data-trial='{position}'>"
            f"{hidden('trial', position)}{hidden('csrf', csrf)}{hidden('rt_ms', '')}{''.join(questions)}"
            f"<button type='submit' class='primary next'>{e(texts['next'])}</button></form>")
    return document(texts, root, label, body, "practice" if kind == "practice" else "trial")


def done(texts: Texts, root: str, code: str, redirect: str | None = None, platform: str = "",
         mturk: tuple[str, str] | None = None) -> str:
    """The completion page: shown only once every answer is stored."""
    parts = [(f"<section class='card center'><h1>{e(texts['done_title'])}</h1><p>{e(texts['done_body'])}</p>"
              f"<p class='code-label'>{e(texts['code_label'])}</p><p class='code' id='completion-code'>{e(code)}</p>")]
    head = ""
    if redirect:
        parts.append(f"<p><a class='button primary' href='{e(redirect)}' id='return'>"
                     f"{e(texts.format('redirect', platform=platform))}</a></p>"
                     f"<p class='note'>{e(texts.format('redirect_note', platform=platform))}</p>")
        head = f"<meta http-equiv='refresh' content='5;url={e(redirect)}'>"
    if mturk:
        action, assignment = mturk
        parts.append(f"<form method='post' action='{e(action)}'>{hidden('assignmentId', assignment)}"
                     f"{hidden('completion_code', code)}<button type='submit' class='primary'>"
                     f"{e(texts['mturk_submit'])}</button></form>")
    parts.append("</section>")
    return document(texts, root, texts["done_title"], "".join(parts), "done", head)


def message(texts: Texts, root: str, title: str, text: str, state: str, back: str | None = None) -> str:
    link = f"<p><a class='button' href='{e(back)}'>{e(texts['back'])}</a></p>" if back else ""
    body = f"<section class='card center'><h1>{e(title)}</h1><p>{e(text)}</p>{link}</section>"
    return document(texts, root, title, body, state)
