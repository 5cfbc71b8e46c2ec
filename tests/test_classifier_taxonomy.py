"""Labels -> tags, the shipped ImageNet taxonomy, regional roll-ups and every way a taxonomy can be wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from station.classifier.model import read_labels
from station.classifier.taxonomy import TaxonomyError, load_taxonomy, regions

ROOT = Path(__file__).resolve().parents[1]
LABELS_FILE = ROOT / "models" / "imagenet_labels.txt"
TAXONOMY = ROOT / "models" / "taxonomy_imagenet.toml"


@pytest.fixture(scope="module")
def labels() -> list[str]:
    return read_labels(LABELS_FILE)


@pytest.fixture(scope="module")
def far_east(labels):
    return load_taxonomy(TAXONOMY, labels, "russian_far_east", "imagenet_labels.txt")


@pytest.fixture(scope="module")
def plain(labels):
    return load_taxonomy(TAXONOMY, labels, "none", "imagenet_labels.txt")


def meaning(tax, name: str) -> tuple[str, str | None]:
    i = tax.names.index(name)
    return tax.tags[i], tax.species[i]


def one_hot(labels: list[str], **p: float) -> np.ndarray:
    v = np.zeros(len(labels), np.float32)
    for name, value in p.items():
        v[labels.index(name.replace("_", " "))] = value
    return v


# -- the shipped taxonomy -------------------------------------------------------------------
def test_big_cats_and_the_striped_house_cat(plain, labels):
    assert meaning(plain, "leopard") == ("leopard", "leopard")
    assert meaning(plain, "tiger") == ("tiger", "tiger")
    assert labels[282] == "a cat having a striped coat"
    assert meaning(plain, labels[282]) == ("other_animal", "domestic cat")
    assert meaning(plain, "tiger shark")[0] == "other_animal"
    assert meaning(plain, "snow leopard") == ("other_animal", "snow leopard")


def test_prey_people_vehicles_and_scenery(plain):
    assert meaning(plain, "wild boar") == ("prey", "boar")
    assert meaning(plain, "hare") == ("prey", "hare")
    assert meaning(plain, "impala (antelope)") == ("prey", "antelope")
    assert meaning(plain, "military uniform") == ("human", "clothing")
    assert meaning(plain, "rifle") == ("human", "firearm")
    assert meaning(plain, "chainsaw") == ("human", "chainsaw")
    assert meaning(plain, "scuba diver") == ("human", "person")
    assert meaning(plain, "snowmobile") == ("vehicle", "snowmobile")
    assert meaning(plain, "pickup truck") == ("vehicle", "truck")
    assert meaning(plain, "valley") == ("blank", None)
    assert meaning(plain, "fur coat") == ("blank", None)  # what the model says for animal fur
    assert meaning(plain, "Beagle") == ("other_animal", "domestic dog")
    assert meaning(plain, "grey wolf") == ("other_animal", "grey wolf")
    assert meaning(plain, "triceratops") == ("blank", None)


def test_every_label_has_a_tag_and_duplicate_names_share_one_slot(plain, labels):
    assert len(plain.fold) == len(labels) == 1000
    assert labels.count("missile") == 2 and labels.count("sunglasses") == 2
    assert len(plain.names) == 998
    assert plain.fold[657] == plain.fold[744]
    p = plain.roll_up(one_hot(labels) + np.eye(1000, dtype=np.float32)[657] * 0.3
                      + np.eye(1000, dtype=np.float32)[744] * 0.2)
    assert p[plain.names.index("missile")] == pytest.approx(0.5)


def test_in_the_russian_far_east_a_jaguar_is_a_leopard(far_east, labels):
    p = far_east.roll_up(one_hot(labels, leopard=0.3, jaguar=0.25, cheetah=0.1, snow_leopard=0.05))
    assert p[far_east.names.index("leopard")] == pytest.approx(0.7)
    assert "jaguar" not in far_east.names
    assert far_east.tag_of("leopard") == "leopard"


def test_far_east_roll_up_of_lions_bears_deer_and_rabbits(far_east, labels):
    p = far_east.roll_up(one_hot(labels, lion=0.4, American_black_bear=0.2, gazelle=0.1, cottontail_rabbit=0.1))
    assert p[far_east.names.index("tiger")] == pytest.approx(0.4)
    assert meaning(far_east, "Asiatic black bear") == ("other_animal", "bear")
    assert p[far_east.names.index("Asiatic black bear")] == pytest.approx(0.2)
    assert meaning(far_east, "deer") == ("prey", "deer")
    assert p[far_east.names.index("deer")] == pytest.approx(0.1)
    assert p[far_east.names.index("hare")] == pytest.approx(0.1)
    assert meaning(far_east, "goral") == ("prey", "goral")


def test_roll_up_keeps_the_total_probability(far_east, labels):
    p = np.random.default_rng(0).dirichlet(np.ones(len(labels))).astype(np.float32)
    assert far_east.roll_up(p).sum() == pytest.approx(p.sum(), rel=1e-5)
    batch = far_east.roll_up(np.stack([p, p]))
    assert batch.shape == (2, len(far_east.names))


def test_region_none_folds_nothing(plain, labels):
    p = plain.roll_up(one_hot(labels, jaguar=0.6))
    assert p[plain.names.index("jaguar")] == pytest.approx(0.6)
    assert p[plain.names.index("leopard")] == 0


def test_regions_listed(labels):
    assert regions(TAXONOMY) == ["none", "russian_far_east"]


# -- a taxonomy that does not fit -----------------------------------------------------------
SMALL_LABELS = ["leopard", "jaguar", "wild boar", "jeans", "valley"]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tax.toml"
    path.write_text(text)
    return path


def load(path: Path, region: str = "none"):
    return load_taxonomy(path, SMALL_LABELS, region, "labels.txt")


def test_unknown_tag_is_named_with_the_allowed_ones(tmp_path):
    path = write(tmp_path, '[tags.leopardd]\nleopard = ["leopard"]\n')
    with pytest.raises(TaxonomyError, match=r"tax\.toml: tags\.leopardd: unknown tag 'leopardd' \(allowed: leopard, tiger"):
        load(path)


def test_label_missing_from_the_labels_file_is_named(tmp_path):
    path = write(tmp_path, '[tags.prey]\nboar = ["wild boars"]\n')
    with pytest.raises(TaxonomyError) as err:
        load(path)
    msg = str(err.value)
    assert "tags.prey.boar" in msg and "'wild boars' is not in labels.txt" in msg
    assert "did you mean 'wild boar'" in msg


def test_a_label_under_two_tags_is_refused(tmp_path):
    path = write(tmp_path, '[tags.leopard]\nleopard = ["leopard"]\n[tags.prey]\ncat = ["leopard"]\n')
    with pytest.raises(TaxonomyError, match="already listed under tags.leopard.leopard"):
        load(path)


def test_unknown_region_lists_the_defined_ones(tmp_path):
    path = write(tmp_path, '[regions.amur]\n[regions.amur.fold]\njaguar = "leopard"\n')
    with pytest.raises(TaxonomyError, match=r"region 'primorye' is not defined here \(defined: amur, none\)"):
        load(path, "primorye")


def test_fold_to_an_undeclared_name_is_refused(tmp_path):
    path = write(tmp_path, '[regions.amur.fold]\njaguar = "Amur leopard"\n')
    with pytest.raises(TaxonomyError, match=r"regions\.amur\.fold\.jaguar: target 'Amur leopard' is neither"):
        load(path, "amur")


def test_fold_of_a_label_the_model_lacks_is_named(tmp_path):
    path = write(tmp_path, '[regions.amur.fold]\ncheetah = "leopard"\n')
    with pytest.raises(TaxonomyError, match="'cheetah' is not in labels.txt"):
        load(path, "amur")


def test_chained_folds_are_refused(tmp_path):
    path = write(tmp_path, '[regions.amur.fold]\njaguar = "leopard"\nleopard = "valley"\n')
    with pytest.raises(TaxonomyError, match="both folded and a fold target"):
        load(path, "amur")


def test_region_new_name_with_a_bad_tag(tmp_path):
    path = write(tmp_path, '[regions.amur.fold]\njaguar = "big cat"\n'
                           '[regions.amur.new]\n"big cat" = { tag = "cat" }\n')
    with pytest.raises(TaxonomyError, match=r"regions\.amur\.new\.big cat\.tag: unknown tag 'cat'"):
        load(path, "amur")


def test_range_beyond_the_labels_is_refused(tmp_path):
    path = write(tmp_path, '[[ranges]]\nfirst = 0\nlast = 5\ntag = "other_animal"\n')
    with pytest.raises(TaxonomyError, match=r"ranges\[0\]: first=0, last=5 must be indices"):
        load(path)


def test_typo_in_a_top_level_key_is_refused(tmp_path):
    path = write(tmp_path, 'default_tg = "blank"\n')
    with pytest.raises(TaxonomyError, match="default_tg: unknown key"):
        load(path)


def test_broken_toml_and_missing_file_name_the_file(tmp_path):
    with pytest.raises(TaxonomyError, match=r"tax\.toml: not valid TOML"):
        load(write(tmp_path, "[tags.leopard\n"))
    with pytest.raises(TaxonomyError, match="nope.toml: taxonomy file not found"):
        load(tmp_path / "nope.toml")


def test_ranges_species_and_later_ranges_win(tmp_path):
    path = write(tmp_path, '[[ranges]]\nfirst = 0\nlast = 2\ntag = "other_animal"\n'
                           '[[ranges]]\nfirst = 1\nlast = 1\ntag = "other_animal"\nspecies = "cat"\n'
                           '[tags.human]\nclothing = ["jeans"]\n')
    tax = load(path)
    assert meaning(tax, "leopard") == ("other_animal", "leopard")
    assert meaning(tax, "jaguar") == ("other_animal", "cat")
    assert meaning(tax, "jeans") == ("human", "clothing")
    assert meaning(tax, "valley") == ("blank", None)
