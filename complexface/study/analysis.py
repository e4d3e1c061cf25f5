"""Analysis of a recognition study: ``analyze(study_dir, config)`` (``python study.py action=analyze``).

Reads ``<study_dir>/design.json`` (answer options, chance) and ``<study_dir>/export/answers.csv`` (one row per
rater x trial), applies the exclusion rules, and writes into ``<study_dir>/analysis/``:

- ``exclusions.csv``: every excluded rater and why (failed attention checks, too many too-fast answers);
- ``recognition.csv``: recognition rate of the displayed and of the felt emotion per recipe, recipe x face
  group and recipe x intensity x face group (and by rater group where raters reported one), with its Wilson
  95% interval, the one-sided binomial p against chance and the Holm-adjusted p within each table level;
- ``hu.csv``: Wagner's unbiased hit rate Hu at the same levels, its chance value, and the paired one-sided
  t-test over raters of arcsine-transformed Hu against arcsine-transformed chance (Holm-adjusted);
- ``confusion_<question>.csv`` and ``confusion_<question>[_<face group>].png``: answers per recipe;
- ``agreement.csv`` / ``agreement.json``: Krippendorff's alpha (nominal for the emotion questions, interval
  for genuineness) with the category skew beside it;
- ``mixed_model.csv`` / ``.json`` / ``.txt``: a Bayesian mixed-effects logistic model per question (statsmodels
  ``BinomialBayesMixedGLM``, variational Bayes): P(recognised) ~ recipe x face group cell + intensity, rater and
  face random intercepts; per recipe the face-group contrasts against a reference group (the bias question);
- ``recognized.csv``: per recipe, per recipe x intensity x face group and per stimulus the displayed and felt
  recognition rates, n and a verdict (read by the dataset builder: ``dataset.recognized=...``);
- ``report.html`` (self-contained) and, if asked, an offline W&B run with the tables and figures.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from complexface.atomic import atomic_write, write_text
from complexface.report.html import Section, write_report
from complexface.study import stats

DEFAULTS: dict[str, Any] = {
    "min_rt_ms": 300.0,            # an answer faster than this (ms) is too fast to be a judgement: dropped
    "max_fast_fraction": 0.2,      # a rater with more than this share of too-fast answers is excluded
    "max_attention_failures": 1,   # a rater failing more attention checks than this is excluded
    "alpha": 0.05,                 # significance level (Holm-adjusted) and 1 - alpha intervals
    "min_recognition": 0.5,        # verdict: recognised if the rate is at least this ...
    "min_ratings": 5,              # ... from at least this many answers ("too few ratings" otherwise)
    "verdict_question": "felt",    # felt | displayed | both | either: which rate decides the verdict
    "reference_face_group": None,  # the mixed model compares every face group with this one (null: the largest)
    "wandb": False,                # also log tables and figures to a W&B run under analysis/ ...
    "wandb_mode": "offline",       # ... offline (sync later with `wandb sync`) or online
    "wandb_project": "complexface",
}
QUESTIONS = ("displayed", "felt")
VERDICT_QUESTIONS = ("felt", "displayed", "both", "either")
SCORED = ("trial", "baseline")
ALL = "all"
RECOGNISED, NOT_RECOGNISED, TOO_FEW = "recognised", "not recognised", "too few ratings"
KEYS = ("recipe", "intensity", "face_group", "rater_group")
NUMERIC = ("intensity", "rt_ms", "genuineness", "confidence", "list", "trial")
_FORMULA_PREFIX = tuple("'" + c for c in "=+-@\t\r")  # export.py: cells a spreadsheet would run


class StudyAnalysisError(ValueError):
    """The study folder cannot be analysed (missing design or answers, bad configuration)."""


# ---------------------------------------------------------------------------------------------- inputs


def settings(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """DEFAULTS updated by ``config``; unknown keys warn (a typo would otherwise be ignored silently)."""
    config = dict(config or {})
    unknown = sorted(set(config) - set(DEFAULTS))
    if unknown:
        warnings.warn(f"analysis: unknown setting(s) {', '.join(unknown)} ignored; known: {', '.join(DEFAULTS)}",
                      stacklevel=3)
    cfg = {**DEFAULTS, **{k: v for k, v in config.items() if k in DEFAULTS}}
    if cfg["verdict_question"] not in VERDICT_QUESTIONS:
        raise StudyAnalysisError(f"analysis.verdict_question must be one of {', '.join(VERDICT_QUESTIONS)}, "
                                 f"got {cfg['verdict_question']!r}")
    if not 0 < float(cfg["alpha"]) < 1 or not 0 <= float(cfg["max_fast_fraction"]) <= 1:
        raise StudyAnalysisError("analysis.alpha must lie in (0, 1) and analysis.max_fast_fraction in [0, 1]")
    return cfg


def load_design(study_dir: Path) -> tuple[list[str], float]:
    """(answer option keys, chance) from ``design.json``."""
    path = study_dir / "design.json"
    if not path.exists():
        raise StudyAnalysisError(f"{path} is missing: is {study_dir} a study folder?")
    design = json.loads(path.read_text(encoding="utf-8"))
    options = [str(o["key"]) if isinstance(o, Mapping) else str(o) for o in design.get("options", [])]
    if len(options) < 2:
        raise StudyAnalysisError(f"{path} lists {len(options)} answer option(s); a forced choice needs two or more")
    return options, float(design.get("chance", 1 / len(options)))


def _clean(value: Any) -> str:
    text = "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
    return text[1:] if text.startswith(_FORMULA_PREFIX) else text  # undo the export's formula-injection guard


def _flag(value: str) -> float:
    text = value.strip().lower()
    return 1.0 if text in ("true", "1", "yes", "t") else 0.0 if text in ("false", "0", "no", "f") else np.nan


def load_answers(study_dir: Path) -> pd.DataFrame:
    """``export/answers.csv`` (or ``answers.json``) as typed columns: text stays text (empty for missing),
    NUMERIC columns are floats (NaN for missing), ``attention_passed`` is 1/0/NaN."""
    export = study_dir / "export"
    if (export / "answers.csv").exists():
        frame = pd.read_csv(export / "answers.csv", dtype=str, keep_default_na=False)
    elif (export / "answers.json").exists():
        data = json.loads((export / "answers.json").read_text(encoding="utf-8"))
        frame = pd.DataFrame(data["answers"] if isinstance(data, Mapping) else data)
    else:
        raise StudyAnalysisError(f"no answers in {export}: export them first (python study.py action=export)")
    required = {"rater", "kind", "stimulus", "recipe", "face", "face_group", "intensity", "displayed_target",
                "felt_target", "displayed_answer", "felt_answer", "rt_ms"}
    missing = sorted(required - set(frame.columns))
    if missing:
        raise StudyAnalysisError(f"{export}: the answers lack column(s) {', '.join(missing)}")
    for column in ("rater_group", "attention_passed", "genuineness", "confidence"):
        if column not in frame:
            frame[column] = ""
    frame = frame.map(_clean)
    for column in NUMERIC:
        if column in frame:
            frame[column] = pd.to_numeric(frame[column].replace("", np.nan), errors="coerce")
    frame["attention_passed"] = frame["attention_passed"].map(_flag)
    frame["rater_group"] = frame["rater_group"].str.strip()
    return frame


def apply_exclusions(answers: pd.DataFrame, cfg: Mapping[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(scored answers, excluded raters with rule and detail, counts). Practice answers are never scored;
    attention-check answers only count for the rule. A rater is excluded for failing more than
    ``max_attention_failures`` checks or for answering more than ``max_fast_fraction`` of the scored trials
    faster than ``min_rt_ms``; the remaining too-fast answers of included raters are dropped one by one."""
    scored = answers[answers["kind"].isin(SCORED)]
    attention = answers[answers["kind"] == "attention"]
    fast = scored["rt_ms"] < float(cfg["min_rt_ms"])
    rows = []
    for rater, part in answers.groupby("rater", sort=True):
        group = part["rater_group"].iloc[0]
        checks = attention[attention["rater"] == rater]["attention_passed"]
        failed = int((checks == 0).sum())
        if failed > int(cfg["max_attention_failures"]):
            rows.append({"rater": rater, "rater_group": group, "rule": "attention",
                         "detail": f"failed {failed} of {len(checks)} attention checks "
                                   f"(at most {int(cfg['max_attention_failures'])} allowed)"})
        mine = fast[scored["rater"] == rater]
        if len(mine) and mine.mean() > float(cfg["max_fast_fraction"]):
            rows.append({"rater": rater, "rater_group": group, "rule": "too fast",
                         "detail": f"{int(mine.sum())} of {len(mine)} answers faster than {cfg['min_rt_ms']:g} ms "
                                   f"({mine.mean():.0%} > {float(cfg['max_fast_fraction']):.0%})"})
    excluded = pd.DataFrame(rows, columns=["rater", "rater_group", "rule", "detail"])
    out = scored[~scored["rater"].isin(set(excluded["rater"]))]
    dropped = out["rt_ms"] < float(cfg["min_rt_ms"])
    counts = {"raters": int(answers["rater"].nunique()), "raters_excluded": int(excluded["rater"].nunique()),
              "practice_ignored": int((answers["kind"] == "practice").sum()),
              "attention_checks": len(attention), "scored_answers": int((~dropped).sum()),
              "too_fast_dropped": int(dropped.sum()),
              "excluded_raters_answers": int(len(scored) - len(out))}
    counts["raters_included"] = counts["raters"] - counts["raters_excluded"]
    return out[~dropped].copy(), excluded, counts


