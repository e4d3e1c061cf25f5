"""Free text -> a catalog recipe, by retrieval over the recipes' names, captions and example phrasings, a classifier
trained on them, and a reading of the prompt.

English prompts are embedded with the text tower (the MiniLM sentence model by default, or a fine-tuned
``ExpressionCLIP`` export, whose projected embeddings are then used); a recipe's dense score is its best-matching
name or caption. Japanese prompts (any kana or kanji), which MiniLM (English-only) reads poorly, are scored by the
TF-IDF-weighted character 1-2-gram cosine of the recipe's best-matching Japanese document, blended
(``ngram_weight``) with the text tower's score; the documents are the recipe's Japanese name and captions and, by
default, the Japanese phrasings written to develop the lookup, as labelled examples (``BUNDLED_PHRASINGS``:
``complexface/assets/phrasings/*.yaml``, recipe id -> {"en": [...], "ja": [...]}; never the tests' held-out sets).
``classifier_weight`` times log P(recipe | prompt) of a ``PhrasingClassifier`` trained, per language, on the names,
captions and example phrasings is added: nearest-document scores miss phrasings that resemble no single document,
which the classifier, weighing all of a recipe's phrasings, catches (on the blind held-out set, 83.2% -> 96.5%
top-1 in English, 85.1% -> 94.6% in Japanese). To that, ``lexicon_weight`` times the agreement of the prompt's
reading (``complexface.lexicon``: which emotions are felt, which displayed, read from cue words) with the recipe's
felt/displayed fields is added (a pure or plain one-emotion prompt favours the catalog's ``*_prototype`` controls).
The confidence is a softmax over the recipe scores.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from complexface.errors import UserError
from complexface.expressions import LANGUAGES, Recipe, load_catalog
from complexface.lexicon import agreement, read, recipe_reading

BUNDLED_PHRASINGS = Path(__file__).resolve().parent / "assets" / "phrasings"
"""The development phrasings (module docstring), one YAML file per set."""


class PromptError(UserError, ValueError):
    """The prompt cannot be used (e.g. it is empty); the message says what to write."""


class PhrasingsError(UserError, ValueError):
    """A phrasings file or folder that cannot be used; the message names the file and what is wrong."""


def load_phrasings(source: str | Path, recipes: Sequence[str] | None = None) -> dict[str, dict[str, list[str]]]:
    """Recipe id -> language -> phrasings from a YAML file or every ``*.yaml`` of a folder (``{"recipes": {id:
    {"en": [...], "ja": [...]}}}``), merged. ``recipes``: the ids they may name (others are an error)."""
    source = Path(source)
    files = sorted(source.glob("*.yaml")) if source.is_dir() else [source]
    if not files or not all(f.is_file() for f in files):
        raise PhrasingsError(f"no phrasings at {source}: give a YAML file or a folder of them "
                             "({'recipes': {recipe_id: {'en': [...], 'ja': [...]}}})")
    merged: dict[str, dict[str, list[str]]] = {}
    for file in files:
        try:
            data = yaml.safe_load(file.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            raise PhrasingsError(f"{file}: not readable YAML ({err})") from err
        entries = data.get("recipes") if isinstance(data, dict) else None
        if not isinstance(entries, dict):
            raise PhrasingsError(f"{file}: expected a 'recipes' mapping of recipe id -> {{'en': [...], 'ja': [...]}}")
        unknown = sorted(set(entries) - set(recipes)) if recipes is not None else []
        if unknown:
            raise PhrasingsError(f"{file}: unknown recipe id(s) {', '.join(unknown)}")
        for rid, by_language in entries.items():
            if not isinstance(by_language, dict) or not set(by_language) <= set(LANGUAGES) or not all(
                    isinstance(texts, list) and all(isinstance(t, str) and t.strip() for t in texts)
                    for texts in by_language.values()):
                raise PhrasingsError(f"{file}: {rid} must map 'en' and/or 'ja' to lists of non-empty strings")
            for language, texts in by_language.items():
                merged.setdefault(rid, {}).setdefault(language, []).extend(texts)
    return merged


def is_japanese(text: str) -> bool:
    """Whether ``text`` contains hiragana, katakana or CJK ideographs."""
    return any("\u3040" <= c <= "\u30ff" or "\u4e00" <= c <= "\u9fff" for c in text)


def alphanumeric(text: str) -> str:
    """``text`` lower-cased, punctuation and spaces removed: what the character n-grams are taken from."""
    return "".join(c for c in text.lower() if c.isalnum())


class PhrasingClassifier:
    """P(recipe | text) from a logistic regression over labelled texts: TF-IDF character n-grams (word-bounded 2-5-grams
    for English, 1-3-grams for Japanese) joined, when ``embed`` is given, by the text tower's sentence embedding (+2
    points in English, leaving each blind example set out in turn). Unlike the nearest document it weighs every
    phrasing of a recipe and learns which fragments and meanings tell recipes apart. ``strength``: the inverse L2
    penalty C; it and the retriever's ``classifier_weight`` were chosen by leaving each blind set out (9 folds)."""

    def __init__(self, texts: Sequence[str], labels: Sequence[str], language: str,
                 embed: Callable[[Sequence[str]], torch.Tensor] | None = None, strength: float = 16.0) -> None:
        if language == "ja":
            self.vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True,
                                              preprocessor=alphanumeric)
        else:
            self.vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)
        self.vectorizer.fit(texts)
        self.embed = embed
        self.model = LogisticRegression(C=strength, max_iter=3000).fit(self._features(texts), labels)

    def _features(self, texts: Sequence[str]) -> sparse.csr_matrix:
        grams = self.vectorizer.transform(texts)
        if self.embed is None:
            return grams
        return sparse.hstack([grams, sparse.csr_matrix(self.embed(texts).cpu().numpy())]).tocsr()

    def log_probabilities(self, text: str) -> dict[str, float]:
        """Recipe id -> log P(recipe | text)."""
        row = self.model.predict_log_proba(self._features([text]))[0]
        return dict(zip(self.model.classes_, row.tolist(), strict=True))


