"""What a client may ask for: spaces, datasets, presets."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import ReadAccess
from nao_core.config import DATASET_NAMES
from nao_core.presets import list_presets
from nao_core.search_space import list_search_spaces

router = APIRouter(tags=["catalog"], dependencies=[ReadAccess])


@router.get("/catalog")
def catalog() -> dict[str, list[str]]:
    presets = list_presets()
    return {
        "spaces": list_search_spaces(),
        "datasets": list(DATASET_NAMES),
        "search_presets": [p.split("/", 1)[1] for p in presets if p.startswith("search/")],
        "train_presets": [p.split("/", 1)[1] for p in presets if p.startswith("train/")],
    }