def responses(scored: pd.DataFrame, options: Sequence[str]) -> pd.DataFrame:
    """Long table: one row per answered question (``displayed``/``felt``) of a scored answer, with the target,
    the answer, ``hit`` (the answer names the target) and ``chance`` (of a hit by a random answer)."""
    parts = []
    for question in QUESTIONS:
        part = scored[scored[f"{question}_answer"] != ""]
        if part.empty:
            continue
        targets = part[f"{question}_target"]
        answers = part[f"{question}_answer"]
        parts.append(part.assign(
            question=question, target=targets, answer=answers,
            hit=[a in stats.target_set(t) for t, a in zip(targets, answers, strict=True)],
            chance=[stats.chance_of_hit(t, options) for t in targets]))
    if not parts:
        raise StudyAnalysisError("no scored answers left to analyse (all excluded, or no question answered)")
    data = pd.concat(parts, ignore_index=True)
    data["rater_group"] = data["rater_group"].replace("", "unreported")
    return data


def levels(data: pd.DataFrame) -> list[tuple[str, list[str]]]:
    """The table levels: (name, grouping keys). By rater group as well when any rater reported one."""
    out = [("recipe", ["recipe"]), ("recipe x face_group", ["recipe", "face_group"]),
           ("recipe x intensity x face_group", ["recipe", "intensity", "face_group"])]
    if (data["rater_group"] != "unreported").any():
        out += [(f"{name} x rater_group", [*keys, "rater_group"]) for name, keys in out]
    return out


