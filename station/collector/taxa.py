"""Scientific names for the species the station's classifier reports (Camtrap DP
``observations.scientificName`` and the package's ``taxonomic`` list).

Keys are the ``species`` strings the shipped taxonomy (``models/taxonomy_imagenet.toml``)
emits for animal tags, in both of its regions (``none`` and ``russian_far_east``), and a
few model labels and common names of Russian Far East animals that a regional model may
report. A species is named at the rank it is known: the taxonomy's "deer" (ImageNet
antelopes folded into the local deer) could be roe, sika or red deer, so it is the family
Cervidae, not a species. Human and vehicle evidence (person, clothing, firearm,
snowmobile, ...) gets no scientific name: Camtrap DP says what it is with
``observationType``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from station.vocabulary import ANIMAL_TAGS


@dataclass(frozen=True, slots=True)
class Taxon:
    scientific_name: str
    rank: str                                      # species, genus, family
    vernacular: dict[str, str] = field(default_factory=dict)  # ISO 639-3 code -> name

    def as_camtrap_dp(self) -> dict:
        """An entry of the package's ``taxonomic`` list."""
        out: dict = {"scientificName": self.scientific_name, "taxonRank": self.rank, "kingdom": "Animalia"}
        if self.vernacular:
            out["vernacularNames"] = dict(self.vernacular)
        return out


def _t(name: str, rank: str, eng: str, rus: str) -> Taxon:
    return Taxon(name, rank, {"eng": eng, "rus": rus})


LEOPARD = _t("Panthera pardus", "species", "leopard", "леопард")
TIGER = _t("Panthera tigris", "species", "tiger", "тигр")
WILD_BOAR = _t("Sus scrofa", "species", "wild boar", "кабан")
DEER = _t("Cervidae", "family", "deer", "оленевые")
ROE_DEER = _t("Capreolus pygargus", "species", "Siberian roe deer", "сибирская косуля")
SIKA_DEER = _t("Cervus nippon", "species", "sika deer", "пятнистый олень")
RED_DEER = _t("Cervus canadensis", "species", "wapiti (Manchurian red deer)", "изюбрь")
MUSK_DEER = _t("Moschus moschiferus", "species", "Siberian musk deer", "кабарга")
GORAL = _t("Naemorhedus caudatus", "species", "long-tailed goral", "амурский горал")
HARE = _t("Lepus", "genus", "hares", "зайцы")
BEAR = _t("Ursidae", "family", "bears", "медвежьи")
BROWN_BEAR = _t("Ursus arctos", "species", "brown bear", "бурый медведь")
BLACK_BEAR = _t("Ursus thibetanus", "species", "Asiatic black bear", "гималайский медведь")
WOLF = _t("Canis lupus", "species", "grey wolf", "волк")
RED_FOX = _t("Vulpes vulpes", "species", "red fox", "обыкновенная лисица")
LYNX = _t("Lynx lynx", "species", "Eurasian lynx", "рысь")
BADGER = _t("Meles", "genus", "badgers", "барсуки")
WEASEL = _t("Mustela", "genus", "weasels and polecats", "ласки и хорьки")
MINK = _t("Neogale vison", "species", "American mink", "американская норка")
OTTER = _t("Lutra lutra", "species", "Eurasian otter", "речная выдра")
DOG = _t("Canis familiaris", "species", "domestic dog", "собака")
CAT = _t("Felis catus", "species", "domestic cat", "домашняя кошка")
# Only in region "none" (the model's own labels): animals that do not live in the Far East.
WARTHOG = _t("Phacochoerus africanus", "species", "common warthog", "бородавочник")
RABBIT = _t("Leporidae", "family", "rabbits and hares", "зайцевые")
BOVIDS = _t("Bovidae", "family", "bovids (antelopes, wild sheep and goats)", "полорогие")

SCIENTIFIC_NAMES: dict[str, Taxon] = {
    # leopard and tiger tags
    "leopard": LEOPARD, "amur leopard": LEOPARD,
    "tiger": TIGER, "amur tiger": TIGER,
    # prey: what the taxonomy emits ...
    "boar": WILD_BOAR, "deer": DEER, "goral": GORAL, "hare": HARE,
    "warthog": WARTHOG, "rabbit": RABBIT, "antelope": BOVIDS, "wild sheep or goat": BOVIDS,
    # ... and names a regional model may use
    "wild boar": WILD_BOAR, "roe deer": ROE_DEER, "siberian roe deer": ROE_DEER,
    "sika deer": SIKA_DEER, "red deer": RED_DEER, "wapiti": RED_DEER, "musk deer": MUSK_DEER,
    "amur goral": GORAL, "manchurian hare": HARE, "mountain hare": HARE,
    # other animals of the region
    "bear": BEAR, "brown bear": BROWN_BEAR, "asiatic black bear": BLACK_BEAR,
    "grey wolf": WOLF, "red fox": RED_FOX, "lynx": LYNX, "badger": BADGER, "weasel": WEASEL,
    "mink": MINK, "otter": OTTER, "domestic dog": DOG, "domestic cat": CAT,
}



def taxon_for(tag: str | None, species: str | None, label: str | None = None) -> Taxon | None:
    """The taxon of an animal detection: by its species, else by the model's label; None for
    non-animal tags and for animals this table does not name."""
    if tag not in ANIMAL_TAGS:
        return None
    for name in (species, label):
        if name:
            taxon = SCIENTIFIC_NAMES.get(name.strip().lower())
            if taxon is not None:
                return taxon
    return None
