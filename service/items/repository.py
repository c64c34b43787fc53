"""Items: the table, its read schema, and the filters its list takes."""

from typing import cast

import sqlalchemy as sa

from service.db.repository import Filter, Repository, Row
from service.db.search import FullTextIndex, ShortTextIndexed, TrigramIndex
from service.errors import Answer, ConstraintAnswers
from service.items.models import NAME_FULL_TEXT, NAME_GRAMS, Item, ItemNameTrigram, fold_case
from service.items.schemas import ItemRead

items = cast(sa.Table, Item.__table__)
name_trigrams = cast(sa.Table, ItemNameTrigram.__table__)


def _contains(text: str) -> str:
    """A LIKE pattern (escape character `/`) matching the folded `text` anywhere,
    `%` and `_` literal."""
    escaped = fold_case(text).replace("/", "//").replace("%", "/%").replace("_", "/_")
    return f"%{escaped}%"


def _with_folded_name(values: Row) -> Row:
    if "name" in values:
        return values | {"name_folded": fold_case(values["name"])}
    return values


ITEMS = Repository(
    items,
    ItemRead,
    not_found="Item not found",
    filters={
        "q": Filter(
            sa.and_(
                items.c.name_folded.like(sa.bindparam("q"), escape="/"),
                ShortTextIndexed(items.c.name_folded, sa.bindparam("q_folded"), NAME_GRAMS),
            ),
            prepare=_contains,
            more=lambda text: {"q_folded": fold_case(text)},
        ),
        "min_price": Filter(items.c.price >= sa.bindparam("min_price")),
        "max_price": Filter(items.c.price <= sa.bindparam("max_price")),
    },
    stored=_with_folded_name,
    search=TrigramIndex(name_trigrams, key="item_id", field="q", searched=fold_case),
    full_text=FullTextIndex(NAME_FULL_TEXT, column="name_folded", field="q", searched=fold_case),
)

ANSWERS: ConstraintAnswers = {
    "uq_items_sku": Answer(409, "Another item already has this sku; skus must be unique"),
}