def _keyed(keys: Sequence[str], values: Sequence[Any]) -> dict[str, Any]:
    given = dict(zip(keys, values, strict=True))
    return {k: given.get(k, ALL) for k in KEYS}


# ------------------------------------------------------------------------------------------ statistics


def recognition_table(data: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """Recognition per question and level: n, hits, rate, Wilson interval, chance, one-sided binomial p, Holm p
    (within the question's level) and whether it is above chance."""
    rows = []
    for question, qpart in data.groupby("question", sort=False):
        for level, keys in levels(data):
            block = []
            for values, part in qpart.groupby(keys, sort=True):
                result = stats.recognition(int(part["hit"].sum()), len(part), float(part["chance"].mean()), alpha)
                block.append({"question": question, "level": level, **_keyed(keys, values),
                              "target": "/".join(sorted(part["target"].unique())), **result})
            for row, adjusted in zip(block, stats.holm([b["p"] for b in block]), strict=True):
                row["p_holm"] = adjusted
                row["above_chance"] = bool(adjusted < alpha) if not np.isnan(adjusted) else False
            rows += block
    return pd.DataFrame(rows)


def hu_table(data: pd.DataFrame, options: Sequence[str], alpha: float) -> pd.DataFrame:
    """Wagner's unbiased hit rate per question and level. Rows of the confusion matrix are the level's recipe
    (x intensity) cells; face group and rater group split the stimulus set (each with its own answer usage,
    so a group-specific answer bias shows). Pooled over raters, and per rater for the test: arcsine(sqrt(Hu))
    against arcsine(sqrt(chance Hu)), paired one-sided t-test over raters, Holm within the question's level."""
    column = {o: i for i, o in enumerate(options)}
    rows = []
    for question, qpart in data.groupby("question", sort=False):
        qpart = qpart[qpart["answer"].isin(column)]
        for level, keys in levels(data):
            split = [k for k in keys if k in ("face_group", "rater_group")]
            inner = [k for k in keys if k not in split]
            block = []
            for svalues, spart in (qpart.groupby(split, sort=True) if split else [((), qpart)]):
                cells = spart.groupby(inner, sort=True)
                labels = [values for values, _ in cells]
                targets = cells["target"].first().tolist()
                row, rater = cells.ngroup().to_numpy(), pd.factorize(spart["rater"])[0]
                counts = np.zeros((rater.max() + 1, len(labels), len(options)))
                np.add.at(counts, (rater, row, spart["answer"].map(column).to_numpy()), 1)
                mask = stats.target_mask(targets, options)
                pooled = stats.hu_arrays(counts.sum(0), mask)
                per_rater = stats.hu_arrays(counts, mask)
                for i, values in enumerate(labels):
                    t, p, n_raters = stats.paired_greater(stats.arcsine_sqrt(per_rater["hu"][:, i]),
                                                          stats.arcsine_sqrt(per_rater["chance_hu"][:, i]))
                    block.append({"question": question, "level": level, **_keyed([*inner, *split], [*values, *svalues]),
                                  "target": targets[i], "n": int(pooled["n"][i]), "hit_rate": pooled["hit_rate"][i],
                                  "precision": pooled["precision"][i], "hu": pooled["hu"][i],
                                  "chance_hu": pooled["chance_hu"][i],
                                  "hu_arcsine": float(stats.arcsine_sqrt(pooled["hu"][i])),
                                  "chance_arcsine": float(stats.arcsine_sqrt(pooled["chance_hu"][i])),
                                  "hu_rater_mean": float(np.nanmean(per_rater["hu"][:, i])),
                                  "n_raters": n_raters, "t": t, "p": p})
            for entry, adjusted in zip(block, stats.holm([b["p"] for b in block]), strict=True):
                entry["p_holm"] = adjusted
                entry["above_chance"] = bool(adjusted < alpha) if not np.isnan(adjusted) else False
            rows += block
    return pd.DataFrame(rows)


def agreement_table(data: pd.DataFrame, scored: pd.DataFrame, options: Sequence[str]) -> pd.DataFrame:
    """Krippendorff's alpha of the answers over stimuli (units) and raters, nominal for the emotion questions
    (missing cells of counterbalanced lists allowed), interval for genuineness; for all answers, per face group
    and per rater group, with the category skew of the answers beside it."""
    codes = {o: i for i, o in enumerate(options)}
    subsets: list[tuple[str, str, pd.Series, pd.Series]] = [("all", ALL, data["question"].notna(),
                                                              scored["rater"].notna())]
    for column in ("face_group", "rater_group"):
        if column == "rater_group" and not (data["rater_group"] != "unreported").any():
            continue
        for value in sorted(data[column].unique()):
            subsets.append((column, value, data[column] == value,
                            scored[column].replace("", "unreported") == value))
    rows = []
    for subset, value, mask, smask in subsets:
        for question in [q for q in QUESTIONS if q in set(data["question"])]:
            part = data[mask & (data["question"] == question)]
            matrix = stats.reliability_data(part["rater"], part["stimulus"], part["answer"].map(codes))
            rows.append({"question": question, "subset": subset, "value": value, "level_of_measurement": "nominal",
                         "alpha": stats.krippendorff_alpha(matrix, "nominal"), "units": part["stimulus"].nunique(),
                         "raters": part["rater"].nunique(),
                         "pairable_units": int((np.sum(~np.isnan(matrix), axis=0) >= 2).sum()),
                         **stats.category_skew(part["answer"])})
        part = scored[smask].dropna(subset=["genuineness"])
        if not part.empty:
            matrix = stats.reliability_data(part["rater"], part["stimulus"], part["genuineness"])
            rows.append({"question": "genuineness", "subset": subset, "value": value,
                         "level_of_measurement": "interval", "alpha": stats.krippendorff_alpha(matrix, "interval"),
                         "units": part["stimulus"].nunique(), "raters": part["rater"].nunique(),
                         "pairable_units": int((np.sum(~np.isnan(matrix), axis=0) >= 2).sum()),
                         **stats.category_skew(part["genuineness"].astype(int))})
    return pd.DataFrame(rows)


def mixed_model(data: pd.DataFrame, question: str, reference: str | None) -> dict[str, Any]:
    """P(hit) of edited stimuli (baselines left out) ~ 0 + cell + intensity (centred), cell = recipe x face
    group, with random intercepts for rater and face: ``BinomialBayesMixedGLM`` fitted by variational Bayes.
    One mean per cell (rather than treatment contrasts) keeps the posterior nearly uncorrelated, which the
    mean-field fit assumes; a contrast's SD combines its two cells' SDs. Recipes whose target is not an answer
    option are left out (nothing to recognise)."""
    from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM

    part = data[(data["question"] == question) & (data["kind"] == "trial") & (data["chance"] > 0)].copy()
    if part.empty or part["recipe"].nunique() < 1:
        return {"question": question, "error": "no edited stimuli with a target among the options"}
    groups = part["face_group"].value_counts()
    reference = reference if reference in groups.index else min(groups.index, key=lambda g: (-groups[g], g))
    part["cell"] = part["recipe"] + " @ " + part["face_group"]
    part["y"] = part["hit"].astype(float)
    formula = "y ~ 0 + C(cell)"
    if part["intensity"].nunique() > 1:
        part["intensity_c"] = part["intensity"] - part["intensity"].mean()
        formula += " + intensity_c"
    random = {name: f"0 + C({name})" for name in ("rater", "face") if part[name].nunique() > 1}
    if not random:
        return {"question": question, "error": "one rater and one face: no random effects to fit"}
    model = BinomialBayesMixedGLM.from_formula(formula, random, part)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = model.fit_vb()
    mean = dict(zip(model.fep_names, result.fe_mean, strict=True))
    sd = dict(zip(model.fep_names, result.fe_sd, strict=True))
    fixed = [{"term": name, "post_mean": mean[name], "post_sd": sd[name], "ci_low": mean[name] - 1.96 * sd[name],
              "ci_high": mean[name] + 1.96 * sd[name]} for name in model.fep_names]
    variance = [{"effect": name, "sd_post": float(np.exp(m)), "sd_ci_low": float(np.exp(m - 1.96 * s)),
                 "sd_ci_high": float(np.exp(m + 1.96 * s))}
                for name, m, s in zip(model.vcp_names, result.vcp_mean, result.vcp_sd, strict=True)]
    cell = {c: f"C(cell)[{c}]" for c in part["cell"].unique()}
    contrasts = []
    for recipe in sorted(part["recipe"].unique()):
        base = cell.get(f"{recipe} @ {reference}")
        for group in sorted(g for g in groups.index if g != reference):
            other = cell.get(f"{recipe} @ {group}")
            if base not in mean or other not in mean:
                continue
            diff, spread = mean[other] - mean[base], math.hypot(sd[other], sd[base])
            low, high = diff - 1.96 * spread, diff + 1.96 * spread
            contrasts.append({
                "question": question, "recipe": recipe, "face_group": group, "reference": reference,
                "diff_logodds": diff, "diff_sd": spread, "ci_low": low, "ci_high": high,
                "p_lower": float(_normal_cdf(-diff / spread)) if spread > 0 else float(diff < 0),
                "rate_reference": _expit(mean[base]), "rate_group": _expit(mean[other]),
                "finding": "lower" if high < 0 else "higher" if low > 0 else "no credible difference"})
    return {"question": question, "formula": formula, "random_effects": sorted(random), "reference": reference,
            "n": len(part), "raters": int(part["rater"].nunique()), "faces": int(part["face"].nunique()),
            "fixed": fixed, "variance": variance, "contrasts": contrasts,
            "intensity_per_unit": mean.get("intensity_c"), "warnings": sorted({str(w.message) for w in caught}),
            "summary": str(result.summary())}


def _expit(x: float) -> float:
    return float(1 / (1 + np.exp(-x)))


def _normal_cdf(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def recognized_table(data: pd.DataFrame, cfg: Mapping[str, Any], alpha: float) -> tuple[pd.DataFrame, list[str]]:
    """Rates and a verdict per recipe, per recipe x intensity x face group (``cell``) and per stimulus: for each
    question its rate, n and Wilson interval; verdict ``recognised`` when the ``verdict_question`` rate(s) reach
    ``min_recognition`` from at least ``min_ratings`` answers, ``too few ratings`` below that count."""
    asked = [q for q in QUESTIONS if q in set(data["question"])]
    decide = cfg["verdict_question"]
    notes = []
    if decide in QUESTIONS and decide not in asked:
        notes.append(f"the study did not ask the {decide} emotion: verdicts use the {asked[0]} emotion")
        decide = asked[0]
    deciding = asked if decide in ("both", "either") else [decide]
    rows = []
    for level, keys in [("recipe", ["recipe"]), ("cell", ["recipe", "intensity", "face_group"]),
                        ("stimulus", ["stimulus", "face", "recipe", "intensity", "face_group"])]:
        for values, part in data.groupby(keys, sort=True):
            row: dict[str, Any] = {"level": level, "stimulus": "", "face": "", "intensity": ALL, "face_group": ALL,
                                   **dict(zip(keys, values, strict=True))}
            for question in QUESTIONS:
                answered = part[part["question"] == question]
                targets = answered["target"].unique()
                row[f"{question}_target"] = "/".join(sorted(targets))
                hits, n = int(answered["hit"].sum()), len(answered)
                low, high = stats.wilson_ci(hits, n, alpha)
                row.update({f"{question}_n": n, f"{question}_rate": hits / n if n else np.nan,
                            f"{question}_ci_low": low, f"{question}_ci_high": high})
            judged = []
            for question in deciding:
                n, rate = row[f"{question}_n"], row[f"{question}_rate"]
                if n < int(cfg["min_ratings"]):
                    judged.append((None, f"{question}: {n} answer(s) < {int(cfg['min_ratings'])}"))
                else:
                    ok = rate >= float(cfg["min_recognition"])
                    sign = ">=" if ok else "<"
                    judged.append((ok, f"{question} {rate:.2f} {sign} {float(cfg['min_recognition']):g}"))
            outcomes = [ok for ok, _ in judged]
            if decide == "either":
                verdict = RECOGNISED if True in outcomes else TOO_FEW if None in outcomes else NOT_RECOGNISED
            else:
                verdict = NOT_RECOGNISED if False in outcomes else TOO_FEW if None in outcomes else RECOGNISED
            row["verdict"], row["verdict_reason"] = verdict, "; ".join(reason for _, reason in judged)
            rows.append(row)
    columns = ["level", "stimulus", "face", "recipe", "intensity", "face_group"] + [
        f"{q}_{c}" for q in QUESTIONS for c in ("target", "n", "rate", "ci_low", "ci_high")] + ["verdict",
                                                                                                "verdict_reason"]
    return pd.DataFrame(rows, columns=columns), notes


# ------------------------------------------------------------------------------------------------ figures


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    with atomic_write(path) as handle:
        fig.savefig(handle, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def _recipe_order(recipes: Sequence[str]) -> list[str]:
    return sorted(set(recipes), key=lambda r: (r == "source", r))


def confusion_heatmap(data: pd.DataFrame, question: str, options: Sequence[str], title: str, path: Path) -> Path:
    """Rows: recipes (target and n in the label), columns: answer options; cells: share of the row's answers
    (printed in %), the target answers boxed."""
    plt = _pyplot()
    recipes = _recipe_order(data["recipe"])
    counts = stats.confusion_matrix(data["recipe"], data["answer"], rows=recipes, columns=options)
    shares = counts.div(counts.sum(axis=1).replace(0, np.nan), axis=0).to_numpy(dtype=float)
    targets = data.groupby("recipe")["target"].first()
    fig, ax = plt.subplots(figsize=(2.6 + 0.62 * len(options), 1.2 + 0.36 * len(recipes)), layout="constrained")
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(options)), options, rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(len(recipes)), [f"{r} → {targets[r]} (n={counts.loc[r].sum()})" for r in recipes],
                  fontsize=8)
    for (i, j), value in np.ndenumerate(shares):
        if not np.isnan(value) and value >= 0.005:
            ax.text(j, i, f"{100 * value:.0f}", ha="center", va="center", fontsize=7,
                    color="white" if value > 0.6 else "black")
        if options[j] in stats.target_set(targets[recipes[i]]):
            ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=1.4, color="#d62728"))
    ax.set_xlabel(f"{question} emotion answered")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, shrink=0.6, label="share of the recipe's answers")
    return _save(fig, path)