class TextTower:
    """Normalised sentence embeddings from the default MiniLM, a sentence-model folder or an ExpressionCLIP export."""

    def __init__(self, path: str | Path | None = None) -> None:
        from complexface.models.expression_clip import CONFIG_FILE, load_expression_clip
        from complexface.models.text import SentenceEncoder

        if path is not None and (Path(path) / CONFIG_FILE).exists():
            model = load_expression_clip(path)
            self.encode = model.encode_texts
        else:
            encoder = SentenceEncoder(path).eval()
            self.encode = encoder
        self.path = path

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        with torch.no_grad():
            return F.normalize(self.encode(list(texts)), dim=-1)


@dataclass(frozen=True)
class Choice:
    """The chosen recipe, its score (dense or blended similarity plus reading agreement), confidence and the
    runners-up (each with its id, felt and displayed emotion, names, score and confidence)."""

    recipe: Recipe
    score: float
    confidence: float
    language: str
    matched: str
    """The name or caption that the text tower matched best."""
    runner_ups: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"recipe_id": self.recipe.id, "felt": self.recipe.felt, "displayed": self.recipe.displayed,
                "aus": self.recipe.aus.values, "score": round(self.score, 4), "confidence": round(self.confidence, 4),
                "language": self.language, "matched": self.matched, "runner_ups": self.runner_ups}


