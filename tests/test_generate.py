"""generate.py: free text (English or Japanese) -> a catalog recipe -> the edited face."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import generate
from complexface.devices import resolve_device, resolve_dtype
from complexface.expressions import CATALOG, load_catalog
from complexface.lexicon import agreement, read
from complexface.models.expression_clip import ExpressionCLIP
from complexface.retrieval import (
    BUNDLED_PHRASINGS,
    PhrasingsError,
    PromptError,
    RecipeRetriever,
    alphanumeric,
    is_japanese,
    load_phrasings,
)
from complexface.settings import SettingError
from tests.conftest import TRAIN_RECIPES, compose_config
from tests.test_train import build_tiny_sd

HELD_OUT_PARAPHRASES = Path(__file__).parent / "data" / "recipe_paraphrases.yaml"
"""Written apart from the captions and the lookup (13 per recipe and language) and never tuned on: measured only."""
CHECK_PARAPHRASES = Path(__file__).parent / "data" / "recipe_paraphrases_check2.yaml"
"""A second held-out set (10 per recipe and language), written before the third tuning round; never tuned on."""
CHECK3_PARAPHRASES = Path(__file__).parent / "data" / "recipe_paraphrases_check3.yaml"
"""A third held-out set (4-6 en, 6-8 ja per recipe after dropping items equal to a caption or a bundled phrasing),
written after the fourth round by a helper that saw only the recipes' ids, felt/displayed emotions and gist; never
tuned on (it decided for the Japanese example phrasings)."""
BLIND_PARAPHRASES = Path(__file__).parent / "data" / "recipe_paraphrases_blind.yaml"
"""The issue's larger set written apart: 18-20 per recipe and language, written by two helpers that saw only the
recipes' ids, emotions and gist, after the lookup's design and weights were chosen (on dev6-8); never tuned on."""


def load_paraphrases(path: Path) -> dict[str, dict[str, list[str]]]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))["recipes"]


DEV_SETS = {path.stem: load_paraphrases(path)
            for path in sorted(BUNDLED_PHRASINGS.glob("dev*.yaml"), key=lambda p: int(p.stem.removeprefix("dev")))}
"""The example phrasings, each set written apart (no phrase of an earlier set, of a caption or of a held-out set):
dev1, the first; dev2 (stress: other vocabulary and registers, 10 per recipe and language), measured before the
lookup's cue words were tuned on it (84% en, 94% ja top-1); dev3 (7-10), written in three batches after that tuning,
each measured before being tuned on in turn (92-95% en, 94-97% ja); dev4 (10), measured untuned (92.7% en, 86.8%
ja), tuned on in the third round; dev5 (10 en, 23 ja, varied registers and verb forms), measured untuned (93.6% en,
91.3% ja), tuned on in the fourth; dev6-16, written blind (from the recipes' ids, emotions and gist only) by helpers
after the fourth round, never tuned on (their headers say what each stresses and how it read untuned). They ship
with the package (``BUNDLED_PHRASINGS``) as the retriever's examples, so they are measured here with a retriever
that does not take them (names, captions and the reading only)."""
PARAPHRASES = DEV_SETS["dev1"]
"""recipe id -> {"en": [...], "ja": [...]}: development paraphrases (in no caption), the ones the lookup is tuned on."""
MIN_PER_RECIPE = {"dev1": 10, "dev2": 10, "dev3": 7, "dev4": 7, "dev5": 10, "dev6": 5, "dev7": 5, "dev8": 8,
                  "dev9": 9, "dev10": 7, "dev11": 13, "dev12": 11, "dev13": 15, "dev14": 14,
                  "dev15": 15, "dev16": 11}
CUE_SETS = {"dev1": (0.9, 0.95), "dev2": (0.9, 0.95), "dev3": (0.9, 0.95), "dev4": (0.9, 0.95),
            "dev5": (0.95, 0.95), "dev6": (0.75, 0.88)}
"""The sets of the cue-tuning rounds (and dev6, the first blind one), with their top-1 and top-3 floors per language."""


@pytest.fixture(scope="module")
def retriever() -> RecipeRetriever:
    torch.set_num_threads(1)
    return RecipeRetriever()


@pytest.fixture(scope="module")
def captions_only() -> RecipeRetriever:
    """The lookup without example phrasings (for the dev sets, which are those examples)."""
    torch.set_num_threads(1)
    return RecipeRetriever(exemplars=None)


def paraphrase_accuracy(retriever: RecipeRetriever, top: int = 1,
                        paraphrases: dict[str, dict[str, list[str]]] = PARAPHRASES) -> dict[str, float]:
    """Share of paraphrases whose recipe is among the first ``top`` choices, per language."""
    def hit(prompt: str, rid: str) -> bool:
        choice = retriever(prompt)
        return rid in [choice.recipe.id, *(r["recipe_id"] for r in choice.runner_ups)][:top]

    return {language: float(np.mean([hit(p, rid) for rid, texts in paraphrases.items() for p in texts[language]]))
            for language in ("en", "ja")}


def test_language_detection_and_ngrams():
    assert is_japanese("怒っている") and is_japanese("にこにこ") and not is_japanese("angry inside")
    assert alphanumeric("笑顔、笑顔！ Big Grin") == "笑顔笑顔biggrin"


@pytest.mark.parametrize(("prompt", "recipe"), [
    ("smiling on the surface, angry inside", "anger_masking_smile"),
    ("grinning outwardly but seething with rage underneath", "anger_masking_smile"),
    ("a poker face concealing rage", "suppressed_anger"),
    ("a fake customer-service smile", "polite_smile"),
    ("顔は笑っているけど心の中では怒っている", "anger_masking_smile"),
    ("お愛想で口だけ笑っている", "polite_smile"),
    ("照れくさそうに笑う", "embarrassed_smile"),
    ("泣きたいのをこらえて平静な顔をしている", "suppressed_sadness"),
])
def test_phrasings_map_to_the_right_recipe(retriever, prompt, recipe):
    choice = retriever(prompt)
    assert choice.recipe.id == recipe and choice.language == ("ja" if is_japanese(prompt) else "en")
    assert 0 < choice.confidence <= 1 and len(choice.runner_ups) == 3
    assert all(r["confidence"] <= choice.confidence for r in choice.runner_ups)


@pytest.mark.parametrize(("path", "per_recipe"), [(HELD_OUT_PARAPHRASES, 8), (CHECK_PARAPHRASES, 5),
                                                  (CHECK3_PARAPHRASES, 4), (BLIND_PARAPHRASES, 14)],
                         ids=["held_out", "check2", "check3", "blind"])
def test_held_out_paraphrase_accuracy(retriever, path, per_recipe):
    """Measured on the items that are not also a bundled example phrasing (the sets were written apart, short
    phrasings coincide), 2026-12-01, top-1 (top-3), en / ja: held out 97.0% (98.9%) / 95.2% (98.8%); check2 97.4%
    (100%) / 97.3% (100%); check3 98.3% (99.2%) / 98.8% (99.4%); blind 96.5% (99.5%) / 94.6% (98.8%). Without the
    classifier (classifier_weight=0) 90.5 / 91.3, 91.8 / 91.4, 87.5 / 93.4, 83.2 / 85.1; without any example
    phrasing, Japanese 86.9, 87.1, 92.2, 79.2. The blind set, measured untuned with dev1-8 as examples, read 91.0% /
    90.6%. The floor is the issue's 90%; nothing was tuned to it."""
    examples = {t for texts in load_phrasings(BUNDLED_PHRASINGS).values() for ts in texts.values() for t in ts}
    paraphrases = {rid: {language: [p for p in texts[language] if p not in examples] for language in ("en", "ja")}
                   for rid, texts in load_paraphrases(path).items()}
    assert set(paraphrases) == set(retriever.recipes)
    assert all(min(len(texts["en"]), len(texts["ja"])) >= per_recipe for texts in paraphrases.values())
    accuracy = paraphrase_accuracy(retriever, paraphrases=paraphrases)
    top3 = paraphrase_accuracy(retriever, top=3, paraphrases=paraphrases)
    print(f"{path.name} paraphrase accuracy: top-1 {accuracy}, top-3 {top3}")
    assert min(accuracy.values()) >= 0.9 and min(top3.values()) >= 0.95


def test_dev_sets_are_written_apart():
    """Every set is complete (its minimum per recipe and language) and shares no phrasing with a caption or an
    earlier set."""
    exact = {t for r in load_catalog().values() for t in (r.name_en, r.name_ja, *r.captions_en, *r.captions_ja)}
    seen: set[str] = set()
    for name, paraphrases in DEV_SETS.items():
        assert set(paraphrases) == set(load_catalog()), name
        assert all(min(len(texts["en"]), len(texts["ja"])) >= MIN_PER_RECIPE[name] for texts in paraphrases.values())
        phrases = {p for texts in paraphrases.values() for p in texts["en"] + texts["ja"]}
        assert not phrases & exact - {"smiling on the surface, angry inside"}, name  # dev1 kept the name
        assert not phrases & seen, name
        seen |= phrases


@pytest.mark.parametrize("name", list(CUE_SETS))
def test_dev_paraphrase_accuracy_per_language(captions_only, name):
    """Measured without the example phrasings, top-1, en / ja: dev1 98.3% / 98.3%; dev2 97.7% / 99.1%; dev3 99.5% /
    99.5%; dev4 96.7% / 92.6%; dev5 99.1% / 97.2%; dev6 (untuned) 85.5% / 79.7% (top-3 92.7% / 90.8%). Before dev2 was
    written the lookup scored 84% / 94% on it. Without the reading (lexicon_weight=0), dev1 65% / 45%."""
    accuracy = paraphrase_accuracy(captions_only, paraphrases=DEV_SETS[name])
    top3 = paraphrase_accuracy(captions_only, top=3, paraphrases=DEV_SETS[name])
    print(f"{name} paraphrase accuracy: top-1 {accuracy}, top-3 {top3} (chance {1 / len(captions_only.recipes):.3f})")
    floor, floor3 = CUE_SETS[name]
    assert min(accuracy.values()) >= floor and min(top3.values()) >= floor3


def test_the_classifier_carries_examples_to_a_set_written_apart(tmp_path):
    """The lookup with every example set but dev14 (written blind, never tuned on: everyday and rarer emotion words,
    requests, captions, tags) reads dev14 better with the phrasing classifier than without it, in both languages: it
    generalises from the examples rather than recalling them. Measured, top-1 en / ja: with 92.7% / 91.4%, without
    86.7% / 82.9%."""
    last = "dev14"
    for path in BUNDLED_PHRASINGS.glob("dev*.yaml"):
        if path.stem != last:
            (tmp_path / path.name).write_bytes(path.read_bytes())
    torch.set_num_threads(1)
    with_classifier = paraphrase_accuracy(RecipeRetriever(exemplars=tmp_path), paraphrases=DEV_SETS[last])
    without = paraphrase_accuracy(RecipeRetriever(exemplars=tmp_path, classifier_weight=0.0),
                                  paraphrases=DEV_SETS[last])
    print(f"{last} with the other sets as examples: top-1 {with_classifier} with the classifier, {without} without")
    assert all(with_classifier[language] >= without[language] + 0.05 for language in ("en", "ja"))
    assert min(with_classifier.values()) >= 0.8


@pytest.mark.parametrize(("prompt", "felt", "displayed"), [
    ("a brave little smile that hides how sad he really is", "sadness", "joy"),  # the issue's example
    ("顔で笑って心で泣く", "sadness", "joy"),
    ("怒りを押し殺して無表情を保つ", "anger", "neutral"),
    ("楽しくもないのに作り笑いを浮かべる", "neutral", "joy"),
    ("furious but hiding it behind a blank face", "anger", "neutral"),
    ("a genuinely happy person with a big sincere grin", "joy", "joy"),
    ("怒ってないふりをして笑っている", "anger", "joy"),  # a negation before a pretence hides the emotion
    ("寂しいのに明るく笑う", "sadness", "joy"),  # joy after a contrast is what is shown
    ("ビクビクしながら笑う", "fear", "joy"),
])
def test_the_reading_finds_felt_and_displayed_emotions(retriever, prompt, felt, displayed):
    language = "ja" if is_japanese(prompt) else "en"
    reading = read(prompt, language)
    strongest = [max(side, key=side.get) for side in (reading.felt, reading.displayed)]
    assert strongest == [felt, displayed]
    choice = retriever(prompt)
    assert (choice.recipe.felt, choice.recipe.displayed) == (felt, displayed)
    assert all({"recipe_id", "felt", "displayed", "name_en", "name_ja"} <= set(r) for r in choice.runner_ups)


@pytest.mark.parametrize(("prompt", "recipe"), [
    # felt vs prototype vs polite smiles: explicit cues decide; a plain happy face is the prototype
    ("a warm smile with crow's feet, from the heart", "felt_smile"),
    ("目尻にしわを寄せて心からほほえむ", "felt_smile"),
    ("a big grin, laughing out loud with pure joy", "happiness_prototype"),
    ("a happy face", "happiness_prototype"),
    ("典型的な喜びの表情", "happiness_prototype"),
    ("a customer-service smile with nothing behind it", "polite_smile"),
    ("営業スマイル", "polite_smile"),
    # an open (prototype) face vs the same emotion hidden, suppressed or mixed
    ("the textbook angry face: brows down, lips pressed, glaring", "anger_prototype"),
    ("furious, and not hiding it at all", "anger_prototype"),
    ("a straight face hiding fury", "suppressed_anger"),
    ("怒りを隠さずにらみつける", "anger_prototype"),
    ("smiling and sad at the same time", "bittersweet"),
    # good news vs plain astonishment
    ("stunned and delighted by the good news", "happily_surprised"),
    ("a classic surprise face, brows up and mouth open", "surprise_prototype"),
])
def test_hard_pairs_are_decided_by_their_cues(retriever, prompt, recipe):
    assert retriever(prompt).recipe.id == recipe


def test_negations_flip_or_drop_cues():
    assert read("not a fake smile, she really means it", "en").style.get("genuine")
    assert "fake" not in read("not a fake smile, she really means it", "en").style
    assert read("not hiding his anger at all", "en").style.get("pure")  # an open face, not a concealed one
    assert read("作り笑いじゃない笑顔", "ja").felt == {"joy": 1.0}
    shocked = read("not happy or angry, just shocked", "en")  # the negation covers the list
    assert shocked.felt == shocked.displayed == {"surprise": 1.0}
    assert read("laughing out loud, nothing but joy", "en").felt == {"joy": 1.0}
    assert read("屈託なく笑う", "ja").style.get("genuine")  # a negation that is part of the word


def test_each_cue_pattern_has_one_label():
    """A pattern under two labels would be read as the first only (the alternation is longest first, then in
    table order): compound labels ("fake+smile") say that one pattern means both."""
    from complexface.lexicon import EN, JA

    for table in (EN, JA):
        patterns = [p for ps in table.values() for p in ps]
        assert len(patterns) == len(set(patterns))
        assert not [p for p in patterns if re.fullmatch(p, "")]  # one that matches nothing would match everywhere


def test_the_reading_and_the_classifier_each_fix_the_issue_example(retriever):
    """The nearest caption alone puts the issue's example on a recipe of another felt emotion; the reading of its cue
    words, or the classifier trained on the example phrasings, each alone puts it right."""
    prompt = "a brave little smile that hides how sad he really is"
    plain = RecipeRetriever(lexicon_weight=0.0, classifier_weight=0.0)
    assert plain(prompt).recipe.felt != "sadness"
    assert RecipeRetriever(lexicon_weight=0.0)(prompt).recipe.id == "sadness_leak_smile"
    assert RecipeRetriever(classifier_weight=0.0)(prompt).recipe.id == "sadness_leak_smile"
    assert retriever(prompt).recipe.id == "sadness_leak_smile"
    no_cue = read("a person waiting at the bus stop", "en")
    assert not no_cue and agreement(no_cue, plain.readings["felt_smile"]) == 0


def trained_catalog(folder) -> Path:
    """The bundled catalog cut to the recipes the session's expression CLIP was trained on."""
    data = yaml.safe_load(CATALOG.read_text(encoding="utf-8"))
    data["recipes"] = [r for r in data["recipes"] if r["id"] in TRAIN_RECIPES]
    path = folder / "catalog.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_a_trained_expression_clip_export_retrieves_paraphrases_of_what_it_learned(trained_expression_clip,
                                                                                   tmp_path):
    """The export of a model trained by train.py (conftest: the real config, shrunk) on 3 recipes: English
    paraphrases that are in no caption find the held-out faces (validation and test identities) showing their
    recipe, which an untrained model does not; and as generate.py's text tower they retrieve those recipes."""
    import torch.nn.functional as F
    from hydra.utils import instantiate

    from complexface.models.expression_clip import load_expression_clip

    cfg, _, run_dir = trained_expression_clip
    catalog = trained_catalog(tmp_path)
    exact = {t for r in load_catalog(catalog).values() for t in (r.name_en, *r.captions("en"))}
    prompts = [(p, rid) for rid in TRAIN_RECIPES for p in PARAPHRASES[rid]["en"] if p not in exact]
    datamodule = instantiate(cfg.data, _convert_="all")
    datamodule.setup()
    held_out = [item for split in ("validation", "test") for item in datamodule.datasets[split]
                if item["text"].isascii()]  # each image once
    features = torch.stack([item["features"] for item in held_out])

    def top1_hits(model: ExpressionCLIP) -> int:
        with torch.no_grad():
            images = F.normalize(model.eval().encode_images({"features": features}), dim=-1)
            texts = F.normalize(model.encode_texts([p for p, _ in prompts]), dim=-1)
        best = (texts @ images.T).argmax(1).tolist()
        return sum(held_out[j]["recipe"] == rid for j, (_, rid) in zip(best, prompts, strict=True))

    trained = top1_hits(load_expression_clip(run_dir / "model"))
    untrained = []
    for seed in range(3):
        torch.manual_seed(seed)
        untrained.append(top1_hits(ExpressionCLIP(mesh=cfg.model.mesh, identity=cfg.model.identity)))
    print(f"paraphrase -> held-out face, top-1 right: trained {trained}/{len(prompts)}, untrained {untrained} "
          f"(chance {len(prompts) / len(TRAIN_RECIPES):.0f})")
    # measured (training seed 0): trained 34 of 47, untrained 22, 13, 14 (torch seeds 0-2); chance 16
    assert len({item["face"] for item in held_out}) >= 2 and len(prompts) >= 40
    assert trained >= 0.6 * len(prompts) and trained - max(untrained) >= 0.15 * len(prompts)

    retriever = RecipeRetriever(text_model=run_dir / "model", catalog=catalog, exemplars=None)  # the prompts are dev1's
    assert retriever.tower(["a"]).shape == (1, 128)  # the projected (shared) space
    right = np.mean([retriever(p).recipe.id == rid for p, rid in prompts])
    print(f"as generate.py's text tower on the 3 recipes: {right:.2f} right")
    assert right >= 0.9  # measured: 1.00 (the lexicon reads the felt/displayed cues the tower misses)