def recognition_plot(table: pd.DataFrame, question: str, min_recognition: float, path: Path) -> Path:
    """Recognition rate per recipe with its Wilson interval: all faces (black) and each face group; chance as a
    grey tick per recipe, the verdict threshold dotted."""
    plt = _pyplot()
    overall = table[(table["question"] == question) & (table["level"] == "recipe")]
    groups = table[(table["question"] == question) & (table["level"] == "recipe x face_group")]
    recipes = _recipe_order(overall["recipe"])[::-1]
    names = sorted(groups["face_group"].unique())
    fig, ax = plt.subplots(figsize=(7.5, 1.3 + 0.42 * len(recipes)), layout="constrained")
    series = [(ALL, overall, "black")] + [(g, groups[groups["face_group"] == g], None) for g in names]
    step = 0.7 / max(1, len(series))
    for k, (name, part, color) in enumerate(series):
        part = part.set_index("recipe").reindex(recipes)
        y = np.arange(len(recipes)) + (k - (len(series) - 1) / 2) * step
        err = np.vstack([part["rate"] - part["ci_low"], part["ci_high"] - part["rate"]])
        ax.errorbar(part["rate"], y, xerr=err, fmt="o", ms=4, capsize=2, lw=1, color=color,
                    label="all faces" if name == ALL else name)
    for i, recipe in enumerate(recipes):
        chance = overall.set_index("recipe").loc[recipe, "chance"]
        ax.plot([chance, chance], [i - 0.4, i + 0.4], color="grey", lw=1.5)
    ax.axvline(min_recognition, ls=":", color="grey", lw=1)
    ax.set_yticks(range(len(recipes)), [f"{r} → {overall.set_index('recipe').loc[r, 'target']}" for r in recipes],
                  fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"{question} emotion recognised (share, Wilson 95% CI); grey: chance; dotted: verdict threshold")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    return _save(fig, path)