class RecipeRetriever:
    """Maps a prompt (English or Japanese) to the closest recipe of the catalog.

    ``exemplars``: labelled example phrasings, which the classifier learns from (the Japanese ones also join the
    recipes' n-gram documents): ``"bundled"`` (``BUNDLED_PHRASINGS``, those of the catalog's recipes), a YAML file or
    folder (``load_phrasings``), or None (names and captions only)."""

    def __init__(self, text_model: str | Path | None = None, catalog: str | Path | None = None,
                 exemplars: str | Path | None = "bundled", ngram_weight: float = 0.7, lexicon_weight: float = 1.0,
                 classifier_weight: float = 0.5, temperature: float = 0.4, runner_ups: int = 3) -> None:
        self.recipes = load_catalog(catalog)
        self.tower = TextTower(text_model)
        self.ngram_weight, self.lexicon_weight, self.classifier_weight = ngram_weight, lexicon_weight, classifier_weight
        self.temperature, self.n_runner_ups = temperature, runner_ups
        self.readings = {rid: recipe_reading(r.felt, r.displayed, {"en": [r.name_en, *r.captions_en],
                                                                    "ja": [r.name_ja, *r.captions_ja]},
                                             prototype=rid.endswith("_prototype"))
                         for rid, r in self.recipes.items()}
        if exemplars == "bundled":  # the bundled phrasings name the bundled recipes: keep the catalog's
            examples = {rid: texts for rid, texts in load_phrasings(BUNDLED_PHRASINGS).items() if rid in self.recipes}
        else:
            examples = load_phrasings(exemplars, list(self.recipes)) if exemplars is not None else {}
        self.docs: dict[str, list[tuple[str, str]]] = {}
        self.embeddings: dict[str, torch.Tensor] = {}
        for language in LANGUAGES:
            self.docs[language] = [(r.id, text) for r in self.recipes.values()
                                   for text in (r.name_en if language == "en" else r.name_ja, *r.captions(language))]
            self.embeddings[language] = self.tower([t for _, t in self.docs[language]])
        labelled = {language: self.docs[language] + [(rid, t) for rid, texts in examples.items()
                                                     for t in texts.get(language, [])] for language in LANGUAGES}
        self.ngram_docs = labelled["ja"]
        self.ngrams = TfidfVectorizer(analyzer="char", ngram_range=(1, 2), preprocessor=alphanumeric)
        self.ngram_vectors = self.ngrams.fit_transform([t for _, t in self.ngram_docs])
        self.classifiers: dict[str, PhrasingClassifier] = {}  # one per language that has examples (trained on
        for language, docs in labelled.items():  # names and captions alone it is noise) and recipes to tell apart
            if classifier_weight and len(self.recipes) > 1 and any(t.get(language) for t in examples.values()):
                self.classifiers[language] = PhrasingClassifier([t for _, t in docs], [rid for rid, _ in docs],
                                                                language, self.tower if language == "en" else None)

    def recipe_scores(self, prompt: str) -> tuple[str, dict[str, tuple[float, str]]]:
        """The prompt's language and, per recipe, its score and best-matching document."""
        language = "ja" if is_japanese(prompt) else "en"
        dense = (self.embeddings[language] @ self.tower([prompt])[0]).tolist()
        best: dict[str, tuple[float, str]] = {}
        for (rid, text), score in zip(self.docs[language], dense, strict=True):
            if rid not in best or score > best[rid][0]:
                best[rid] = (score, text)
        if language == "ja":
            ngram: dict[str, float] = {}
            similarity = (self.ngram_vectors @ self.ngrams.transform([prompt]).T).toarray()[:, 0].tolist()
            for (rid, _), score in zip(self.ngram_docs, similarity, strict=True):
                ngram[rid] = max(ngram.get(rid, 0.0), score)
            w = self.ngram_weight
            best = {rid: (w * ngram[rid] + (1 - w) * score, text) for rid, (score, text) in best.items()}
        if language in self.classifiers:
            log_p = self.classifiers[language].log_probabilities(prompt)
            best = {rid: (score + self.classifier_weight * log_p[rid], text) for rid, (score, text) in best.items()}
        reading = read(prompt, language)
        if reading:
            for rid, (score, text) in best.items():
                best[rid] = (score + self.lexicon_weight * agreement(reading, self.readings[rid]), text)
        return language, best

    def __call__(self, prompt: str) -> Choice:
        if not prompt or not prompt.strip():
            raise PromptError("the prompt is empty; describe the expression, "
                             "e.g. prompt=\"smiling on the surface, angry inside\"")
        language, best = self.recipe_scores(prompt)
        ranked = sorted(best.items(), key=lambda kv: kv[1][0], reverse=True)
        probs = torch.softmax(torch.tensor([s for _, (s, _) in ranked]) / self.temperature, 0).tolist()
        (rid, (score, text)), confidence = ranked[0], probs[0]
        runner_ups = [{"recipe_id": r, "felt": self.recipes[r].felt, "displayed": self.recipes[r].displayed,
                       "name_en": self.recipes[r].name_en, "name_ja": self.recipes[r].name_ja,
                       "score": round(s, 4), "confidence": round(p, 4)}
                      for (r, (s, _)), p in zip(ranked[1:1 + self.n_runner_ups], probs[1:], strict=False)]
        return Choice(self.recipes[rid], score, confidence, language, text, runner_ups)