def test_empty_prompt_is_refused(retriever):
    with pytest.raises(PromptError, match="prompt is empty"):
        retriever("  ")


@pytest.mark.parametrize(("language", "example", "prompt"), [
    ("ja", "もにょもにょした顔つき", "もにょもにょした顔"),  # no cue word, no caption near it
    ("en", "a face like a wet weekend in Wigan", "face like a wet weekend"),
])
def test_example_phrasings_teach_the_lookup(tmp_path, language, example, prompt):
    """A phrasing given as an example of a recipe finds that recipe; without it, it does not."""
    examples = tmp_path / "examples.yaml"
    examples.write_text(yaml.safe_dump({"recipes": {"bittersweet": {language: [example]}}}, allow_unicode=True),
                        encoding="utf-8")
    assert RecipeRetriever(exemplars=None)(prompt).recipe.id != "bittersweet"
    assert RecipeRetriever(exemplars=examples)(prompt).recipe.id == "bittersweet"


@pytest.mark.parametrize(("content", "message"), [
    (None, "no phrasings at"),
    ("recipes: [1, 2", "not readable YAML"),
    ("- a list", "expected a 'recipes' mapping"),
    ("recipes: {no_such_recipe: {ja: [x]}}", "unknown recipe id.*no_such_recipe"),
    ("recipes: {bittersweet: {fr: [x]}}", "bittersweet must map 'en' and/or 'ja'"),
    ("recipes: {bittersweet: {ja: ['']}}", "bittersweet must map"),
])
def test_bad_phrasings_get_one_message_naming_the_file(tmp_path, content, message):
    path = tmp_path / "phrasings.yaml"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(PhrasingsError, match=message):
        load_phrasings(path, recipes=list(load_catalog()))


