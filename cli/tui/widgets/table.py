"""A DataTable that updates from rows keyed by id, touching only the cells that changed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowKey


class KeyedTable(DataTable):
    """`DataTable` with `sync()`: cell updates when the row keys are unchanged, a rebuild otherwise."""

    DEFAULT_CSS = "KeyedTable { height: 1fr; }"

    def __init__(self, columns: Sequence[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._column_spec = list(columns)
        self._rows: dict[str, tuple[Any, ...]] = {}

    def on_mount(self) -> None:
        for key, label in self._column_spec:
            self.add_column(label, key=key)

    def sync(self, rows: dict[str, tuple[Any, ...]]) -> None:
        """Show ``rows`` (row key -> cells, in display order)."""
        if list(rows) != list(self._rows):
            cursor = self.cursor_row
            self.clear()
            for key, cells in rows.items():
                self.add_row(*cells, key=key)
            if rows:
                self.move_cursor(row=min(cursor, len(rows) - 1), animate=False)
        else:
            # What `update_cell` does, minus one repaint request per cell: a refresh of 100 rows
            # would otherwise schedule hundreds of repaints.
            keys = [ColumnKey(key) for key, _ in self._column_spec]
            changed = False
            for row_key, cells in rows.items():
                old = self._rows[row_key]
                row = self._data[RowKey(row_key)]
                for index, cell in enumerate(cells):
                    if cell != old[index]:
                        row[keys[index]] = cell
                        changed = True
            if changed:
                self._update_count += 1
                self.refresh()
        self._rows = dict(rows)

    @property
    def selected_key(self) -> str | None:
        """The key of the row under the cursor."""
        if not self._rows or self.cursor_row < 0:
            return None
        keys = list(self._rows)
        return keys[self.cursor_row] if self.cursor_row < len(keys) else None