# -------------------------------------------------------------------------------------------------- output


def _write_csv(frame: pd.DataFrame, path: Path) -> Path:
    with atomic_write(path, "w") as handle:
        frame.to_csv(handle, index=False, float_format="%.6g")
    return path


def _json_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


GLOSSARY = [
    ("Recognition rate: the share of answers naming the target emotion (for a blend such as joy+sadness, any of "
     "its emotions). The Wilson 95% interval is the range of rates compatible with the answers; it stays inside "
     "0..1 and is accurate for small n and rates near 0 or 1."),
    ("p (binomial) tests whether the rate exceeds chance, the rate a random answer would reach (1 / number of "
     "options; k / options for a blend of k emotions). p_holm is Holm-corrected across the rows of one table "
     "level, so the chance of any false 'above chance' in that table stays below alpha. Both treat answers as "
     "independent; answers of one rater or of one face are not, so with few raters or faces they are optimistic "
     "(the mixed model below accounts for raters and faces)."),
    ("Unbiased hit rate Hu (Wagner 1993) = hit rate x precision, where precision is the share of all uses of the "
     "target answer that were correct. A rater who answers 'joy' to everything has a perfect joy hit rate, but an "
     "Hu at chance. chance_hu is the Hu expected if answers ignored the faces. Hu is compared with chance_hu per "
     "rater after the arcsine-square-root transform (which makes proportions near 0 and 1 behave for a t-test)."),
    ("Confusion matrix: for each recipe, how its answers spread over the options (row shares); the boxed cells "
     "are the target. Off-target mass shows which emotion the edit is mistaken for."),
    ("Krippendorff's alpha: agreement between raters beyond what their overall answer distribution gives by "
     "chance (1 = perfect, 0 = chance, below 0 = systematic disagreement); it allows raters to rate different "
     "subsets (counterbalanced lists). Read it beside the category skew: when most answers fall in one category "
     "(top_share near 1, evenness near 0), alpha is low even when raw agreement is high."),
    ("Mixed-effects model: the log-odds of recognition per recipe x face group cell, adjusted for intensity, "
     "with rater and face random effects (some raters and faces are easier). A face-group contrast below 0 whose "
     "95% credible interval excludes 0 says the recipe is recognised less on that face group than on the "
     "reference group, beyond what rater and face variation explain; p_lower is the posterior probability that "
     "the contrast is below 0. Variational Bayes; SDs combine the two cells' posterior SDs."),
    ("Verdict (recognized.csv): recognised when the deciding rate (analysis.verdict_question) reaches "
     "min_recognition from at least min_ratings answers."),
]


