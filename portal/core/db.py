"""Database helpers the ORM has no cheap form of."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connection
from django.db.models import Model


def rows_update(model: type[Model], fields: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """``UPDATE model SET fields... WHERE pk = ...`` for each row: (values of ``fields``..., pk).

    One statement, which the driver runs for every row (executemany; psycopg pipelines them), where
    ``bulk_update`` builds a CASE with a branch per row in Python (seconds for thousands of rows) and a
    loop of ``.update()`` costs a query each. Values are the fields' Python values (an aware datetime
    for a DateTimeField): each goes through its field's own conversion for the database.
    """
    if not rows:
        return
    meta, quote = model._meta, connection.ops.quote_name
    columns = [*(meta.get_field(field) for field in fields), meta.pk]
    assignments = ", ".join(f"{quote(column.column)} = %s" for column in columns[:-1])
    sql = f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {quote(meta.pk.column)} = %s"
    params = [
        [column.get_db_prep_save(value, connection) for column, value in zip(columns, row, strict=True)]
        for row in rows
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)