def test_generate_writes_the_choice_and_the_edited_face(tmp_path):
    argv = generate.quote_prompt(["prompt=顔は笑っているけど心の中では怒っている", "generator.scale=1.5"])
    cfg = compose_config("generate", argv)
    record = generate.generate(cfg, tmp_path)
    choice = json.loads((tmp_path / "choice.json").read_text(encoding="utf-8"))
    assert choice == record and choice["recipe_id"] == "anger_masking_smile"
    assert (choice["felt"], choice["displayed"]) == ("anger", "joy")
    assert choice["aus"] == {"AU4": 2, "AU12": 3, "AU17": 1}
    assert choice["applied"] == {"AU4": 3, "AU12": 4.5, "AU17": 1.5} and choice["editor"] == "warp"
    assert {"score", "confidence", "runner_ups", "matched"} <= set(choice) and choice["face"].endswith("001.jpg")
    lines = generate.top_three(choice)  # what generate.py prints
    assert len(lines) == 3 and lines[0].startswith("1. anger_masking_smile (felt anger, shown joy) ")
    assert all(line.endswith("%") for line in lines) and lines[2].startswith("3. ")
    source, edited = (np.asarray(Image.open(tmp_path / f"{n}.png")) for n in ("source", "edit"))
    assert source.shape == edited.shape == (512, 512, 3) and np.abs(source.astype(int) - edited).max() > 20
    assert (tmp_path / "photo.jpg").exists() and (tmp_path / "config.yaml").exists()


