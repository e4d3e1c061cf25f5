"""generate.py: free text (English or Japanese) -> a catalog recipe -> the edited face."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import generate
from complexface.devices import resolve_device, resolve_dtype
from complexface.expressions import CATALOG, load_catalog
from complexface.models.expression_clip import ExpressionCLIP
from complexface.retrieval import PromptError, RecipeRetriever, char_ngrams, is_japanese
from complexface.settings import SettingError
from tests.conftest import TRAIN_RECIPES, compose_config
from tests.test_train import build_tiny_sd

PARAPHRASES: dict[str, tuple[list[str], list[str]]] = {
    # recipe id: (English, Japanese) paraphrases that are not in the catalog
    "felt_smile": (["a genuinely happy person with a big sincere grin", "pure delight, laughing eyes and a real smile"],
                   ["心の底から嬉しくて笑っている", "目が細くなるほどの満面の笑み"]),
    "polite_smile": (["a courteous smile just for show, the eyes stay cold", "a fake customer-service smile"],
                     ["お愛想で口だけ笑っている", "社交辞令のつくり笑顔"]),
    "anger_masking_smile": (["smiling on the surface, angry inside",
                             "grinning outwardly but seething with rage underneath"],
                            ["顔は笑っているけど心の中では怒っている", "にこやかだが内心はらわたが煮えくり返っている"]),
    "sadness_leak_smile": (["putting on a smile although she is sad", "a brave smile that cannot hide the sorrow"],
                           ["悲しいのに無理に微笑んでいる", "寂しさを隠しきれない笑顔"]),
    "fear_leak_smile": (["a scared person forcing a smile", "grinning nervously out of anxiety"],
                        ["怖いのに無理に笑っている", "不安で緊張した笑い"]),
    "disgust_leak_smile": (["smiling while finding it disgusting", "a polite smile covering revulsion"],
                           ["嫌悪感を隠して笑っている", "気持ち悪いと思いながら愛想笑いする"]),
    "miserable_smile": (["a wry, defeated smile of someone who is unhappy",
                         "smiling miserably about a hopeless situation"],
                        ["つらいけど苦笑いするしかない", "みじめな気持ちで力なく笑う"]),
    "embarrassed_smile": (["a shy, blushing grin", "an awkward smile because she feels embarrassed"],
                          ["照れくさそうに笑う", "恥ずかしくてはにかんでいる"]),
    "suppressed_anger": (["furious but hiding it behind a blank face", "a poker face concealing rage"],
                         ["怒りを押し殺して無表情を保つ", "激しい怒りを抑えて平然とした顔"]),
    "suppressed_sadness": (["fighting back tears and trying to look calm", "hiding grief behind a neutral face"],
                           ["泣きたいのをこらえて平静な顔をしている", "悲しみを押し殺した顔"]),
    "happily_surprised": (["a joyful surprise, mouth open with a smile", "pleasantly astonished and happy"],
                          ["嬉しいサプライズに驚いて笑う", "思いがけない喜びにびっくりしている"]),
    "sadly_angry": (["angry and hurt, with a sorrowful frown", "resentful and sad at once"],
                    ["悲しくて怒っている", "傷ついて恨んでいる顔"]),
    "fearfully_angry": (["scared but furious", "angry while frightened, on the defensive"],
                        ["おびえながら怒っている", "恐怖と怒りが混じった顔"]),
    "angrily_surprised": (["shocked and outraged", "an indignant, astonished face"],
                          ["驚いて憤慨している", "信じられないと怒って驚く"]),
    "bittersweet": (["a wistful smile, half happy half sad", "a melancholy, nostalgic smile"],
                    ["嬉しいけど切ない笑み", "懐かしくて少し寂しい微笑み"]),
    "sadness_prototype": (["a sad, grieving face", "a person looking unhappy and sorrowful"],
                          ["悲しんでいる顔", "とても悲しそうな人"]),
    "surprise_prototype": (["a totally astonished face with the jaw dropped", "shocked, eyes wide open in surprise"],
                           ["びっくりして口をぽかんと開けている", "目を丸くして驚いている"]),
    "happiness_prototype": (["an overjoyed face, laughing out loud", "a person bursting with happiness"],
                            ["大喜びではしゃいでいる顔", "うれしくて大笑いしている人"]),
    "anger_prototype": (["a mad, scowling face", "someone glaring in open rage"],
                        ["怒りをあらわにしている顔", "カンカンに怒ってにらんでいる"]),
    "disgust_prototype": (["a face twisted in disgust", "someone smelling something foul"],
                          ["吐き気がするほど嫌そうな顔", "くさいものを嗅いで顔をゆがめる"]),
    "fear_prototype": (["a scared, horrified face", "someone panicking in terror"],
                       ["怖くて震えている顔", "恐ろしさに青ざめた顔"]),
    "contempt_prototype": (["a disdainful smirk", "looking at someone with scorn"],
                           ["人を小ばかにしたような顔", "見下した冷たい薄笑い"]),
}


@pytest.fixture(scope="module")
def retriever() -> RecipeRetriever:
    torch.set_num_threads(1)
    return RecipeRetriever()


def paraphrase_accuracy(retriever: RecipeRetriever) -> dict[str, float]:
    """Share of paraphrases mapped to their recipe, per language."""
    return {language: float(np.mean([retriever(p).recipe.id == rid for rid, pair in PARAPHRASES.items()
                                     for p in pair[i]])) for i, language in enumerate(("en", "ja"))}


def test_language_detection_and_ngrams():
    assert is_japanese("怒っている") and is_japanese("にこにこ") and not is_japanese("angry inside")
    assert char_ngrams("笑顔、笑顔") == {"笑": 2, "顔": 2, "笑顔": 2, "顔笑": 1}


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


def test_paraphrase_accuracy_per_language(retriever):
    accuracy = paraphrase_accuracy(retriever)
    print(f"paraphrase accuracy: {accuracy} (chance {1 / len(retriever.recipes):.3f})")
    assert accuracy["en"] >= 0.75 and accuracy["ja"] >= 0.7


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
    prompts = [(p, rid) for rid in TRAIN_RECIPES for p in PARAPHRASES[rid][0] if p not in exact]
    assert len(prompts) == 5  # "smiling on the surface, angry inside" is anger_masking_smile's name: left out
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
    torch.manual_seed(0)
    untrained = top1_hits(ExpressionCLIP(mesh=cfg.model.mesh, identity=cfg.model.identity))
    print(f"paraphrase -> held-out face, top-1 right: trained {trained}/{len(prompts)}, untrained {untrained} "
          f"(chance {len(prompts) / len(TRAIN_RECIPES):.0f})")
    # measured: trained 5, 5, 4 of 5 (training seeds 0, 1, 2); untrained 4, 2, 1, 3, 3 (torch seeds 0-4); chance
    # 5/3. Against the untrained model of torch seed 0 (4 of 5), the run of training seed 0 must find all five.
    assert len({item["face"] for item in held_out}) >= 2 and trained >= 4 and trained > untrained

    retriever = RecipeRetriever(text_model=run_dir / "model", catalog=catalog)
    assert retriever.tower(["a"]).shape == (1, 128)  # the projected (shared) space
    assert all(retriever(p).recipe.id == rid for p, rid in prompts)  # measured: all with every seed


def test_empty_prompt_is_refused(retriever):
    with pytest.raises(PromptError, match="prompt is empty"):
        retriever("  ")


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
