"""Items: the table, its read schema, and the filters its list takes."""

from typing import cast

import sqlalchemy as sa

from service.db.repository import Filter, Repository, Row
from service.db.search import FullTextIndex, SubstringSearch, TrigramIndex
from service.errors import Answer, ConstraintAnswers
from service.items.models import NAME_FULL_TEXT, NAME_GRAMS, Item, ItemNameTrigram, fold_case
from service.items.schemas import ItemRead

items = cast(sa.Table, Item.__table__)
name_trigrams = cast(sa.Table, ItemNameTrigram.__table__)


def _with_folded_name(values: Row) -> Row:
    if "name" in values:
        return values | {"name_folded": fold_case(values["name"])}
    return values


ITEMS = Repository(
    items,
    ItemRead,
    not_found="Item not found",
    filters={
        "min_price": Filter(items.c.price >= sa.bindparam("min_price")),
        "max_price": Filter(items.c.price <= sa.bindparam("max_price")),
    },
    stored=_with_folded_name,
    search=SubstringSearch(
        "q",
        items.c.name_folded,
        fold=fold_case,
        short_text_grams=NAME_GRAMS,
        trigram_table=TrigramIndex(name_trigrams, key="item_id"),
        full_text=FullTextIndex(NAME_FULL_TEXT, column="name_folded"),
    ),
)

ANSWERS: ConstraintAnswers = {
    "uq_items_sku": Answer(409, "Another item already has this sku; skus must be unique"),
}