def test_bare_prompts_are_quoted_for_hydra():
    assert generate.quote_prompt(["x.py", "prompt=a, b", "face=f.jpg"]) == ["x.py", "prompt='a, b'", "face=f.jpg"]
    assert generate.quote_prompt(["prompt=she's \"ok\""]) == ['prompt="she\'s \\"ok\\""']
    assert generate.quote_prompt(["prompt='already quoted'"]) == ["prompt='already quoted'"]


def test_sd_lora_generator_draws_prompts_and_recipes_per_seed_into_a_grid(tmp_path):
    from complexface.models.sd_lora import SDLoRA

    sd = build_tiny_sd(tmp_path / "sd")
    torch.manual_seed(0)
    module = SDLoRA(str(sd), rank=4, alpha=4)
    for name, param in module.unet.named_parameters():
        if "lora_B" in name:  # B starts at zero: give the adapter an effect, as training would
            param.data.normal_(0, 0.5)
    module.save_pretrained(tmp_path / "lora")
    base = ["generator=sd_lora", f"generator.pretrained={sd}", "generator.steps=2"]
    images = {}
    for name, lora in (("base", "null"), ("lora", str(tmp_path / "lora"))):
        cfg = compose_config("generate", [*base, "prompt='a tense smile'", f"generator.lora={lora}",
                                          "generator.recipes=[polite_smile]", "generator.seeds=[0,1]",
                                          "generator.batch_size=3"])
        record = generate.generate(cfg, tmp_path / f"out_{name}")
        assert json.loads((tmp_path / f"out_{name}" / "choice.json").read_text()) == record
        assert [(i["recipe_id"], i["seed"]) for i in record["images"]] == [
            (None, 0), (None, 1), ("polite_smile", 0), ("polite_smile", 1)]
        assert record["images"][2]["prompt"] == "a person giving a polite smile that does not reach the eyes"
        images[name] = {(i["recipe_id"], i["seed"]): np.asarray(Image.open(i["file"])) for i in record["images"]}
        with Image.open(record["outputs"]["grid"]) as grid:  # 2 prompts x 2 seeds of 256 px thumbnails
            assert grid.width > 2 * 256 and grid.height > 2 * 256
    assert images["base"][None, 0].shape == (16, 16, 3)
    assert not np.array_equal(images["base"][None, 0], images["lora"][None, 0])
    assert not np.array_equal(images["lora"][None, 0], images["lora"][None, 1])
    alone = generate.generate(compose_config("generate", [*base, "prompt='a tense smile'",
                                                          f"generator.lora={tmp_path / 'lora'}", "generator.seeds=[1]",
                                                          "generator.batch_size=1"]), tmp_path / "alone")
    drawn = np.asarray(Image.open(alone["images"][0]["file"])).astype(int)
    assert np.abs(drawn - images["lora"][None, 1]).max() <= 1  # its seed alone decides it, not the batch
    with pytest.raises(PromptError, match="generator.recipes"):
        generate.generate(compose_config("generate", base), tmp_path / "nothing")
    assert record["dtype"] == str(resolve_dtype("auto", resolve_device("auto"))).removeprefix("torch.")
    with pytest.raises(SettingError, match=r"generator=sd_lora draws new faces from text and cannot use "
                                           r"face=/photos/me.jpg: drop face=, or use generator=recipe"):
        generate.generate(compose_config("generate", [*base, "prompt='a tense smile'", "face=/photos/me.jpg"]),
                          tmp_path / "face")


def test_missing_sd_weights_and_lora_get_one_message_naming_each_file(tmp_path):
    import subprocess
    import sys

    from complexface.errors import user_error
    from tests.conftest import ROOT

    sd = build_tiny_sd(tmp_path / "sd")
    (sd / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    result = subprocess.run([sys.executable, "generate.py", "prompt=a tense smile", "generator=sd_lora",
                             f"generator.pretrained={sd}", f"generator.lora={tmp_path / 'no_lora'}",
                             f"hydra.run.dir={tmp_path / 'run'}"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert "  MISSING unet/diffusion_pytorch_model.safetensors (or diffusion_pytorch_model.bin)" in lines
    assert "  ok      vae/config.json" in lines and "hf download stable-diffusion-v1-5" in result.stderr
    complete = build_tiny_sd(tmp_path / "sd2")
    cfg = compose_config("generate", ["generator=sd_lora", f"generator.pretrained={complete}",
                                      f"generator.lora={tmp_path / 'no_lora'}"])
    with pytest.raises(Exception, match="pytorch_lora_weights.safetensors") as info:
        generate.generate(cfg, tmp_path / "run2")
    assert "train.py model=sd_lora" in str(user_error(info.value))
