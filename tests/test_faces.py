"""Photo loading, landmarks, alignment, paste-back, bg condition and face sets on real images."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from complexface.faces import (
    BackgroundCondition,
    FacePipeline,
    FaceSet,
    FaceSetError,
    ImageError,
    NoFaceError,
    demo_faceset,
    load_image,
    paste_back,
)
from complexface.faces.condition import jawline_points
from complexface.faces.faceset import UNLABELED
from tests.conftest import compose_config, make_bad_inputs


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    folder = tmp_path_factory.mktemp("bad_inputs")
    return folder, make_bad_inputs(folder)


def test_demo_faceset_has_20_labelled_portraits():
    faces = demo_faceset()
    assert len(faces) == 20
    assert faces.groups == ["black", "east_asian", "south_asian_or_latino", "western"]
    assert {f.attributes["expression_at_rest"] for f in faces} >= {"neutral", "smiling"}


def test_landmarks_on_a_bundled_face(demo_face):
    pts = demo_face.landmarks.points
    assert pts.shape == (478, 3)
    h, w = demo_face.photo.shape[:2]
    assert (pts[:, 0] > 0).all() and (pts[:, 0] < w).all() and (pts[:, 1] > 0).all() and (pts[:, 1] < h).all()
    left_eye, right_eye = demo_face.landmarks.eye_centers
    assert left_eye[0] < right_eye[0] and abs(left_eye[1] - right_eye[1]) < 0.1 * demo_face.landmarks.interocular
    nose_tip, chin, brow = pts[1, :2], pts[152, :2], pts[9, :2]
    assert brow[1] < left_eye[1] < nose_tip[1] < chin[1]
    assert demo_face.n_faces == 1 and demo_face.index == 0


def test_aligned_crop_is_magicface_box(demo_face):
    crop = demo_face.aligned
    assert crop.image.shape == (512, 512, 3) and crop.image.dtype == np.uint8
    x0, _, x1, _ = crop.landmarks.box
    assert (x1 - x0) == pytest.approx(512 / 1.5, rel=1e-6)
    assert (x0 + x1) / 2 == pytest.approx(256, abs=1e-6)
    # the crop pixels at a landmark match the photo pixels at that landmark
    for idx in (1, 152, 468):
        px, py = np.round(demo_face.landmarks.xy[idx]).astype(int)
        cx, cy = np.round(crop.landmarks.xy[idx]).astype(int)
        assert np.abs(crop.image[cy, cx].astype(int) - demo_face.photo[py, px]).max() < 40


def test_paste_back_unchanged_is_exact_and_edits_stay_local(demo_face):
    crop = demo_face.aligned
    assert np.array_equal(paste_back(demo_face.photo, crop, crop.image), demo_face.photo)
    edited = crop.image.copy()
    mouth = np.round(crop.landmarks.xy[13]).astype(int)
    edited[mouth[1] - 10: mouth[1] + 10, mouth[0] - 30: mouth[0] + 30] = (0, 255, 0)
    out = paste_back(demo_face.photo, crop, edited)
    px, py = np.round(demo_face.landmarks.xy[13]).astype(int)
    assert out[py, px, 1] > 200 and out[py, px, 0] < 60
    diff = np.abs(out.astype(int) - demo_face.photo).max(axis=2)
    assert diff[:40].max() == 0 and diff[:, :40].max() == 0  # far corners untouched
    assert out.shape == demo_face.photo.shape


def test_bg_condition_paints_person_black_and_draws_17_dots(demo_face):
    bg = BackgroundCondition()(demo_face.aligned)
    assert bg.shape == demo_face.aligned.image.shape
    dots = jawline_points(demo_face.aligned)
    assert dots.shape == (17, 2) and dots[8, 1] == pytest.approx(demo_face.aligned.landmarks.xy[152, 1], abs=3)
    nose = np.round(demo_face.aligned.landmarks.xy[1]).astype(int)
    assert bg[nose[1], nose[0]].max() == 0  # the face is painted black
    assert bg[5, 5].max() > 60  # top-left background kept (bright sky in 001.jpg)
    colours = {tuple(bg[int(round(y)), int(round(x))]) for x, y in dots}
    assert len(colours) >= 15 and all(max(c) > 100 for c in colours)


@pytest.mark.parametrize("name", ["gray.png", "rgba.png", "cmyk.jpg", "gray16.png", "exif_rotated.jpg", "photo.webp"])
def test_odd_modes_load_as_upright_8bit_rgb(corpus, name, demo_photo):
    folder, _ = corpus
    image = load_image(folder / name)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert image.shape == demo_photo.shape  # EXIF rotation undone
    gray_ref = np.asarray(Image.fromarray(demo_photo).convert("L")).astype(float)
    gray = np.asarray(Image.fromarray(image).convert("L")).astype(float)
    visible = slice(None), slice(60, None)  # the RGBA case is transparent (white) left of x=60
    assert np.abs(gray[visible] - gray_ref[visible]).mean() < 8


def test_exif_rotated_photo_gets_the_same_landmarks(corpus, pipeline, demo_face):
    folder, _ = corpus
    face = pipeline(folder / "exif_rotated.jpg")[0]
    assert np.abs(face.landmarks.xy - demo_face.landmarks.xy).max() < 6


@pytest.mark.parametrize("name", ["truncated.jpg", "not_an_image.jpg", "empty.png", "tiny.png"])
def test_unreadable_files_give_one_readable_error(corpus, name):
    folder, expected = corpus
    with pytest.raises(ImageError) as info:
        load_image(folder / name)
    assert expected[name] in str(info.value) and "\n" not in str(info.value)


def test_missing_file_error(tmp_path):
    with pytest.raises(ImageError, match="image not found"):
        load_image(tmp_path / "nope.jpg")


def test_no_face_and_several_faces(corpus, pipeline):
    folder, _ = corpus
    with pytest.raises(NoFaceError, match="no face found in no_face.png"):
        pipeline(folder / "no_face.png")
    largest = pipeline(folder / "two_faces.jpg")
    assert len(largest) == 1 and largest[0].n_faces == 2
    both = FacePipeline(select="all")(folder / "two_faces.jpg")
    assert [f.index for f in both] == [0, 1]
    assert both[0].landmarks.width > 1.6 * both[1].landmarks.width
    assert both[1].landmarks.box[0] > 500  # the small face is the pasted copy on the right


def test_folder_faceset_labels_and_unlabeled(tmp_path):
    for name in ("a.jpg", "b.png", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "faces.csv").write_text("file,group,gender\na.jpg,groupA,woman\ngone.jpg,groupB,man\n")
    faces = FaceSet(tmp_path)
    assert [f.face_id for f in faces] == ["a", "b", "gone"]
    assert not faces[2].path.exists() and faces[2].group == "groupB"
    assert faces[0].group == "groupA" and faces[0].attributes == {"gender": "woman"}
    assert faces[1].group == UNLABELED
    assert [f.face_id for f in FaceSet(tmp_path, only=["b.png"])] == ["b"]
    with pytest.raises(FaceSetError, match="not in face set"):
        FaceSet(tmp_path, only=["zzz"])
    with pytest.raises(FaceSetError, match="face set folder not found"):
        FaceSet(tmp_path / "missing")
    one = FaceSet(tmp_path / "a.jpg")
    assert [f.face_id for f in one] == ["a"] and one[0].group == "groupA"


def test_shards_split_the_face_set_by_identity_balanced_and_stably(tmp_path):
    """Four shards of the demo set: disjoint, together the whole set, sizes within one, the same every time; a
    person photographed twice (faces.csv ``identity``) lands in one shard."""
    everyone = [e.face_id for e in demo_faceset()]
    shards = [[e.face_id for e in demo_faceset(shard=i, num_shards=4)] for i in range(4)]
    assert sorted(sum(shards, [])) == sorted(everyone)
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    assert shards == [[e.face_id for e in demo_faceset(shard=i, num_shards=4)] for i in range(4)]
    folder = tmp_path / "people"
    folder.mkdir()
    source = demo_faceset()[0].path
    rows = ["file,group,identity"]
    for i in range(6):
        (folder / f"p{i}.jpg").write_bytes(source.read_bytes())
        rows.append(f"p{i}.jpg,western,person{i // 2}")  # three people, two photos each
    (folder / "faces.csv").write_text("\n".join(rows) + "\n")
    parts = [{e.attributes["identity"] for e in FaceSet(folder, shard=i, num_shards=3)} for i in range(3)]
    assert all(len(p) == 1 for p in parts) and set.union(*parts) == {"person0", "person1", "person2"}
    assert all(len(FaceSet(folder, shard=i, num_shards=3)) == 2 for i in range(3))


@pytest.mark.parametrize(("shard", "num_shards", "message"), [
    (4, 4, "faceset.shard must be an integer in 0..3"), (None, 4, "faceset.shard must be"),
    (0, 0, "faceset.num_shards must be an integer >= 1"),
])
def test_bad_shards_are_one_user_error(shard, num_shards, message):
    with pytest.raises(FaceSetError, match=message):
        demo_faceset(shard=shard, num_shards=num_shards)


def test_the_edit_config_takes_a_shard():
    from hydra.utils import instantiate

    cfg = compose_config("edit", ["faceset.shard=1", "faceset.num_shards=4"])
    assert [e.face_id for e in instantiate(cfg.faceset)] == [e.face_id for e in demo_faceset(shard=1, num_shards=4)]