def _p_text(p: float) -> str:
    return "" if math.isnan(p) else f"{p:.1e}" if p < 0.001 else f"{p:.3f}"


def _brief(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """A report table: the chosen columns, the pooled key columns (all ``all``) left out, the remaining keys as
    the index, p-values as text (tiny ones in e-notation)."""
    frame = frame[[c for c in columns if c in frame]].copy()
    frame = frame.drop(columns=[k for k in KEYS if k in frame and (frame[k].astype(str) == ALL).all()])
    for column in ("p", "p_holm"):
        if column in frame:
            frame[column] = frame[column].map(_p_text)
    index = [c for c in ("question", "subset", "value", *KEYS) if c in frame]
    return frame.set_index(index) if index else frame.reset_index(drop=True)


def _rate_text(rate: float, n: int, target: str) -> str:
    return "not asked" if not n else f"{target} {rate:.0%} (n={n})"


def _model_section(models: dict[str, dict]) -> Section:
    notes, contrasts, variance, fixed = [], [], [], []
    for question, model in models.items():
        if "error" in model:
            notes.append(f"{question}: not fitted ({model['error']})")
            continue
        slope = next((f for f in model["fixed"] if f["term"] == "intensity_c"), None)
        notes.append(
            f"{question}: {model['formula']}, random intercepts for {' and '.join(model['random_effects'])}; "
            f"{model['n']} answers, {model['raters']} raters, {model['faces']} faces; reference face group "
            f"{model['reference']}."
            + (f" Intensity: {slope['post_mean']:+.2f} log-odds per unit (95% CrI {slope['ci_low']:+.2f}.."
               f"{slope['ci_high']:+.2f})." if slope else "")
            + (f" Warnings: {'; '.join(model['warnings'])}" if model["warnings"] else ""))
        contrasts += model["contrasts"]
        variance += [{"question": question, **v} for v in model["variance"]]
        fixed += [{"question": question, **f} for f in model["fixed"]]
    tables = [pd.DataFrame(rows).set_index(index) for rows, index in (
        (contrasts, ["question", "recipe", "face_group"]), (variance, ["question", "effect"]),
        (fixed, ["question", "term"])) if rows]
    return Section("Mixed-effects model (bias by face group)", [
        ("Contrasts: log-odds of recognition on each face group minus the reference group, per recipe (posterior "
        "mean, SD, 95% credible interval, p_lower = posterior probability that the contrast is below 0; rates at "
        "the mean intensity for a typical rater and face). Then the random-effect SDs (log-odds) and every "
        "fixed effect."), *notes], tables=tables)


def _sections(counts: dict, excluded: pd.DataFrame, cfg: Mapping, recog: pd.DataFrame, hu: pd.DataFrame,
              agreement: pd.DataFrame, models: dict, recognized: pd.DataFrame, figures: dict[str, list],
              notes: list[str]) -> list[Section]:
    per_recipe = recognized[recognized["level"] == "recipe"]
    lines = [f"{r.recipe}: displayed {_rate_text(r.displayed_rate, r.displayed_n, r.displayed_target)}, felt "
             f"{_rate_text(r.felt_rate, r.felt_n, r.felt_target)} -> {r.verdict}" for r in per_recipe.itertuples()]
    bias = [f"{c['question']}: {c['recipe']} is recognised {c['finding']} on {c['face_group']} faces than on "
            f"{c['reference']} faces ({c['rate_group']:.0%} vs {c['rate_reference']:.0%}; log-odds "
            f"{c['diff_logodds']:+.2f}, 95% CrI {c['ci_low']:+.2f}..{c['ci_high']:+.2f})"
            for m in models.values() for c in m.get("contrasts", []) if c["finding"] != "no credible difference"]
    summary = Section("Summary", [
        (f"{counts['raters_included']} of {counts['raters']} raters included ({counts['raters_excluded']} excluded), "
        f"{counts['scored_answers']} scored answers; {counts['too_fast_dropped']} further answers faster than "
        f"{cfg['min_rt_ms']:g} ms dropped; {counts['practice_ignored']} practice answers not scored."),
        (f"Verdicts by the {cfg['verdict_question']} emotion: recognised at >= {cfg['min_recognition']:g} from at "
        f"least {cfg['min_ratings']} answers."), *notes],
        bullets=lines + (bias or ["Mixed model: no credible face-group difference."]))
    columns = ["question", *KEYS, "target", "n", "rate", "ci_low", "ci_high", "chance", "p", "p_holm", "above_chance"]
    sections = [summary, Section("Recognition by recipe", [
        ("Rate of answers naming the target, Wilson 95% interval, one-sided binomial p against chance and "
        "Holm-adjusted p within the table (recognition.csv has every level).")],
        tables=[_brief(recog[recog["level"] == "recipe"], columns)], images=figures["recognition"]),
        Section("Recognition by recipe, intensity and face group",
                tables=[_brief(recog[recog["level"] == "recipe x intensity x face_group"], columns)])]
    if recog["level"].str.contains("rater_group").any():
        sections.append(Section("Recognition by recipe, face group and rater group", tables=[
            _brief(recog[recog["level"] == "recipe x face_group x rater_group"], columns)]))
    hu_columns = ["question", *KEYS, "target", "n", "hit_rate", "precision", "hu", "chance_hu", "hu_rater_mean",
                  "n_raters", "t", "p_holm", "above_chance"]
    sections += [
        Section("Unbiased hit rates (Hu)", [
            ("Hu = hit rate x precision of the target answer; tested per rater (arcsine-square-root of Hu against "
            "that of chance Hu, paired one-sided t-test over raters, Holm). All levels in hu.csv.")],
            tables=[_brief(hu[hu["level"] == level], hu_columns) for level in ("recipe", "recipe x face_group")]),
        Section("Confusion matrices", images=figures["confusion"]),
        Section("Agreement (Krippendorff's alpha)", [
            ("Units are stimuli; the stimuli a rater did not see are missing cells. Read alpha beside the skew: "
            "top_share (share of the most used answer) and evenness (1 = answers spread evenly).")],
            tables=[_brief(agreement, list(agreement.columns))]),
        _model_section(models),
        Section("Exclusions", [
            (f"Rules: more than {cfg['max_attention_failures']} failed attention check(s), or more than "
            f"{float(cfg['max_fast_fraction']):.0%} of answers faster than {cfg['min_rt_ms']:g} ms: rater excluded; "
            "remaining answers faster than that: dropped.")],
            tables=[excluded.set_index("rater")] if not excluded.empty else [],
            bullets=[] if not excluded.empty else ["Nobody excluded."]),
        Section("What the statistics mean", bullets=GLOSSARY),
    ]
    return sections


def _track(cfg: Mapping, out: Path, tracker, recog: pd.DataFrame, recognized: pd.DataFrame,
           agreement: pd.DataFrame, figures: dict[str, list]) -> None:
    owned = tracker is None
    if owned:
        from complexface.tracking import WandbTracker

        tracker = WandbTracker(output_dir=out, project=cfg["wandb_project"], mode=cfg["wandb_mode"],
                               name=f"study-{out.parent.name}", config=dict(cfg), job_type="study-analysis")
    try:
        for key, frame in (("recognition", recog[recog["level"] == "recipe"]),
                           ("recognized", recognized[recognized["level"] != "stimulus"]), ("agreement", agreement)):
            frame = frame.astype({c: str for c in frame.columns if frame[c].dtype == object})  # "all" or 0.5
            frame = frame.astype(object).where(frame.notna(), None)
            tracker.log_table(key, list(map(str, frame.columns)), frame.values.tolist())
        tracker.log_images("study", {p.stem: p for p, _ in figures["recognition"] + figures["confusion"]})
        metrics = {f"recognition/{r.question}/{r.recipe}": float(r.rate)
                   for r in recog[recog["level"] == "recipe"].itertuples()}
        metrics.update({f"alpha/{r.question}/{r.subset}/{r.value}": float(r.alpha) for r in agreement.itertuples()})
        tracker.log_summary(metrics)
    finally:
        if owned:
            tracker.finish()


def analyze(study_dir: str | Path, config: Mapping[str, Any] | None = None, tracker=None) -> dict[str, Any]:
    """Analyse the exported answers of ``study_dir`` into ``<study_dir>/analysis/`` (see the module docstring);
    returns a summary. ``config`` keys and defaults: DEFAULTS. ``tracker`` (a ``complexface.tracking.Tracker``)
    receives the tables and figures; without one, ``wandb: true`` opens a W&B run under ``analysis/``."""
    study_dir = Path(study_dir)
    cfg = settings(config)
    alpha = float(cfg["alpha"])
    options, _ = load_design(study_dir)
    answers = load_answers(study_dir)
    scored, excluded, counts = apply_exclusions(answers, cfg)
    data = responses(scored, options)
    out = study_dir / "analysis"
    out.mkdir(parents=True, exist_ok=True)
    recog = recognition_table(data, alpha)
    hu = hu_table(data, options, alpha)
    agreement = agreement_table(data, scored, options)
    models = {q: mixed_model(data, q, cfg["reference_face_group"]) for q in QUESTIONS if q in set(data["question"])}
    recognized, notes = recognized_table(data, cfg, alpha)
    files = {"exclusions": _write_csv(excluded, out / "exclusions.csv"),
             "recognition": _write_csv(recog, out / "recognition.csv"), "hu": _write_csv(hu, out / "hu.csv"),
             "agreement": _write_csv(agreement, out / "agreement.csv"),
             "recognized": _write_csv(recognized, out / "recognized.csv")}
    files["agreement_json"] = write_text(out / "agreement.json", json.dumps(
        _json_safe(agreement.to_dict(orient="records")), indent=1, ensure_ascii=False))
    contrasts = [c for m in models.values() for c in m.get("contrasts", [])]
    files["mixed_model"] = _write_csv(pd.DataFrame(contrasts, columns=[
        "question", "recipe", "face_group", "reference", "diff_logodds", "diff_sd", "ci_low", "ci_high", "p_lower",
        "rate_reference", "rate_group", "finding"]), out / "mixed_model.csv")
    files["mixed_model_json"] = write_text(out / "mixed_model.json", json.dumps(
        _json_safe({q: {k: v for k, v in m.items() if k != "summary"} for q, m in models.items()}), indent=1))
    files["mixed_model_txt"] = write_text(out / "mixed_model.txt", "\n\n".join(
        f"{q}: {m.get('formula', '')}\n{m.get('summary', m.get('error'))}" for q, m in models.items()))
    figures: dict[str, list[tuple[Path, str]]] = {"recognition": [], "confusion": []}
    for question in models:
        figures["recognition"].append((recognition_plot(recog, question, float(cfg["min_recognition"]),
                                                        out / f"recognition_{question}.png"),
                                       f"{question} emotion: recognition per recipe and face group"))
        answered = data[data["question"] == question]
        confusion = stats.confusion_matrix(answered["recipe"], answered["answer"],
                                           rows=_recipe_order(answered["recipe"]), columns=options)
        files[f"confusion_{question}"] = _write_csv(confusion.reset_index(), out / f"confusion_{question}.csv")
        for group in [ALL, *sorted(answered["face_group"].unique())]:
            part = answered if group == ALL else answered[answered["face_group"] == group]
            name = f"confusion_{question}" + ("" if group == ALL else f"_{group}")
            title = f"{question} emotion: answers per recipe, {'all faces' if group == ALL else group + ' faces'}"
            figures["confusion"].append((confusion_heatmap(part, question, options, title, out / f"{name}.png"),
                                         title + " (% of the row; boxed: target)"))
    files["report"] = write_report(out / "report.html", f"Recognition study: {study_dir.name}", _sections(
        counts, excluded, cfg, recog, hu, agreement, models, recognized, figures, notes))
    if tracker is not None or cfg["wandb"]:
        _track(cfg, out, tracker, recog, recognized, agreement, figures)
    per_recipe = recognized[recognized["level"] == "recipe"]
    return {
        "analysis_dir": str(out), **counts,
        "excluded": excluded.groupby("rater")["rule"].apply(list).to_dict(),
        "questions": list(models),
        "recognised": sorted(per_recipe.loc[per_recipe["verdict"] == RECOGNISED, "recipe"]),
        "not_recognised": sorted(per_recipe.loc[per_recipe["verdict"] == NOT_RECOGNISED, "recipe"]),
        "too_few_ratings": sorted(per_recipe.loc[per_recipe["verdict"] == TOO_FEW, "recipe"]),
        "alpha": {f"{r.question}/{r.subset}/{r.value}": r.alpha for r in agreement.itertuples()},
        "bias": [c for c in contrasts if c["finding"] != "no credible difference"],
        "notes": notes + [f"{q} model: {w}" for q, m in models.items() for w in m.get("warnings", [])]
        + [f"{q} model not fitted: {m['error']}" for q, m in models.items() if "error" in m],
        "files": {k: str(v) for k, v in files.items()},
    }
