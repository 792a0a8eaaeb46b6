"""A DataTable that updates from rows keyed by id, repainting only the cells that changed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import CellKey, ColumnKey, RowKey

#: Past this many changed rows one whole repaint is cheaper than a region per row.
ROW_REFRESH_LIMIT = 8


def _width(cell: Any) -> int:
    return cell.cell_len if isinstance(cell, Text) else cell_len(str(cell))


class KeyedTable(DataTable):
    """`DataTable` with `sync()`: cell updates when the row keys are unchanged, a rebuild otherwise.

    `DataTable.update_cell` bumps one table-wide counter that every render cache is keyed on, so a
    single new price re-renders every visible cell. `sync()` instead drops the cached renders of the
    changed cells only and repaints their rows (it relies on the cache layout of Textual's
    `DataTable`; `tests/e2e/test_tui.py` checks what is painted after updates).
    """

    DEFAULT_CSS = "KeyedTable { height: 1fr; }"

    def __init__(self, columns: Sequence[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._column_spec = list(columns)
        self._column_keys = [ColumnKey(key) for key, _ in columns]
        self._rows: dict[str, tuple[Any, ...]] = {}
        self._row_order: list[str] = []
        self._row_index: dict[str, int] = {}

    def on_mount(self) -> None:
        for key, label in self._column_spec:
            self.add_column(label, key=key)

    def sync(self, rows: dict[str, tuple[Any, ...]]) -> None:
        """Show ``rows`` (row key -> cells, in display order)."""
        order = list(rows)
        if order != self._row_order:
            self._rebuild(rows)
            self._row_index = {key: index for index, key in enumerate(order)}
        else:
            self._update_cells(rows)
        self._rows = dict(rows)
        self._row_order = order

    def _rebuild(self, rows: dict[str, tuple[Any, ...]]) -> None:
        cursor = self.cursor_row
        self.clear()
        for key, cells in rows.items():
            self.add_row(*cells, key=key)
        if rows:
            self.move_cursor(row=min(cursor, len(rows) - 1), animate=False)

    def _update_cells(self, rows: dict[str, tuple[Any, ...]]) -> None:
        changed: dict[str, list[int]] = {}
        widths = [self.columns[key].content_width for key in self._column_keys]
        wider = False
        for row_key, cells in rows.items():
            old = self._rows[row_key]
            if cells is old:
                continue
            columns = [i for i, cell in enumerate(cells) if cell != old[i]]
            if not columns:
                continue
            changed[row_key] = columns
            data = self._data[row_key]  # type: ignore[index]  # a RowKey equals and hashes as its string
            for i in columns:
                data[self._column_keys[i]] = cells[i]
                if _width(cells[i]) > widths[i]:
                    self._updated_cells.add(CellKey(RowKey(row_key), self._column_keys[i]))
                    wider = True
        if wider:  # a column grows: every line moves, so invalidate everything as update_cell does
            self._require_update_dimensions = True
            self._update_count += 1
            self._clear_caches()  # entries keyed on the old count would only slow `_forget_renders` down
            self.refresh()
        elif changed:
            self._forget_renders(changed)

    def _forget_renders(self, changed: dict[str, list[int]]) -> None:
        """Drop the cached renders of the changed cells and repaint their rows."""
        # Keys compared through their plain strings: hashing Textual's key objects costs a Python call each.
        names = [key for key, _ in self._column_spec]
        cells = {(row_key, names[i]) for row_key, columns in changed.items() for i in columns}
        for cell_key in [k for k in self._cell_render_cache.keys()  # noqa: SIM118 - no __iter__
                         if (k[0].value, k[1].value) in cells]:
            self._cell_render_cache.discard(cell_key)
        for line_key in [k for k in self._row_render_cache.keys() if k[0].value in changed]:  # noqa: SIM118
            self._row_render_cache.discard(line_key)
        indices = [self._row_index[row_key] for row_key in changed]
        for index in indices:
            self._row_renderable_cache.discard((self._update_count, index))
        self._line_cache.clear()
        if len(indices) > ROW_REFRESH_LIMIT:
            self.refresh()
        else:
            for index in indices:
                self.refresh_row(index)

    def select_key(self, key: str) -> bool:
        """Put the cursor on the row ``key``; False when there is no such row."""
        if key not in self._row_index:
            return False
        self.move_cursor(row=self._row_index[key], animate=False)
        return True

    @property
    def selected_key(self) -> str | None:
        """The key of the row under the cursor."""
        if not self._row_order or self.cursor_row < 0:
            return None
        return self._row_order[self.cursor_row] if self.cursor_row < len(self._row_order) else None
